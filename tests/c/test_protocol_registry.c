/*
 * test_protocol_registry.c - the protocol registry: every built-in is listed and opens by
 * name, an unknown name has its status, and "mqtt" works through the generic handle against
 * the broker (connect, subscribe, publish, receive), with bad input at the boundary.
 *
 *   test_protocol_registry <host> <port>
 *
 * Prints one line per check and "SUMMARY: ..." (exit 0 when all passed).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <unistd.h>

#include "test_util.h"

static eq1_protocol *open_with(const char *name, const char *const *pairs)
{
	eq1_protocol_options *o = eq1_protocol_options_new();
	REQUIRE(o != NULL, "options_new");
	for (; pairs && pairs[0]; pairs += 2)
		CHECK(eq1_protocol_options_set(o, pairs[0], pairs[1]));
	eq1_protocol *p = NULL;
	char check[128];
	snprintf(check, sizeof check, "\"%s\" opens by name", name);
	EXPECT_OK(check, eq1_protocol_open(name, o, &p));
	eq1_protocol_options_free(o);
	return p;
}

static void builtins(const char *host, const char *port)
{
	size_t needed = eq1_protocol_names(NULL, 0);
	char names[512];
	size_t written = eq1_protocol_names(names, sizeof names);
	EXPECT_TRUE("names: the length asked first is the length written", needed == written);
	/* No plugin is loaded in this program: exactly the built-ins, sorted. */
	EXPECT_TRUE("names lists exactly the built-ins, sorted",
		    strcmp(names, "modbus-rtu\nmodbus-tcp\nmqtt\nserial\ntcp") == 0);
	char small[5];
	EXPECT_TRUE("names into a short buffer: cut, terminated, full length returned",
		    eq1_protocol_names(small, sizeof small) == needed &&
			    strcmp(small, "modb") == 0);

	const char *tcp[] = {"host", host, "port", port, NULL};
	const char *serial[] = {"device", "/dev/null-eq1-not-opened", "baud", "19200", NULL};
	const char *modbus_tcp[] = {"host", host, "port", port, NULL};
	const char *modbus_rtu[] = {"device", "/dev/null-eq1-not-opened", NULL};
	const char *mqtt[] = {"host", host, "port", port, NULL};
	struct {
		const char *name;
		const char *const *options;
	} all[] = {{"tcp", tcp},
		   {"serial", serial},
		   {"modbus-tcp", modbus_tcp},
		   {"modbus-rtu", modbus_rtu},
		   {"mqtt", mqtt}};
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
		eq1_protocol *p = open_with(all[i].name, all[i].options);
		EXPECT_TRUE("not connected after open", p && !eq1_protocol_is_connected(p));
		eq1_protocol_close(p);
	}

	eq1_protocol *p = NULL;
	EXPECT_ERR("an unknown name", eq1_protocol_open("carrier-pigeon", NULL, &p),
		   EQ1_STATUS_UNKNOWN_PROTOCOL, "no protocol named 'carrier-pigeon'");
	EXPECT_TRUE("no handle for an unknown name", p == NULL);
	EXPECT_ERR("a NULL name", eq1_protocol_open(NULL, NULL, &p), EQ1_STATUS_NULL_ARGUMENT,
		   "name");
	EXPECT_ERR("a name that is not UTF-8", eq1_protocol_open("tc\xff", NULL, &p),
		   EQ1_STATUS_INVALID_UTF8, "name");
	EXPECT_ERR("a NULL out", eq1_protocol_open("tcp", NULL, NULL), EQ1_STATUS_NULL_ARGUMENT,
		   "out");
	EXPECT_ERR("\"mqtt\" without a host", eq1_protocol_open("mqtt", NULL, &p),
		   EQ1_STATUS_INVALID_ARGUMENT, "'host' or 'uri'");
	EXPECT_ERR("\"serial\" without a device", eq1_protocol_open("serial", NULL, &p),
		   EQ1_STATUS_INVALID_ARGUMENT, "'device'");
	eq1_protocol_options *o = eq1_protocol_options_new();
	CHECK(eq1_protocol_options_set(o, "host", host));
	CHECK(eq1_protocol_options_set(o, "qos", "1"));
	EXPECT_ERR("\"mqtt\" with an option it does not know", eq1_protocol_open("mqtt", o, &p),
		   EQ1_STATUS_INVALID_ARGUMENT, "no option 'qos'");
	EXPECT_ERR("an empty option key", eq1_protocol_options_set(o, "", "x"),
		   EQ1_STATUS_INVALID_ARGUMENT, "empty");
	EXPECT_ERR("a NULL option value", eq1_protocol_options_set(o, "host", NULL),
		   EQ1_STATUS_NULL_ARGUMENT, "value");
	eq1_protocol_options_free(o);
	EXPECT_TRUE("close(NULL) is a no-op", eq1_protocol_close(NULL) == EQ1_STATUS_OK);
}

