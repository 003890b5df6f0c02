/*
 * eq1tcp.c - the eq1_tcp_* C API against the echo/framing server the test started
 * (tests/harness/tcp_echo_server.py: every message is answered with itself; "!close",
 * "!reset", "!big:N" ... are its commands).
 *
 *   eq1tcp HOST PORT roundtrip FRAMING COUNT   FRAMING raw|u16|u32|delimiter ("\r\n"):
 *                                              COUNT messages, each answer checked byte by byte
 *   eq1tcp HOST PORT idle-cut AUTO CMD         u16; the server closes (CMD close) or resets
 *                                              (CMD reset) the connection after answering; the
 *                                              client stays idle, then the next request
 *                                              succeeds (AUTO 1) or fails with its status (0)
 *   eq1tcp HOST PORT tls CA CERT KEY COUNT     u16 over TLS (client certificate when CERT is
 *                                              not "-"), COUNT messages checked
 *   eq1tcp HOST PORT tls-wrong-ca CA           the handshake fails: unknown issuer
 *   eq1tcp HOST PORT limits                    u16, max frame 100: receive timeout, a frame
 *                                              above the maximum, a message above it
 *   eq1tcp HOST PORT bad                       NULL and invalid arguments, each its status
 */
#define _POSIX_C_SOURCE 200809L

#include "test_util.h"

static int framing_of(const char *name)
{
	if (strcmp(name, "raw") == 0)
		return EQ1_TCP_FRAMING_RAW;
	if (strcmp(name, "u16") == 0)
		return EQ1_TCP_FRAMING_LENGTH_U16;
	if (strcmp(name, "u32") == 0)
		return EQ1_TCP_FRAMING_LENGTH_U32;
	if (strcmp(name, "delimiter") == 0)
		return EQ1_TCP_FRAMING_DELIMITER;
	REQUIRE(false, "unknown framing %s", name);
	return -1;
}

static eq1_tcp_client *make_client(const char *host, int port, int framing, bool reconnect,
				   size_t max_frame)
{
	eq1_tcp_options *o = eq1_tcp_options_new();
	REQUIRE(o != NULL, "eq1_tcp_options_new");
	CHECK(eq1_tcp_options_set_endpoint(o, host, (uint16_t)port));
	CHECK(eq1_tcp_options_set_connect_timeout(o, 5000));
	CHECK(eq1_tcp_options_set_framing(o, framing, (const uint8_t *)"\r\n", 2));
	if (max_frame > 0)
		CHECK(eq1_tcp_options_set_max_frame(o, max_frame));
	CHECK(eq1_tcp_options_set_auto_reconnect(o, reconnect, 50, 500));
	eq1_tcp_client *c = NULL;
	CHECK(eq1_tcp_client_new(o, &c));
	eq1_tcp_options_free(o);
	return c;
}

/* Message i: 1..300 bytes of letters (never the "\r\n" delimiter), different for every i. */
static size_t message(unsigned i, uint8_t *out)
{
	size_t len = 1 + (i * 7919u) % 300;
	uint32_t x = i * 2654435761u + 1;
	for (size_t k = 0; k < len; k++) {
		x = x * 1103515245u + 12345u;
		out[k] = (uint8_t)('a' + (x >> 16) % 26);
	}
	return len;
}

/* Raw stream: what was sent comes back, possibly in several pieces. */
static bool raw_echo(eq1_tcp_client *c, const uint8_t *sent, size_t len)
{
	uint8_t got[512];
	size_t have = 0;
	char msg[512];
	eq1_status st = eq1_tcp_client_send(c, sent, len, 5000);
	if (st != EQ1_STATUS_OK) {
		printf("send: %s: %s\n", eq1_status_str((int)st), tu_last_error(msg, sizeof msg));
		return false;
	}
	while (have < len) {
		size_t n = 0;
		st = eq1_tcp_client_receive(c, 5000, got + have, len - have, &n);
		if (st != EQ1_STATUS_OK) {
			printf("receive: %s: %s\n", eq1_status_str((int)st),
			       tu_last_error(msg, sizeof msg));
			return false;
		}
		have += n;
	}
	return memcmp(got, sent, len) == 0;
}

