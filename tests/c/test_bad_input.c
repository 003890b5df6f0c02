/*
 * test_bad_input.c - bad input from C: every case checks the exact eq1_status AND that
 * eq1_last_error_message (non-empty, written by that very call) names the cause. After all of
 * them the same client must still connect, publish, subscribe and receive (a real round trip).
 *
 *   test_bad_input <host> <port>
 *
 * Prints one line per check and "SUMMARY: <n> checks, <f> failed"; exits 0 only if f == 0.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_util.h"

#define BAD_UTF8 "\xff\xfe"

/* ---- callbacks ------------------------------------------------------------------------- */

static atomic_int user_data_frees;

static void count_free(void *user_data)
{
	(void)user_data;
	atomic_fetch_add(&user_data_frees, 1);
}

static void on_nothing(void *user_data, const eq1_mqtt_message *msg)
{
	(void)user_data;
	(void)msg;
}

/* What the round-trip subscription received (written on the dispatcher thread). */
struct inbox {
	atomic_int count;
	atomic_int with_text;  /* messages whose payload was exactly "round trip" */
	atomic_int empty;      /* messages with payload_len == 0 */
	atomic_int bad;        /* wrong topic / unexpected content */
};

static void on_roundtrip(void *user_data, const eq1_mqtt_message *msg)
{
	struct inbox *in = user_data;
	static const char text[] = "round trip";
	if (msg->topic == NULL || strlen(msg->topic) != msg->topic_len) {
		atomic_fetch_add(&in->bad, 1);
	} else if (msg->payload_len == 0) {
		atomic_fetch_add(&in->empty, 1);
	} else if (msg->payload_len == sizeof text - 1 &&
		   memcmp(msg->payload, text, sizeof text - 1) == 0) {
		atomic_fetch_add(&in->with_text, 1);
	} else {
		atomic_fetch_add(&in->bad, 1);
	}
	atomic_fetch_add(&in->count, 1);
}

static bool wait_for(atomic_int *value, int at_least, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	while (atomic_load(value) < at_least) {
		if (now_ms() > deadline)
			return false;
		sleep_ms(5);
	}
	return true;
}

/* ---- library-wide functions ------------------------------------------------------------ */

static void library_functions(void)
{
	printf("# library functions\n");
	EXPECT_TRUE("eq1_version() equals EQ1_VERSION_STRING",
		    eq1_version() != NULL && strcmp(eq1_version(), EQ1_VERSION_STRING) == 0);
	EXPECT_TRUE("eq1_version_number() == EQ1_VERSION_NUMBER",
		    eq1_version_number() == EQ1_VERSION_NUMBER);
	EXPECT_TRUE("EQ1_VERSION_NUMBER == MAJOR*10000 + MINOR*100 + PATCH",
		    EQ1_VERSION_NUMBER ==
			    EQ1_VERSION_MAJOR * 10000 + EQ1_VERSION_MINOR * 100 + EQ1_VERSION_PATCH);

	const char *unknown = eq1_status_str(12345);
	EXPECT_TRUE("eq1_status_str(12345) is a non-NULL, non-empty string",
		    unknown != NULL && unknown[0] != '\0');
	EXPECT_TRUE("eq1_status_str(12345) says 'unknown'",
		    unknown != NULL && tu_contains_nocase(unknown, "unknown"));
	EXPECT_TRUE("eq1_status_str(-1) is non-NULL", eq1_status_str(-1) != NULL);
	static const int known[] = { 0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 20, 21,
				     22, 23, 24, 30, 31, 32, 33, 34, 35, 40, 41, 42, 43, 44, 45,
				     46, 47, 99 };
	int described = 0;
	for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
		const char *s = eq1_status_str(known[i]);
		if (s != NULL && s[0] != '\0' && (unknown == NULL || strcmp(s, unknown) != 0))
			described++;
		else
			printf("#   status %d has no description of its own\n", known[i]);
	}
	EXPECT_TRUE("eq1_status_str describes every documented status",
		    described == (int)(sizeof known / sizeof known[0]));

	/* eq1_last_error_message: size query and snprintf-style truncation. */
	EXPECT_ERR("eq1_set_log_callback(level 0)", eq1_set_log_callback(NULL, NULL, 0),
		   EQ1_STATUS_INVALID_ARGUMENT, "level");
	EXPECT_ERR("eq1_set_log_callback(level 6)", eq1_set_log_callback(NULL, NULL, 6),
		   EQ1_STATUS_INVALID_ARGUMENT, "level");
	char full[512];
	size_t needed = eq1_last_error_message(NULL, 0);
	size_t copied = eq1_last_error_message(full, sizeof full);
	EXPECT_TRUE("eq1_last_error_message(NULL, 0) returns the message length",
		    needed > 0 && needed == strlen(full) && copied == needed);
	char small[8];
	memset(small, 'Z', sizeof small);
	size_t ret = eq1_last_error_message(small, 4);
	EXPECT_TRUE("eq1_last_error_message(buf, 4) returns the full length", ret == needed);
	EXPECT_TRUE("eq1_last_error_message(buf, 4) writes 3 bytes + NUL",
		    needed >= 3 && memcmp(small, full, 3) == 0 && small[3] == '\0');
	EXPECT_TRUE("eq1_last_error_message(buf, 4) writes nothing past buf[3]",
		    small[4] == 'Z' && small[5] == 'Z' && small[6] == 'Z' && small[7] == 'Z');
	memset(small, 'Z', sizeof small);
	ret = eq1_last_error_message(small, 1);
	EXPECT_TRUE("eq1_last_error_message(buf, 1) writes only the NUL",
		    ret == needed && small[0] == '\0' && small[1] == 'Z');
	memset(small, 'Z', sizeof small);
	ret = eq1_last_error_message(small, 0);
	EXPECT_TRUE("eq1_last_error_message(buf, 0) writes nothing",
		    ret == needed && small[0] == 'Z');

	/* *_free(NULL) */
	EXPECT_OK("eq1_mqtt_client_free(NULL) is a no-op returning OK", eq1_mqtt_client_free(NULL));
	eq1_mqtt_options_free(NULL);
	tu_pass("eq1_mqtt_options_free(NULL) is a no-op");
	EXPECT_TRUE("eq1_mqtt_client_is_connected(NULL) is false",
		    !eq1_mqtt_client_is_connected(NULL));
	char idbuf[8] = "x";
	EXPECT_TRUE("eq1_mqtt_client_get_id(NULL, ...) returns 0",
		    eq1_mqtt_client_get_id(NULL, idbuf, sizeof idbuf) == 0);
}

