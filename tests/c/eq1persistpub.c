/*
 * eq1persistpub.c - a publisher with store and forward, for the crash tests
 * (tests/test_persistence.py), which SIGKILL it at random moments and start it again on the
 * same store.
 *
 *   eq1persistpub HOST PORT STORE_DIR sync|batched N_QOS1 N_QOS2 FIRST_SEQ [MAX_BYTES [PACE_US]]
 *
 * Sequence numbers 0 .. N_QOS1-1 go out at QoS 1, N_QOS1 .. N_QOS1+N_QOS2-1 at QoS 2, each
 * on topic "crash/<qos>/<seq>" with the number as payload. It starts at FIRST_SEQ, or after
 * the highest sequence number the store gave back (a publish that was stored but whose
 * return the killed run never printed). Each number is printed on its own line, flushed,
 * once its publish returned: that is what "accepted" means. A full store or outbox
 * (STORE_FULL, QUEUE_FULL) is waited out and retried. At the end it waits for every token
 * (its own and the restored ones) and prints DONE.
 * Other lines: "RESTORED <count>", "START <seq>", "ERROR ...".
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eq1.h"

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
	nanosleep(&ts, NULL);
}

static const char *detail(void)
{
	static char buf[512];
	eq1_last_error_message(buf, sizeof buf);
	return buf;
}

/* "crash/<qos>/<seq>" -> seq, or -1. */
static long seq_of(const char *topic)
{
	const char *last = strrchr(topic, '/');
	return last ? strtol(last + 1, NULL, 10) : -1;
}

int main(int argc, char **argv)
{
	if (argc < 8) {
		fprintf(stderr, "usage: %s HOST PORT DIR sync|batched N1 N2 FIRST [MAX_BYTES]\n",
			argv[0]);
		return 2;
	}
	const char *host = argv[1];
	int port = atoi(argv[2]);
	const char *dir = argv[3];
	int durability = strcmp(argv[4], "sync") == 0 ? EQ1_DURABILITY_SYNC : EQ1_DURABILITY_BATCHED;
	long n1 = atol(argv[5]), n2 = atol(argv[6]), first = atol(argv[7]);
	unsigned long long max_bytes = argc > 8 ? strtoull(argv[8], NULL, 10) : 0;
	long pace_us = argc > 9 ? atol(argv[9]) : 0;
	long total = n1 + n2;

	eq1_mqtt_options *o = eq1_mqtt_options_new();
	eq1_mqtt_options_set_broker(o, host, port);
	eq1_mqtt_options_set_client_id(o, "eq1-crash-pub");
	eq1_mqtt_options_set_clean_session(o, false);
	/* mosquitto takes at most max_inflight_messages (20) unreleased QoS 2 messages from a
	 * client; over MQTT 3.1.1 (no Receive Maximum) it answers more with a PUBREC whose
	 * "quota exceeded" cannot be sent, and drops them. */
	eq1_mqtt_options_set_inflight_window(o, 20);
	eq1_mqtt_options_set_reconnect(o, true, 50, 500);
	eq1_mqtt_options_set_offline_queue(o, 1000000, 1LL << 30, EQ1_QUEUE_REJECT_NEW, true);
	if (eq1_mqtt_options_set_persistence(o, dir, durability) != EQ1_STATUS_OK ||
	    eq1_mqtt_options_set_persistence_limit(o, max_bytes, false) != EQ1_STATUS_OK) {
		printf("ERROR options %s\n", detail());
		return 1;
	}
	eq1_mqtt_client *c = NULL;
	eq1_status s = eq1_mqtt_client_new(o, NULL, NULL, &c);
	eq1_mqtt_options_free(o);
	if (s != EQ1_STATUS_OK) {
		printf("ERROR client_new %s %s\n", eq1_status_name(s), detail());
		fflush(stdout);
		return 3;
	}
	size_t restored = 0;
	eq1_mqtt_client_restored_count(c, &restored);
	eq1_token *tokens = calloc((size_t)total + restored + 1, sizeof *tokens);
	size_t count = 0;
	for (size_t i = 0; i < restored; i++) {
		char topic[128];
		eq1_token t = 0;
		eq1_mqtt_client_restored_message(c, i, &t, NULL, topic, sizeof topic, NULL);
		tokens[count++] = t;
		long seq = seq_of(topic);
		if (seq >= first)
			first = seq + 1;
	}
	printf("RESTORED %zu\nSTART %ld\n", restored, first);
	fflush(stdout);
	/* Publishes queue before the first connect: the broker may still be coming back. */
	while ((s = eq1_mqtt_client_connect(c, 5000)) != EQ1_STATUS_OK)
		sleep_ms(100);

	for (long seq = first; seq < total; seq++) {
		char topic[64], payload[32];
		int qos = seq < n1 ? 1 : 2;
		snprintf(topic, sizeof topic, "crash/%d/%ld", qos, seq);
		int len = snprintf(payload, sizeof payload, "%ld", seq);
		eq1_token token = 0;
		for (;;) {
			s = eq1_mqtt_client_publish(c, topic, (const uint8_t *)payload, (size_t)len, qos,
						    false, &token);
			if (s != EQ1_STATUS_STORE_FULL && s != EQ1_STATUS_QUEUE_FULL)
				break;
			sleep_ms(1);
		}
		if (s != EQ1_STATUS_OK) {
			printf("ERROR publish %ld %s %s\n", seq, eq1_status_name(s), detail());
			fflush(stdout);
			return 4;
		}
		tokens[count++] = token;
		printf("%ld\n", seq);
		fflush(stdout);
		if (pace_us > 0) {
			struct timespec ts = { 0, pace_us * 1000 };
			nanosleep(&ts, NULL);
		}
	}
	for (size_t i = 0; i < count; i++) {
		s = eq1_mqtt_client_wait(c, tokens[i], 60000);
		if (s != EQ1_STATUS_OK) {
			printf("ERROR wait %llu %s %s\n", (unsigned long long)tokens[i],
			       eq1_status_name(s), detail());
			fflush(stdout);
			return 5;
		}
	}
	printf("DONE\n");
	fflush(stdout);
	eq1_mqtt_client_disconnect(c, 5000);
	eq1_mqtt_client_free(c);
	free(tokens);
	return 0;
}
