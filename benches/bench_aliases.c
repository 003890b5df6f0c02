/*
 * bench_aliases.c - bytes saved by automatic topic aliases (MQTT 5.0) on a telemetry
 * workload: <topics> topics of 60 bytes, 8-byte payloads, <rounds> messages per topic, QoS 1,
 * sent once with aliases (eq1's default) and once without, through the same broker. Prints
 * the client->broker bytes of each run (eq1_mqtt_client_get_stats bytes_out, CONNECT and
 * DISCONNECT included) and the saving. Run by scripts/bench-aliases.sh, which starts a
 * private mosquitto with `max_topic_alias` = <topics>.
 *
 *   bench_aliases <host> <port> [topics=1000] [rounds=100]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eq1.h"

static int fail(const char *what, eq1_status st)
{
	char detail[256];
	eq1_last_error_message(detail, sizeof detail);
	fprintf(stderr, "%s: %s (%s)\n", what, eq1_status_str(st), detail);
	return -1;
}

/* Sends the workload; returns the client's bytes out, or -1. */
static long long run(const char *host, int port, int topics, int rounds, int aliases)
{
	eq1_mqtt_options *o = eq1_mqtt_options_new();
	eq1_mqtt_options_set_broker(o, host, port);
	eq1_mqtt_options_set_protocol_version(o, EQ1_MQTT_V5);
	eq1_mqtt_options_set_topic_alias_auto(o, aliases != 0);
	eq1_mqtt_options_set_inflight_window(o, 1000);
	eq1_mqtt_client *c = NULL;
	eq1_status st = eq1_mqtt_client_new(o, NULL, NULL, &c);
	eq1_mqtt_options_free(o);
	if (st != EQ1_STATUS_OK)
		return fail("client_new", st);
	if ((st = eq1_mqtt_client_connect(c, 5000)) != EQ1_STATUS_OK) {
		eq1_mqtt_client_free(c);
		return fail("connect", st);
	}
	char topic[80];
	const uint8_t payload[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	eq1_token last = 0;
	for (int r = 0; r < rounds; r++) {
		for (int t = 0; t < topics && t < 100000; t++) {
			/* 60 bytes: "plant-01/area-07/line-12/machine-" + 5 digits + 22 bytes. */
			snprintf(topic, sizeof topic, "plant-01/area-07/line-12/machine-%05d/spindle-2/temperature", t);
			while ((st = eq1_mqtt_client_publish(c, topic, payload, sizeof payload, 1, false,
							     &last)) == EQ1_STATUS_QUEUE_FULL)
				eq1_mqtt_client_wait(c, last, 1000);
			if (st != EQ1_STATUS_OK) {
				eq1_mqtt_client_free(c);
				return fail("publish", st);
			}
		}
	}
	st = eq1_mqtt_client_wait(c, last, 60000);
	eq1_mqtt_client_disconnect(c, 5000);
	eq1_mqtt_stats stats;
	eq1_mqtt_client_get_stats(c, &stats);
	eq1_mqtt_client_free(c);
	if (st != EQ1_STATUS_OK)
		return fail("wait", st);
	return (long long)stats.bytes_out;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s host port [topics] [rounds]\n", argv[0]);
		return 2;
	}
	int port = atoi(argv[2]);
	int topics = argc > 3 ? atoi(argv[3]) : 1000;
	if (topics < 1 || topics > 99999) {
		fprintf(stderr, "topics must be 1..99999\n");
		return 2;
	}
	int rounds = argc > 4 ? atoi(argv[4]) : 100;
	if (strlen("plant-01/area-07/line-12/machine-00000/spindle-2/temperature") != 60) {
		fprintf(stderr, "topic is not 60 bytes\n");
		return 2;
	}
	long long with = run(argv[1], port, topics, rounds, 1);
	long long without = run(argv[1], port, topics, rounds, 0);
	if (with < 0 || without < 0)
		return 1;
	long long messages = (long long)topics * rounds;
	printf("workload: %d topics of 60 bytes, 8-byte payloads, %d messages per topic, QoS 1 (%lld messages)\n",
	       topics, rounds, messages);
	printf("without topic aliases: %lld bytes (%.1f per message)\n", without,
	       (double)without / (double)messages);
	printf("with topic aliases:    %lld bytes (%.1f per message)\n", with,
	       (double)with / (double)messages);
	printf("saved: %lld bytes, %.1f %%\n", without - with,
	       100.0 * (double)(without - with) / (double)without);
	return 0;
}