/* ---- options ----------------------------------------------------------------------------- */

static void null_options(void)
{
	printf("# NULL options handle to every setter\n");
	const eq1_status N = EQ1_STATUS_NULL_ARGUMENT;
	EXPECT_ERR("set_broker(NULL options)", eq1_mqtt_options_set_broker(NULL, "h", 1), N,
		   "options");
	EXPECT_ERR("add_broker(NULL options)", eq1_mqtt_options_add_broker(NULL, "h", 1, false),
		   N, "options");
	EXPECT_ERR("set_client_id(NULL options)", eq1_mqtt_options_set_client_id(NULL, "id"), N,
		   "options");
	EXPECT_ERR("set_credentials(NULL options)",
		   eq1_mqtt_options_set_credentials(NULL, "u", "p"), N, "options");
	EXPECT_ERR("set_keep_alive(NULL options)", eq1_mqtt_options_set_keep_alive(NULL, 10), N,
		   "options");
	EXPECT_ERR("set_clean_session(NULL options)",
		   eq1_mqtt_options_set_clean_session(NULL, true), N, "options");
	EXPECT_ERR("set_session_expiry(NULL options)",
		   eq1_mqtt_options_set_session_expiry(NULL, 10), N, "options");
	EXPECT_ERR("set_protocol_version(NULL options)",
		   eq1_mqtt_options_set_protocol_version(NULL, EQ1_MQTT_V311), N, "options");
	EXPECT_ERR("set_connect_timeout(NULL options)",
		   eq1_mqtt_options_set_connect_timeout(NULL, 1000), N, "options");
	EXPECT_ERR("set_inflight_window(NULL options)",
		   eq1_mqtt_options_set_inflight_window(NULL, 10), N, "options");
	EXPECT_ERR("set_max_packet_size(NULL options)",
		   eq1_mqtt_options_set_max_packet_size(NULL, 1024), N, "options");
	EXPECT_ERR("set_tls(NULL options)", eq1_mqtt_options_set_tls(NULL, NULL), N, "options");
	EXPECT_ERR("set_tls_client_cert(NULL options)",
		   eq1_mqtt_options_set_tls_client_cert(NULL, "c", "k", NULL), N, "options");
	EXPECT_ERR("set_tls_verify_hostname(NULL options)",
		   eq1_mqtt_options_set_tls_verify_hostname(NULL, true), N, "options");
	EXPECT_ERR("set_tls_insecure(NULL options)", eq1_mqtt_options_set_tls_insecure(NULL, false),
		   N, "options");
	EXPECT_ERR("set_tls_min_version(NULL options)",
		   eq1_mqtt_options_set_tls_min_version(NULL, EQ1_TLS_1_2), N, "options");
	EXPECT_ERR("set_allow_plaintext_fallback(NULL options)",
		   eq1_mqtt_options_set_allow_plaintext_fallback(NULL, true), N, "options");
	EXPECT_ERR("set_reconnect(NULL options)",
		   eq1_mqtt_options_set_reconnect(NULL, true, 100, 1000), N, "options");
	EXPECT_ERR("set_offline_queue(NULL options)",
		   eq1_mqtt_options_set_offline_queue(NULL, 10, 1000, EQ1_QUEUE_REJECT_NEW, false),
		   N, "options");
	EXPECT_ERR("set_persistence(NULL options)",
		   eq1_mqtt_options_set_persistence(NULL, "/tmp/x", EQ1_DURABILITY_SYNC), N,
		   "options");
	EXPECT_ERR("set_persistence_interval(NULL options)",
		   eq1_mqtt_options_set_persistence_interval(NULL, 100), N, "options");
	EXPECT_ERR("set_persistence_limit(NULL options)",
		   eq1_mqtt_options_set_persistence_limit(NULL, 0, false), N, "options");
}

