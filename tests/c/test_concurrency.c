/*
 * test_concurrency.c - libeq1 under concurrent use from C.
 *
 *   test_concurrency <host> <port> [per_thread] [deadline_s]
 *   EQ1_TEST_PARTS=abcd (default) selects the parts to run; "e" is opt-in (see below).
 *
 *   per_thread  QoS 1 messages each of the 8 publisher threads sends in part (a)
 *               (default 10000: 80,000 in all). Part (c) always uses 5,000.
 *   deadline_s  how long part (a) may take to deliver everything (default 120).
 *
 * (a) 8 threads publish on ONE client; a second client subscribed at QoS 1 must receive every
 *     (thread, seq) pair (bitmap), and the delivery callback must report every token OK
 *     exactly once. The publisher's outbox is bounded (2000 messages) so that back-pressure
 *     happens: EQ1_STATUS_QUEUE_FULL means back off 1 ms and retry; retries are counted.
 * (b) a message callback that publishes (and waits for its PUBACK) and subscribes from inside
 *     itself: the inner calls succeed, the republished message arrives, the inner
 *     subscription is live.
 * (c) freeing a client with 5,000 QoS 1 publishes in flight (and its own messages arriving) is
 *     safe: free returns OK, user_data_free runs exactly once, no callback runs after free
 *     returns. Twice: (c1) free right after the publish calls, (c2) free once acknowledgements
 *     and callbacks are flowing.
 * (d) freeing a client from inside its own message (and delivery, and connection) callback
 *     returns EQ1_STATUS_CALLED_FROM_CALLBACK; the client stays usable (publish + receive),
 *     then is freed normally from main.
 * (e) opt-in: the outbox bound holds under a concurrent burst. With an outbox of 100 messages
 *     (EQ1_QUEUE_REJECT_NEW, queue before connect) and no connection, 8 threads x 1000
 *     publishes: at most 100 may be accepted, the rest must get EQ1_STATUS_QUEUE_FULL, and
 *     stats.queued must never exceed 100; after connecting, every accepted one is delivered.
 *
 * Prints one line per check and "SUMMARY: <n> checks, <f> failed"; exits 0 only if f == 0.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_util.h"

#define THREADS 8
#define A_OUTBOX_LIMIT 2000 /* publisher outbox bound in part (a) */
#define E_OUTBOX_LIMIT 100  /* outbox bound checked in part (e) */
#define E_PER_THREAD 1000

static const char *g_host;
static int g_port;
static char g_base[96]; /* topic prefix unique to this process */

/* outbox_limit > 0: bound the outbox to that many messages (refuse new ones when full);
 * queue_before_connect: accept publishes before the first connect. */
static eq1_mqtt_client *new_client_with(void *user_data, eq1_free_cb user_data_free,
					int64_t outbox_limit, bool queue_before_connect)
{
	eq1_mqtt_options *o = eq1_mqtt_options_new();
	REQUIRE(o != NULL, "eq1_mqtt_options_new returned NULL");
	CHECK(eq1_mqtt_options_set_broker(o, g_host, g_port));
	CHECK(eq1_mqtt_options_set_connect_timeout(o, 30000));
	if (outbox_limit > 0)
		CHECK(eq1_mqtt_options_set_offline_queue(o, outbox_limit, 64 * 1024 * 1024,
							 EQ1_QUEUE_REJECT_NEW,
							 queue_before_connect));
	eq1_mqtt_client *c = NULL;
	CHECK(eq1_mqtt_client_new(o, user_data, user_data_free, &c));
	eq1_mqtt_options_free(o);
	REQUIRE(c != NULL, "client_new returned OK without a client");
	return c;
}

static eq1_mqtt_client *new_client(void *user_data, eq1_free_cb user_data_free)
{
	return new_client_with(user_data, user_data_free, 0, false);
}

/* Publishes, backing off 1 ms while the outbox is full; returns the final status. */
static eq1_status publish_retry(eq1_mqtt_client *c, const char *topic, const void *payload,
				size_t len, int qos, eq1_token *token, long *retries)
{
	for (;;) {
		eq1_status st = eq1_mqtt_client_publish(c, topic, payload, len, qos, false, token);
		if (st != EQ1_STATUS_QUEUE_FULL)
			return st;
		(*retries)++;
		sleep_ms(1);
	}
}

static bool wait_at_least(atomic_int *value, int at_least, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	while (atomic_load(value) < at_least) {
		if (now_ms() > deadline)
			return false;
		sleep_ms(2);
	}
	return true;
}

static int cmp_token(const void *a, const void *b)
{
	eq1_token x = *(const eq1_token *)a, y = *(const eq1_token *)b;
	return x < y ? -1 : x > y;
}

/* ======================================================================================== */
/* (a) 8 publisher threads on one client                                                     */
/* ======================================================================================== */

struct a_delivery { /* the publisher client's user_data */
	atomic_int ok;
	atomic_int failed;
	atomic_int recorded;
	eq1_token *tokens; /* written on the dispatcher thread only */
	int capacity;
	atomic_int first_failure; /* eq1_status of the first failure, 0 when none */
	char first_detail[256];
};

