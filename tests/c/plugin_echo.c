/*
 * plugin_echo.c - a tiny protocol plugin for the plugin manager's tests: an in-memory echo.
 * What is sent is queued and comes back from receive (a request is a send and a receive).
 * It has no publish or subscribe, so those are EQ1_STATUS_UNSUPPORTED_OPERATION.
 *
 * Built by tests/test_plugins.py as a shared object, in variants chosen by macros:
 *   EQ1_TEST_PLUGIN_NAME "x"   the protocol name (default "echo")
 *   EQ1_TEST_ABI_VERSION n     the vtable's abi_version (default EQ1_PLUGIN_ABI_VERSION)
 *   EQ1_TEST_NO_ENTRY          the entry function under another name: no eq1_plugin_entry
 *   EQ1_TEST_NO_OPEN           a vtable without its required open function
 *
 * Options: "capacity" (bytes held at most, default 1 MiB; a send beyond it fails with
 * EQ1_STATUS_QUEUE_FULL). Any other option fails open with EQ1_STATUS_INVALID_ARGUMENT.
 */
#include <stdlib.h>
#include <string.h>

#include "eq1.h"

#ifndef EQ1_TEST_PLUGIN_NAME
#define EQ1_TEST_PLUGIN_NAME "echo"
#endif
#ifndef EQ1_TEST_ABI_VERSION
#define EQ1_TEST_ABI_VERSION EQ1_PLUGIN_ABI_VERSION
#endif

struct echo {
	unsigned char *data;
	size_t len;
	size_t capacity;
	int connected;
};

static int echo_open(const eq1_plugin_option *options, size_t count, void **instance)
{
	size_t capacity = 1 << 20;
	for (size_t i = 0; i < count; i++) {
		if (strcmp(options[i].key, "capacity") != 0)
			return EQ1_STATUS_INVALID_ARGUMENT;
		capacity = (size_t)strtoul(options[i].value, NULL, 10);
	}
	struct echo *e = calloc(1, sizeof *e);
	if (e == NULL)
		return EQ1_STATUS_INTERNAL;
	e->capacity = capacity;
	*instance = e;
	return EQ1_STATUS_OK;
}

static void echo_close(void *instance)
{
	struct echo *e = instance;
	free(e->data);
	free(e);
}

static int echo_connect(void *instance, int timeout_ms)
{
	(void)timeout_ms;
	((struct echo *)instance)->connected = 1;
	return EQ1_STATUS_OK;
}

static int echo_disconnect(void *instance, int timeout_ms)
{
	(void)timeout_ms;
	((struct echo *)instance)->connected = 0;
	return EQ1_STATUS_OK;
}

static int echo_send(void *instance, const uint8_t *data, size_t len, int timeout_ms)
{
	struct echo *e = instance;
	(void)timeout_ms;
	if (!e->connected)
		return EQ1_STATUS_NOT_CONNECTED;
	if (e->len + len > e->capacity)
		return EQ1_STATUS_QUEUE_FULL;
	unsigned char *grown = realloc(e->data, e->len + len + 1);
	if (grown == NULL)
		return EQ1_STATUS_INTERNAL;
	e->data = grown;
	if (len > 0)
		memcpy(e->data + e->len, data, len);
	e->len += len;
	return EQ1_STATUS_OK;
}

static int echo_receive(void *instance, uint8_t *buf, size_t buf_len, size_t *out_len,
			int timeout_ms)
{
	struct echo *e = instance;
	(void)timeout_ms; /* in memory: what is there is there now */
	if (!e->connected)
		return EQ1_STATUS_NOT_CONNECTED;
	if (e->len == 0)
		return EQ1_STATUS_TIMEOUT;
	size_t n = e->len < buf_len ? e->len : buf_len;
	memcpy(buf, e->data, n);
	memmove(e->data, e->data + n, e->len - n);
	e->len -= n;
	*out_len = n;
	return EQ1_STATUS_OK;
}

/* The entry point, or (EQ1_TEST_NO_ENTRY) the same function under a name the loader does not
 * look for. */
#ifndef EQ1_TEST_NO_ENTRY
#define ECHO_ENTRY eq1_plugin_entry
#else
#define ECHO_ENTRY eq1_plugin_entry_misspelt
#endif

static const eq1_plugin_vtable vtable = {
	.abi_version = EQ1_TEST_ABI_VERSION,
	.name = EQ1_TEST_PLUGIN_NAME,
#ifndef EQ1_TEST_NO_OPEN
	.open = echo_open,
#else
	.open = NULL,
#endif
	.close = echo_close,
	.connect = echo_connect,
	.disconnect = echo_disconnect,
	.send = echo_send,
	.receive = echo_receive,
	.publish = NULL,
	.subscribe = NULL,
};

const eq1_plugin_vtable *ECHO_ENTRY(void);

const eq1_plugin_vtable *ECHO_ENTRY(void)
{
	return &vtable;
}

#ifdef EQ1_TEST_NO_OPEN
/* Keeps -Werror quiet about the unused function in this variant. */
int (*eq1_plugin_unused_open)(const eq1_plugin_option *, size_t, void **);
int (*eq1_plugin_unused_open)(const eq1_plugin_option *, size_t, void **) = echo_open;
#endif