/* Persistence options and the restored-message queries (no store is opened here). */
static void persistence_arguments(void)
{
	printf("# persistence arguments\n");
	const eq1_status A = EQ1_STATUS_INVALID_ARGUMENT;
	eq1_mqtt_options *o = eq1_mqtt_options_new();
	REQUIRE(o != NULL, "eq1_mqtt_options_new returned NULL");
	EXPECT_ERR("set_persistence(NULL directory)",
		   eq1_mqtt_options_set_persistence(o, NULL, EQ1_DURABILITY_BATCHED),
		   EQ1_STATUS_NULL_ARGUMENT, "directory");
	EXPECT_ERR("set_persistence(invalid UTF-8 directory)",
		   eq1_mqtt_options_set_persistence(o, BAD_UTF8, EQ1_DURABILITY_BATCHED),
		   EQ1_STATUS_INVALID_UTF8, "directory");
	EXPECT_ERR("set_persistence(empty directory)",
		   eq1_mqtt_options_set_persistence(o, "", EQ1_DURABILITY_SYNC), A, "empty");
	EXPECT_ERR("set_persistence(durability 7)",
		   eq1_mqtt_options_set_persistence(o, "/tmp/x", 7), A, "durability");
	EXPECT_OK("set_persistence(NULL directory, EQ1_DURABILITY_NONE)",
		  eq1_mqtt_options_set_persistence(o, NULL, EQ1_DURABILITY_NONE));
	EXPECT_ERR("set_persistence_interval(0)", eq1_mqtt_options_set_persistence_interval(o, 0),
		   A, "interval");
	EXPECT_ERR("set_persistence_interval(60001)",
		   eq1_mqtt_options_set_persistence_interval(o, 60001), A, "interval");
	EXPECT_ERR("set_persistence_limit(1000)",
		   eq1_mqtt_options_set_persistence_limit(o, 1000, false), A, "too small");
	EXPECT_OK("set_persistence_limit(0, keep QoS 0)",
		  eq1_mqtt_options_set_persistence_limit(o, 0, true));
	/* Persistence without a client id is refused when the client is made. */
	CHECK(eq1_mqtt_options_set_persistence(o, "/tmp/eq1-bad-input-store", EQ1_DURABILITY_SYNC));
	eq1_mqtt_client *c = NULL;
	EXPECT_ERR("client_new(persistence without a client id)",
		   eq1_mqtt_client_new(o, NULL, NULL, &c), A, "client id");
	EXPECT_TRUE("refused client_new leaves *out NULL", c == NULL);
	CHECK(eq1_mqtt_options_set_persistence(o, NULL, EQ1_DURABILITY_NONE));
	CHECK(eq1_mqtt_client_new(o, NULL, NULL, &c));
	size_t count = 99;
	EXPECT_ERR("restored_count(NULL client)", eq1_mqtt_client_restored_count(NULL, &count),
		   EQ1_STATUS_NULL_ARGUMENT, "client");
	EXPECT_ERR("restored_count(NULL out)", eq1_mqtt_client_restored_count(c, NULL),
		   EQ1_STATUS_NULL_ARGUMENT, "out_count");
	EXPECT_OK("restored_count without persistence", eq1_mqtt_client_restored_count(c, &count));
	EXPECT_TRUE("restored_count without persistence is 0", count == 0);
	char topic[16];
	eq1_token token = 5;
	EXPECT_ERR("restored_message(NULL client)",
		   eq1_mqtt_client_restored_message(NULL, 0, &token, NULL, topic, sizeof topic, NULL),
		   EQ1_STATUS_NULL_ARGUMENT, "client");
	EXPECT_ERR("restored_message(NULL buffer, length 16)",
		   eq1_mqtt_client_restored_message(c, 0, &token, NULL, NULL, 16, NULL),
		   EQ1_STATUS_NULL_ARGUMENT, "topic_buf");
	EXPECT_ERR("restored_message(index 0 of 0)",
		   eq1_mqtt_client_restored_message(c, 0, &token, NULL, topic, sizeof topic, NULL),
		   A, "does not exist");
	EXPECT_TRUE("restored_message failure resets *out_token", token == 0);
	CHECK(eq1_mqtt_client_free(c));
	eq1_mqtt_options_free(o);
}

