/*
 * secure.c - the design's secure example, in C: user name and password, TLS verified against
 * a CA file, a retained will ("device/status" = "offline"), then a retained "online" publish.
 *
 *   ./secure <host> <port> <ca-file> <username> <password>
 *   (e.g. ./secure localhost 8883 /path/to/ca.crt mqtt_user secure_password)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eq1.h"

static int fail(const char *what, eq1_status status)
{
	char detail[512];
	eq1_last_error_message(detail, sizeof detail);
	fprintf(stderr, "%s failed: %s (%s)\n", what, eq1_status_str(status), detail);
	return 1;
}

static void on_connection(void *user_data, const eq1_mqtt_connection_event *event)
{
	(void)user_data;
	if (event->state == EQ1_CONNECTION_STATE_LOST)
		fprintf(stderr, "connection lost: %s\n", event->reason_text);
}

int main(int argc, char **argv)
{
	if (argc < 6) {
		fprintf(stderr, "usage: %s <host> <port> <ca-file> <username> <password>\n", argv[0]);
		return 64;
	}
	const char *host = argv[1], *ca_file = argv[3], *user = argv[4], *password = argv[5];
	int port = atoi(argv[2]);
	eq1_status rc;

	/* Authentication and TLS: the broker's certificate must chain to ca_file and name host. */
	eq1_mqtt_options *options = eq1_mqtt_options_new();
	if ((rc = eq1_mqtt_options_set_broker(options, host, port)) != EQ1_STATUS_OK ||
	    (rc = eq1_mqtt_options_set_credentials(options, user, password)) != EQ1_STATUS_OK ||
	    (rc = eq1_mqtt_options_set_tls(options, ca_file)) != EQ1_STATUS_OK ||
	    (rc = eq1_mqtt_options_set_connect_timeout(options, 30 * 1000)) != EQ1_STATUS_OK) {
		eq1_mqtt_options_free(options);
		return fail("options", rc);
	}

	eq1_mqtt_client *client = NULL;
	rc = eq1_mqtt_client_new(options, NULL, NULL, &client);
	eq1_mqtt_options_free(options);
	if (rc != EQ1_STATUS_OK)
		return fail("client_new", rc);
	eq1_mqtt_client_set_connection_callback(client, on_connection);

	/* The will: published by the broker if we vanish without DISCONNECT. */
	const char *offline = "offline";
	rc = eq1_mqtt_client_set_will(client, "device/status", (const uint8_t *)offline,
				      strlen(offline), 1, true);
	if (rc != EQ1_STATUS_OK) {
		eq1_mqtt_client_free(client);
		return fail("set_will", rc);
	}

	if ((rc = eq1_mqtt_client_connect(client, 0)) != EQ1_STATUS_OK) {
		eq1_mqtt_client_free(client);
		return fail("connect", rc);
	}
	printf("Connected securely to %s:%d as %s\n", host, port, user);

	/* A retained message: late subscribers get "online" at once. */
	const char *online = "online";
	eq1_token token = 0;
	rc = eq1_mqtt_client_publish(client, "device/status", (const uint8_t *)online,
				     strlen(online), 1, true, &token);
	if (rc == EQ1_STATUS_OK)
		rc = eq1_mqtt_client_wait(client, token, 5000);
	if (rc != EQ1_STATUS_OK) {
		eq1_mqtt_client_free(client);
		return fail("publish", rc);
	}
	printf("Published retained device/status = online\n");

	rc = eq1_mqtt_client_disconnect(client, 5000);
	eq1_mqtt_client_free(client);
	if (rc != EQ1_STATUS_OK)
		return fail("disconnect", rc);
	printf("Disconnected\n");
	return 0;
}
