/*
 * will_retained.c - device presence with a retained will: the device announces "online"
 * (retained) and leaves a will "offline" (retained) that the broker publishes if the device
 * vanishes; a monitor subscribing later still learns the current state at once.
 *
 *   ./will_retained [host] [port] [device-id]     (default localhost 1883 device-1)
 *   Kill it (kill -9) while it runs and watch "devices/<id>/status" turn "offline".
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eq1.h"

static int check(const char *what, eq1_status rc)
{
	if (rc == EQ1_STATUS_OK)
		return 0;
	char detail[256];
	eq1_last_error_message(detail, sizeof detail);
	fprintf(stderr, "%s failed: %s (%s)\n", what, eq1_status_str(rc), detail);
	return 1;
}

int main(int argc, char **argv)
{
	const char *host = argc > 1 ? argv[1] : "localhost";
	int port = argc > 2 ? atoi(argv[2]) : 1883;
	const char *device = argc > 3 ? argv[3] : "device-1";
	char topic[128];
	snprintf(topic, sizeof topic, "devices/%s/status", device);

	eq1_mqtt_options *options = eq1_mqtt_options_new();
	eq1_mqtt_options_set_broker(options, host, port);
	eq1_mqtt_options_set_client_id(options, device);
	eq1_mqtt_options_set_keep_alive(options, 10); /* a silent death is noticed in 15 s */
	eq1_mqtt_client *client = NULL;
	eq1_status rc = eq1_mqtt_client_new(options, NULL, NULL, &client);
	eq1_mqtt_options_free(options);
	if (check("client_new", rc))
		return 1;

	const char *offline = "offline", *online = "online";
	eq1_token token = 0;
	if (check("set_will", eq1_mqtt_client_set_will(client, topic, (const uint8_t *)offline,
							strlen(offline), 1, true)) ||
	    check("connect", eq1_mqtt_client_connect(client, 5000)) ||
	    check("publish", eq1_mqtt_client_publish(client, topic, (const uint8_t *)online,
						     strlen(online), 1, true, &token)) ||
	    check("wait", eq1_mqtt_client_wait(client, token, 5000))) {
		eq1_mqtt_client_free(client);
		return 1;
	}
	printf("%s = online (retained); will: offline\n", topic);
	fflush(stdout);

	/* Work for a while (argv[4] seconds, default 2), then leave cleanly: a clean leaver says
	 * "offline" itself, since the broker drops the will on DISCONNECT. */
	int seconds = argc > 4 ? atoi(argv[4]) : 2;
	nanosleep(&(struct timespec){ .tv_sec = seconds }, NULL);
	rc = eq1_mqtt_client_publish(client, topic, (const uint8_t *)offline, strlen(offline), 1,
				     true, &token);
	if (rc == EQ1_STATUS_OK)
		rc = eq1_mqtt_client_wait(client, token, 5000);
	check("publish offline", rc);
	check("disconnect", eq1_mqtt_client_disconnect(client, 5000));
	eq1_mqtt_client_free(client);
	printf("%s = offline (said so before leaving)\n", topic);
	return rc == EQ1_STATUS_OK ? 0 : 1;
}