static void bad_option_values(eq1_mqtt_options *o)
{
	printf("# out-of-range option values\n");
	const eq1_status A = EQ1_STATUS_INVALID_ARGUMENT;
	EXPECT_ERR("set_broker(port 0)", eq1_mqtt_options_set_broker(o, "127.0.0.1", 0), A, "port");
	EXPECT_ERR("set_broker(port 70000)", eq1_mqtt_options_set_broker(o, "127.0.0.1", 70000), A,
		   "port");
	EXPECT_ERR("set_broker(port -1)", eq1_mqtt_options_set_broker(o, "127.0.0.1", -1), A,
		   "port");
	EXPECT_ERR("add_broker(port 70000)",
		   eq1_mqtt_options_add_broker(o, "127.0.0.1", 70000, false), A, "port");
	EXPECT_ERR("set_broker(empty host)", eq1_mqtt_options_set_broker(o, "", 1234), A, "host");
	EXPECT_ERR("set_broker(NULL host)", eq1_mqtt_options_set_broker(o, NULL, 1234),
		   EQ1_STATUS_NULL_ARGUMENT, "host");
	EXPECT_ERR("set_broker(invalid UTF-8 host)", eq1_mqtt_options_set_broker(o, BAD_UTF8, 1234),
		   EQ1_STATUS_INVALID_UTF8, "UTF-8");
	EXPECT_ERR("set_keep_alive(-1)", eq1_mqtt_options_set_keep_alive(o, -1), A, "keep-alive");
	EXPECT_ERR("set_keep_alive(65536)", eq1_mqtt_options_set_keep_alive(o, 65536), A,
		   "keep-alive");
	EXPECT_ERR("set_inflight_window(0)", eq1_mqtt_options_set_inflight_window(o, 0), A,
		   "inflight");
	EXPECT_ERR("set_inflight_window(65536)", eq1_mqtt_options_set_inflight_window(o, 65536), A,
		   "inflight");
	EXPECT_ERR("set_protocol_version(2)", eq1_mqtt_options_set_protocol_version(o, 2), A,
		   "protocol version");
	EXPECT_ERR("set_protocol_version(6)", eq1_mqtt_options_set_protocol_version(o, 6), A,
		   "protocol version");
	EXPECT_ERR("set_connect_timeout(-1)", eq1_mqtt_options_set_connect_timeout(o, -1), A,
		   "timeout");
	EXPECT_ERR("set_connect_timeout(0)", eq1_mqtt_options_set_connect_timeout(o, 0), A,
		   "timeout");
	EXPECT_ERR("set_reconnect(min -1)", eq1_mqtt_options_set_reconnect(o, true, -1, 1000), A,
		   "reconnect");
	EXPECT_ERR("set_reconnect(max < min)", eq1_mqtt_options_set_reconnect(o, true, 1000, 10),
		   A, "reconnect");
	EXPECT_ERR("set_max_packet_size(15)", eq1_mqtt_options_set_max_packet_size(o, 15), A,
		   "packet size");
	EXPECT_ERR("set_max_packet_size(-1)", eq1_mqtt_options_set_max_packet_size(o, -1), A,
		   "packet size");
	EXPECT_ERR("set_max_packet_size(MQTT max + 1)",
		   eq1_mqtt_options_set_max_packet_size(o, (int64_t)EQ1_MQTT_MAX_PACKET_SIZE + 1), A,
		   "packet size");
	EXPECT_ERR("set_offline_queue(0 messages)",
		   eq1_mqtt_options_set_offline_queue(o, 0, 1000, EQ1_QUEUE_REJECT_NEW, false), A,
		   "queue");
	EXPECT_ERR("set_offline_queue(-1 bytes)",
		   eq1_mqtt_options_set_offline_queue(o, 10, -1, EQ1_QUEUE_REJECT_NEW, false), A,
		   "queue");
	EXPECT_ERR("set_offline_queue(policy 7)",
		   eq1_mqtt_options_set_offline_queue(o, 10, 1000, 7, false), A, "policy");
	EXPECT_ERR("set_client_id(invalid UTF-8)", eq1_mqtt_options_set_client_id(o, BAD_UTF8),
		   EQ1_STATUS_INVALID_UTF8, "UTF-8");
	EXPECT_ERR("set_client_id(invalid UTF-8 mid-string)",
		   eq1_mqtt_options_set_client_id(o, "abc" BAD_UTF8 "def"), EQ1_STATUS_INVALID_UTF8,
		   "client id");
	EXPECT_ERR("set_credentials(NULL username)", eq1_mqtt_options_set_credentials(o, NULL, "p"),
		   EQ1_STATUS_NULL_ARGUMENT, "username");
	EXPECT_ERR("set_credentials(invalid UTF-8 username)",
		   eq1_mqtt_options_set_credentials(o, BAD_UTF8, "p"), EQ1_STATUS_INVALID_UTF8,
		   "user");
	EXPECT_ERR("set_credentials(invalid UTF-8 password)",
		   eq1_mqtt_options_set_credentials(o, "u", BAD_UTF8), EQ1_STATUS_INVALID_UTF8,
		   "password");
	EXPECT_ERR("set_tls_verify_hostname before set_tls",
		   eq1_mqtt_options_set_tls_verify_hostname(o, false), EQ1_STATUS_INVALID_STATE,
		   "TLS");
	EXPECT_ERR("set_tls_min_version(11)", eq1_mqtt_options_set_tls_min_version(o, 11),
		   A, "TLS version");
	EXPECT_ERR("set_tls(missing CA file)",
		   eq1_mqtt_options_set_tls(o, "/nonexistent/eq1-test-ca.pem"),
		   EQ1_STATUS_TLS_CONFIG, "eq1-test-ca.pem");
}

static void client_new_errors(const eq1_mqtt_options *o)
{
	printf("# eq1_mqtt_client_new\n");
	eq1_mqtt_client *c = (eq1_mqtt_client *)&c; /* garbage: must be reset to NULL */
	EXPECT_ERR("client_new(NULL options)", eq1_mqtt_client_new(NULL, NULL, count_free, &c),
		   EQ1_STATUS_NULL_ARGUMENT, "options");
	EXPECT_TRUE("client_new failure leaves *out NULL", c == NULL);
	EXPECT_ERR("client_new(NULL out)", eq1_mqtt_client_new(o, NULL, count_free, NULL),
		   EQ1_STATUS_NULL_ARGUMENT, "out");
	EXPECT_ERR("client_new(NULL options, NULL out)",
		   eq1_mqtt_client_new(NULL, NULL, count_free, NULL), EQ1_STATUS_NULL_ARGUMENT,
		   "NULL");
	EXPECT_TRUE("client_new failure does not call user_data_free",
		    atomic_load(&user_data_frees) == 0);
}

/* A TLS broker with a plaintext failover would get the password in clear: refused unless
 * explicitly allowed. */
