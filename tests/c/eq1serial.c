/*
 * eq1serial.c - the eq1_serial_* C API over a socat pseudo-terminal pair the test started
 * (bytes written to one end come out of the other), and the same line through the registry's
 * "serial".
 *
 *   eq1serial A B      A and B are the two ends of the pair
 *
 * Checks: all 256 byte values in both directions, a 64 KiB block (written by a thread while
 * the other end reads), request answered by an echo thread on the other end, read timeouts,
 * a device that does not exist, every invalid setting at the C boundary with its status,
 * stats. Prints one line per check and "SUMMARY: ..." (exit 0 when all passed).
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>

#include "test_util.h"

#define BLOCK (64 * 1024)

static eq1_serial_client *open_port(const char *device, int flow)
{
	eq1_serial_options *o = NULL;
	CHECK(eq1_serial_options_new(device, 115200, &o));
	CHECK(eq1_serial_options_set_line(o, 8, EQ1_SERIAL_PARITY_NONE, 1));
	CHECK(eq1_serial_options_set_flow_control(o, flow));
	eq1_serial_client *c = NULL;
	CHECK(eq1_serial_client_new(o, &c));
	eq1_serial_options_free(o);
	CHECK(eq1_serial_client_connect(c));
	return c;
}

/* Reads until `want` bytes arrived (or a receive fails); returns how many did. */
static size_t read_all(eq1_serial_client *c, uint8_t *buf, size_t want)
{
	size_t got = 0;
	while (got < want) {
		size_t n = 0;
		if (eq1_serial_client_receive(c, 5000, buf + got, want - got, &n) != EQ1_STATUS_OK)
			break;
		got += n;
	}
	return got;
}

struct writer {
	eq1_serial_client *port;
	const uint8_t *data;
	size_t len;
	eq1_status status;
};

static void *write_block(void *arg)
{
	struct writer *w = arg;
	w->status = eq1_serial_client_send(w->port, w->data, w->len);
	return NULL;
}

struct echo {
	eq1_serial_client *port;
	size_t bytes;
};

/* Answers what arrives with the same bytes, until 2 s pass with nothing. */
static void *echo_back(void *arg)
{
	struct echo *e = arg;
	uint8_t buf[512];
	size_t n = 0;
	while (eq1_serial_client_receive(e->port, 2000, buf, sizeof buf, &n) == EQ1_STATUS_OK) {
		if (eq1_serial_client_send(e->port, buf, n) != EQ1_STATUS_OK)
			break;
		e->bytes += n;
	}
	return NULL;
}

static void bytes_both_ways(eq1_serial_client *a, eq1_serial_client *b)
{
	uint8_t all[256], buf[BLOCK];
	for (int i = 0; i < 256; i++)
		all[i] = (uint8_t)i;
	EXPECT_OK("A -> B: send the 256 byte values", eq1_serial_client_send(a, all, sizeof all));
	EXPECT_TRUE("A -> B: B receives all 256 byte values, unchanged",
		    read_all(b, buf, sizeof all) == sizeof all && memcmp(buf, all, 256) == 0);
	EXPECT_OK("B -> A: send the 256 byte values", eq1_serial_client_send(b, all, sizeof all));
	EXPECT_TRUE("B -> A: A receives all 256 byte values, unchanged",
		    read_all(a, buf, sizeof all) == sizeof all && memcmp(buf, all, 256) == 0);

	static uint8_t block[BLOCK];
	for (size_t i = 0; i < BLOCK; i++)
		block[i] = (uint8_t)((i * 7 + i / 256) & 0xFF);
	struct writer w = {a, block, sizeof block, EQ1_STATUS_INTERNAL};
	pthread_t t;
	REQUIRE(pthread_create(&t, NULL, write_block, &w) == 0, "pthread_create");
	size_t got = read_all(b, buf, sizeof block);
	pthread_join(t, NULL);
	EXPECT_TRUE("a 64 KiB block is written whole", w.status == EQ1_STATUS_OK);
	EXPECT_TRUE("a 64 KiB block arrives whole and unchanged",
		    got == sizeof block && memcmp(buf, block, sizeof block) == 0);

	struct echo e = {b, 0};
	REQUIRE(pthread_create(&t, NULL, echo_back, &e) == 0, "pthread_create");
	bool answered = true;
	for (int i = 0; i < 20; i++) {
		char question[32];
		int n = snprintf(question, sizeof question, "question %d", i);
		size_t len = 0;
		eq1_status st = eq1_serial_client_request(a, (const uint8_t *)question, (size_t)n,
							  5000, buf, sizeof buf, &len);
		/* A short answer may come in pieces: read the rest. */
		if (st == EQ1_STATUS_OK && len < (size_t)n)
			len += read_all(a, buf + len, (size_t)n - len);
		answered = answered && st == EQ1_STATUS_OK && len == (size_t)n &&
			   memcmp(buf, question, len) == 0;
	}
	pthread_join(t, NULL);
	EXPECT_TRUE("20 requests each get their echo from the other end", answered);

	eq1_serial_stats stats;
	CHECK(eq1_serial_client_get_stats(a, &stats));
	EXPECT_TRUE("stats: 20 requests, none failed",
		    stats.requests == 20 && stats.failures == 0 && stats.timeouts == 0);
	EXPECT_TRUE("stats: bytes sent counts every byte A sent",
		    stats.bytes_sent == 256 + BLOCK + e.bytes);
}

