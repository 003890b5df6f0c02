/*
 * request_response.c - request/response over MQTT 5.0: a responder answers requests on
 * "service/echo/request" by publishing to each request's response topic with its correlation
 * data; a requester sends three requests and matches the replies by correlation data.
 *
 *   ./request_response [host] [port]          (default localhost 1883)
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eq1.h"

#define REQUESTS 3

static eq1_mqtt_client *responder_client;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int answered[REQUESTS];

/* Responder: runs on its client's dispatcher thread, publishing from inside the callback. */
static void on_request(void *user_data, const eq1_mqtt_message *msg)
{
	(void)user_data;
	const eq1_mqtt_properties *req = msg->properties;
	if (!req || !req->response_topic)
		return; /* not a request: nowhere to answer */
	char reply[128];
	int n = snprintf(reply, sizeof reply, "echo: %.*s", (int)msg->payload_len,
			 (const char *)msg->payload);
	eq1_mqtt_properties props = { 0 };
	props.correlation_data = req->correlation_data;
	props.correlation_data_len = req->correlation_data_len;
	eq1_mqtt_client_publish_with_properties(responder_client, req->response_topic,
						(const uint8_t *)reply, (size_t)n, 1, false, &props,
						NULL);
}

/* Requester: the correlation data is the request's index. */
static void on_reply(void *user_data, const eq1_mqtt_message *msg)
{
	(void)user_data;
	const eq1_mqtt_properties *p = msg->properties;
	if (!p || p->correlation_data_len != 1 || p->correlation_data[0] >= REQUESTS)
		return;
	int index = p->correlation_data[0];
	printf("Reply to request %d: %.*s\n", index, (int)msg->payload_len,
	       (const char *)msg->payload);
	fflush(stdout);
	pthread_mutex_lock(&lock);
	answered[index] = 1;
	pthread_mutex_unlock(&lock);
}

static eq1_mqtt_client *connect_v5(const char *host, int port)
{
	eq1_mqtt_options *options = eq1_mqtt_options_new();
	eq1_mqtt_options_set_broker(options, host, port);
	eq1_mqtt_options_set_protocol_version(options, EQ1_MQTT_V5);
	eq1_mqtt_client *client = NULL;
	eq1_status rc = eq1_mqtt_client_new(options, NULL, NULL, &client);
	eq1_mqtt_options_free(options);
	if (rc == EQ1_STATUS_OK)
		rc = eq1_mqtt_client_connect(client, 5000);
	if (rc != EQ1_STATUS_OK) {
		char detail[256];
		eq1_last_error_message(detail, sizeof detail);
		fprintf(stderr, "connect failed: %s (%s)\n", eq1_status_str(rc), detail);
		eq1_mqtt_client_free(client);
		return NULL;
	}
	return client;
}

int main(int argc, char **argv)
{
	const char *host = argc > 1 ? argv[1] : "localhost";
	int port = argc > 2 ? atoi(argv[2]) : 1883;

	responder_client = connect_v5(host, port);
	eq1_mqtt_client *requester = connect_v5(host, port);
	if (!responder_client || !requester)
		return 1;
	eq1_mqtt_client_subscribe(responder_client, "service/echo/request", 1, on_request, NULL,
				  5000, NULL);
	eq1_mqtt_client_subscribe(requester, "service/echo/reply/me", 1, on_reply, NULL, 5000,
				  NULL);

	const char *questions[REQUESTS] = { "one", "two", "three" };
	for (int i = 0; i < REQUESTS; i++) {
		uint8_t correlation = (uint8_t)i;
		eq1_mqtt_properties props = { 0 };
		props.response_topic = "service/echo/reply/me";
		props.correlation_data = &correlation;
		props.correlation_data_len = 1;
		eq1_mqtt_client_publish_with_properties(requester, "service/echo/request",
							(const uint8_t *)questions[i],
							strlen(questions[i]), 1, false, &props, NULL);
	}

	int done = 0;
	for (int wait = 0; wait < 500 && done < REQUESTS; wait++) {
		nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
		pthread_mutex_lock(&lock);
		done = answered[0] + answered[1] + answered[2];
		pthread_mutex_unlock(&lock);
	}
	printf("%d of %d requests answered\n", done, REQUESTS);

	eq1_mqtt_client_disconnect(requester, 2000);
	eq1_mqtt_client_disconnect(responder_client, 2000);
	eq1_mqtt_client_free(requester);
	eq1_mqtt_client_free(responder_client);
	return done == REQUESTS ? 0 : 2;
}