static void plaintext_failover_with_credentials(void)
{
	printf("# TLS broker, plaintext failover, credentials\n");
	eq1_mqtt_options *o = eq1_mqtt_options_new();
	REQUIRE(o != NULL, "eq1_mqtt_options_new returned NULL");
	CHECK(eq1_mqtt_options_set_tls(o, NULL));
	CHECK(eq1_mqtt_options_set_broker(o, "secure.invalid", 8883));
	CHECK(eq1_mqtt_options_add_broker(o, "plain.invalid", 1883, false));
	eq1_mqtt_client *c = NULL;
	EXPECT_OK("client_new(TLS + plaintext failover, no credentials)",
		  eq1_mqtt_client_new(o, NULL, NULL, &c));
	CHECK(eq1_mqtt_client_free(c));
	CHECK(eq1_mqtt_options_set_credentials(o, "user", "secret"));
	c = (eq1_mqtt_client *)&c;
	EXPECT_ERR("client_new(TLS + plaintext failover + credentials)",
		   eq1_mqtt_client_new(o, NULL, NULL, &c), EQ1_STATUS_TLS_CONFIG, "in clear");
	EXPECT_TRUE("refused client_new leaves *out NULL", c == NULL);
	EXPECT_ERR("the refusal names the plaintext broker", eq1_mqtt_client_new(o, NULL, NULL, &c),
		   EQ1_STATUS_TLS_CONFIG, "plain.invalid:1883");
	EXPECT_ERR("the refusal names the option that allows it",
		   eq1_mqtt_client_new(o, NULL, NULL, &c), EQ1_STATUS_TLS_CONFIG,
		   "eq1_mqtt_options_set_allow_plaintext_fallback");
	CHECK(eq1_mqtt_options_set_allow_plaintext_fallback(o, true));
	EXPECT_OK("client_new(... + set_allow_plaintext_fallback(true))",
		  eq1_mqtt_client_new(o, NULL, NULL, &c));
	CHECK(eq1_mqtt_client_free(c));
	eq1_mqtt_options_free(o);
}

/* ---- NULL client handle ---------------------------------------------------------------- */

static void null_client(void)
{
	printf("# NULL client handle to every client function\n");
	const eq1_status N = EQ1_STATUS_NULL_ARGUMENT;
	const uint8_t p[] = "x";
	eq1_token tok = 0;
	int granted = 0;
	eq1_mqtt_stats stats;
	EXPECT_ERR("publish(NULL client)", eq1_mqtt_client_publish(NULL, "t", p, 1, 1, false, &tok),
		   N, "client");
	EXPECT_ERR("subscribe(NULL client)",
		   eq1_mqtt_client_subscribe(NULL, "t", 1, on_nothing, NULL, 1000, &granted), N,
		   "client");
	EXPECT_ERR("wait(NULL client)", eq1_mqtt_client_wait(NULL, 1, 100), N, "client");
	EXPECT_ERR("set_will(NULL client)", eq1_mqtt_client_set_will(NULL, "t", p, 1, 0, false), N,
		   "client");
	EXPECT_ERR("connect(NULL client)", eq1_mqtt_client_connect(NULL, 1000), N, "client");
	EXPECT_ERR("disconnect(NULL client)", eq1_mqtt_client_disconnect(NULL, 1000), N, "client");
	EXPECT_ERR("unsubscribe(NULL client)", eq1_mqtt_client_unsubscribe(NULL, "t", 1000), N,
		   "client");
	EXPECT_ERR("get_stats(NULL client)", eq1_mqtt_client_get_stats(NULL, &stats), N, "client");
	EXPECT_ERR("set_connection_callback(NULL client)",
		   eq1_mqtt_client_set_connection_callback(NULL, NULL), N, "client");
	EXPECT_ERR("set_delivery_callback(NULL client)",
		   eq1_mqtt_client_set_delivery_callback(NULL, NULL), N, "client");
}

/* ---- argument checks on a live client -------------------------------------------------- */

