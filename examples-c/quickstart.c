/*
 * quickstart.c - the design's quick start, in C: connect, subscribe with a callback, publish
 * "Hello MQTT!" at QoS 1, receive it, disconnect.
 *
 *   cc -std=c11 quickstart.c -I include -L target/release -leq1 -o quickstart
 *   ./quickstart [host] [port]          (default localhost 1883)
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eq1.h"

static atomic_int received;

/* Runs on the client's dispatcher thread; `msg` is valid until we return. */
static void on_message(void *user_data, const eq1_mqtt_message *msg)
{
	(void)user_data;
	printf("Received: [%s] %.*s\n", msg->topic, (int)msg->payload_len, (const char *)msg->payload);
	fflush(stdout);
	atomic_store(&received, 1);
}

static int fail(const char *what, eq1_status status)
{
	char detail[512];
	eq1_last_error_message(detail, sizeof detail);
	fprintf(stderr, "%s failed: %s (%s)\n", what, eq1_status_str(status), detail);
	return 1;
}

int main(int argc, char **argv)
{
	const char *host = argc > 1 ? argv[1] : "localhost";
	int port = argc > 2 ? atoi(argv[2]) : 1883;
	eq1_status rc;

	/* 1. Options */
	eq1_mqtt_options *options = eq1_mqtt_options_new();
	eq1_mqtt_options_set_broker(options, host, port);
	eq1_mqtt_options_set_connect_timeout(options, 60 * 1000);

	/* 2. Client */
	eq1_mqtt_client *client = NULL;
	rc = eq1_mqtt_client_new(options, NULL, NULL, &client);
	eq1_mqtt_options_free(options); /* the client keeps its own copy */
	if (rc != EQ1_STATUS_OK)
		return fail("client_new", rc);

	/* 3. Connect */
	if ((rc = eq1_mqtt_client_connect(client, 0)) != EQ1_STATUS_OK) {
		eq1_mqtt_client_free(client);
		return fail("connect", rc);
	}
	printf("Connected to %s:%d\n", host, port);

	/* 4-5. Subscribe with a callback */
	int granted = -1;
	rc = eq1_mqtt_client_subscribe(client, "test/topic", 1, on_message, NULL, 5000, &granted);
	if (rc != EQ1_STATUS_OK) {
		eq1_mqtt_client_free(client);
		return fail("subscribe", rc);
	}
	printf("Subscribed to test/topic (granted QoS %d)\n", granted);

	/* 6. Publish at QoS 1 and wait for the broker's PUBACK */
	const char *text = "Hello MQTT!";
	eq1_token token = 0;
	rc = eq1_mqtt_client_publish(client, "test/topic", (const uint8_t *)text, strlen(text), 1,
				     false, &token);
	if (rc == EQ1_STATUS_OK)
		rc = eq1_mqtt_client_wait(client, token, 5000);
	if (rc != EQ1_STATUS_OK) {
		eq1_mqtt_client_free(client);
		return fail("publish", rc);
	}
	printf("Published (token %llu acknowledged)\n", (unsigned long long)token);

	/* Wait (up to 5 s) for our own message to come back through the subscription. */
	for (int i = 0; i < 500 && !atomic_load(&received); i++)
		nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);

	/* 7. Disconnect and free */
	rc = eq1_mqtt_client_disconnect(client, 5000);
	eq1_mqtt_client_free(client);
	if (rc != EQ1_STATUS_OK)
		return fail("disconnect", rc);
	printf("Disconnected\n");
	return atomic_load(&received) ? 0 : 2;
}
