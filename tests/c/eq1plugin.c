/*
 * eq1plugin.c - the plugin manager: eq1_protocol_load_plugin with the echo plugin of
 * plugin_echo.c (built by tests/test_plugins.py in its variants), opened by name through
 * eq1_protocol_open, and every way a load is refused.
 *
 *   eq1plugin GOOD WRONG_ABI NO_ENTRY NO_OPEN NAMED_TCP NOT_AN_OBJECT MISSING
 *     GOOD           the echo plugin ("echo")
 *     WRONG_ABI      the same, built with another abi_version ("echo-abi")
 *     NO_ENTRY       a shared object without eq1_plugin_entry
 *     NO_OPEN        a vtable without open ("echo-no-open")
 *     NAMED_TCP      a plugin whose name is the built-in "tcp"
 *     NOT_AN_OBJECT  a file that is not a shared object
 *     MISSING        a path that does not exist
 */
#define _POSIX_C_SOURCE 200809L

#include "test_util.h"

static void round_trips(void)
{
	eq1_protocol_options *o = eq1_protocol_options_new();
	REQUIRE(o != NULL, "options_new");
	CHECK(eq1_protocol_options_set(o, "capacity", "100000"));
	eq1_protocol *p = NULL;
	EXPECT_OK("the loaded plugin opens by name", eq1_protocol_open("echo", o, &p));
	REQUIRE(p != NULL, "no handle");
	EXPECT_TRUE("not connected before connect", !eq1_protocol_is_connected(p));
	EXPECT_OK("connect", eq1_protocol_connect(p, 1000));
	EXPECT_TRUE("connected after connect", eq1_protocol_is_connected(p));

	uint8_t all[256];
	for (int i = 0; i < 256; i++)
		all[i] = (uint8_t)i;
	uint8_t buf[4096];
	size_t len = 0;
	EXPECT_OK("send 256 byte values", eq1_protocol_send(p, all, sizeof all, 1000));
	EXPECT_OK("receive them", eq1_protocol_receive(p, 1000, buf, sizeof buf, &len));
	EXPECT_TRUE("receive returns the 256 byte values sent",
		    len == sizeof all && memcmp(buf, all, len) == 0);

	const char *ping = "ping";
	len = 0;
	EXPECT_OK("request", eq1_protocol_request(p, (const uint8_t *)ping, 4, 1000, buf,
						  sizeof buf, &len));
	EXPECT_TRUE("request returns its echo", len == 4 && memcmp(buf, "ping", 4) == 0);

	/* The plugin's own statuses come through with their meaning. */
	EXPECT_ERR("receive with nothing queued is the plugin's timeout",
		   eq1_protocol_receive(p, 100, buf, sizeof buf, &len), EQ1_STATUS_TIMEOUT,
		   "plugin 'echo': receive returned status");
	static uint8_t big[100001];
	EXPECT_ERR("a send above the plugin's capacity is its failure",
		   eq1_protocol_send(p, big, sizeof big, 1000), EQ1_STATUS_PLUGIN_FAILED,
		   "EQ1_STATUS_QUEUE_FULL");
	EXPECT_ERR("publish without a publish function is unsupported",
		   eq1_protocol_publish(p, "a/b", (const uint8_t *)"x", 1, 0, false),
		   EQ1_STATUS_UNSUPPORTED_OPERATION, "has no publish function");
	EXPECT_ERR("subscribe without a subscribe function is unsupported",
		   eq1_protocol_subscribe(p, "a/#", 0, 1000), EQ1_STATUS_UNSUPPORTED_OPERATION,
		   "has no subscribe function");
	EXPECT_ERR("receive into a NULL buffer", eq1_protocol_receive(p, 100, NULL, 8, &len),
		   EQ1_STATUS_NULL_ARGUMENT, "buf");
	EXPECT_ERR("send NULL data with a length", eq1_protocol_send(p, NULL, 3, 1000),
		   EQ1_STATUS_NULL_ARGUMENT, "data");

	EXPECT_OK("disconnect", eq1_protocol_disconnect(p, 1000));
	EXPECT_ERR("send after disconnect is the plugin's not connected",
		   eq1_protocol_send(p, all, 1, 1000), EQ1_STATUS_NOT_CONNECTED, "send");

	/* Two instances are independent. */
	eq1_protocol *q = NULL;
	CHECK(eq1_protocol_open("echo", NULL, &q));
	CHECK(eq1_protocol_connect(p, 1000));
	CHECK(eq1_protocol_connect(q, 1000));
	CHECK(eq1_protocol_send(p, (const uint8_t *)"pp", 2, 1000));
	CHECK(eq1_protocol_send(q, (const uint8_t *)"q", 1, 1000));
	CHECK(eq1_protocol_receive(q, 100, buf, sizeof buf, &len));
	EXPECT_TRUE("a second instance has its own data", len == 1 && buf[0] == 'q');
	eq1_protocol_close(q);

	/* The plugin sees the options: an unknown one fails its open. */
	CHECK(eq1_protocol_options_set(o, "colour", "red"));
	eq1_protocol *bad = NULL;
	EXPECT_ERR("the plugin's open refuses an option it does not know",
		   eq1_protocol_open("echo", o, &bad), EQ1_STATUS_INVALID_ARGUMENT,
		   "plugin 'echo': open returned status");
	EXPECT_TRUE("no handle when open failed", bad == NULL);
	eq1_protocol_options_free(o);
	/* Closed while connected: close disconnects and releases the instance (valgrind). */
	EXPECT_OK("close while connected", eq1_protocol_close(p));
}

