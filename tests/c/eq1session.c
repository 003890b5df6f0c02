/*
 * eq1session.c - a persistent-session subscriber and an inbound-flow client on libeq1, for
 * tests/test_session_core.py.
 *
 *   eq1session HOST PORT CLIENT_ID VERSION hold
 *       connects with a persistent session, subscribes "persist/t" at QoS 1, prints READY
 *       and waits to be killed.
 *   eq1session HOST PORT CLIENT_ID VERSION resume COUNT DELAY_MS [default]
 *       connects again with the same client id and session; with "default" a default message
 *       callback is set before connecting and no subscription is made, otherwise it
 *       subscribes "persist/t" DELAY_MS after CONNACK. Waits up to 20 s for COUNT messages
 *       and prints "SUBSCRIPTION n DEFAULT m UNIQUE u".
 *   eq1session HOST PORT CLIENT_ID VERSION slow SLOW_SECONDS SECONDS EXPECTED INBOUND_MESSAGES
 *              INBOUND_BYTES
 *       bounds the inbound queue, subscribes "flood/#" at QoS 0 with a callback that sleeps
 *       10 ms per message for SLOW_SECONDS (then returns at once: the application caught up)
 *       and "stream/t" at QoS 1 (counted by payload sequence number). Prints READY; after the
 *       slow phase "SLOWED lost l connected c rss_peak_kb k"; then waits until EXPECTED
 *       stream messages arrived or SECONDS passed and prints "DONE flood f stream_unique u
 *       lost l connected c".
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>

#include "test_util.h"

static atomic_long on_subscription, on_default, stream_unique, flood;
static atomic_int lost, caught_up;
static unsigned char seen[100000];

static long sequence_of(const eq1_mqtt_message *msg)
{
	char text[32];
	size_t n = msg->payload_len < sizeof text - 1 ? msg->payload_len : sizeof text - 1;
	memcpy(text, msg->payload, n);
	text[n] = 0;
	return strtol(text, NULL, 10);
}

static void count_unique(const eq1_mqtt_message *msg)
{
	long seq = sequence_of(msg);
	if (seq >= 0 && seq < (long)sizeof seen && !seen[seq]) {
		seen[seq] = 1;
		atomic_fetch_add(&stream_unique, 1);
	}
}

static void on_persist(void *user_data, const eq1_mqtt_message *msg)
{
	(void)user_data;
	atomic_fetch_add(&on_subscription, 1);
	count_unique(msg);
}

static void on_any(void *user_data, const eq1_mqtt_message *msg)
{
	(void)user_data;
	atomic_fetch_add(&on_default, 1);
	count_unique(msg);
}

static void on_flood(void *user_data, const eq1_mqtt_message *msg)
{
	(void)user_data;
	(void)msg;
	atomic_fetch_add(&flood, 1);
	if (!atomic_load(&caught_up))
		sleep_ms(10);
}

static void on_connection(void *user_data, const eq1_mqtt_connection_event *event)
{
	(void)user_data;
	if (event->state == EQ1_CONNECTION_STATE_LOST)
		atomic_store(&lost, 1);
}

static eq1_mqtt_client *new_client(const char *host, int port, const char *id, int version,
				   long long inbound_messages, long long inbound_bytes)
{
	eq1_mqtt_options *options = eq1_mqtt_options_new();
	CHECK(eq1_mqtt_options_set_broker(options, host, port));
	CHECK(eq1_mqtt_options_set_client_id(options, id));
	CHECK(eq1_mqtt_options_set_protocol_version(options, version));
	CHECK(eq1_mqtt_options_set_clean_session(options, false));
	CHECK(eq1_mqtt_options_set_keep_alive(options, 2));
	if (version == EQ1_MQTT_V5)
		CHECK(eq1_mqtt_options_set_session_expiry(options, 3600));
	if (inbound_bytes > 0)
		CHECK(eq1_mqtt_options_set_inbound_queue(options, inbound_messages, inbound_bytes));
	eq1_mqtt_client *client = NULL;
	CHECK(eq1_mqtt_client_new(options, NULL, NULL, &client));
	eq1_mqtt_options_free(options);
	CHECK(eq1_mqtt_client_set_connection_callback(client, on_connection));
	return client;
}

static int hold(eq1_mqtt_client *client)
{
	CHECK(eq1_mqtt_client_connect(client, 5000));
	CHECK(eq1_mqtt_client_subscribe(client, "persist/t", 1, on_persist, NULL, 5000, NULL));
	printf("READY\n");
	fflush(stdout);
	for (;;)
		sleep_ms(1000);
	return 0;
}

static int resume(eq1_mqtt_client *client, long count, long delay_ms, int use_default)
{
	if (use_default)
		CHECK(eq1_mqtt_client_set_message_callback(client, on_any, NULL));
	CHECK(eq1_mqtt_client_connect(client, 5000));
	if (!use_default) {
		sleep_ms(delay_ms);
		CHECK(eq1_mqtt_client_subscribe(client, "persist/t", 1, on_persist, NULL, 5000,
						NULL));
	}
	int64_t deadline = now_ms() + 20000;
	while (atomic_load(&stream_unique) < count && now_ms() < deadline)
		sleep_ms(20);
	printf("SUBSCRIPTION %ld DEFAULT %ld UNIQUE %ld\n", atomic_load(&on_subscription),
	       atomic_load(&on_default), atomic_load(&stream_unique));
	CHECK(eq1_mqtt_client_disconnect(client, 5000));
	CHECK(eq1_mqtt_client_free(client));
	return 0;
}

static long peak_rss_kb(void)
{
	FILE *status = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;
	while (status && fgets(line, sizeof line, status))
		if (strncmp(line, "VmHWM:", 6) == 0)
			kb = atol(line + 6);
	if (status)
		fclose(status);
	return kb;
}

static int slow(eq1_mqtt_client *client, long slow_seconds, long seconds, long expected)
{
	CHECK(eq1_mqtt_client_connect(client, 5000));
	CHECK(eq1_mqtt_client_subscribe(client, "flood/#", 0, on_flood, NULL, 5000, NULL));
	CHECK(eq1_mqtt_client_subscribe(client, "stream/t", 1, on_persist, NULL, 5000, NULL));
	printf("READY\n");
	int64_t start = now_ms();
	sleep_ms(slow_seconds * 1000);
	printf("SLOWED lost %d connected %d rss_peak_kb %ld\n", atomic_load(&lost),
	       eq1_mqtt_client_is_connected(client), peak_rss_kb());
	atomic_store(&caught_up, 1);
	while (atomic_load(&stream_unique) < expected && now_ms() < start + seconds * 1000)
		sleep_ms(50);
	printf("DONE flood %ld stream_unique %ld lost %d connected %d\n", atomic_load(&flood),
	       atomic_load(&stream_unique), atomic_load(&lost),
	       eq1_mqtt_client_is_connected(client));
	CHECK(eq1_mqtt_client_free(client));
	return 0;
}

static void on_log(void *user_data, enum eq1_log_level level, const char *message)
{
	(void)user_data;
	fprintf(stderr, "LOG %d %s\n", (int)level, message);
}

int main(int argc, char **argv)
{
	if (getenv("EQ1SESSION_LOG"))
		CHECK(eq1_set_log_callback(on_log, NULL, atoi(getenv("EQ1SESSION_LOG"))));
	REQUIRE(argc >= 6, "usage: eq1session HOST PORT CLIENT_ID VERSION MODE ...");
	const char *host = argv[1], *id = argv[3], *mode = argv[5];
	int port = atoi(argv[2]), version = atoi(argv[4]);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (strcmp(mode, "hold") == 0)
		return hold(new_client(host, port, id, version, 0, 0));
	if (strcmp(mode, "resume") == 0 && argc >= 8)
		return resume(new_client(host, port, id, version, 0, 0), atol(argv[6]), atol(argv[7]),
			      argc >= 9 && strcmp(argv[8], "default") == 0);
	if (strcmp(mode, "slow") == 0 && argc >= 11)
		return slow(new_client(host, port, id, version, atoll(argv[9]), atoll(argv[10])),
			    atol(argv[6]), atol(argv[7]), atol(argv[8]));
	REQUIRE(0, "unknown mode %s", mode);
	return 1;
}