static void roundtrip(const char *host, int port, const char *framing_name, unsigned count)
{
	int framing = framing_of(framing_name);
	eq1_tcp_client *c = make_client(host, port, framing, false, 0);
	CHECK(eq1_tcp_client_connect(c, 5000));
	EXPECT_TRUE("connected", eq1_tcp_client_is_connected(c));
	uint8_t sent[512], got[512];
	unsigned wrong = 0, failed = 0;
	uint64_t bytes = 0;
	for (unsigned i = 0; i < count; i++) {
		size_t len = message(i, sent);
		bytes += len;
		if (framing == EQ1_TCP_FRAMING_RAW) {
			if (!raw_echo(c, sent, len))
				wrong++;
			continue;
		}
		size_t n = 0;
		eq1_status st = eq1_tcp_client_request(c, sent, len, 5000, got, sizeof got, &n);
		if (st != EQ1_STATUS_OK) {
			if (failed++ < 5) {
				char msg[512];
				printf("request %u: %s: %s\n", i, eq1_status_str((int)st),
				       tu_last_error(msg, sizeof msg));
			}
		} else if (n != len || memcmp(got, sent, len) != 0) {
			wrong++;
		}
	}
	printf("%s: %u messages, %u wrong, %u failed\n", framing_name, count, wrong, failed);
	EXPECT_TRUE("every answer is its message", wrong == 0 && failed == 0);
	eq1_tcp_stats s;
	CHECK(eq1_tcp_client_get_stats(c, &s));
	size_t overhead = framing == EQ1_TCP_FRAMING_LENGTH_U16 ? 2
			  : framing == EQ1_TCP_FRAMING_LENGTH_U32 ? 4
			  : framing == EQ1_TCP_FRAMING_DELIMITER ? 2
								 : 0;
	EXPECT_TRUE("stats count the bytes of every frame both ways",
		    s.bytes_sent == bytes + overhead * count &&
			    s.bytes_received == bytes + overhead * count);
	EXPECT_TRUE("stats count requests (framed modes) and no reconnect",
		    s.requests == (framing == EQ1_TCP_FRAMING_RAW ? 0 : count) && s.failures == 0 &&
			    s.reconnects == 0 && s.retries == 0);
	CHECK(eq1_tcp_client_disconnect(c));
	EXPECT_TRUE("not connected after disconnect", !eq1_tcp_client_is_connected(c));
	CHECK(eq1_tcp_client_free(c));
}

static bool answered(eq1_tcp_client *c, const char *text)
{
	uint8_t got[256];
	size_t n = 0;
	size_t len = strlen(text);
	eq1_status st = eq1_tcp_client_request(c, (const uint8_t *)text, len, 5000, got, sizeof got,
					       &n);
	if (st != EQ1_STATUS_OK) {
		char msg[512];
		printf("request '%s': %s: %s\n", text, eq1_status_str((int)st),
		       tu_last_error(msg, sizeof msg));
		return false;
	}
	return n == len && memcmp(got, text, len) == 0;
}

static void idle_cut(const char *host, int port, bool reconnect, const char *how)
{
	eq1_tcp_client *c = make_client(host, port, EQ1_TCP_FRAMING_LENGTH_U16, reconnect, 0);
	CHECK(eq1_tcp_client_connect(c, 5000));
	EXPECT_TRUE("a request before the cut is answered", answered(c, "before"));
	char command[16];
	snprintf(command, sizeof command, "!%s", how);
	EXPECT_TRUE("the server answers, then cuts the connection", answered(c, command));
	sleep_ms(300); /* idle: the server's FIN or RST arrives meanwhile */
	uint8_t got[64];
	size_t n = 0;
	if (reconnect) {
		EXPECT_TRUE("the next request is answered on a new connection", answered(c, "after"));
		EXPECT_TRUE("and the one after it", answered(c, "again"));
		eq1_tcp_stats s;
		CHECK(eq1_tcp_client_get_stats(c, &s));
		printf("reconnects %llu retries %llu failures %llu\n",
		       (unsigned long long)s.reconnects, (unsigned long long)s.retries,
		       (unsigned long long)s.failures);
		EXPECT_TRUE("one reconnect, no failed request",
			    s.reconnects == 1 && s.failures == 0 && s.requests == 4);
	} else {
		EXPECT_ERR("without automatic reconnect the next request finds the loss",
			   eq1_tcp_client_request(c, (const uint8_t *)"after", 5, 5000, got,
						  sizeof got, &n),
			   EQ1_STATUS_CONNECTION_LOST, "lost");
		EXPECT_TRUE("not connected afterwards", !eq1_tcp_client_is_connected(c));
		EXPECT_ERR("the one after it: not connected",
			   eq1_tcp_client_request(c, (const uint8_t *)"again", 5, 5000, got,
						  sizeof got, &n),
			   EQ1_STATUS_NOT_CONNECTED, "not connected");
		EXPECT_ERR("a send too", eq1_tcp_client_send(c, (const uint8_t *)"x", 1, 1000),
			   EQ1_STATUS_NOT_CONNECTED, "not connected");
		CHECK(eq1_tcp_client_connect(c, 5000));
		EXPECT_TRUE("connect opens it again", answered(c, "reconnected by hand"));
	}
	CHECK(eq1_tcp_client_free(c));
}