static void a_on_delivery(void *user_data, eq1_token token, eq1_status status, const char *detail)
{
	struct a_delivery *d = user_data;
	int i = atomic_fetch_add(&d->recorded, 1);
	if (i < d->capacity)
		d->tokens[i] = token;
	if (status == EQ1_STATUS_OK) {
		atomic_fetch_add(&d->ok, 1);
	} else {
		if (atomic_fetch_add(&d->failed, 1) == 0) {
			snprintf(d->first_detail, sizeof d->first_detail, "%s",
				 detail ? detail : "(NULL detail)");
			atomic_store(&d->first_failure, (int)status);
		}
	}
}

struct a_receiver { /* the subscription's user_data */
	int per_thread;
	unsigned char *bitmap; /* THREADS * per_thread bits; dispatcher thread only */
	atomic_int unique;
	atomic_int duplicates;
	atomic_int malformed;
};

static void a_on_message(void *user_data, const eq1_mqtt_message *msg)
{
	struct a_receiver *r = user_data;
	char text[64];
	int t = -1, s = -1;
	size_t n = msg->payload_len < sizeof text - 1 ? msg->payload_len : sizeof text - 1;
	if (n > 0)
		memcpy(text, msg->payload, n);
	text[n] = '\0';
	if (sscanf(text, "t=%d s=%d", &t, &s) != 2 || t < 0 || t >= THREADS || s < 0 ||
	    s >= r->per_thread) {
		atomic_fetch_add(&r->malformed, 1);
		return;
	}
	size_t bit = (size_t)t * (size_t)r->per_thread + (size_t)s;
	unsigned char mask = (unsigned char)(1u << (bit % 8));
	if (r->bitmap[bit / 8] & mask) {
		atomic_fetch_add(&r->duplicates, 1);
	} else {
		r->bitmap[bit / 8] |= mask;
		atomic_fetch_add(&r->unique, 1);
	}
}

struct a_thread {
	pthread_t id;
	eq1_mqtt_client *client;
	const char *topic;
	atomic_int *go;
	int thread;
	int count;
	eq1_token *tokens; /* count tokens */
	long retries;
	int published;
	int errors;
	eq1_status first_error;
	char first_error_msg[256];
};

static void *a_publisher(void *arg)
{
	struct a_thread *th = arg;
	while (!atomic_load(th->go))
		sleep_ms(1);
	for (int s = 0; s < th->count; s++) {
		char payload[64];
		int len = snprintf(payload, sizeof payload, "t=%d s=%d", th->thread, s);
		eq1_token token = 0;
		eq1_status st = publish_retry(th->client, th->topic, payload, (size_t)len, 1, &token,
					      &th->retries);
		if (st != EQ1_STATUS_OK) {
			if (th->errors++ == 0) {
				th->first_error = st;
				tu_last_error(th->first_error_msg, sizeof th->first_error_msg);
			}
			continue;
		}
		th->tokens[th->published++] = token;
	}
	return NULL;
}

