/*
 * test_auth.c - MQTT 5.0 enhanced authentication through the C API.
 *
 *   ./test_auth                 the C boundary only: NULL and invalid arguments, a
 *                               re-authentication without a method, MQTT 3.1 client ids.
 *   ./test_auth <host> <port>   the same (ctest runs every tests/c program against mosquitto,
 *                               which has no enhanced authentication: 0x8C).
 *   ./test_auth <host> <port> scripted
 *                               also drives the exchange through a scripted broker (see
 *                               tests/test_enhanced_auth.py: mosquitto 2.0.11 here has no
 *                               enhanced-authentication plugin): challenge -> answer, the
 *                               broker's final data verified by the callback, a
 *                               re-authentication, and a callback refusing the final data.
 *
 * The scripted broker's toy method "TOY-CHALLENGE": it sends AUTH 0x18 "challenge-<n>", wants
 * "answer-<n>" back, and accepts with final data "server-ok" (or "server-forged" for a client
 * id starting with "forged").
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>

#include "test_util.h"

#define METHOD "TOY-CHALLENGE"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int challenges, verifications, reauth_steps, bad_method;

static void on_auth(void *user_data, const eq1_mqtt_auth_challenge *c, eq1_mqtt_auth_response *r)
{
	(void)user_data;
	pthread_mutex_lock(&lock);
	if (strcmp(c->method, METHOD) != 0)
		bad_method++;
	if (c->reauthenticating)
		reauth_steps++;
	if (c->reason_code == 0x18) {
		challenges++;
		/* "challenge-<n>" -> "answer-<n>" */
		const char *prefix = "challenge-";
		size_t plen = strlen(prefix);
		if (c->data_len > plen && memcmp(c->data, prefix, plen) == 0) {
			int n = snprintf((char *)r->data, r->data_capacity, "answer-%.*s",
					 (int)(c->data_len - plen), (const char *)c->data + plen);
			r->data_len = (size_t)n;
			r->action = EQ1_MQTT_AUTH_CONTINUE;
		} else {
			snprintf(r->reason, r->reason_capacity, "unexpected challenge");
			r->action = EQ1_MQTT_AUTH_FAILURE;
		}
	} else {
		verifications++;
		if (c->data_len == 9 && memcmp(c->data, "server-ok", 9) == 0) {
			r->action = EQ1_MQTT_AUTH_SUCCESS;
		} else {
			snprintf(r->reason, r->reason_capacity, "server signature rejected by the test");
			/* r->action stays EQ1_MQTT_AUTH_FAILURE, its preset */
		}
	}
	pthread_mutex_unlock(&lock);
}

static eq1_mqtt_options *v5_options(const char *host, int port, const char *id)
{
	eq1_mqtt_options *o = NULL;
	o = eq1_mqtt_options_new();
	REQUIRE(o != NULL, "eq1_mqtt_options_new");
	CHECK(eq1_mqtt_options_set_broker(o, host, port));
	CHECK(eq1_mqtt_options_set_protocol_version(o, EQ1_MQTT_V5));
	CHECK(eq1_mqtt_options_set_client_id(o, id));
	CHECK(eq1_mqtt_options_set_reconnect(o, false, 100, 1000));
	CHECK(eq1_mqtt_options_set_auth_method(o, METHOD, (const uint8_t *)"client-hello", 12));
	return o;
}

