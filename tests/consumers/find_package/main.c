/*
 * main.c - the smallest useful libeq1 program, built against an installed eq1 with
 * find_package(eq1): connect, subscribe, publish one QoS 1 message, receive it, disconnect.
 *
 *   consumer <host> <port>       prints "round trip OK" and exits 0 on success
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "eq1.h"

static atomic_int received;
static char topic[64];

static void on_message(void *user_data, const eq1_mqtt_message *msg)
{
	(void)user_data;
	if (strcmp(msg->topic, topic) == 0 && msg->payload_len == 5 &&
	    memcmp(msg->payload, "hello", 5) == 0 && msg->qos == 1)
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
	if (argc < 3) {
		fprintf(stderr, "usage: %s <host> <port>\n", argv[0]);
		return 2;
	}
	if (eq1_version_number() != EQ1_VERSION_NUMBER) {
		fprintf(stderr, "header %s but library %s\n", EQ1_VERSION_STRING, eq1_version());
		return 1;
	}
	snprintf(topic, sizeof topic, "eq1/consumer/%ld", (long)getpid());

	eq1_mqtt_options *options = eq1_mqtt_options_new();
	eq1_status rc = eq1_mqtt_options_set_broker(options, argv[1], atoi(argv[2]));
	eq1_mqtt_client *client = NULL;
	if (rc == EQ1_STATUS_OK)
		rc = eq1_mqtt_client_new(options, NULL, NULL, &client);
	eq1_mqtt_options_free(options);
	if (rc != EQ1_STATUS_OK)
		return fail("setup", rc);

	eq1_token token = 0;
	if ((rc = eq1_mqtt_client_connect(client, 10000)) != EQ1_STATUS_OK ||
	    (rc = eq1_mqtt_client_subscribe(client, topic, 1, on_message, NULL, 10000, NULL)) !=
		    EQ1_STATUS_OK ||
	    (rc = eq1_mqtt_client_publish(client, topic, (const uint8_t *)"hello", 5, 1, false,
					  &token)) != EQ1_STATUS_OK ||
	    (rc = eq1_mqtt_client_wait(client, token, 10000)) != EQ1_STATUS_OK) {
		int code = fail("round trip", rc);
		eq1_mqtt_client_free(client);
		return code;
	}
	for (int i = 0; i < 1000 && !atomic_load(&received); i++)
		nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);

	rc = eq1_mqtt_client_disconnect(client, 10000);
	eq1_mqtt_client_free(client);
	if (rc != EQ1_STATUS_OK)
		return fail("disconnect", rc);
	if (!atomic_load(&received)) {
		fprintf(stderr, "the message did not come back within 10 s\n");
		return 1;
	}
	printf("round trip OK (libeq1 %s)\n", eq1_version());
	return 0;
}
