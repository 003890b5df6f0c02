/*
 * request_response.c - request/response over MQTT 5.0: a responder answers requests on
 * "service/echo/request" with eq1_mqtt_client_respond (to the request's response topic, with
 * its correlation data); a requester sends three requests with eq1_mqtt_client_request, which
 * waits for each reply, and one with eq1_mqtt_client_request_async.
 *
 *   ./request_response [host] [port]          (default localhost 1883)
 */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eq1.h"

static eq1_mqtt_client *responder;

/* Responder: runs on its client's dispatcher thread, answering from inside the callback. */
static void on_request(void *user_data, const eq1_mqtt_message *msg)
{
	(void)user_data;
	char reply[128];
	int n = snprintf(reply, sizeof reply, "echo: %.*s", (int)msg->payload_len,
			 (const char *)msg->payload);
	eq1_status rc = eq1_mqtt_client_respond(responder, msg, (const uint8_t *)reply, (size_t)n,
						1, NULL);
	if (rc != EQ1_STATUS_OK) /* e.g. EQ1_STATUS_NO_RESPONSE_TOPIC: not a request */
		fprintf(stderr, "cannot respond: %s\n", eq1_status_str(rc));
}

static atomic_int async_answered;

/* The asynchronous request's outcome, on the requester's dispatcher thread. */
static void on_reply(void *user_data, eq1_status status, const eq1_mqtt_response *response)
{
	(void)user_data;
	if (status == EQ1_STATUS_OK)
		printf("Async reply: %.*s\n", (int)response->payload_len,
		       (const char *)response->payload);
	else
		printf("Async request failed: %s\n", eq1_status_str(status));
	fflush(stdout);
	atomic_store(&async_answered, status == EQ1_STATUS_OK ? 1 : -1);
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

	responder = connect_v5(host, port);
	eq1_mqtt_client *requester = connect_v5(host, port);
	if (!responder || !requester)
		return 1;
	eq1_mqtt_client_subscribe(responder, "service/echo/request", 1, on_request, NULL, 5000,
				  NULL);

	const char *questions[] = { "one", "two", "three" };
	int answered = 0;
	for (int i = 0; i < 3; i++) {
		eq1_mqtt_response *response = NULL;
		eq1_status rc = eq1_mqtt_client_request(requester, "service/echo/request",
							(const uint8_t *)questions[i],
							strlen(questions[i]), 5000, &response);
		if (rc != EQ1_STATUS_OK) {
			printf("Request %d failed: %s\n", i, eq1_status_str(rc));
			continue;
		}
		printf("Reply to request %d: %.*s\n", i, (int)response->payload_len,
		       (const char *)response->payload);
		eq1_mqtt_response_free(response); /* the reply is ours: free it */
		answered++;
	}
	if (eq1_mqtt_client_request_async(requester, "service/echo/request",
					  (const uint8_t *)"four", 4, 5000, on_reply,
					  NULL) == EQ1_STATUS_OK) {
		for (int wait = 0; wait < 600 && atomic_load(&async_answered) == 0; wait++)
			nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
	}
	if (atomic_load(&async_answered) == 1)
		answered++;
	printf("%d of 4 requests answered\n", answered);

	eq1_mqtt_client_disconnect(requester, 2000);
	eq1_mqtt_client_disconnect(responder, 2000);
	eq1_mqtt_client_free(requester);
	eq1_mqtt_client_free(responder);
	return answered == 4 ? 0 : 2;
}