static bool listed(const char *name)
{
	char names[1024];
	size_t needed = eq1_protocol_names(names, sizeof names);
	REQUIRE(needed < sizeof names, "names cut short");
	char *save = NULL;
	for (char *n = strtok_r(names, "\n", &save); n; n = strtok_r(NULL, "\n", &save))
		if (strcmp(n, name) == 0)
			return true;
	return false;
}

int main(int argc, char **argv)
{
	REQUIRE(argc == 8, "usage: eq1plugin GOOD WRONG_ABI NO_ENTRY NO_OPEN NAMED_TCP "
			   "NOT_AN_OBJECT MISSING");
	const char *good = argv[1], *wrong_abi = argv[2], *no_entry = argv[3];
	const char *no_open = argv[4], *named_tcp = argv[5], *not_an_object = argv[6];
	const char *missing = argv[7];

	eq1_protocol *p = NULL;
	EXPECT_ERR("before loading, the name is unknown", eq1_protocol_open("echo", NULL, &p),
		   EQ1_STATUS_UNKNOWN_PROTOCOL, "no protocol named 'echo'");
	EXPECT_TRUE("before loading, echo is not listed", !listed("echo"));

	char name[64] = "untouched";
	EXPECT_OK("the echo plugin loads", eq1_protocol_load_plugin(good, name, sizeof name));
	EXPECT_TRUE("load_plugin gives the registered name", strcmp(name, "echo") == 0);
	EXPECT_TRUE("after loading, echo is listed beside the built-ins",
		    listed("echo") && listed("tcp") && listed("mqtt"));
	round_trips();

	EXPECT_ERR("the same plugin again: its name is taken",
		   eq1_protocol_load_plugin(good, NULL, 0), EQ1_STATUS_PROTOCOL_EXISTS,
		   "'echo' is registered already");
	EXPECT_ERR("a plugin named like a built-in does not replace it",
		   eq1_protocol_load_plugin(named_tcp, NULL, 0), EQ1_STATUS_PROTOCOL_EXISTS,
		   "'tcp' is registered already");
	EXPECT_ERR("a wrong abi_version is refused",
		   eq1_protocol_load_plugin(wrong_abi, NULL, 0), EQ1_STATUS_PLUGIN_VERSION,
		   "built for plugin ABI version 999");
	EXPECT_TRUE("the refused plugin's name is not registered", !listed("echo-abi"));
	EXPECT_ERR("a shared object without eq1_plugin_entry",
		   eq1_protocol_load_plugin(no_entry, NULL, 0), EQ1_STATUS_PLUGIN_SYMBOL,
		   "does not export eq1_plugin_entry");
	EXPECT_ERR("a vtable without open", eq1_protocol_load_plugin(no_open, NULL, 0),
		   EQ1_STATUS_PLUGIN_SYMBOL, "has no open function");
	EXPECT_TRUE("the vtable without open is not registered", !listed("echo-no-open"));
	EXPECT_ERR("a file that is not a shared object",
		   eq1_protocol_load_plugin(not_an_object, NULL, 0), EQ1_STATUS_PLUGIN_LOAD,
		   "cannot load plugin");
	EXPECT_ERR("a path that does not exist", eq1_protocol_load_plugin(missing, NULL, 0),
		   EQ1_STATUS_PLUGIN_LOAD, missing);
	EXPECT_ERR("a NULL path", eq1_protocol_load_plugin(NULL, NULL, 0),
		   EQ1_STATUS_NULL_ARGUMENT, "path");
	EXPECT_ERR("a path that is not UTF-8", eq1_protocol_load_plugin("/tmp/\xff.so", NULL, 0),
		   EQ1_STATUS_INVALID_UTF8, "path");

	/* The echo plugin still works after the refusals. */
	eq1_protocol *again = NULL;
	EXPECT_OK("echo still opens", eq1_protocol_open("echo", NULL, &again));
	eq1_protocol_close(again);
	return tu_summary();
}
