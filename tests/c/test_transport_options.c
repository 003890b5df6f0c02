/*
 * test_transport_options.c - the network transport options from C: every argument check of
 * the broker URI, proxy, bind and WebSocket header functions (exact status, and a detail
 * message naming the cause), then a real round trip through each URI given on the command
 * line (e.g. ws:// to mosquitto's websockets listener, through a proxy when one is given).
 *
 *   test_transport_options [host port] [--proxy URI] [broker-uri...]
 *   ("host port", as CTest passes every C test, is the round trip over mqtt://host:port)
 *
 * Prints one line per check and "SUMMARY: <n> checks, <f> failed"; exits 0 only if f == 0.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

#define BAD_UTF8 "\xff\xfe"
#define N EQ1_STATUS_NULL_ARGUMENT
#define U EQ1_STATUS_INVALID_UTF8
#define A EQ1_STATUS_INVALID_ARGUMENT

static void null_and_utf8(void)
{
	EXPECT_ERR("set_broker_uri(NULL options)", eq1_mqtt_options_set_broker_uri(NULL, "mqtt://h"),
		   N, "options");
	EXPECT_ERR("add_broker_uri(NULL options)", eq1_mqtt_options_add_broker_uri(NULL, "mqtt://h"),
		   N, "options");
	EXPECT_ERR("set_proxy(NULL options)", eq1_mqtt_options_set_proxy(NULL, NULL), N, "options");
	EXPECT_ERR("set_proxy_from_env(NULL options)", eq1_mqtt_options_set_proxy_from_env(NULL, true),
		   N, "options");
	EXPECT_ERR("set_bind_address(NULL options)", eq1_mqtt_options_set_bind_address(NULL, NULL), N,
		   "options");
	EXPECT_ERR("set_bind_interface(NULL options)", eq1_mqtt_options_set_bind_interface(NULL, NULL),
		   N, "options");
	EXPECT_ERR("add_websocket_header(NULL options)",
		   eq1_mqtt_options_add_websocket_header(NULL, "X-A", "1"), N, "options");

	eq1_mqtt_options *o = eq1_mqtt_options_new();
	EXPECT_ERR("set_broker_uri(NULL uri)", eq1_mqtt_options_set_broker_uri(o, NULL), N, "uri");
	EXPECT_ERR("add_broker_uri(NULL uri)", eq1_mqtt_options_add_broker_uri(o, NULL), N, "uri");
	EXPECT_ERR("add_websocket_header(NULL name)",
		   eq1_mqtt_options_add_websocket_header(o, NULL, "1"), N, "header name");
	EXPECT_ERR("add_websocket_header(NULL value)",
		   eq1_mqtt_options_add_websocket_header(o, "X-A", NULL), N, "header value");

	EXPECT_ERR("set_broker_uri(invalid UTF-8)",
		   eq1_mqtt_options_set_broker_uri(o, "mqtt://" BAD_UTF8), U, "uri");
	EXPECT_ERR("add_broker_uri(invalid UTF-8)",
		   eq1_mqtt_options_add_broker_uri(o, "ws://" BAD_UTF8), U, "uri");
	EXPECT_ERR("set_proxy(invalid UTF-8)", eq1_mqtt_options_set_proxy(o, "http://" BAD_UTF8), U,
		   "proxy");
	EXPECT_ERR("set_proxy(%-escape decoding to invalid UTF-8)",
		   eq1_mqtt_options_set_proxy(o, "http://u:%ff@h:1"), U, "UTF-8");
	EXPECT_ERR("set_bind_address(invalid UTF-8)", eq1_mqtt_options_set_bind_address(o, BAD_UTF8),
		   U, "bind address");
	EXPECT_ERR("set_bind_interface(invalid UTF-8)",
		   eq1_mqtt_options_set_bind_interface(o, BAD_UTF8), U, "interface");
	EXPECT_ERR("add_websocket_header(invalid UTF-8 value)",
		   eq1_mqtt_options_add_websocket_header(o, "X-A", BAD_UTF8), U, "header value");
	eq1_mqtt_options_free(o);
}

static void bad_values(void)
{
	eq1_mqtt_options *o = eq1_mqtt_options_new();
	EXPECT_ERR("set_broker_uri(no scheme)", eq1_mqtt_options_set_broker_uri(o, "localhost:1883"),
		   A, "no scheme");
	EXPECT_ERR("set_broker_uri(unknown scheme)", eq1_mqtt_options_set_broker_uri(o, "ftp://h"), A,
		   "unknown scheme");
	EXPECT_ERR("set_broker_uri(port 0)", eq1_mqtt_options_set_broker_uri(o, "mqtt://h:0"), A,
		   "port");
	EXPECT_ERR("set_broker_uri(port 70000)", eq1_mqtt_options_set_broker_uri(o, "ws://h:70000/"),
		   A, "port");
	EXPECT_ERR("set_broker_uri(empty host)", eq1_mqtt_options_set_broker_uri(o, "mqtts://:1"), A,
		   "host");
	EXPECT_ERR("set_broker_uri(path on mqtt://)",
		   eq1_mqtt_options_set_broker_uri(o, "mqtt://h/mqtt"), A, "path");
	EXPECT_ERR("set_broker_uri(credentials)",
		   eq1_mqtt_options_set_broker_uri(o, "mqtt://u:secret@h"), A, "credentials");
	EXPECT_ERR("add_broker_uri(relative unix path)",
		   eq1_mqtt_options_add_broker_uri(o, "unix://sock"), A, "absolute");
	EXPECT_ERR("add_broker_uri(empty)", eq1_mqtt_options_add_broker_uri(o, ""), A, "scheme");
	EXPECT_ERR("set_proxy(https scheme)", eq1_mqtt_options_set_proxy(o, "https://p:1"), A,
		   "unsupported proxy scheme");
	EXPECT_ERR("set_proxy(bad port)", eq1_mqtt_options_set_proxy(o, "socks5://p:port"), A, "port");
	EXPECT_ERR("set_proxy(password not in the message)",
		   eq1_mqtt_options_set_proxy(o, "socks4://u:hunter2@p"), A, "***");
	EXPECT_ERR("set_bind_address(not an address)",
		   eq1_mqtt_options_set_bind_address(o, "localhost"), A, "not an IPv4 or IPv6");
	EXPECT_ERR("set_bind_interface(empty)", eq1_mqtt_options_set_bind_interface(o, ""), A,
		   "interface");
	EXPECT_ERR("set_bind_interface(too long)",
		   eq1_mqtt_options_set_bind_interface(o, "abcdefghijklmnop"), A, "interface");
	EXPECT_ERR("add_websocket_header(bad name)",
		   eq1_mqtt_options_add_websocket_header(o, "Bad Name", "1"), A, "header name");
	EXPECT_ERR("add_websocket_header(reserved name)",
		   eq1_mqtt_options_add_websocket_header(o, "Sec-WebSocket-Protocol", "x"), A,
		   "sets the");
	EXPECT_ERR("add_websocket_header(CR LF in value)",
		   eq1_mqtt_options_add_websocket_header(o, "X-A", "a\r\nX-B: b"), A, "control");

	EXPECT_OK("set_broker_uri(wss://[::1]:8443/mqtt)",
		  eq1_mqtt_options_set_broker_uri(o, "wss://[::1]:8443/mqtt"));
	EXPECT_OK("add_broker_uri(unix:///tmp/x.sock)",
		  eq1_mqtt_options_add_broker_uri(o, "unix:///tmp/x.sock"));
	EXPECT_OK("set_proxy(socks5h://u:p%40ss@127.0.0.1:1080)",
		  eq1_mqtt_options_set_proxy(o, "socks5h://u:p%40ss@127.0.0.1:1080"));
	EXPECT_OK("set_proxy(NULL) clears it", eq1_mqtt_options_set_proxy(o, NULL));
	EXPECT_OK("set_bind_address(127.0.0.2)", eq1_mqtt_options_set_bind_address(o, "127.0.0.2"));
	EXPECT_OK("set_bind_address(NULL) clears it", eq1_mqtt_options_set_bind_address(o, NULL));
	EXPECT_OK("set_bind_interface(lo)", eq1_mqtt_options_set_bind_interface(o, "lo"));
	EXPECT_OK("add_websocket_header(Authorization)",
		  eq1_mqtt_options_add_websocket_header(o, "Authorization", "Bearer t"));
	eq1_mqtt_options_free(o);
}

static atomic_int received;

static void on_message(void *user_data, const eq1_mqtt_message *msg)
{
	(void)user_data;
	if (msg->payload_len == 5 && memcmp(msg->payload, "hello", 5) == 0)
		atomic_fetch_add(&received, 1);
}

static void round_trip(const char *uri, const char *proxy)
{
	char name[512];
	eq1_mqtt_options *o = eq1_mqtt_options_new();
	snprintf(name, sizeof name, "set_broker_uri(%s)", uri);
	EXPECT_OK(name, eq1_mqtt_options_set_broker_uri(o, uri));
	EXPECT_OK("add_websocket_header(X-Eq1-Test)",
		  eq1_mqtt_options_add_websocket_header(o, "X-Eq1-Test", "c"));
	if (proxy)
		EXPECT_OK("set_proxy", eq1_mqtt_options_set_proxy(o, proxy));
	eq1_mqtt_client *c = NULL;
	EXPECT_OK("client_new", eq1_mqtt_client_new(o, NULL, NULL, &c));
	eq1_mqtt_options_free(o);
	if (!c)
		return;
	atomic_store(&received, 0);
	snprintf(name, sizeof name, "connect over %s", uri);
	EXPECT_OK(name, eq1_mqtt_client_connect(c, 10000));
	EXPECT_OK("subscribe QoS 1",
		  eq1_mqtt_client_subscribe(c, "eq1test/transport/c", 1, on_message, NULL, 10000,
					    NULL));
	eq1_token tok = 0;
	EXPECT_OK("publish QoS 1",
		  eq1_mqtt_client_publish(c, "eq1test/transport/c", (const uint8_t *)"hello", 5, 1,
					  false, &tok));
	EXPECT_OK("PUBACK", eq1_mqtt_client_wait(c, tok, 10000));
	int64_t deadline = now_ms() + 10000;
	while (atomic_load(&received) < 1 && now_ms() < deadline)
		sleep_ms(5);
	snprintf(name, sizeof name, "received over %s", uri);
	EXPECT_TRUE(name, atomic_load(&received) == 1);
	EXPECT_OK("disconnect", eq1_mqtt_client_disconnect(c, 5000));
	EXPECT_OK("client_free", eq1_mqtt_client_free(c));
}

int main(int argc, char **argv)
{
	null_and_utf8();
	bad_values();
	const char *proxy = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--proxy") == 0 && i + 1 < argc) {
			proxy = argv[++i];
		} else if (!strstr(argv[i], "://") && i + 1 < argc) {
			char uri[300];
			snprintf(uri, sizeof uri, "mqtt://%s:%s", argv[i], argv[i + 1]);
			round_trip(uri, proxy);
			i++;
		} else {
			round_trip(argv[i], proxy);
		}
	}
	return tu_summary();
}
