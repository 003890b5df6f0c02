/*
 * test_request_response.c - MQTT 5.0 request/response through a real broker.
 *
 *   test_request_response <host> <port> load <requests> <threads>
 *       a responder client answers with eq1_mqtt_client_respond ("re:" + the request); a
 *       requester sends <requests> blocking requests from <threads> threads, then as many
 *       asynchronous ones, and checks that every reply is its own; requests nobody answers
 *       time out (blocking and asynchronous); freeing a client with a pending request tells
 *       its callback.
 *   test_request_response <host> <port> bad
 *       bad input at the C boundary for every request/response function and option.
 *   test_request_response <host> <port>
 *       both, with 200 requests from 4 threads (as ctest runs it).
 *
 * Prints one line per check and "SUMMARY: ..." (exit 0 when all passed).
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>

#include "test_util.h"

#define SERVICE "svc/echo"
#define NOBODY "svc/nobody"

static const char *host;
static int port;

static eq1_mqtt_client *make_client(int version, int max_pending)
{
	eq1_mqtt_options *o = eq1_mqtt_options_new();
	CHECK(eq1_mqtt_options_set_broker(o, host, port));
	CHECK(eq1_mqtt_options_set_protocol_version(o, version));
	if (max_pending > 0)
		CHECK(eq1_mqtt_options_set_max_pending_requests(o, max_pending));
	eq1_mqtt_client *c = NULL;
	CHECK(eq1_mqtt_client_new(o, NULL, NULL, &c));
	eq1_mqtt_options_free(o);
	CHECK(eq1_mqtt_client_connect(c, 5000));
	return c;
}

/* ----------------------------------------------------------------------- responder */

static eq1_mqtt_client *responder;
static atomic_int respond_failures;

static void on_request(void *user_data, const eq1_mqtt_message *msg)
{
	(void)user_data;
	char reply[256];
	int n = snprintf(reply, sizeof reply, "re:%.*s", (int)msg->payload_len,
			 (const char *)msg->payload);
	if (eq1_mqtt_client_respond(responder, msg, (const uint8_t *)reply, (size_t)n, 1, NULL) !=
	    EQ1_STATUS_OK)
		atomic_fetch_add(&respond_failures, 1);
}

/* ----------------------------------------------------------------------- blocking load */

static eq1_mqtt_client *requester;
static int per_thread;
static atomic_int sync_ok, sync_wrong, sync_failed;

static void *request_thread(void *arg)
{
	int t = (int)(intptr_t)arg;
	for (int i = 0; i < per_thread; i++) {
		char question[64], expected[80];
		int n = snprintf(question, sizeof question, "thread-%d-request-%d", t, i);
		snprintf(expected, sizeof expected, "re:%s", question);
		eq1_mqtt_response *response = NULL;
		eq1_status st = eq1_mqtt_client_request(requester, SERVICE, (const uint8_t *)question,
							(size_t)n, 10000, &response);
		if (st != EQ1_STATUS_OK || response == NULL) {
			char msg[256];
			printf("request %s failed: %s: %s\n", question, eq1_status_str(st),
			       tu_last_error(msg, sizeof msg));
			atomic_fetch_add(&sync_failed, 1);
			continue;
		}
		if (response->payload_len == strlen(expected) &&
		    memcmp(response->payload, expected, response->payload_len) == 0 &&
		    response->properties != NULL && response->properties->correlation_data_len > 0)
			atomic_fetch_add(&sync_ok, 1);
		else
			atomic_fetch_add(&sync_wrong, 1);
		eq1_mqtt_response_free(response);
	}
	return NULL;
}

/* ----------------------------------------------------------------------- async */

struct slot {
	char expected[80];
	atomic_int calls;
	atomic_int status;
	atomic_int matched;
};

static atomic_int async_done;