static void timeouts(eq1_serial_client *a, eq1_serial_client *b)
{
	uint8_t buf[16];
	size_t len = 7;
	int64_t start = now_ms();
	EXPECT_ERR("receive with nothing arriving times out",
		   eq1_serial_client_receive(a, 300, buf, sizeof buf, &len), EQ1_STATUS_TIMEOUT,
		   "nothing received");
	EXPECT_TRUE("receive waited for its timeout, not less", now_ms() - start >= 290);
	EXPECT_TRUE("out_len is reset on a timeout", len == 0);
	/* Nobody answers on the other end now (no echo thread). */
	EXPECT_ERR("a request nobody answers times out",
		   eq1_serial_client_request(a, (const uint8_t *)"?", 1, 300, buf, sizeof buf, &len),
		   EQ1_STATUS_TIMEOUT, "nothing received");
	EXPECT_TRUE("the unanswered question did reach the other end",
		    read_all(b, buf, 1) == 1 && buf[0] == '?');
	eq1_serial_stats stats;
	CHECK(eq1_serial_client_get_stats(a, &stats));
	EXPECT_TRUE("stats: the timed-out request is counted",
		    stats.requests == 21 && stats.failures == 1 && stats.timeouts == 1);
}

static void bad_settings(eq1_serial_client *a)
{
	eq1_serial_options *o = NULL;
	EXPECT_ERR("options_new NULL path", eq1_serial_options_new(NULL, 9600, &o),
		   EQ1_STATUS_NULL_ARGUMENT, "path");
	EXPECT_ERR("options_new empty path", eq1_serial_options_new("", 9600, &o),
		   EQ1_STATUS_INVALID_ARGUMENT, "empty");
	EXPECT_ERR("options_new path not UTF-8", eq1_serial_options_new("/dev/\xff", 9600, &o),
		   EQ1_STATUS_INVALID_UTF8, "path");
	EXPECT_ERR("options_new baud 0", eq1_serial_options_new("/dev/ttyS0", 0, &o),
		   EQ1_STATUS_INVALID_ARGUMENT, "baud rate is 0");
	EXPECT_ERR("options_new NULL out", eq1_serial_options_new("/dev/ttyS0", 9600, NULL),
		   EQ1_STATUS_NULL_ARGUMENT, "out");
	CHECK(eq1_serial_options_new("/dev/ttyS0", 9600, &o));
	EXPECT_ERR("data bits 4", eq1_serial_options_set_line(o, 4, EQ1_SERIAL_PARITY_NONE, 1),
		   EQ1_STATUS_INVALID_ARGUMENT, "data bits 4");
	EXPECT_ERR("data bits 9", eq1_serial_options_set_line(o, 9, EQ1_SERIAL_PARITY_NONE, 1),
		   EQ1_STATUS_INVALID_ARGUMENT, "data bits 9");
	EXPECT_ERR("data bits -8", eq1_serial_options_set_line(o, -8, EQ1_SERIAL_PARITY_NONE, 1),
		   EQ1_STATUS_INVALID_ARGUMENT, "data bits");
	EXPECT_ERR("data bits 264 (8 + 256)",
		   eq1_serial_options_set_line(o, 264, EQ1_SERIAL_PARITY_NONE, 1),
		   EQ1_STATUS_INVALID_ARGUMENT, "data bits");
	EXPECT_ERR("parity 3", eq1_serial_options_set_line(o, 8, 3, 1),
		   EQ1_STATUS_INVALID_ARGUMENT, "unknown parity 3");
	EXPECT_ERR("parity -1", eq1_serial_options_set_line(o, 8, -1, 1),
		   EQ1_STATUS_INVALID_ARGUMENT, "unknown parity -1");
	EXPECT_ERR("stop bits 0", eq1_serial_options_set_line(o, 8, EQ1_SERIAL_PARITY_NONE, 0),
		   EQ1_STATUS_INVALID_ARGUMENT, "stop bits 0");
	EXPECT_ERR("stop bits 3", eq1_serial_options_set_line(o, 8, EQ1_SERIAL_PARITY_NONE, 3),
		   EQ1_STATUS_INVALID_ARGUMENT, "stop bits 3");
	EXPECT_ERR("stop bits 257 (1 + 256)",
		   eq1_serial_options_set_line(o, 8, EQ1_SERIAL_PARITY_NONE, 257),
		   EQ1_STATUS_INVALID_ARGUMENT, "stop bits");
	EXPECT_ERR("flow control 3", eq1_serial_options_set_flow_control(o, 3),
		   EQ1_STATUS_INVALID_ARGUMENT, "unknown flow control 3");
	EXPECT_ERR("flow control -1", eq1_serial_options_set_flow_control(o, -1),
		   EQ1_STATUS_INVALID_ARGUMENT, "unknown flow control -1");
	EXPECT_ERR("set_line NULL options",
		   eq1_serial_options_set_line(NULL, 8, EQ1_SERIAL_PARITY_NONE, 1),
		   EQ1_STATUS_NULL_ARGUMENT, "options");
	EXPECT_ERR("set_flow_control NULL options",
		   eq1_serial_options_set_flow_control(NULL, EQ1_SERIAL_FLOW_NONE),
		   EQ1_STATUS_NULL_ARGUMENT, "options");
	/* A refused setting leaves the options as they were: every valid value still works. */
	EXPECT_OK("7E2 after the refusals", eq1_serial_options_set_line(o, 7, EQ1_SERIAL_PARITY_EVEN, 2));
	EXPECT_OK("5O1", eq1_serial_options_set_line(o, 5, EQ1_SERIAL_PARITY_ODD, 1));
	EXPECT_OK("hardware flow control", eq1_serial_options_set_flow_control(o, EQ1_SERIAL_FLOW_HARDWARE));
	EXPECT_OK("software flow control", eq1_serial_options_set_flow_control(o, EQ1_SERIAL_FLOW_SOFTWARE));
	eq1_serial_client *c = NULL;
	EXPECT_ERR("client_new NULL options", eq1_serial_client_new(NULL, &c),
		   EQ1_STATUS_NULL_ARGUMENT, "options");
	EXPECT_ERR("client_new NULL out", eq1_serial_client_new(o, NULL), EQ1_STATUS_NULL_ARGUMENT,
		   "out");
	eq1_serial_options_free(o);
	eq1_serial_options_free(NULL);

	CHECK(eq1_serial_options_new("/dev/eq1-no-such-serial-device", 9600, &o));
	CHECK(eq1_serial_client_new(o, &c));
	eq1_serial_options_free(o);
	EXPECT_ERR("a device that does not exist", eq1_serial_client_connect(c),
		   EQ1_STATUS_SERIAL_ERROR, "/dev/eq1-no-such-serial-device");
	uint8_t buf[8];
	size_t len = 0;
	EXPECT_ERR("send on a port that is not open", eq1_serial_client_send(c, buf, 1),
		   EQ1_STATUS_NOT_CONNECTED, "is not open");
	EXPECT_ERR("receive on a port that is not open",
		   eq1_serial_client_receive(c, 10, buf, sizeof buf, &len), EQ1_STATUS_NOT_CONNECTED,
		   "is not open");
	eq1_serial_client_free(c);

	EXPECT_ERR("connect NULL client", eq1_serial_client_connect(NULL), EQ1_STATUS_NULL_ARGUMENT,
		   "client");
	EXPECT_ERR("send NULL data with a length", eq1_serial_client_send(a, NULL, 4),
		   EQ1_STATUS_NULL_ARGUMENT, "data");
	EXPECT_OK("send NULL data of length 0", eq1_serial_client_send(a, NULL, 0));
	EXPECT_ERR("receive NULL buffer", eq1_serial_client_receive(a, 10, NULL, 8, &len),
		   EQ1_STATUS_NULL_ARGUMENT, "buf");
	EXPECT_ERR("receive buffer length 0", eq1_serial_client_receive(a, 10, buf, 0, &len),
		   EQ1_STATUS_INVALID_ARGUMENT, "buf_len is 0");
	EXPECT_ERR("receive NULL out_len", eq1_serial_client_receive(a, 10, buf, sizeof buf, NULL),
		   EQ1_STATUS_NULL_ARGUMENT, "out_len");
	EXPECT_ERR("receive negative timeout", eq1_serial_client_receive(a, -1, buf, sizeof buf, &len),
		   EQ1_STATUS_INVALID_ARGUMENT, "");
	EXPECT_ERR("request negative timeout",
		   eq1_serial_client_request(a, buf, 1, -5, buf, sizeof buf, &len),
		   EQ1_STATUS_INVALID_ARGUMENT, "");
	eq1_serial_stats stats;
	EXPECT_ERR("get_stats NULL out", eq1_serial_client_get_stats(a, NULL),
		   EQ1_STATUS_NULL_ARGUMENT, "out");
	EXPECT_ERR("get_stats NULL client", eq1_serial_client_get_stats(NULL, &stats),
		   EQ1_STATUS_NULL_ARGUMENT, "client");
	EXPECT_TRUE("client_free(NULL) is a no-op", eq1_serial_client_free(NULL) == EQ1_STATUS_OK);
}