static void part_a(int per_thread, int deadline_s)
{
	const int total = THREADS * per_thread;
	char topic[160];
	snprintf(topic, sizeof topic, "%s/a/load", g_base);
	printf("# (a) %d threads x %d QoS 1 messages on one client -> %d (outbox bound %d)\n",
	       THREADS, per_thread, total, A_OUTBOX_LIMIT);

	struct a_delivery del;
	memset(&del, 0, sizeof del);
	atomic_init(&del.ok, 0);
	atomic_init(&del.failed, 0);
	atomic_init(&del.recorded, 0);
	atomic_init(&del.first_failure, 0);
	del.capacity = total;
	del.tokens = calloc((size_t)total, sizeof *del.tokens);
	REQUIRE(del.tokens != NULL, "out of memory");

	struct a_receiver rx;
	memset(&rx, 0, sizeof rx);
	rx.per_thread = per_thread;
	rx.bitmap = calloc((size_t)total / 8 + 1, 1);
	REQUIRE(rx.bitmap != NULL, "out of memory");
	atomic_init(&rx.unique, 0);
	atomic_init(&rx.duplicates, 0);
	atomic_init(&rx.malformed, 0);

	eq1_mqtt_client *sub = new_client(NULL, NULL);
	CHECK(eq1_mqtt_client_connect(sub, 0));
	int granted = -1;
	CHECK(eq1_mqtt_client_subscribe(sub, topic, 1, a_on_message, &rx, 10000, &granted));
	REQUIRE(granted == 1, "granted QoS %d, expected 1", granted);

	/* A bounded outbox, so that 8 fast threads really meet back-pressure (QUEUE_FULL). */
	eq1_mqtt_client *pub = new_client_with(&del, NULL, A_OUTBOX_LIMIT, false);
	CHECK(eq1_mqtt_client_set_delivery_callback(pub, a_on_delivery));
	CHECK(eq1_mqtt_client_connect(pub, 0));

	atomic_int go;
	atomic_init(&go, 0);
	struct a_thread th[THREADS];
	for (int i = 0; i < THREADS; i++) {
		memset(&th[i], 0, sizeof th[i]);
		th[i].client = pub;
		th[i].topic = topic;
		th[i].go = &go;
		th[i].thread = i;
		th[i].count = per_thread;
		th[i].tokens = calloc((size_t)per_thread, sizeof *th[i].tokens);
		REQUIRE(th[i].tokens != NULL, "out of memory");
		REQUIRE(pthread_create(&th[i].id, NULL, a_publisher, &th[i]) == 0,
			"pthread_create failed");
	}
	int64_t start = now_ms();
	atomic_store(&go, 1);
	long retries = 0;
	int errors = 0, published = 0;
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i].id, NULL);
		retries += th[i].retries;
		errors += th[i].errors;
		published += th[i].published;
		if (th[i].errors)
			printf("#   thread %d: %d publish errors, first %s: %s\n", i, th[i].errors,
			       eq1_status_str((int)th[i].first_error), th[i].first_error_msg);
	}
	int64_t publish_ms = now_ms() - start;
	printf("#   publish calls done in %lld ms; queue-full retries: %ld\n",
	       (long long)publish_ms, retries);

	/* Wait for every message and every delivery outcome. */
	int64_t deadline = start + (int64_t)deadline_s * 1000;
	int64_t next_report = now_ms() + 1000;
	for (;;) {
		int unique = atomic_load(&rx.unique);
		int outcomes = atomic_load(&del.ok) + atomic_load(&del.failed);
		if (unique >= total && outcomes >= total)
			break;
		if (now_ms() > deadline)
			break;
		if (now_ms() >= next_report) {
			printf("#   progress %5.1fs: received %d/%d unique (dup %d), outcomes ok %d "
			       "failed %d\n",
			       (double)(now_ms() - start) / 1000.0, unique, total,
			       atomic_load(&rx.duplicates), atomic_load(&del.ok),
			       atomic_load(&del.failed));
			fflush(stdout);
			next_report += 1000;
		}
		sleep_ms(10);
	}
	int64_t elapsed = now_ms() - start;
	sleep_ms(200); /* let stragglers (duplicates, extra outcomes) show up */
	int unique = atomic_load(&rx.unique);
	int ok = atomic_load(&del.ok);
	int failed = atomic_load(&del.failed);
	int recorded = atomic_load(&del.recorded);
	printf("#   after %lld ms: received %d unique, %d duplicates, %d malformed; deliveries ok %d, "
	       "failed %d; queue-full retries %ld\n",
	       (long long)elapsed, unique, atomic_load(&rx.duplicates),
	       atomic_load(&rx.malformed), ok, failed, retries);
	printf("RESULT a: messages=%d received_unique=%d delivered_ok=%d delivery_failures=%d "
	       "queue_full_retries=%ld elapsed_ms=%lld\n",
	       total, unique, ok, failed, retries, (long long)elapsed);
	if (failed)
		printf("#   first delivery failure: %s: %s\n",
		       eq1_status_str(atomic_load(&del.first_failure)), del.first_detail);

	EXPECT_TRUE("(a) every publish call returned OK (after queue-full retries)",
		    errors == 0 && published == total);
	EXPECT_TRUE("(a) all messages arrived: every (thread, seq) pair received", unique == total);
	EXPECT_TRUE("(a) no malformed payload received", atomic_load(&rx.malformed) == 0);
	EXPECT_TRUE("(a) delivery callback: exactly N outcomes OK", ok == total);
	EXPECT_TRUE("(a) delivery callback: 0 failures", failed == 0);

	/* Every issued token is non-zero, unique, and reported exactly once. */
	eq1_token *issued = calloc((size_t)total, sizeof *issued);
	REQUIRE(issued != NULL, "out of memory");
	int n = 0;
	for (int i = 0; i < THREADS; i++) {
		memcpy(issued + n, th[i].tokens, (size_t)th[i].published * sizeof *issued);
		n += th[i].published;
	}
	qsort(issued, (size_t)n, sizeof *issued, cmp_token);
	bool tokens_unique = n == 0 || issued[0] != 0;
	for (int i = 1; i < n; i++)
		if (issued[i] == issued[i - 1])
			tokens_unique = false;
	EXPECT_TRUE("(a) tokens from 8 threads are non-zero and unique", tokens_unique);
	int reported = recorded < total ? recorded : total;
	qsort(del.tokens, (size_t)reported, sizeof *del.tokens, cmp_token);
	EXPECT_TRUE("(a) the delivery callback reported each issued token exactly once",
		    recorded == n && reported == n &&
			    memcmp(issued, del.tokens, (size_t)n * sizeof *issued) == 0);
	free(issued);

	eq1_mqtt_stats st;
	CHECK(eq1_mqtt_client_get_stats(pub, &st));
	printf("#   publisher stats: published=%llu delivered=%llu failed=%llu queued=%llu "
	       "dropped=%llu reconnects=%llu bytes_out=%llu\n",
	       (unsigned long long)st.published, (unsigned long long)st.delivered,
	       (unsigned long long)st.failed, (unsigned long long)st.queued,
	       (unsigned long long)st.dropped, (unsigned long long)st.reconnects,
	       (unsigned long long)st.bytes_out);
	EXPECT_TRUE("(a) publisher stats: published == delivered == N, failed 0, queued 0",
		    st.published == (uint64_t)total && st.delivered == (uint64_t)total &&
			    st.failed == 0 && st.queued == 0 && st.dropped == 0);
	EXPECT_TRUE("(a) publisher never reconnected", st.reconnects == 0);
	CHECK(eq1_mqtt_client_get_stats(sub, &st));
	EXPECT_TRUE("(a) subscriber stats: received >= N", st.received >= (uint64_t)total);

	CHECK(eq1_mqtt_client_disconnect(pub, 5000));
	CHECK(eq1_mqtt_client_disconnect(sub, 5000));
	CHECK(eq1_mqtt_client_free(pub));
	CHECK(eq1_mqtt_client_free(sub));
	for (int i = 0; i < THREADS; i++)
		free(th[i].tokens);
	free(del.tokens);
	free(rx.bitmap);
}

