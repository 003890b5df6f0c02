/*
 * test_metrics.c - eq1_mqtt_client_metrics_text through a real broker.
 *
 *   test_metrics <host> <port>
 *       publishes 10 QoS 1 messages (each waited for), then checks the rendered text: the
 *       counters and the latency histogram count them, it ends with "# EOF", and the snprintf
 *       semantics hold (length query, a short buffer cut with NUL, NULL client).
 *
 * Prints one line per check and "SUMMARY: ..." (exit 0 when all passed).
 */
#define _POSIX_C_SOURCE 200809L
#include "test_util.h"

int main(int argc, char **argv)
{
	REQUIRE(argc == 3, "usage: %s <host> <port>", argv[0]);
	eq1_mqtt_options *o = eq1_mqtt_options_new();
	CHECK(eq1_mqtt_options_set_broker(o, argv[1], atoi(argv[2])));
	eq1_mqtt_client *c = NULL;
	CHECK(eq1_mqtt_client_new(o, NULL, NULL, &c));
	eq1_mqtt_options_free(o);
	CHECK(eq1_mqtt_client_connect(c, 5000));
	for (int i = 0; i < 10; i++) {
		uint64_t token = 0;
		CHECK(eq1_mqtt_client_publish(c, "metrics/c", (const uint8_t *)"x", 1, 1, false,
					      &token));
		CHECK(eq1_mqtt_client_wait(c, token, 5000));
	}

	static char text[65536];
	size_t needed = eq1_mqtt_client_metrics_text(c, NULL, 0);
	EXPECT_TRUE("a length query returns the size", needed > 100 && needed < sizeof text);
	size_t len = eq1_mqtt_client_metrics_text(c, text, sizeof text);
	EXPECT_TRUE("the text fits and is NUL-terminated at its length", len < sizeof text &&
		    strlen(text) == len);
	EXPECT_TRUE("counters count the publishes",
		    strstr(text, "\neq1_mqtt_published_total 10\n") != NULL &&
			    strstr(text, "\neq1_mqtt_delivered_total 10\n") != NULL);
	EXPECT_TRUE("the QoS 1 latency histogram counts them",
		    strstr(text, "\neq1_mqtt_publish_latency_seconds_count{qos=\"1\"} 10\n") != NULL &&
			    strstr(text, "eq1_mqtt_publish_latency_seconds_bucket{qos=\"1\",le=\"+Inf\"} 10\n") !=
				    NULL);
	EXPECT_TRUE("connected, nothing pending",
		    strstr(text, "\neq1_mqtt_connected 1\n") != NULL &&
			    strstr(text, "\neq1_mqtt_pending_deliveries 0\n") != NULL);
	EXPECT_TRUE("ends with # EOF", len > 6 && strcmp(text + len - 6, "# EOF\n") == 0);

	char small[16];
	memset(small, 'z', sizeof small);
	size_t full = eq1_mqtt_client_metrics_text(c, small, sizeof small);
	EXPECT_TRUE("a short buffer gets the start, cut with NUL, and the full length",
		    full > sizeof small && strlen(small) == sizeof small - 1 &&
			    strncmp(small, text, sizeof small - 1) == 0);
	EXPECT_TRUE("NULL client: 0", eq1_mqtt_client_metrics_text(NULL, text, sizeof text) == 0);

	CHECK(eq1_mqtt_client_disconnect(c, 5000));
	len = eq1_mqtt_client_metrics_text(c, text, sizeof text);
	EXPECT_TRUE("the clean disconnect is counted as requested",
		    strstr(text, "\neq1_mqtt_disconnects_total{reason=\"requested\"} 1\n") != NULL &&
			    strstr(text, "\neq1_mqtt_connected 0\n") != NULL);
	CHECK(eq1_mqtt_client_free(c));
	return tu_summary();
}