static void on_response(void *user_data, eq1_status status, const eq1_mqtt_response *response)
{
	struct slot *s = user_data;
	atomic_store(&s->status, (int)status);
	if (status == EQ1_STATUS_OK && response != NULL &&
	    response->payload_len == strlen(s->expected) &&
	    memcmp(response->payload, s->expected, response->payload_len) == 0)
		atomic_store(&s->matched, 1);
	if (status != EQ1_STATUS_OK) {
		char msg[256];
		/* The detail is readable inside the callback. */
		if (tu_last_error(msg, sizeof msg)[0] == '\0')
			atomic_store(&s->matched, -1);
	}
	atomic_fetch_add(&s->calls, 1);
	atomic_fetch_add(&async_done, 1);
}

static void wait_for(atomic_int *counter, int target, int64_t timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	while (atomic_load(counter) < target && now_ms() < deadline)
		sleep_ms(5);
}

static int load(int requests, int threads)
{
	responder = make_client(EQ1_MQTT_V5, 0);
	CHECK(eq1_mqtt_client_subscribe(responder, SERVICE, 1, on_request, NULL, 5000, NULL));
	requester = make_client(EQ1_MQTT_V5, 0);

	per_thread = requests / threads;
	pthread_t ids[64];
	for (int t = 0; t < threads; t++)
		REQUIRE(pthread_create(&ids[t], NULL, request_thread, (void *)(intptr_t)t) == 0,
			"pthread_create");
	for (int t = 0; t < threads; t++)
		pthread_join(ids[t], NULL);
	printf("blocking: %d ok, %d wrong, %d failed\n", atomic_load(&sync_ok),
	       atomic_load(&sync_wrong), atomic_load(&sync_failed));
	EXPECT_TRUE("every blocking request got its own reply",
		    atomic_load(&sync_ok) == per_thread * threads);

	int count = per_thread * threads;
	struct slot *slots = calloc((size_t)count, sizeof *slots);
	REQUIRE(slots != NULL, "calloc");
	int sent = 0;
	for (int i = 0; i < count; i++) {
		char question[64];
		int n = snprintf(question, sizeof question, "async-%d", i);
		snprintf(slots[i].expected, sizeof slots[i].expected, "re:%s", question);
		if (eq1_mqtt_client_request_async(requester, SERVICE, (const uint8_t *)question,
						  (size_t)n, 20000, on_response,
						  &slots[i]) == EQ1_STATUS_OK)
			sent++;
	}
	wait_for(&async_done, sent, 30000);
	int matched = 0, once = 0;
	for (int i = 0; i < count; i++) {
		matched += atomic_load(&slots[i].matched) == 1;
		once += atomic_load(&slots[i].calls) == 1;
	}
	printf("async: %d sent, %d matched, %d called once\n", sent, matched, once);
	EXPECT_TRUE("every asynchronous request got its own reply, once",
		    sent == count && matched == count && once == count);
	EXPECT_TRUE("the responder answered every request", atomic_load(&respond_failures) == 0);
	free(slots);

	/* Nobody answers: the blocking request times out, the response stays NULL. */
	eq1_mqtt_response *response = (eq1_mqtt_response *)&response; /* reset on entry */
	EXPECT_ERR("a request nobody answers times out",
		   eq1_mqtt_client_request(requester, NOBODY, (const uint8_t *)"?", 1, 300,
					   &response),
		   EQ1_STATUS_TIMEOUT, "no reply");
	EXPECT_TRUE("a timed-out request gives no response", response == NULL);

	struct slot lonely = { .expected = "" };
	atomic_store(&async_done, 0);
	EXPECT_OK("an asynchronous request to nobody is sent",
		  eq1_mqtt_client_request_async(requester, NOBODY, NULL, 0, 300, on_response,
						&lonely));
	wait_for(&async_done, 1, 10000);
	EXPECT_TRUE("its callback hears EQ1_STATUS_TIMEOUT, once, with a detail message",
		    atomic_load(&lonely.calls) == 1 &&
			    atomic_load(&lonely.status) == EQ1_STATUS_TIMEOUT &&
			    atomic_load(&lonely.matched) == 0);

	/* Bounded: with one request pending the next is refused. */
	eq1_mqtt_client *bounded = make_client(EQ1_MQTT_V5, 1);
	struct slot pending = { .expected = "" };
	atomic_store(&async_done, 0);
	EXPECT_OK("the first pending request is accepted",
		  eq1_mqtt_client_request_async(bounded, NOBODY, NULL, 0, 60000, on_response,
						&pending));
	EXPECT_ERR("one request more than the maximum pending is refused",
		   eq1_mqtt_client_request_async(bounded, NOBODY, NULL, 0, 60000, on_response,
						 &lonely),
		   EQ1_STATUS_TOO_MANY_REQUESTS, "already waiting");
	/* Freeing the client tells the pending request, before free returns. */
	eq1_mqtt_client_disconnect(bounded, 2000);
	CHECK(eq1_mqtt_client_free(bounded));
	EXPECT_TRUE("freeing the client reports DISCONNECTED to the pending request",
		    atomic_load(&pending.calls) == 1 &&
			    atomic_load(&pending.status) == EQ1_STATUS_DISCONNECTED);

	eq1_mqtt_client_disconnect(requester, 2000);
	eq1_mqtt_client_disconnect(responder, 2000);
	CHECK(eq1_mqtt_client_free(requester));
	CHECK(eq1_mqtt_client_free(responder));
	return 0;
}