/* ======================================================================================== */
/* (b) publish + subscribe from inside a message callback                                    */
/* ======================================================================================== */

struct b_state {
	eq1_mqtt_client *client;
	char topic_out[160];
	char topic_third[160];
	atomic_int in_calls;
	atomic_int inner_done;
	atomic_int publish_status;
	atomic_int wait_status;
	atomic_int subscribe_status;
	atomic_int granted;
	char inner_error[512];
	atomic_int out_received;
	atomic_int out_payload_ok;
	atomic_int third_received;
	atomic_int third_in_callback_thread; /* callbacks never on the caller's thread */
};

static pthread_t g_main_thread;

static void b_on_out(void *user_data, const eq1_mqtt_message *msg)
{
	struct b_state *b = user_data;
	static const char want[] = "republished: hello";
	if (msg->payload_len == sizeof want - 1 && memcmp(msg->payload, want, sizeof want - 1) == 0)
		atomic_fetch_add(&b->out_payload_ok, 1);
	atomic_fetch_add(&b->out_received, 1);
}

static void b_on_third(void *user_data, const eq1_mqtt_message *msg)
{
	struct b_state *b = user_data;
	(void)msg;
	if (!pthread_equal(pthread_self(), g_main_thread))
		atomic_fetch_add(&b->third_in_callback_thread, 1);
	atomic_fetch_add(&b->third_received, 1);
}

static void b_on_in(void *user_data, const eq1_mqtt_message *msg)
{
	struct b_state *b = user_data;
	if (atomic_fetch_add(&b->in_calls, 1) != 0)
		return;
	char payload[128];
	int len = snprintf(payload, sizeof payload, "republished: %.*s", (int)msg->payload_len,
			   (const char *)msg->payload);
	eq1_token token = 0;
	eq1_status st = eq1_mqtt_client_publish(b->client, b->topic_out, (const uint8_t *)payload,
						(size_t)len, 1, false, &token);
	atomic_store(&b->publish_status, (int)st);
	if (st != EQ1_STATUS_OK)
		tu_last_error(b->inner_error, sizeof b->inner_error);
	st = st == EQ1_STATUS_OK ? eq1_mqtt_client_wait(b->client, token, 10000) : st;
	atomic_store(&b->wait_status, (int)st);
	if (st != EQ1_STATUS_OK && b->inner_error[0] == '\0')
		tu_last_error(b->inner_error, sizeof b->inner_error);
	int granted = -1;
	st = eq1_mqtt_client_subscribe(b->client, b->topic_third, 1, b_on_third, b, 10000,
				       &granted);
	atomic_store(&b->subscribe_status, (int)st);
	atomic_store(&b->granted, granted);
	if (st != EQ1_STATUS_OK && b->inner_error[0] == '\0')
		tu_last_error(b->inner_error, sizeof b->inner_error);
	atomic_store(&b->inner_done, 1);
}