static void boundary(void)
{
	eq1_mqtt_options *o = NULL;
	eq1_mqtt_client *c = NULL;
	o = eq1_mqtt_options_new();
	REQUIRE(o != NULL, "eq1_mqtt_options_new");
	EXPECT_ERR("set_auth_method(NULL options)",
		   eq1_mqtt_options_set_auth_method(NULL, METHOD, NULL, 0),
		   EQ1_STATUS_NULL_ARGUMENT, "options");
	EXPECT_ERR("set_auth_method(NULL method)", eq1_mqtt_options_set_auth_method(o, NULL, NULL, 0),
		   EQ1_STATUS_NULL_ARGUMENT, "authentication method");
	EXPECT_ERR("set_auth_method(invalid UTF-8 method)",
		   eq1_mqtt_options_set_auth_method(o, "SCRAM-\xff\xfe", NULL, 0),
		   EQ1_STATUS_INVALID_UTF8, "authentication method");
	EXPECT_ERR("set_auth_method(empty method)", eq1_mqtt_options_set_auth_method(o, "", NULL, 0),
		   EQ1_STATUS_INVALID_ARGUMENT, "empty");
	EXPECT_ERR("set_auth_method(NULL data, len 3)",
		   eq1_mqtt_options_set_auth_method(o, METHOD, NULL, 3), EQ1_STATUS_NULL_ARGUMENT,
		   "authentication data");
	EXPECT_ERR("set_auth_method(data too long)",
		   eq1_mqtt_options_set_auth_method(o, METHOD, (const uint8_t *)"x", 65536),
		   EQ1_STATUS_INVALID_ARGUMENT, "65,535");
	EXPECT_ERR("set_protocol_version(2)", eq1_mqtt_options_set_protocol_version(o, 2),
		   EQ1_STATUS_INVALID_ARGUMENT, "3 (MQTT 3.1)");

	/* A method needs MQTT 5.0. */
	EXPECT_OK("set_auth_method", eq1_mqtt_options_set_auth_method(o, METHOD, NULL, 0));
	EXPECT_ERR("client_new(method on MQTT 3.1.1)", eq1_mqtt_client_new(o, NULL, NULL, &c),
		   EQ1_STATUS_INVALID_ARGUMENT, "MQTT 5.0");
	EXPECT_TRUE("client_new left *out NULL", c == NULL);
	eq1_mqtt_options_free(o);

	/* MQTT 3.1: client ids of 1..23 bytes. */
	o = eq1_mqtt_options_new();
	REQUIRE(o != NULL, "eq1_mqtt_options_new");
	EXPECT_OK("set_protocol_version(EQ1_MQTT_V31)",
		  eq1_mqtt_options_set_protocol_version(o, EQ1_MQTT_V31));
	CHECK(eq1_mqtt_options_set_client_id(o, "a-client-id-of-24-bytes!"));
	EXPECT_ERR("client_new(MQTT 3.1, 24-byte client id)", eq1_mqtt_client_new(o, NULL, NULL, &c),
		   EQ1_STATUS_INVALID_CLIENT_ID, "23");
	CHECK(eq1_mqtt_options_set_client_id(o, "a-client-id-of-23-bytes"));
	EXPECT_OK("client_new(MQTT 3.1, 23-byte client id)", eq1_mqtt_client_new(o, NULL, NULL, &c));
	eq1_mqtt_client_free(c);
	c = NULL;
	eq1_mqtt_options_free(o);

	/* No method configured: re-authentication has nothing to use. */
	o = eq1_mqtt_options_new();
	REQUIRE(o != NULL, "eq1_mqtt_options_new");
	CHECK(eq1_mqtt_options_set_protocol_version(o, EQ1_MQTT_V5));
	CHECK(eq1_mqtt_client_new(o, NULL, NULL, &c));
	EXPECT_ERR("set_auth_callback(NULL client)",
		   eq1_mqtt_client_set_auth_callback(NULL, on_auth, NULL), EQ1_STATUS_NULL_ARGUMENT,
		   "client");
	EXPECT_OK("set_auth_callback(client, cb)", eq1_mqtt_client_set_auth_callback(c, on_auth, NULL));
	EXPECT_OK("set_auth_callback(client, NULL) removes it",
		  eq1_mqtt_client_set_auth_callback(c, NULL, NULL));
	EXPECT_ERR("reauthenticate(NULL client)", eq1_mqtt_client_reauthenticate(NULL, NULL, 0, 1000),
		   EQ1_STATUS_NULL_ARGUMENT, "client");
	EXPECT_ERR("reauthenticate without a method",
		   eq1_mqtt_client_reauthenticate(c, NULL, 0, 1000), EQ1_STATUS_AUTH_NOT_CONFIGURED,
		   "no authentication method");
	eq1_mqtt_client_free(c);
	c = NULL;
	eq1_mqtt_options_free(o);

	/* A method, not connected. */
	o = v5_options("127.0.0.1", 1, "boundary");
	CHECK(eq1_mqtt_client_new(o, NULL, NULL, &c));
	EXPECT_ERR("reauthenticate(NULL data, len 2)", eq1_mqtt_client_reauthenticate(c, NULL, 2, 1000),
		   EQ1_STATUS_NULL_ARGUMENT, "authentication data");
	EXPECT_ERR("reauthenticate(timeout 0)", eq1_mqtt_client_reauthenticate(c, NULL, 0, 0),
		   EQ1_STATUS_INVALID_ARGUMENT, "timeout");
	EXPECT_ERR("reauthenticate(not connected)", eq1_mqtt_client_reauthenticate(c, NULL, 0, 1000),
		   EQ1_STATUS_NOT_CONNECTED, "not connected");
	eq1_mqtt_client_free(c);
	eq1_mqtt_options_free(o);
	EXPECT_TRUE("AUTH_FAILED is an authentication status",
		    eq1_status_family_of(EQ1_STATUS_AUTH_FAILED) == EQ1_STATUS_FAMILY_AUTHENTICATION);
}