static void client_argument_errors(eq1_mqtt_client *c, bool connected)
{
	const char *when = connected ? "connected" : "not connected";
	char name[256];
	const uint8_t p[] = "payload";
	eq1_token tok;
	int granted;

#define NAME(what) (snprintf(name, sizeof name, "%s [%s]", (what), when), name)
	const eq1_status N = EQ1_STATUS_NULL_ARGUMENT;
	printf("# argument checks on a live client (%s)\n", when);

	EXPECT_ERR(NAME("publish(NULL topic)"),
		   eq1_mqtt_client_publish(c, NULL, p, 3, 1, false, NULL), N, "topic");
	EXPECT_ERR(NAME("publish(NULL payload, len 5)"),
		   eq1_mqtt_client_publish(c, "eq1/bad", NULL, 5, 1, false, NULL), N, "payload");
	EXPECT_ERR(NAME("publish(invalid UTF-8 topic)"),
		   eq1_mqtt_client_publish(c, BAD_UTF8, p, 3, 1, false, NULL),
		   EQ1_STATUS_INVALID_UTF8, "UTF-8");
	EXPECT_ERR(NAME("publish(topic 'a/+')"),
		   eq1_mqtt_client_publish(c, "a/+", p, 3, 1, false, NULL), EQ1_STATUS_INVALID_TOPIC,
		   "wildcard");
	EXPECT_ERR(NAME("publish(topic 'a/#')"),
		   eq1_mqtt_client_publish(c, "a/#", p, 3, 1, false, NULL), EQ1_STATUS_INVALID_TOPIC,
		   "wildcard");
	EXPECT_ERR(NAME("publish(topic '')"), eq1_mqtt_client_publish(c, "", p, 3, 1, false, NULL),
		   EQ1_STATUS_INVALID_TOPIC, "empty");
	EXPECT_ERR(NAME("publish(QoS 3)"),
		   eq1_mqtt_client_publish(c, "eq1/bad", p, 3, 3, false, NULL),
		   EQ1_STATUS_INVALID_QOS, "QoS");
	EXPECT_ERR(NAME("publish(QoS -1)"),
		   eq1_mqtt_client_publish(c, "eq1/bad", p, 3, -1, false, NULL),
		   EQ1_STATUS_INVALID_QOS, "QoS");
	{
		static uint8_t big[2000];
		memset(big, 'B', sizeof big);
		EXPECT_ERR(NAME("publish(2000 bytes > max packet 1024)"),
			   eq1_mqtt_client_publish(c, "eq1/bad", big, sizeof big, 1, false, NULL),
			   EQ1_STATUS_PAYLOAD_TOO_LARGE, "packet size");
	}
	tok = 777;
	EXPECT_ERR(NAME("publish(topic 'a/+') with out_token"),
		   eq1_mqtt_client_publish(c, "a/+", p, 3, 1, false, &tok), EQ1_STATUS_INVALID_TOPIC,
		   "wildcard");
	EXPECT_TRUE(NAME("failed publish resets *out_token to 0"), tok == 0);

	EXPECT_ERR(NAME("subscribe(NULL filter)"),
		   eq1_mqtt_client_subscribe(c, NULL, 1, on_nothing, NULL, 1000, NULL), N, "filter");
	EXPECT_ERR(NAME("subscribe(NULL callback)"),
		   eq1_mqtt_client_subscribe(c, "eq1/bad", 1, NULL, NULL, 1000, NULL), N,
		   "callback");
	EXPECT_ERR(NAME("subscribe(invalid UTF-8 filter)"),
		   eq1_mqtt_client_subscribe(c, BAD_UTF8, 1, on_nothing, NULL, 1000, NULL),
		   EQ1_STATUS_INVALID_UTF8, "UTF-8");
	EXPECT_ERR(NAME("subscribe(filter 'a/#/b')"),
		   eq1_mqtt_client_subscribe(c, "a/#/b", 1, on_nothing, NULL, 1000, NULL),
		   EQ1_STATUS_INVALID_FILTER, "'#'");
	EXPECT_ERR(NAME("subscribe(filter 'a+')"),
		   eq1_mqtt_client_subscribe(c, "a+", 1, on_nothing, NULL, 1000, NULL),
		   EQ1_STATUS_INVALID_FILTER, "'+'");
	EXPECT_ERR(NAME("subscribe(filter '#/a')"),
		   eq1_mqtt_client_subscribe(c, "#/a", 1, on_nothing, NULL, 1000, NULL),
		   EQ1_STATUS_INVALID_FILTER, "'#'");
	EXPECT_ERR(NAME("subscribe(filter '')"),
		   eq1_mqtt_client_subscribe(c, "", 1, on_nothing, NULL, 1000, NULL),
		   EQ1_STATUS_INVALID_FILTER, "empty");
	EXPECT_ERR(NAME("subscribe(QoS 3)"),
		   eq1_mqtt_client_subscribe(c, "eq1/bad", 3, on_nothing, NULL, 1000, NULL),
		   EQ1_STATUS_INVALID_QOS, "QoS");
	EXPECT_ERR(NAME("subscribe(QoS -1)"),
		   eq1_mqtt_client_subscribe(c, "eq1/bad", -1, on_nothing, NULL, 1000, NULL),
		   EQ1_STATUS_INVALID_QOS, "QoS");
	EXPECT_ERR(NAME("subscribe(timeout -1)"),
		   eq1_mqtt_client_subscribe(c, "eq1/bad", 1, on_nothing, NULL, -1, NULL),
		   EQ1_STATUS_INVALID_ARGUMENT, "negative");
	granted = 5;
	EXPECT_ERR(NAME("subscribe(filter 'a+') with out_granted_qos"),
		   eq1_mqtt_client_subscribe(c, "a+", 1, on_nothing, NULL, 1000, &granted),
		   EQ1_STATUS_INVALID_FILTER, "'+'");
	EXPECT_TRUE(NAME("failed subscribe does not report a granted QoS"),
		    granted < 0 || granted > 2);

	EXPECT_ERR(NAME("unsubscribe(NULL filter)"), eq1_mqtt_client_unsubscribe(c, NULL, 1000), N,
		   "filter");
	EXPECT_ERR(NAME("unsubscribe(invalid UTF-8 filter)"),
		   eq1_mqtt_client_unsubscribe(c, BAD_UTF8, 1000), EQ1_STATUS_INVALID_UTF8,
		   "UTF-8");
	EXPECT_ERR(NAME("unsubscribe(filter 'a/#/b')"),
		   eq1_mqtt_client_unsubscribe(c, "a/#/b", 1000), EQ1_STATUS_INVALID_FILTER, "'#'");
	/* Any filter may be unsubscribed: a persistent session of an earlier run may hold it. */
	EXPECT_OK(NAME("unsubscribe(never subscribed)"),
		  eq1_mqtt_client_unsubscribe(c, "eq1/never/subscribed", 1000));
	EXPECT_ERR(NAME("unsubscribe(timeout -1)"), eq1_mqtt_client_unsubscribe(c, "eq1/x", -1),
		   EQ1_STATUS_INVALID_ARGUMENT, "negative");
	{
		const char *two[] = { "eq1/many/a", "eq1/many/#" };
		const char *with_null[] = { "eq1/many/a", NULL };
		const char *with_bad[] = { "eq1/many/a", "a/#/b" };
		EXPECT_ERR(NAME("unsubscribe_many(NULL filters)"),
			   eq1_mqtt_client_unsubscribe_many(c, NULL, 2, 1000), N, "filters");
		EXPECT_ERR(NAME("unsubscribe_many(count 0)"),
			   eq1_mqtt_client_unsubscribe_many(c, two, 0, 1000),
			   EQ1_STATUS_INVALID_ARGUMENT, "no filter");
		EXPECT_ERR(NAME("unsubscribe_many(NULL filter 1)"),
			   eq1_mqtt_client_unsubscribe_many(c, with_null, 2, 1000), N, "filter 1");
		EXPECT_ERR(NAME("unsubscribe_many(filter 'a/#/b')"),
			   eq1_mqtt_client_unsubscribe_many(c, with_bad, 2, 1000),
			   EQ1_STATUS_INVALID_FILTER, "'#'");
		EXPECT_OK(NAME("unsubscribe_many(two filters)"),
			  eq1_mqtt_client_unsubscribe_many(c, two, 2, 1000));
	}

	EXPECT_ERR(NAME("wait(token 0)"), eq1_mqtt_client_wait(c, 0, 100),
		   EQ1_STATUS_INVALID_ARGUMENT, "token");
	EXPECT_ERR(NAME("wait(never-issued token)"), eq1_mqtt_client_wait(c, 987654321, 100),
		   EQ1_STATUS_INVALID_ARGUMENT, "token");
	EXPECT_ERR(NAME("wait(token UINT64_MAX)"), eq1_mqtt_client_wait(c, UINT64_MAX, 100),
		   EQ1_STATUS_INVALID_ARGUMENT, "token");
	EXPECT_ERR(NAME("wait(timeout -1)"), eq1_mqtt_client_wait(c, 1, -1),
		   EQ1_STATUS_INVALID_ARGUMENT, "negative");

	EXPECT_ERR(NAME("connect(timeout -1)"), eq1_mqtt_client_connect(c, -1),
		   EQ1_STATUS_INVALID_ARGUMENT, "negative");
	EXPECT_ERR(NAME("disconnect(timeout -1)"), eq1_mqtt_client_disconnect(c, -1),
		   EQ1_STATUS_INVALID_ARGUMENT, "negative");
	EXPECT_ERR(NAME("get_stats(NULL out)"), eq1_mqtt_client_get_stats(c, NULL), N, "out");

	EXPECT_ERR(NAME("set_will(NULL topic)"), eq1_mqtt_client_set_will(c, NULL, p, 3, 0, false),
		   N, "topic");
	EXPECT_ERR(NAME("set_will(NULL payload, len 5)"),
		   eq1_mqtt_client_set_will(c, "eq1/will", NULL, 5, 0, false), N, "payload");
	EXPECT_ERR(NAME("set_will(invalid UTF-8 topic)"),
		   eq1_mqtt_client_set_will(c, BAD_UTF8, p, 3, 0, false), EQ1_STATUS_INVALID_UTF8,
		   "UTF-8");
	EXPECT_ERR(NAME("set_will(topic 'a/#')"),
		   eq1_mqtt_client_set_will(c, "a/#", p, 3, 0, false), EQ1_STATUS_INVALID_TOPIC,
		   "wildcard");
	EXPECT_ERR(NAME("set_will(QoS 3)"), eq1_mqtt_client_set_will(c, "eq1/will", p, 3, 3, false),
		   EQ1_STATUS_INVALID_QOS, "QoS");
#undef NAME
}