static void part_b(void)
{
	printf("# (b) publish + wait + subscribe from inside a message callback\n");
	static struct b_state b; /* static: large, and zero-initialised */
	memset(&b, 0, sizeof b);
	atomic_init(&b.publish_status, -1);
	atomic_init(&b.wait_status, -1);
	atomic_init(&b.subscribe_status, -1);
	atomic_init(&b.granted, -1);
	char topic_in[160];
	snprintf(topic_in, sizeof topic_in, "%s/b/in", g_base);
	snprintf(b.topic_out, sizeof b.topic_out, "%s/b/out", g_base);
	snprintf(b.topic_third, sizeof b.topic_third, "%s/b/third", g_base);

	b.client = new_client(NULL, NULL);
	CHECK(eq1_mqtt_client_connect(b.client, 0));
	CHECK(eq1_mqtt_client_subscribe(b.client, topic_in, 1, b_on_in, &b, 10000, NULL));
	CHECK(eq1_mqtt_client_subscribe(b.client, b.topic_out, 1, b_on_out, &b, 10000, NULL));
	eq1_token token = 0;
	CHECK(eq1_mqtt_client_publish(b.client, topic_in, (const uint8_t *)"hello", 5, 1, false,
				      &token));
	CHECK(eq1_mqtt_client_wait(b.client, token, 10000));

	bool done = wait_at_least(&b.inner_done, 1, 30000);
	EXPECT_TRUE("(b) the message callback ran and finished its inner calls", done);
	if (b.inner_error[0])
		printf("#   inner error: %s\n", b.inner_error);
	EXPECT_TRUE("(b) publish from inside the callback returned OK",
		    atomic_load(&b.publish_status) == EQ1_STATUS_OK);
	EXPECT_TRUE("(b) wait (PUBACK) from inside the callback returned OK",
		    atomic_load(&b.wait_status) == EQ1_STATUS_OK);
	EXPECT_TRUE("(b) subscribe from inside the callback returned OK, granted QoS 1",
		    atomic_load(&b.subscribe_status) == EQ1_STATUS_OK &&
			    atomic_load(&b.granted) == 1);
	EXPECT_TRUE("(b) the republished message arrived",
		    wait_at_least(&b.out_received, 1, 10000));
	EXPECT_TRUE("(b) the republished payload is intact", atomic_load(&b.out_payload_ok) == 1);

	/* The subscription made inside the callback is live. */
	CHECK(eq1_mqtt_client_publish(b.client, b.topic_third, (const uint8_t *)"3", 1, 1, false,
				      &token));
	CHECK(eq1_mqtt_client_wait(b.client, token, 10000));
	EXPECT_TRUE("(b) the subscription made inside the callback receives messages",
		    wait_at_least(&b.third_received, 1, 10000));
	EXPECT_TRUE("(b) callbacks ran on the dispatcher thread, not main",
		    atomic_load(&b.third_in_callback_thread) == atomic_load(&b.third_received));
	sleep_ms(100);
	EXPECT_TRUE("(b) the inner callback ran exactly once, the republish arrived exactly once",
		    atomic_load(&b.in_calls) == 1 && atomic_load(&b.out_received) == 1);

	CHECK(eq1_mqtt_client_disconnect(b.client, 5000));
	CHECK(eq1_mqtt_client_free(b.client));
	printf("RESULT b: inner publish/wait/subscribe OK\n");
}

/* ======================================================================================== */
/* (c) free with thousands of publishes in flight                                            */
/* ======================================================================================== */

#define C_MAGIC 0x5EED5EEDu

struct c_user {
	unsigned magic;
	char padding[60];
};

static atomic_int c_frees;
static atomic_int c_free_bad_magic;
static atomic_int c_free_returned;
static atomic_int c_callbacks;
static atomic_int c_callbacks_after_free;

static void c_user_free(void *user_data)
{
	struct c_user *u = user_data;
	if (u == NULL || u->magic != C_MAGIC)
		atomic_fetch_add(&c_free_bad_magic, 1);
	if (u != NULL)
		u->magic = 0;
	free(u);
	atomic_fetch_add(&c_frees, 1);
}

static void c_on_delivery(void *user_data, eq1_token token, eq1_status status, const char *detail)
{
	struct c_user *u = user_data;
	(void)token;
	(void)status;
	(void)detail;
	if (atomic_load(&c_free_returned) || u->magic != C_MAGIC)
		atomic_fetch_add(&c_callbacks_after_free, 1);
	atomic_fetch_add(&c_callbacks, 1);
}

static void c_on_message(void *user_data, const eq1_mqtt_message *msg)
{
	(void)user_data;
	(void)msg;
	if (atomic_load(&c_free_returned))
		atomic_fetch_add(&c_callbacks_after_free, 1);
	atomic_fetch_add(&c_callbacks, 1);
}

/* acks_first == 0: free right after the publish calls; otherwise first wait until that many
 * callbacks (deliveries + received messages) ran, so that the free races acknowledgements and
 * callbacks on the wire. */