static void mqtt_through_the_generic_handle(const char *host, const char *port)
{
	char client_id[64], topic[96], filter[96];
	snprintf(client_id, sizeof client_id, "registry-%ld", (long)getpid());
	snprintf(topic, sizeof topic, "eq1/registry/%ld/a", (long)getpid());
	snprintf(filter, sizeof filter, "eq1/registry/%ld/#", (long)getpid());
	const char *options[] = {"host", host, "port", port, "client_id", client_id,
				 "version", "5", "receive_queue", "4", NULL};
	eq1_protocol *p = open_with("mqtt", options);
	REQUIRE(p != NULL, "no mqtt handle");
	uint8_t buf[256];
	size_t len = 0;
	EXPECT_ERR("publish before connect", eq1_protocol_publish(p, topic, buf, 1, 1, false),
		   EQ1_STATUS_NOT_CONNECTED, "");
	EXPECT_OK("mqtt: connect", eq1_protocol_connect(p, 5000));
	EXPECT_TRUE("mqtt: is_connected", eq1_protocol_is_connected(p));
	EXPECT_OK("mqtt: subscribe", eq1_protocol_subscribe(p, filter, 1, 5000));
	for (int qos = 0; qos <= 2; qos++) {
		char payload[32], check[64];
		int n = snprintf(payload, sizeof payload, "hello at QoS %d", qos);
		snprintf(check, sizeof check, "mqtt: publish at QoS %d", qos);
		EXPECT_OK(check, eq1_protocol_publish(p, topic, (const uint8_t *)payload,
						      (size_t)n, qos, false));
		len = 0;
		snprintf(check, sizeof check, "mqtt: receive at QoS %d", qos);
		EXPECT_OK(check, eq1_protocol_receive(p, 5000, buf, sizeof buf, &len));
		snprintf(check, sizeof check, "mqtt: received the QoS %d payload", qos);
		EXPECT_TRUE(check, len == (size_t)n && memcmp(buf, payload, len) == 0);
	}
	/* More than the receive queue holds: the dispatcher waits, nothing is lost. */
	for (int i = 0; i < 10; i++) {
		uint8_t b = (uint8_t)i;
		CHECK(eq1_protocol_publish(p, topic, &b, 1, 1, false));
	}
	bool in_order = true;
	for (int i = 0; i < 10; i++) {
		len = 0;
		CHECK(eq1_protocol_receive(p, 5000, buf, sizeof buf, &len));
		in_order = in_order && len == 1 && buf[0] == (uint8_t)i;
	}
	EXPECT_TRUE("mqtt: 10 messages through a queue of 4 arrive, in order", in_order);

	EXPECT_ERR("mqtt: receive with nothing sent times out",
		   eq1_protocol_receive(p, 200, buf, sizeof buf, &len), EQ1_STATUS_TIMEOUT,
		   "no MQTT message");
	CHECK(eq1_protocol_publish(p, topic, (const uint8_t *)"0123456789", 10, 1, false));
	EXPECT_ERR("mqtt: a message larger than the buffer",
		   eq1_protocol_receive(p, 5000, buf, 4, &len), EQ1_STATUS_INVALID_ARGUMENT,
		   "does not fit");
	EXPECT_OK("mqtt: it stays queued for a larger buffer",
		  eq1_protocol_receive(p, 5000, buf, sizeof buf, &len));
	EXPECT_TRUE("mqtt: and is whole", len == 10 && memcmp(buf, "0123456789", 10) == 0);
	EXPECT_ERR("mqtt: publish at QoS 3", eq1_protocol_publish(p, topic, buf, 1, 3, false),
		   EQ1_STATUS_INVALID_QOS, "QoS 3");
	EXPECT_ERR("mqtt: publish to a wildcard", eq1_protocol_publish(p, "a/#", buf, 1, 0, false),
		   EQ1_STATUS_INVALID_TOPIC, "");
	EXPECT_ERR("mqtt: publish to a NULL topic", eq1_protocol_publish(p, NULL, buf, 1, 0, false),
		   EQ1_STATUS_NULL_ARGUMENT, "topic");
	EXPECT_ERR("mqtt: subscribe to a bad filter", eq1_protocol_subscribe(p, "a/#/b", 0, 1000),
		   EQ1_STATUS_INVALID_FILTER, "must be a whole level");
	EXPECT_ERR("mqtt: send is not an MQTT operation", eq1_protocol_send(p, buf, 1, 1000),
		   EQ1_STATUS_UNSUPPORTED_OPERATION, "does not support send");
	EXPECT_ERR("mqtt: request is not an MQTT operation",
		   eq1_protocol_request(p, buf, 1, 1000, buf, sizeof buf, &len),
		   EQ1_STATUS_UNSUPPORTED_OPERATION, "does not support request");
	EXPECT_ERR("mqtt: a negative timeout", eq1_protocol_connect(p, -1),
		   EQ1_STATUS_INVALID_ARGUMENT, "");
	EXPECT_OK("mqtt: disconnect", eq1_protocol_disconnect(p, 5000));
	EXPECT_TRUE("mqtt: not connected after disconnect", !eq1_protocol_is_connected(p));
	/* A message waiting in the queue when the handle closes is released with it. */
	EXPECT_OK("mqtt: connect again", eq1_protocol_connect(p, 5000));
	CHECK(eq1_protocol_publish(p, topic, (const uint8_t *)"left", 4, 1, false));
	EXPECT_OK("mqtt: close while connected", eq1_protocol_close(p));
}

int main(int argc, char **argv)
{
	REQUIRE(argc >= 3, "usage: test_protocol_registry <host> <port>");
	builtins(argv[1], argv[2]);
	mqtt_through_the_generic_handle(argv[1], argv[2]);
	return tu_summary();
}