static void tls(const char *host, int port, const char *ca, const char *cert, const char *key,
		unsigned count)
{
	eq1_tcp_options *o = eq1_tcp_options_new();
	CHECK(eq1_tcp_options_set_endpoint(o, host, (uint16_t)port));
	CHECK(eq1_tcp_options_set_framing(o, EQ1_TCP_FRAMING_LENGTH_U16, NULL, 0));
	CHECK(eq1_tcp_options_set_tls(o, ca, true));
	if (strcmp(cert, "-") != 0)
		CHECK(eq1_tcp_options_set_tls_client_cert(o, cert, key, NULL));
	eq1_tcp_client *c = NULL;
	CHECK(eq1_tcp_client_new(o, &c));
	eq1_tcp_options_free(o);
	CHECK(eq1_tcp_client_connect(c, 10000));
	uint8_t sent[512], got[512];
	unsigned wrong = 0;
	for (unsigned i = 0; i < count; i++) {
		size_t len = message(i, sent), n = 0;
		if (eq1_tcp_client_request(c, sent, len, 5000, got, sizeof got, &n) != EQ1_STATUS_OK ||
		    n != len || memcmp(got, sent, len) != 0)
			wrong++;
	}
	printf("tls: %u messages, %u wrong\n", count, wrong);
	EXPECT_TRUE("every answer over TLS is its message", wrong == 0);
	CHECK(eq1_tcp_client_free(c));
}

static void tls_wrong_ca(const char *host, int port, const char *ca)
{
	eq1_tcp_options *o = eq1_tcp_options_new();
	CHECK(eq1_tcp_options_set_endpoint(o, host, (uint16_t)port));
	CHECK(eq1_tcp_options_set_tls(o, ca, true));
	eq1_tcp_client *c = NULL;
	CHECK(eq1_tcp_client_new(o, &c));
	eq1_tcp_options_free(o);
	EXPECT_ERR("a server certificate from another CA is refused",
		   eq1_tcp_client_connect(c, 10000), EQ1_STATUS_TLS_UNKNOWN_ISSUER, "");
	EXPECT_TRUE("not connected", !eq1_tcp_client_is_connected(c));
	CHECK(eq1_tcp_client_free(c));
}