static void part_c(int count, int acks_first)
{
	printf("# (c) free a client with %d QoS 1 publishes in flight (%s)\n", count,
	       acks_first ? "after the first callbacks ran" : "immediately");
	char cname[160];
#define CNAME(what)                                                                      \
	(snprintf(cname, sizeof cname, "(c%s) %s", acks_first ? "2" : "1", (what)), cname)
	atomic_store(&c_frees, 0);
	atomic_store(&c_free_bad_magic, 0);
	atomic_store(&c_free_returned, 0);
	atomic_store(&c_callbacks, 0);
	atomic_store(&c_callbacks_after_free, 0);
	char topic[160];
	snprintf(topic, sizeof topic, "%s/c/inflight", g_base);
	struct c_user *u = calloc(1, sizeof *u);
	REQUIRE(u != NULL, "out of memory");
	u->magic = C_MAGIC;

	eq1_mqtt_client *c = new_client(u, c_user_free);
	CHECK(eq1_mqtt_client_set_delivery_callback(c, c_on_delivery));
	CHECK(eq1_mqtt_client_connect(c, 0));
	/* Its own messages come back too, so that inbound traffic is in flight as well. */
	CHECK(eq1_mqtt_client_subscribe(c, topic, 1, c_on_message, NULL, 10000, NULL));

	static const uint8_t payload[256] = { 'c' };
	long retries = 0;
	int accepted = 0;
	for (int i = 0; i < count; i++) {
		eq1_status st = publish_retry(c, topic, payload, sizeof payload, 1, NULL, &retries);
		if (st != EQ1_STATUS_OK) {
			char msg[256];
			printf("#   publish %d failed: %s: %s\n", i, eq1_status_str((int)st),
			       tu_last_error(msg, sizeof msg));
			break;
		}
		accepted++;
	}
	if (acks_first)
		wait_at_least(&c_callbacks, acks_first, 30000);
	eq1_mqtt_stats st;
	CHECK(eq1_mqtt_client_get_stats(c, &st));
	printf("#   at free: published=%llu delivered=%llu queued=%llu received=%llu "
	       "(queue-full retries %ld)\n",
	       (unsigned long long)st.published, (unsigned long long)st.delivered,
	       (unsigned long long)st.queued, (unsigned long long)st.received, retries);
	EXPECT_TRUE(CNAME("all publishes accepted"), accepted == count);
	uint64_t in_flight = st.published - st.delivered;
	EXPECT_TRUE(CNAME("publishes were still in flight when freeing"), in_flight > 0);

	int64_t t0 = now_ms();
	eq1_status rc = eq1_mqtt_client_free(c);
	atomic_store(&c_free_returned, 1);
	int64_t free_ms = now_ms() - t0;
	int callbacks_at_free = atomic_load(&c_callbacks);
	int frees_at_return = atomic_load(&c_frees);
	printf("#   eq1_mqtt_client_free took %lld ms with %llu unacknowledged; %d callbacks ran\n",
	       (long long)free_ms, (unsigned long long)in_flight, callbacks_at_free);
	EXPECT_TRUE(CNAME("eq1_mqtt_client_free returned OK"), rc == EQ1_STATUS_OK);
	EXPECT_TRUE(CNAME("user_data_free had run once when free returned"), frees_at_return == 1);
	EXPECT_TRUE(CNAME("free returned promptly (< 10 s)"), free_ms < 10000);
	sleep_ms(500);
	EXPECT_TRUE(CNAME("user_data_free ran exactly once (still 1 after 500 ms)"),
		    atomic_load(&c_frees) == 1);
	EXPECT_TRUE(CNAME("user_data_free received the right pointer"),
		    atomic_load(&c_free_bad_magic) == 0);
	EXPECT_TRUE(CNAME("no callback ran after free returned"),
		    atomic_load(&c_callbacks_after_free) == 0 &&
			    atomic_load(&c_callbacks) == callbacks_at_free);
#undef CNAME
	printf("RESULT c%s: freed with %llu in flight, user_data_free calls=%d\n",
	       acks_first ? " (after acks)" : "", (unsigned long long)in_flight,
	       atomic_load(&c_frees));
}

/* ======================================================================================== */
/* (d) free from inside the client's own callbacks                                           */
/* ======================================================================================== */

struct d_ctx {
	eq1_mqtt_client *self;
	atomic_int msg_calls;
	atomic_int msg_free_status;
	char msg_free_error[256];
	atomic_int still_connected_inside;
	atomic_int delivery_calls;
	atomic_int delivery_free_status;
	char delivery_free_error[256];
	atomic_int connection_calls;
	atomic_int connection_free_status;
	char connection_free_error[256];
};

static atomic_int d_frees;

static void d_user_free(void *user_data)
{
	free(user_data);
	atomic_fetch_add(&d_frees, 1);
}

static void d_on_message(void *user_data, const eq1_mqtt_message *msg)
{
	struct d_ctx *d = user_data;
	(void)msg;
	if (atomic_load(&d->msg_calls) == 0) {
		eq1_status st = eq1_mqtt_client_free(d->self);
		/* The detail is thread-local: read it here, on the dispatcher thread. */
		tu_last_error(d->msg_free_error, sizeof d->msg_free_error);
		atomic_store(&d->still_connected_inside, eq1_mqtt_client_is_connected(d->self));
		atomic_store(&d->msg_free_status, (int)st);
	}
	atomic_fetch_add(&d->msg_calls, 1);
}

static void d_on_delivery(void *user_data, eq1_token token, eq1_status status, const char *detail)
{
	struct d_ctx *d = user_data;
	(void)token;
	(void)status;
	(void)detail;
	if (atomic_load(&d->delivery_calls) == 0) {
		eq1_status st = eq1_mqtt_client_free(d->self);
		tu_last_error(d->delivery_free_error, sizeof d->delivery_free_error);
		atomic_store(&d->delivery_free_status, (int)st);
	}
	atomic_fetch_add(&d->delivery_calls, 1);
}

static void d_on_connection(void *user_data, const eq1_mqtt_connection_event *ev)
{
	struct d_ctx *d = user_data;
	if (ev->state == EQ1_CONNECTION_STATE_CONNECTED && atomic_load(&d->connection_calls) == 0) {
		eq1_status st = eq1_mqtt_client_free(d->self);
		tu_last_error(d->connection_free_error, sizeof d->connection_free_error);
		atomic_store(&d->connection_free_status, (int)st);
	}
	atomic_fetch_add(&d->connection_calls, 1);
}