/* ----------------------------------------------------------------------- bad input */

static void no_response(void *user_data, eq1_status status, const eq1_mqtt_response *response)
{
	(void)user_data;
	(void)status;
	(void)response;
}

static int bad(void)
{
	eq1_mqtt_client *v5 = make_client(EQ1_MQTT_V5, 0);
	eq1_mqtt_client *v311 = make_client(EQ1_MQTT_V311, 0);
	eq1_mqtt_response *r = NULL;
	const char bad_utf8[] = { 'a', '/', (char)0xC3, (char)0x28, 0 };

	EXPECT_ERR("request: NULL client", eq1_mqtt_client_request(NULL, SERVICE, NULL, 0, 100, &r),
		   EQ1_STATUS_NULL_ARGUMENT, "client");
	EXPECT_ERR("request: NULL topic", eq1_mqtt_client_request(v5, NULL, NULL, 0, 100, &r),
		   EQ1_STATUS_NULL_ARGUMENT, "topic");
	EXPECT_ERR("request: NULL out_response",
		   eq1_mqtt_client_request(v5, SERVICE, NULL, 0, 100, NULL),
		   EQ1_STATUS_NULL_ARGUMENT, "response");
	EXPECT_ERR("request: NULL payload with a length",
		   eq1_mqtt_client_request(v5, SERVICE, NULL, 3, 100, &r), EQ1_STATUS_NULL_ARGUMENT,
		   "payload");
	EXPECT_ERR("request: topic not UTF-8",
		   eq1_mqtt_client_request(v5, bad_utf8, NULL, 0, 100, &r), EQ1_STATUS_INVALID_UTF8,
		   "UTF-8");
	EXPECT_ERR("request: wildcard topic", eq1_mqtt_client_request(v5, "a/+", NULL, 0, 100, &r),
		   EQ1_STATUS_INVALID_TOPIC, "wildcard");
	EXPECT_ERR("request: empty topic", eq1_mqtt_client_request(v5, "", NULL, 0, 100, &r),
		   EQ1_STATUS_INVALID_TOPIC, "empty");
	EXPECT_ERR("request: zero timeout", eq1_mqtt_client_request(v5, SERVICE, NULL, 0, 0, &r),
		   EQ1_STATUS_INVALID_ARGUMENT, "timeout");
	EXPECT_ERR("request: negative timeout",
		   eq1_mqtt_client_request(v5, SERVICE, NULL, 0, -1, &r),
		   EQ1_STATUS_INVALID_ARGUMENT, "negative");
	EXPECT_ERR("request: MQTT 3.1.1 client",
		   eq1_mqtt_client_request(v311, SERVICE, NULL, 0, 100, &r),
		   EQ1_STATUS_MQTT5_REQUIRED, "MQTT 5.0");
	EXPECT_TRUE("no response after failures", r == NULL);

	EXPECT_ERR("request_async: NULL client",
		   eq1_mqtt_client_request_async(NULL, SERVICE, NULL, 0, 100, no_response, NULL),
		   EQ1_STATUS_NULL_ARGUMENT, "client");
	EXPECT_ERR("request_async: NULL topic",
		   eq1_mqtt_client_request_async(v5, NULL, NULL, 0, 100, no_response, NULL),
		   EQ1_STATUS_NULL_ARGUMENT, "topic");
	EXPECT_ERR("request_async: NULL callback",
		   eq1_mqtt_client_request_async(v5, SERVICE, NULL, 0, 100, NULL, NULL),
		   EQ1_STATUS_NULL_ARGUMENT, "callback");
	EXPECT_ERR("request_async: topic not UTF-8",
		   eq1_mqtt_client_request_async(v5, bad_utf8, NULL, 0, 100, no_response, NULL),
		   EQ1_STATUS_INVALID_UTF8, "UTF-8");
	EXPECT_ERR("request_async: wildcard topic",
		   eq1_mqtt_client_request_async(v5, "a/#", NULL, 0, 100, no_response, NULL),
		   EQ1_STATUS_INVALID_TOPIC, "wildcard");
	EXPECT_ERR("request_async: zero timeout",
		   eq1_mqtt_client_request_async(v5, SERVICE, NULL, 0, 0, no_response, NULL),
		   EQ1_STATUS_INVALID_ARGUMENT, "timeout");
	EXPECT_ERR("request_async: MQTT 3.1.1 client",
		   eq1_mqtt_client_request_async(v311, SERVICE, NULL, 0, 100, no_response, NULL),
		   EQ1_STATUS_MQTT5_REQUIRED, "MQTT 5.0");

	eq1_mqtt_message plain = { 0 };
	plain.topic = "svc/plain";
	plain.topic_len = strlen(plain.topic);
	eq1_mqtt_properties no_topic = { 0 };
	eq1_mqtt_message without_topic = plain;
	without_topic.properties = &no_topic;
	eq1_mqtt_properties bad_topic = { 0 };
	bad_topic.response_topic = bad_utf8;
	eq1_mqtt_message with_bad_topic = plain;
	with_bad_topic.properties = &bad_topic;
	eq1_mqtt_properties wild_topic = { 0 };
	wild_topic.response_topic = "reply/#";
	eq1_mqtt_message with_wild_topic = plain;
	with_wild_topic.properties = &wild_topic;
	eq1_mqtt_properties good = { 0 };
	good.response_topic = "reply/here";
	eq1_mqtt_message request = plain;
	request.properties = &good;

	EXPECT_ERR("respond: NULL client", eq1_mqtt_client_respond(NULL, &request, NULL, 0, 1, NULL),
		   EQ1_STATUS_NULL_ARGUMENT, "client");
	EXPECT_ERR("respond: NULL request", eq1_mqtt_client_respond(v5, NULL, NULL, 0, 1, NULL),
		   EQ1_STATUS_NULL_ARGUMENT, "request");
	EXPECT_ERR("respond: NULL payload with a length",
		   eq1_mqtt_client_respond(v5, &request, NULL, 2, 1, NULL), EQ1_STATUS_NULL_ARGUMENT,
		   "payload");
	EXPECT_ERR("respond: a message without properties",
		   eq1_mqtt_client_respond(v5, &plain, NULL, 0, 1, NULL),
		   EQ1_STATUS_NO_RESPONSE_TOPIC, "response topic");
	EXPECT_ERR("respond: a message without a response topic",
		   eq1_mqtt_client_respond(v5, &without_topic, NULL, 0, 1, NULL),
		   EQ1_STATUS_NO_RESPONSE_TOPIC, "response topic");
	EXPECT_ERR("respond: response topic not UTF-8",
		   eq1_mqtt_client_respond(v5, &with_bad_topic, NULL, 0, 1, NULL),
		   EQ1_STATUS_INVALID_UTF8, "UTF-8");
	EXPECT_ERR("respond: response topic with a wildcard",
		   eq1_mqtt_client_respond(v5, &with_wild_topic, NULL, 0, 1, NULL),
		   EQ1_STATUS_INVALID_TOPIC, "wildcard");
	EXPECT_ERR("respond: bad QoS", eq1_mqtt_client_respond(v5, &request, NULL, 0, 3, NULL),
		   EQ1_STATUS_INVALID_QOS, "QoS");
	EXPECT_ERR("respond: MQTT 3.1.1 client",
		   eq1_mqtt_client_respond(v311, &request, NULL, 0, 1, NULL),
		   EQ1_STATUS_MQTT5_REQUIRED, "MQTT 5.0");
	eq1_token token = 0;
	EXPECT_OK("respond: a request with a response topic",
		  eq1_mqtt_client_respond(v5, &request, (const uint8_t *)"ok", 2, 1, &token));
	EXPECT_OK("respond: its token completes", eq1_mqtt_client_wait(v5, token, 5000));

	eq1_mqtt_response_free(NULL);
	tu_pass("response_free(NULL) is a no-op");

	eq1_mqtt_options *o = eq1_mqtt_options_new();
	EXPECT_ERR("topic_alias_auto: NULL options", eq1_mqtt_options_set_topic_alias_auto(NULL, true),
		   EQ1_STATUS_NULL_ARGUMENT, "options");
	EXPECT_OK("topic_alias_auto: off", eq1_mqtt_options_set_topic_alias_auto(o, false));
	EXPECT_ERR("response_topic_prefix: NULL options",
		   eq1_mqtt_options_set_response_topic_prefix(NULL, "p/"), EQ1_STATUS_NULL_ARGUMENT,
		   "options");
	EXPECT_ERR("response_topic_prefix: NULL prefix",
		   eq1_mqtt_options_set_response_topic_prefix(o, NULL), EQ1_STATUS_NULL_ARGUMENT,
		   "prefix");
	EXPECT_ERR("response_topic_prefix: not UTF-8",
		   eq1_mqtt_options_set_response_topic_prefix(o, bad_utf8), EQ1_STATUS_INVALID_UTF8,
		   "UTF-8");
	EXPECT_ERR("response_topic_prefix: wildcard",
		   eq1_mqtt_options_set_response_topic_prefix(o, "replies/+/"),
		   EQ1_STATUS_INVALID_TOPIC, "wildcard");
	EXPECT_OK("response_topic_prefix: empty", eq1_mqtt_options_set_response_topic_prefix(o, ""));
	EXPECT_ERR("max_pending_requests: NULL options",
		   eq1_mqtt_options_set_max_pending_requests(NULL, 5), EQ1_STATUS_NULL_ARGUMENT,
		   "options");
	EXPECT_ERR("max_pending_requests: 0", eq1_mqtt_options_set_max_pending_requests(o, 0),
		   EQ1_STATUS_INVALID_ARGUMENT, "outside");
	EXPECT_ERR("max_pending_requests: too many",
		   eq1_mqtt_options_set_max_pending_requests(o, 2000000), EQ1_STATUS_INVALID_ARGUMENT,
		   "outside");
	eq1_mqtt_options_free(o);

	eq1_mqtt_client_disconnect(v5, 2000);
	eq1_mqtt_client_disconnect(v311, 2000);
	CHECK(eq1_mqtt_client_free(v5));
	CHECK(eq1_mqtt_client_free(v311));
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s host port [load <requests> <threads> | bad]\n", argv[0]);
		return 2;
	}
	host = argv[1];
	port = atoi(argv[2]);
	if (argc < 4) {
		/* ctest: "<host> <port>" runs a smaller load and the bad-input checks. */
		load(200, 4);
		bad();
	} else if (strcmp(argv[3], "bad") == 0) {
		bad();
	} else {
		int requests = argc > 4 ? atoi(argv[4]) : 1000;
		int threads = argc > 5 ? atoi(argv[5]) : 4;
		REQUIRE(threads >= 1 && threads <= 64 && requests >= threads, "bad counts");
		load(requests, threads);
	}
	return tu_summary();
}