/* ---- main ------------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s <host> <port>\n", argv[0]);
		return 2;
	}
	const char *host = argv[1];
	int port = atoi(argv[2]);
	char topic[128];
	snprintf(topic, sizeof topic, "eq1test/bad_input/%ld/rt", (long)getpid());

	library_functions();
	null_options();
	persistence_arguments();

	eq1_mqtt_options *o = eq1_mqtt_options_new();
	REQUIRE(o != NULL, "eq1_mqtt_options_new returned NULL");
	bad_option_values(o);
	/* The options are still usable after all of that. */
	CHECK(eq1_mqtt_options_set_broker(o, host, port));
	CHECK(eq1_mqtt_options_set_connect_timeout(o, 30000));
	CHECK(eq1_mqtt_options_set_max_packet_size(o, 1024));
	client_new_errors(o);
	plaintext_failover_with_credentials();
	null_client();

	eq1_mqtt_client *c = NULL;
	CHECK(eq1_mqtt_client_new(o, NULL, count_free, &c));
	REQUIRE(c != NULL, "client_new returned OK but no client");
	eq1_mqtt_options_free(o);

	/* Not connected yet. */
	printf("# client not connected\n");
	const uint8_t hello[] = "hello";
	eq1_token tok = 0;
	EXPECT_ERR("publish before connect", eq1_mqtt_client_publish(c, topic, hello, 5, 1, false,
								     &tok),
		   EQ1_STATUS_NOT_CONNECTED, "not connected");
	EXPECT_TRUE("publish before connect issues no token", tok == 0);
	EXPECT_ERR("subscribe before connect",
		   eq1_mqtt_client_subscribe(c, topic, 1, on_nothing, NULL, 1000, NULL),
		   EQ1_STATUS_NOT_CONNECTED, "not connected");
	EXPECT_ERR("disconnect before connect", eq1_mqtt_client_disconnect(c, 1000),
		   EQ1_STATUS_NOT_CONNECTED, "not connected");
	client_argument_errors(c, false);
	/* A valid will is accepted while not connected (and replaced later). */
	EXPECT_OK("set_will while not connected",
		  eq1_mqtt_client_set_will(c, "eq1test/will", hello, 5, 0, false));

	/* Connected. */
	printf("# client connected\n");
	CHECK(eq1_mqtt_client_connect(c, 0));
	EXPECT_TRUE("client connected", eq1_mqtt_client_is_connected(c));
	EXPECT_ERR("set_will while connected",
		   eq1_mqtt_client_set_will(c, "eq1test/will", hello, 5, 0, false),
		   EQ1_STATUS_INVALID_STATE, "will");
	EXPECT_ERR("connect while connected", eq1_mqtt_client_connect(c, 1000),
		   EQ1_STATUS_INVALID_STATE, "connected");
	client_argument_errors(c, true);

	/* Payload NULL with len 0 is an empty payload (connected: it is really sent). */
	tok = 0;
	EXPECT_OK("publish(NULL payload, len 0) QoS 1",
		  eq1_mqtt_client_publish(c, topic, NULL, 0, 1, false, &tok));
	EXPECT_TRUE("publish(NULL payload, len 0) gives a token", tok != 0);
	EXPECT_OK("wait on the empty-payload token", eq1_mqtt_client_wait(c, tok, 10000));
	EXPECT_ERR("wait(token beyond the last issued)", eq1_mqtt_client_wait(c, tok + 1000, 100),
		   EQ1_STATUS_INVALID_ARGUMENT, "token");
	{
		/* The boundary: a payload that fits in 1024 bytes is accepted. */
		static uint8_t fits[900];
		memset(fits, 'f', sizeof fits);
		tok = 0;
		EXPECT_OK("publish(900 bytes, under max packet 1024)",
			  eq1_mqtt_client_publish(c, "eq1test/bad_input/fits", fits, sizeof fits, 1,
						  false, &tok));
		EXPECT_OK("wait on the 900-byte publish", eq1_mqtt_client_wait(c, tok, 10000));
	}

	/* Round trip on the same client: disconnect, connect again, subscribe, publish, receive. */
	printf("# round trip on the same client after all the bad input\n");
	int failures_before_round_trip = tu_failures;
	EXPECT_OK("disconnect", eq1_mqtt_client_disconnect(c, 5000));
	EXPECT_TRUE("not connected after disconnect", !eq1_mqtt_client_is_connected(c));
	EXPECT_OK("set_will after disconnect (state is idle again)",
		  eq1_mqtt_client_set_will(c, "eq1test/will", hello, 5, 0, false));
	EXPECT_OK("connect again", eq1_mqtt_client_connect(c, 0));
	struct inbox in;
	atomic_init(&in.count, 0);
	atomic_init(&in.with_text, 0);
	atomic_init(&in.empty, 0);
	atomic_init(&in.bad, 0);
	int granted = -1;
	EXPECT_OK("subscribe QoS 1", eq1_mqtt_client_subscribe(c, topic, 1, on_roundtrip, &in, 10000,
							       &granted));
	EXPECT_TRUE("granted QoS 1", granted == 1);
	static const char text[] = "round trip";
	tok = 0;
	EXPECT_OK("publish 'round trip' QoS 1",
		  eq1_mqtt_client_publish(c, topic, (const uint8_t *)text, sizeof text - 1, 1, false,
					  &tok));
	EXPECT_OK("wait for PUBACK", eq1_mqtt_client_wait(c, tok, 10000));
	EXPECT_OK("publish empty payload (NULL, 0) QoS 0",
		  eq1_mqtt_client_publish(c, topic, NULL, 0, 0, false, NULL));
	EXPECT_TRUE("received 'round trip'", wait_for(&in.with_text, 1, 10000));
	EXPECT_TRUE("received the empty payload", wait_for(&in.empty, 1, 10000));
	sleep_ms(200);
	EXPECT_TRUE("received exactly those 2 messages, nothing malformed",
		    atomic_load(&in.count) == 2 && atomic_load(&in.bad) == 0);
	eq1_mqtt_stats stats;
	EXPECT_OK("get_stats", eq1_mqtt_client_get_stats(c, &stats));
	printf("# stats: published=%llu delivered=%llu failed=%llu received=%llu\n",
	       (unsigned long long)stats.published, (unsigned long long)stats.delivered,
	       (unsigned long long)stats.failed, (unsigned long long)stats.received);
	EXPECT_TRUE("stats: 4 accepted publishes, 4 delivered, 0 failed (rejected calls not counted)",
		    stats.published == 4 && stats.delivered == 4 && stats.failed == 0);
	EXPECT_TRUE("stats: 2 received", stats.received == 2);
	EXPECT_OK("unsubscribe", eq1_mqtt_client_unsubscribe(c, topic, 10000));
	EXPECT_OK("disconnect", eq1_mqtt_client_disconnect(c, 5000));

	EXPECT_OK("eq1_mqtt_client_free", eq1_mqtt_client_free(c));
	EXPECT_TRUE("user_data_free ran exactly once", atomic_load(&user_data_frees) == 1);
	if (tu_failures == failures_before_round_trip)
		printf("ROUND TRIP OK\n");
	return tu_summary();
}