static void expect_refused(const char *name, int status, const char *detail)
{
	if (status == EQ1_STATUS_CALLED_FROM_CALLBACK && detail[0] != '\0' &&
	    tu_contains_nocase(detail, "callback")) {
		tu_checks++;
		printf("ok   - %s -> %s: \"%s\"\n", name, eq1_status_str(status), detail);
	} else {
		tu_fail(__FILE__, __LINE__, name,
			"got %s (%d), expected EQ1_STATUS_CALLED_FROM_CALLBACK with a detail "
			"mentioning 'callback'; detail: '%s'",
			eq1_status_str(status), status, detail);
	}
}

static void part_d(void)
{
	printf("# (d) eq1_mqtt_client_free from inside the client's own callbacks\n");
	char topic[160];
	snprintf(topic, sizeof topic, "%s/d/self", g_base);
	struct d_ctx *d = calloc(1, sizeof *d);
	REQUIRE(d != NULL, "out of memory");
	atomic_init(&d->msg_calls, 0);
	atomic_init(&d->msg_free_status, -1);
	atomic_init(&d->still_connected_inside, 0);
	atomic_init(&d->delivery_calls, 0);
	atomic_init(&d->delivery_free_status, -1);
	atomic_init(&d->connection_calls, 0);
	atomic_init(&d->connection_free_status, -1);

	eq1_mqtt_client *c = new_client(d, d_user_free);
	d->self = c;
	CHECK(eq1_mqtt_client_set_connection_callback(c, d_on_connection));
	CHECK(eq1_mqtt_client_set_delivery_callback(c, d_on_delivery));
	CHECK(eq1_mqtt_client_connect(c, 0));
	CHECK(eq1_mqtt_client_subscribe(c, topic, 1, d_on_message, d, 10000, NULL));

	eq1_token token = 0;
	CHECK(eq1_mqtt_client_publish(c, topic, (const uint8_t *)"first", 5, 1, false, &token));
	CHECK(eq1_mqtt_client_wait(c, token, 10000));
	EXPECT_TRUE("(d) the message callback ran", wait_at_least(&d->msg_calls, 1, 10000));
	EXPECT_TRUE("(d) the delivery callback ran", wait_at_least(&d->delivery_calls, 1, 10000));
	EXPECT_TRUE("(d) the connection callback ran", wait_at_least(&d->connection_calls, 1, 10000));
	expect_refused("(d) free inside its own message callback",
		       atomic_load(&d->msg_free_status), d->msg_free_error);
	expect_refused("(d) free inside its own delivery callback",
		       atomic_load(&d->delivery_free_status), d->delivery_free_error);
	expect_refused("(d) free inside its own connection callback",
		       atomic_load(&d->connection_free_status), d->connection_free_error);
	EXPECT_TRUE("(d) the client was still connected inside the callback after the refusal",
		    atomic_load(&d->still_connected_inside) == 1);
	EXPECT_TRUE("(d) user_data_free did not run on the refused free",
		    atomic_load(&d_frees) == 0);

	/* Still usable: publish and receive again. */
	EXPECT_TRUE("(d) still connected", eq1_mqtt_client_is_connected(c));
	token = 0;
	EXPECT_OK("(d) publish after the refused free",
		  eq1_mqtt_client_publish(c, topic, (const uint8_t *)"second", 6, 1, false, &token));
	EXPECT_OK("(d) its PUBACK arrives", eq1_mqtt_client_wait(c, token, 10000));
	EXPECT_TRUE("(d) the message is received again", wait_at_least(&d->msg_calls, 2, 10000));
	EXPECT_TRUE("(d) the delivery callback runs again",
		    wait_at_least(&d->delivery_calls, 2, 10000));
	int granted = -1;
	char topic2[192];
	snprintf(topic2, sizeof topic2, "%s/d/other", g_base);
	EXPECT_OK("(d) subscribe after the refused free",
		  eq1_mqtt_client_subscribe(c, topic2, 1, d_on_message, d, 10000, &granted));
	EXPECT_OK("(d) disconnect", eq1_mqtt_client_disconnect(c, 5000));
	EXPECT_OK("(d) free from main", eq1_mqtt_client_free(c));
	EXPECT_TRUE("(d) user_data_free ran exactly once", atomic_load(&d_frees) == 1);
	printf("RESULT d: free refused inside callbacks, client usable, freed from main\n");
}


/* ======================================================================================== */
/* (e) opt-in: the outbox bound under a concurrent burst                                     */
/* ======================================================================================== */

struct e_thread {
	pthread_t id;
	eq1_mqtt_client *client;
	const char *topic;
	atomic_int *go;
	int accepted;
	int queue_full;
	int other;
};

static void *e_publisher(void *arg)
{
	struct e_thread *th = arg;
	while (!atomic_load(th->go))
		sleep_ms(1);
	for (int i = 0; i < E_PER_THREAD; i++) {
		eq1_status st = eq1_mqtt_client_publish(th->client, th->topic, (const uint8_t *)"e", 1,
							1, false, NULL);
		if (st == EQ1_STATUS_OK)
			th->accepted++;
		else if (st == EQ1_STATUS_QUEUE_FULL)
			th->queue_full++;
		else
			th->other++;
	}
	return NULL;
}