static void limits(const char *host, int port)
{
	eq1_tcp_client *c = make_client(host, port, EQ1_TCP_FRAMING_LENGTH_U16, false, 100);
	CHECK(eq1_tcp_client_connect(c, 5000));
	uint8_t buf[200];
	size_t n = 7;
	EXPECT_ERR("a receive with nothing coming times out",
		   eq1_tcp_client_receive(c, 200, buf, sizeof buf, &n), EQ1_STATUS_TIMEOUT,
		   "timed out");
	EXPECT_TRUE("out_len is reset on failure", n == 0);
	EXPECT_TRUE("still connected after a receive timeout", eq1_tcp_client_is_connected(c));
	EXPECT_TRUE("and the connection still works", answered(c, "still here"));
	EXPECT_ERR("a request without an answer times out",
		   eq1_tcp_client_request(c, (const uint8_t *)"!silent", 7, 300, buf, sizeof buf,
					  &n),
		   EQ1_STATUS_TIMEOUT, "timed out");
	EXPECT_TRUE("a timed-out request closes the connection", !eq1_tcp_client_is_connected(c));
	CHECK(eq1_tcp_client_connect(c, 5000));
	uint8_t big[101];
	memset(big, 'b', sizeof big);
	EXPECT_ERR("a message above the maximum frame is refused before sending",
		   eq1_tcp_client_send(c, big, sizeof big, 1000), EQ1_STATUS_PAYLOAD_TOO_LARGE,
		   "maximum frame");
	EXPECT_ERR("an answer larger than the buffer is kept",
		   eq1_tcp_client_request(c, (const uint8_t *)"!big:50", 7, 5000, buf, 10, &n),
		   EQ1_STATUS_PAYLOAD_TOO_LARGE, "50 bytes");
	CHECK(eq1_tcp_client_receive(c, 1000, buf, sizeof buf, &n));
	EXPECT_TRUE("and returned by the next receive with a larger buffer",
		    n == 50 && buf[0] == 'x' && buf[49] == 'x');
	EXPECT_ERR("a frame above the maximum from the server",
		   eq1_tcp_client_request(c, (const uint8_t *)"!big:500", 8, 5000, buf, sizeof buf,
					  &n),
		   EQ1_STATUS_FRAME_TOO_LARGE, "500 bytes");
	EXPECT_TRUE("closes the connection (out of step)", !eq1_tcp_client_is_connected(c));
	eq1_tcp_stats s;
	CHECK(eq1_tcp_client_get_stats(c, &s));
	EXPECT_TRUE("stats: 4 requests, 3 failed, 1 timed out",
		    s.requests == 4 && s.failures == 3 && s.timeouts == 1);
	CHECK(eq1_tcp_client_free(c));
}