/* "serial" from the registry: the same line through the generic handle. */
static void through_the_registry(const char *device, eq1_serial_client *other_end)
{
	eq1_protocol_options *o = eq1_protocol_options_new();
	CHECK(eq1_protocol_options_set(o, "device", device));
	CHECK(eq1_protocol_options_set(o, "baud", "115200"));
	CHECK(eq1_protocol_options_set(o, "parity", "none"));
	CHECK(eq1_protocol_options_set(o, "flow_control", "none"));
	eq1_protocol *p = NULL;
	CHECK(eq1_protocol_open("serial", o, &p));
	CHECK(eq1_protocol_connect(p, 1000));
	uint8_t all[256], buf[512];
	for (int i = 0; i < 256; i++)
		all[i] = (uint8_t)(255 - i);
	EXPECT_OK("registry: send", eq1_protocol_send(p, all, sizeof all, 1000));
	EXPECT_TRUE("registry: the other end receives the bytes",
		    read_all(other_end, buf, sizeof all) == sizeof all &&
			    memcmp(buf, all, sizeof all) == 0);
	CHECK(eq1_serial_client_send(other_end, (const uint8_t *)"back", 4));
	size_t len = 0, got = 0;
	while (got < 4 && eq1_protocol_receive(p, 5000, buf + got, sizeof buf - got, &len) ==
				  EQ1_STATUS_OK)
		got += len;
	EXPECT_TRUE("registry: receives what the other end sent",
		    got == 4 && memcmp(buf, "back", 4) == 0);
	EXPECT_ERR("registry: receive times out",
		   eq1_protocol_receive(p, 200, buf, sizeof buf, &len), EQ1_STATUS_TIMEOUT,
		   "nothing received");
	EXPECT_ERR("registry: publish is not a serial operation",
		   eq1_protocol_publish(p, "t", buf, 1, 0, false), EQ1_STATUS_UNSUPPORTED_OPERATION,
		   "does not support publish");
	eq1_protocol_close(p);

	const char *bad[][2] = {{"parity", "mark"},   {"data_bits", "9"},    {"stop_bits", "0"},
				{"flow_control", "x"}, {"baud", "fast"},     {"read_timeout_ms", "-1"},
				{"path", device}};
	const char *needle[] = {"parity 'mark'", "data bits 9", "stop bits 0", "flow control 'x'",
				"'baud' has the invalid value", "'read_timeout_ms' has the invalid",
				"no option 'path'"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		eq1_protocol_options *b = eq1_protocol_options_new();
		CHECK(eq1_protocol_options_set(b, "device", device));
		CHECK(eq1_protocol_options_set(b, bad[i][0], bad[i][1]));
		char name[96];
		snprintf(name, sizeof name, "registry: %s=%s is refused", bad[i][0], bad[i][1]);
		eq1_protocol *q = NULL;
		EXPECT_ERR(name, eq1_protocol_open("serial", b, &q), EQ1_STATUS_INVALID_ARGUMENT,
			   needle[i]);
		eq1_protocol_options_free(b);
	}
	eq1_protocol_options *missing = eq1_protocol_options_new();
	CHECK(eq1_protocol_options_set(missing, "device", "/dev/eq1-no-such-serial-device"));
	CHECK(eq1_protocol_open("serial", missing, &p));
	EXPECT_ERR("registry: a device that does not exist", eq1_protocol_connect(p, 1000),
		   EQ1_STATUS_SERIAL_ERROR, "cannot open");
	eq1_protocol_close(p);
	eq1_protocol_options_free(missing);
	eq1_protocol_options_free(o);
}

int main(int argc, char **argv)
{
	REQUIRE(argc == 3, "usage: eq1serial A B");
	eq1_serial_client *a = open_port(argv[1], EQ1_SERIAL_FLOW_NONE);
	eq1_serial_client *b = open_port(argv[2], EQ1_SERIAL_FLOW_NONE);
	bytes_both_ways(a, b);
	timeouts(a, b);
	bad_settings(a);
	EXPECT_OK("disconnect", eq1_serial_client_disconnect(a));
	EXPECT_OK("disconnect twice", eq1_serial_client_disconnect(a));
	through_the_registry(argv[1], b);
	eq1_serial_client_free(a);
	eq1_serial_client_free(b);
	return tu_summary();
}