static void part_e(void)
{
	printf("# (e) outbox bound %d under a burst of %d x %d publishes while not connected\n",
	       E_OUTBOX_LIMIT, THREADS, E_PER_THREAD);
	char topic[160];
	snprintf(topic, sizeof topic, "%s/e/bound", g_base);
	struct a_delivery del;
	memset(&del, 0, sizeof del);
	atomic_init(&del.ok, 0);
	atomic_init(&del.failed, 0);
	atomic_init(&del.recorded, 0);
	atomic_init(&del.first_failure, 0);
	del.capacity = THREADS * E_PER_THREAD;
	del.tokens = calloc((size_t)del.capacity, sizeof *del.tokens);
	REQUIRE(del.tokens != NULL, "out of memory");

	eq1_mqtt_client *c = new_client_with(&del, NULL, E_OUTBOX_LIMIT, true);
	CHECK(eq1_mqtt_client_set_delivery_callback(c, a_on_delivery));
	atomic_int go;
	atomic_init(&go, 0);
	struct e_thread th[THREADS];
	for (int i = 0; i < THREADS; i++) {
		memset(&th[i], 0, sizeof th[i]);
		th[i].client = c;
		th[i].topic = topic;
		th[i].go = &go;
		REQUIRE(pthread_create(&th[i].id, NULL, e_publisher, &th[i]) == 0,
			"pthread_create failed");
	}
	atomic_store(&go, 1);
	int accepted = 0, queue_full = 0, other = 0;
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i].id, NULL);
		accepted += th[i].accepted;
		queue_full += th[i].queue_full;
		other += th[i].other;
	}
	sleep_ms(300);
	eq1_mqtt_stats st;
	CHECK(eq1_mqtt_client_get_stats(c, &st));
	printf("#   accepted %d, queue full %d, other errors %d; stats.queued=%llu published=%llu\n",
	       accepted, queue_full, other, (unsigned long long)st.queued,
	       (unsigned long long)st.published);
	printf("RESULT e: outbox_limit=%d accepted=%d queue_full=%d stats_queued=%llu\n",
	       E_OUTBOX_LIMIT, accepted, queue_full, (unsigned long long)st.queued);
	EXPECT_TRUE("(e) no publish failed other than with QUEUE_FULL", other == 0);
	EXPECT_TRUE("(e) at most the outbox bound was accepted", accepted <= E_OUTBOX_LIMIT);
	EXPECT_TRUE("(e) stats.queued stays within the outbox bound",
		    st.queued <= (uint64_t)E_OUTBOX_LIMIT);
	EXPECT_TRUE("(e) the outbox was filled (some accepted)", accepted > 0);

	CHECK(eq1_mqtt_client_connect(c, 0));
	int64_t deadline = now_ms() + 60000;
	while (atomic_load(&del.ok) + atomic_load(&del.failed) < accepted && now_ms() < deadline)
		sleep_ms(10);
	EXPECT_TRUE("(e) after connecting, every accepted publish was delivered OK",
		    atomic_load(&del.ok) == accepted && atomic_load(&del.failed) == 0);
	CHECK(eq1_mqtt_client_disconnect(c, 5000));
	CHECK(eq1_mqtt_client_free(c));
	free(del.tokens);
}

/* ======================================================================================== */

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s <host> <port> [per_thread] [deadline_s]\n", argv[0]);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	g_host = argv[1];
	g_port = atoi(argv[2]);
	int per_thread = argc > 3 ? atoi(argv[3]) : 10000;
	int deadline_s = argc > 4 ? atoi(argv[4]) : 120;
	REQUIRE(per_thread > 0 && per_thread <= 1000000, "bad per_thread %d", per_thread);
	REQUIRE(deadline_s > 0, "bad deadline %d", deadline_s);
	const int in_flight_count = 5000; /* part (c): the brief's count, whatever the scale */
	g_main_thread = pthread_self();
	snprintf(g_base, sizeof g_base, "eq1test/concurrency/%ld", (long)getpid());
	atomic_init(&c_frees, 0);
	atomic_init(&d_frees, 0);

	const char *parts = getenv("EQ1_TEST_PARTS");
	if (parts == NULL || parts[0] == '\0')
		parts = "abcd";
	printf("# parts: %s; per_thread %d; deadline %d s\n", parts, per_thread, deadline_s);

	int64_t t = now_ms();
	if (strchr(parts, 'a')) {
		part_a(per_thread, deadline_s);
		printf("# duration a: %lld ms\n", (long long)(now_ms() - t));
	}
	t = now_ms();
	if (strchr(parts, 'b')) {
		part_b();
		printf("# duration b: %lld ms\n", (long long)(now_ms() - t));
	}
	t = now_ms();
	if (strchr(parts, 'c')) {
		part_c(in_flight_count, 0);
		part_c(in_flight_count, in_flight_count / 10);
		printf("# duration c: %lld ms\n", (long long)(now_ms() - t));
	}
	t = now_ms();
	if (strchr(parts, 'd')) {
		part_d();
		printf("# duration d: %lld ms\n", (long long)(now_ms() - t));
	}
	t = now_ms();
	if (strchr(parts, 'e')) {
		part_e();
		printf("# duration e: %lld ms\n", (long long)(now_ms() - t));
	}
	return tu_summary();
}