static void exchange(const char *host, int port)
{
	eq1_mqtt_options *o = v5_options(host, port, "c-client");
	eq1_mqtt_client *c = NULL;
	CHECK(eq1_mqtt_client_new(o, NULL, NULL, &c));
	CHECK(eq1_mqtt_client_set_auth_callback(c, on_auth, NULL));
	EXPECT_OK("connect through the challenge", eq1_mqtt_client_connect(c, 10000));
	pthread_mutex_lock(&lock);
	EXPECT_TRUE("one challenge answered, the final data verified",
		    challenges == 1 && verifications == 1 && reauth_steps == 0 && bad_method == 0);
	pthread_mutex_unlock(&lock);
	eq1_token token = 0;
	CHECK(eq1_mqtt_client_publish(c, "auth/c", (const uint8_t *)"x", 1, 1, false, &token));
	EXPECT_OK("reauthenticate", eq1_mqtt_client_reauthenticate(c, (const uint8_t *)"again", 5,
								  10000));
	EXPECT_OK("the publish completed", eq1_mqtt_client_wait(c, token, 10000));
	pthread_mutex_lock(&lock);
	EXPECT_TRUE("the re-authentication went through the callback",
		    challenges == 2 && reauth_steps == 1 && bad_method == 0);
	pthread_mutex_unlock(&lock);
	EXPECT_TRUE("still connected", eq1_mqtt_client_is_connected(c));
	CHECK(eq1_mqtt_client_disconnect(c, 5000));
	eq1_mqtt_client_free(c);
	eq1_mqtt_options_free(o);

	/* The broker's final data does not verify: the callback refuses, connect fails. */
	o = v5_options(host, port, "forged-c-client");
	CHECK(eq1_mqtt_client_new(o, NULL, NULL, &c));
	CHECK(eq1_mqtt_client_set_auth_callback(c, on_auth, NULL));
	EXPECT_ERR("connect(forged server-final)", eq1_mqtt_client_connect(c, 10000),
		   EQ1_STATUS_AUTH_FAILED, "server signature rejected by the test");
	EXPECT_TRUE("not connected", !eq1_mqtt_client_is_connected(c));
	eq1_mqtt_client_free(c);

	/* No callback installed: the challenge fails the exchange. */
	CHECK(eq1_mqtt_client_new(o, NULL, NULL, &c));
	EXPECT_ERR("connect(no auth callback)", eq1_mqtt_client_connect(c, 10000),
		   EQ1_STATUS_AUTH_FAILED, "no authentication callback");
	eq1_mqtt_client_free(c);
	eq1_mqtt_options_free(o);
}

int main(int argc, char **argv)
{
	boundary();
	if (argc == 4 && strcmp(argv[3], "scripted") == 0)
		exchange(argv[1], atoi(argv[2]));
	return tu_summary();
}