static void bad(const char *host, int port)
{
	uint8_t buf[16];
	size_t n = 5;
	eq1_tcp_options *o = eq1_tcp_options_new();
	REQUIRE(o != NULL, "options");
	EXPECT_OK("options may be set before the endpoint", eq1_tcp_options_set_max_frame(o, 4096));
	EXPECT_ERR("set_endpoint NULL options", eq1_tcp_options_set_endpoint(NULL, host, 1),
		   EQ1_STATUS_NULL_ARGUMENT, "options");
	EXPECT_ERR("set_endpoint NULL host", eq1_tcp_options_set_endpoint(o, NULL, 1),
		   EQ1_STATUS_NULL_ARGUMENT, "host");
	EXPECT_ERR("set_endpoint invalid UTF-8", eq1_tcp_options_set_endpoint(o, "\xc3\x28", 1),
		   EQ1_STATUS_INVALID_UTF8, "host");
	EXPECT_ERR("set_endpoint empty host", eq1_tcp_options_set_endpoint(o, "", 1),
		   EQ1_STATUS_INVALID_ARGUMENT, "empty");
	EXPECT_ERR("set_endpoint port 0", eq1_tcp_options_set_endpoint(o, host, 0),
		   EQ1_STATUS_INVALID_ARGUMENT, "port");
	EXPECT_ERR("set_connect_timeout 0", eq1_tcp_options_set_connect_timeout(o, 0),
		   EQ1_STATUS_INVALID_ARGUMENT, "timeout");
	EXPECT_ERR("set_connect_timeout NULL", eq1_tcp_options_set_connect_timeout(NULL, 10),
		   EQ1_STATUS_NULL_ARGUMENT, "options");
	EXPECT_ERR("set_auto_reconnect min > max", eq1_tcp_options_set_auto_reconnect(o, true, 9, 1),
		   EQ1_STATUS_INVALID_ARGUMENT, "min <= max");
	EXPECT_ERR("set_auto_reconnect negative", eq1_tcp_options_set_auto_reconnect(o, true, -1, 1),
		   EQ1_STATUS_INVALID_ARGUMENT, "");
	EXPECT_ERR("set_framing unknown mode", eq1_tcp_options_set_framing(o, 9, NULL, 0),
		   EQ1_STATUS_INVALID_ARGUMENT, "unknown framing");
	EXPECT_ERR("set_framing delimiter empty",
		   eq1_tcp_options_set_framing(o, EQ1_TCP_FRAMING_DELIMITER, NULL, 0),
		   EQ1_STATUS_INVALID_ARGUMENT, "delimiter");
	EXPECT_ERR("set_framing NULL delimiter with a length",
		   eq1_tcp_options_set_framing(o, EQ1_TCP_FRAMING_DELIMITER, NULL, 2),
		   EQ1_STATUS_NULL_ARGUMENT, "delimiter");
	EXPECT_ERR("set_max_frame 0", eq1_tcp_options_set_max_frame(o, 0),
		   EQ1_STATUS_INVALID_ARGUMENT, "maximum frame");
	EXPECT_ERR("set_max_frame above 256 MiB",
		   eq1_tcp_options_set_max_frame(o, (size_t)256 * 1024 * 1024 + 1),
		   EQ1_STATUS_INVALID_ARGUMENT, "maximum frame");
	EXPECT_ERR("set_tls NULL options", eq1_tcp_options_set_tls(NULL, NULL, true),
		   EQ1_STATUS_NULL_ARGUMENT, "options");
	EXPECT_ERR("set_tls invalid UTF-8 CA", eq1_tcp_options_set_tls(o, "\xff", true),
		   EQ1_STATUS_INVALID_UTF8, "ca_file");
	EXPECT_ERR("set_tls_client_cert NULL cert",
		   eq1_tcp_options_set_tls_client_cert(o, NULL, "k", NULL), EQ1_STATUS_NULL_ARGUMENT,
		   "cert_file");
	EXPECT_ERR("set_tls_client_cert NULL key",
		   eq1_tcp_options_set_tls_client_cert(o, "c", NULL, NULL), EQ1_STATUS_NULL_ARGUMENT,
		   "key_file");
	eq1_tcp_client *out = (eq1_tcp_client *)1;
	EXPECT_ERR("client_new without a port", eq1_tcp_client_new(o, &out),
		   EQ1_STATUS_INVALID_ARGUMENT, "port");
	EXPECT_TRUE("client_new resets out on failure", out == NULL);
	EXPECT_ERR("client_new NULL options", eq1_tcp_client_new(NULL, &out),
		   EQ1_STATUS_NULL_ARGUMENT, "options");
	CHECK(eq1_tcp_options_set_endpoint(o, host, (uint16_t)port));
	EXPECT_ERR("client_new NULL out", eq1_tcp_client_new(o, NULL), EQ1_STATUS_NULL_ARGUMENT,
		   "out");
	CHECK(eq1_tcp_options_set_tls(o, "/nonexistent/ca.pem", true));
	EXPECT_ERR("client_new with an unreadable CA file", eq1_tcp_client_new(o, &out),
		   EQ1_STATUS_TLS_CONFIG, "ca.pem");
	eq1_tcp_options_free(o);
	eq1_tcp_options_free(NULL);
	EXPECT_OK("client_free NULL", eq1_tcp_client_free(NULL));

	eq1_tcp_client *c = make_client(host, port, EQ1_TCP_FRAMING_LENGTH_U16, false, 0);
	EXPECT_ERR("send before connect", eq1_tcp_client_send(c, (const uint8_t *)"x", 1, 100),
		   EQ1_STATUS_NOT_CONNECTED, "not connected");
	EXPECT_ERR("connect NULL client", eq1_tcp_client_connect(NULL, 100),
		   EQ1_STATUS_NULL_ARGUMENT, "client");
	EXPECT_ERR("connect negative timeout", eq1_tcp_client_connect(c, -1),
		   EQ1_STATUS_INVALID_ARGUMENT, "");
	CHECK(eq1_tcp_client_connect(c, 5000));
	EXPECT_ERR("disconnect NULL", eq1_tcp_client_disconnect(NULL), EQ1_STATUS_NULL_ARGUMENT,
		   "client");
	EXPECT_TRUE("is_connected NULL is false", !eq1_tcp_client_is_connected(NULL));
	EXPECT_ERR("send NULL client", eq1_tcp_client_send(NULL, buf, 1, 100),
		   EQ1_STATUS_NULL_ARGUMENT, "client");
	EXPECT_ERR("send NULL data with a length", eq1_tcp_client_send(c, NULL, 3, 100),
		   EQ1_STATUS_NULL_ARGUMENT, "data");
	EXPECT_ERR("send negative timeout", eq1_tcp_client_send(c, buf, 1, -5),
		   EQ1_STATUS_INVALID_ARGUMENT, "");
	EXPECT_ERR("receive NULL client", eq1_tcp_client_receive(NULL, 100, buf, sizeof buf, &n),
		   EQ1_STATUS_NULL_ARGUMENT, "client");
	EXPECT_ERR("receive NULL buffer", eq1_tcp_client_receive(c, 100, NULL, 4, &n),
		   EQ1_STATUS_NULL_ARGUMENT, "buf");
	EXPECT_ERR("receive NULL out_len", eq1_tcp_client_receive(c, 100, buf, sizeof buf, NULL),
		   EQ1_STATUS_NULL_ARGUMENT, "out_len");
	EXPECT_ERR("receive zero-length buffer", eq1_tcp_client_receive(c, 100, buf, 0, &n),
		   EQ1_STATUS_INVALID_ARGUMENT, "buf_len");
	EXPECT_ERR("receive negative timeout", eq1_tcp_client_receive(c, -1, buf, sizeof buf, &n),
		   EQ1_STATUS_INVALID_ARGUMENT, "");
	EXPECT_ERR("request NULL client",
		   eq1_tcp_client_request(NULL, buf, 1, 100, buf, sizeof buf, &n),
		   EQ1_STATUS_NULL_ARGUMENT, "client");
	EXPECT_ERR("request NULL data", eq1_tcp_client_request(c, NULL, 1, 100, buf, sizeof buf, &n),
		   EQ1_STATUS_NULL_ARGUMENT, "data");
	EXPECT_ERR("request NULL buffer", eq1_tcp_client_request(c, buf, 1, 100, NULL, 4, &n),
		   EQ1_STATUS_NULL_ARGUMENT, "buf");
	EXPECT_ERR("request NULL out_len",
		   eq1_tcp_client_request(c, buf, 1, 100, buf, sizeof buf, NULL),
		   EQ1_STATUS_NULL_ARGUMENT, "out_len");
	uint8_t huge[70000];
	memset(huge, 'h', sizeof huge);
	EXPECT_ERR("a message above a u16 length", eq1_tcp_client_send(c, huge, sizeof huge, 1000),
		   EQ1_STATUS_PAYLOAD_TOO_LARGE, "u16");
	EXPECT_ERR("get_stats NULL client", eq1_tcp_client_get_stats(NULL, NULL),
		   EQ1_STATUS_NULL_ARGUMENT, "client");
	EXPECT_ERR("get_stats NULL out", eq1_tcp_client_get_stats(c, NULL), EQ1_STATUS_NULL_ARGUMENT,
		   "out");
	EXPECT_TRUE("still connected after the refused calls", answered(c, "fine"));
	CHECK(eq1_tcp_client_free(c));
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: %s HOST PORT MODE ...\n", argv[0]);
		return 2;
	}
	const char *host = argv[1], *mode = argv[3];
	int port = atoi(argv[2]);
	if (strcmp(mode, "roundtrip") == 0 && argc >= 6)
		roundtrip(host, port, argv[4], (unsigned)atoi(argv[5]));
	else if (strcmp(mode, "idle-cut") == 0 && argc >= 6)
		idle_cut(host, port, atoi(argv[4]) != 0, argv[5]);
	else if (strcmp(mode, "tls") == 0 && argc >= 8)
		tls(host, port, argv[4], argv[5], argv[6], (unsigned)atoi(argv[7]));
	else if (strcmp(mode, "tls-wrong-ca") == 0 && argc >= 5)
		tls_wrong_ca(host, port, argv[4]);
	else if (strcmp(mode, "limits") == 0)
		limits(host, port);
	else if (strcmp(mode, "bad") == 0)
		bad(host, port);
	else
		REQUIRE(false, "unknown mode %s", mode);
	return tu_summary();
}
