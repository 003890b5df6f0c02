/*
 * eq1subscribe.c - MQTT 5.0 subscribing against a real mosquitto, driven by
 * tests/test_v5_subscribe.py: subscription options (no-local, retain-as-published, retain
 * handling), shared subscriptions, overlapping subscriptions routed by subscription
 * identifiers, per-filter SUBACK / UNSUBACK reason codes, and bad input at the C boundary.
 *
 *   eq1subscribe <host> <port> <scenario> [prefix]
 *
 * scenarios: nolocal, rap, retain, shared, overlap, acl, badinput (host/port unused but a
 * client is still created). Every check prints "ok   - ..." or "FAIL - ...", then a summary;
 * the exit code is 0 when all passed. Topics start with `prefix` (default "t") so that runs
 * never see each other's retained messages.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stddef.h>

#include "test_util.h"

static const char *host;
static int port;
static char prefix[64] = "t";

/* What one callback saw. */
struct seen {
	pthread_mutex_t lock;
	int count;
	int retained;    /* messages with the retain flag */
	int markers;     /* payload "marker" */
	int with_ids;    /* messages that carried at least one subscription identifier */
	int max_ids;     /* the most identifiers one message carried */
	uint32_t last_id;
	int *per_index;  /* shared/overlap: how often each index arrived (NULL: not counted) */
	int indices;
};

static void seen_init(struct seen *s, int indices)
{
	memset(s, 0, sizeof *s);
	pthread_mutex_init(&s->lock, NULL);
	if (indices > 0) {
		s->per_index = calloc((size_t)indices, sizeof(int));
		s->indices = indices;
	}
}

static void seen_free(struct seen *s)
{
	free(s->per_index);
	pthread_mutex_destroy(&s->lock);
}

static void on_message(void *user_data, const eq1_mqtt_message *m)
{
	struct seen *s = user_data;
	pthread_mutex_lock(&s->lock);
	s->count++;
	if (m->retain)
		s->retained++;
	if (m->payload_len == 6 && memcmp(m->payload, "marker", 6) == 0)
		s->markers++;
	if (m->subscription_id_count > 0) {
		s->with_ids++;
		s->last_id = m->subscription_ids[0];
	}
	if ((int)m->subscription_id_count > s->max_ids)
		s->max_ids = (int)m->subscription_id_count;
	if (s->per_index && m->payload_len > 0 && m->payload_len < 16 &&
	    m->payload[0] >= '0' && m->payload[0] <= '9') {
		char text[16];
		memcpy(text, m->payload, m->payload_len);
		text[m->payload_len] = 0;
		int i = atoi(text);
		if (i >= 0 && i < s->indices)
			s->per_index[i]++;
	}
	pthread_mutex_unlock(&s->lock);
}

static int get(struct seen *s, int field_offset)
{
	pthread_mutex_lock(&s->lock);
	int v = *(int *)((char *)s + field_offset);
	pthread_mutex_unlock(&s->lock);
	return v;
}
#define GET(s, field) get((s), (int)offsetof(struct seen, field))

/* Waits (bounded) until s->field >= want; the bound only stops a broken run from hanging. */
static int wait_for(struct seen *s, int field_offset, int want)
{
	for (int i = 0; i < 3000; i++) {
		if (get(s, field_offset) >= want)
			return 1;
		sleep_ms(10);
	}
	return 0;
}
#define WAIT(s, field, want) wait_for((s), (int)offsetof(struct seen, field), (want))

static eq1_mqtt_client *new_client(int version)
{
	eq1_mqtt_options *o = eq1_mqtt_options_new();
	eq1_mqtt_client *c = NULL;
	REQUIRE(o != NULL, "eq1_mqtt_options_new");
	CHECK(eq1_mqtt_options_set_broker(o, host, port));
	CHECK(eq1_mqtt_options_set_protocol_version(o, version));
	CHECK(eq1_mqtt_client_new(o, NULL, NULL, &c));
	eq1_mqtt_options_free(o);
	return c;
}

static eq1_mqtt_client *connected_client(void)
{
	eq1_mqtt_client *c = new_client(EQ1_MQTT_V5);
	CHECK(eq1_mqtt_client_connect(c, 10000));
	return c;
}

static void topic(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", prefix, name);
}

static void publish(eq1_mqtt_client *c, const char *t, const char *payload, int qos, bool retain)
{
	eq1_token token = 0;
	CHECK(eq1_mqtt_client_publish(c, t, (const uint8_t *)payload, strlen(payload), qos, retain,
				      &token));
	CHECK(eq1_mqtt_client_wait(c, token, 10000));
}

static int subscribe(eq1_mqtt_client *c, const char *filter, eq1_mqtt_subscribe_options options,
		     struct seen *s)
{
	int granted = -1;
	CHECK(eq1_mqtt_client_subscribe_with_options(c, filter, &options, on_message, s, 10000,
						     &granted));
	return granted;
}

static void finish(eq1_mqtt_client *c)
{
	CHECK(eq1_mqtt_client_disconnect(c, 5000));
	CHECK(eq1_mqtt_client_free(c));
}

/* 1. no-local: our own publishes do not come back on a no-local subscription. */
static void scenario_nolocal(void)
{
	char local[128], normal[128];
	topic(local, sizeof local, "nl/local");
	topic(normal, sizeof normal, "nl/normal");
	eq1_mqtt_client *me = connected_client(), *other = connected_client();
	struct seen on_local, on_normal;
	seen_init(&on_local, 0);
	seen_init(&on_normal, 0);
	eq1_mqtt_subscribe_options no_local = { .qos = 1, .no_local = true };
	eq1_mqtt_subscribe_options plain = { .qos = 1 };
	EXPECT_TRUE("no-local subscription granted", subscribe(me, local, no_local, &on_local) == 1);
	EXPECT_TRUE("plain subscription granted", subscribe(me, normal, plain, &on_normal) == 1);
	for (int i = 0; i < 5; i++) {
		publish(me, local, "own", 1, false);
		publish(me, normal, "own", 1, false);
	}
	/* Messages on one subscription arrive in order: once the other client's marker is in,
	 * our own messages would have been too. */
	publish(other, local, "marker", 1, false);
	publish(other, normal, "marker", 1, false);
	EXPECT_TRUE("marker reached the no-local subscription", WAIT(&on_local, markers, 1));
	EXPECT_TRUE("marker reached the plain subscription", WAIT(&on_normal, markers, 1));
	EXPECT_TRUE("own messages never came back on the no-local subscription",
		    GET(&on_local, count) == 1);
	EXPECT_TRUE("own messages came back on the plain subscription",
		    GET(&on_normal, count) == 6);
	printf("INFO nolocal local=%d normal=%d\n", GET(&on_local, count), GET(&on_normal, count));
	finish(me);
	finish(other);
	seen_free(&on_local);
	seen_free(&on_normal);
}

/* 2. retain-as-published: a live retained publish keeps its flag only with the option. */
static void scenario_rap(void)
{
	char kept[128], cleared[128];
	topic(kept, sizeof kept, "rap/kept");
	topic(cleared, sizeof cleared, "rap/cleared");
	eq1_mqtt_client *sub = connected_client(), *pub = connected_client();
	struct seen on_kept, on_cleared;
	seen_init(&on_kept, 0);
	seen_init(&on_cleared, 0);
	eq1_mqtt_subscribe_options rap = { .qos = 1, .retain_as_published = true };
	eq1_mqtt_subscribe_options plain = { .qos = 1 };
	subscribe(sub, kept, rap, &on_kept);
	subscribe(sub, cleared, plain, &on_cleared);
	publish(pub, kept, "r", 1, true);
	publish(pub, cleared, "r", 1, true);
	EXPECT_TRUE("retained publish forwarded (RAP)", WAIT(&on_kept, count, 1));
	EXPECT_TRUE("retained publish forwarded (plain)", WAIT(&on_cleared, count, 1));
	EXPECT_TRUE("retain flag kept with retain-as-published", GET(&on_kept, retained) == 1);
	EXPECT_TRUE("retain flag cleared without it", GET(&on_cleared, retained) == 0);
	/* Leave no retained messages behind. */
	publish(pub, kept, "", 1, true);
	publish(pub, cleared, "", 1, true);
	finish(sub);
	finish(pub);
	seen_free(&on_kept);
	seen_free(&on_cleared);
}

/* Subscribes `filter` with retain handling `rh` and returns how many retained messages came
 * before the marker that `pub` publishes after the SUBACK. */
static int retained_at_subscribe(eq1_mqtt_client *sub, eq1_mqtt_client *pub, const char *filter,
				 int rh, struct seen *s)
{
	int markers = GET(s, markers), retained = GET(s, retained);
	eq1_mqtt_subscribe_options options = { .qos = 1, .retain_handling = rh };
	subscribe(sub, filter, options, s);
	publish(pub, filter, "marker", 1, false);
	if (!WAIT(s, markers, markers + 1))
		return -1;
	return GET(s, retained) - retained;
}

/* 3. retain handling 0 / 1 / 2, for a first subscribe and a second one to the same filter. */
static void scenario_retain(void)
{
	eq1_mqtt_client *sub = connected_client(), *pub = connected_client();
	for (int rh = 0; rh <= 2; rh++) {
		char t[128], name[32];
		snprintf(name, sizeof name, "rh/%d", rh);
		topic(t, sizeof t, name);
		publish(pub, t, "r", 1, true);
		struct seen s;
		seen_init(&s, 0);
		int first = retained_at_subscribe(sub, pub, t, rh, &s);
		int again = retained_at_subscribe(sub, pub, t, rh, &s);
		printf("INFO retain handling %d: first=%d again=%d\n", rh, first, again);
		char what[128];
		snprintf(what, sizeof what, "retain handling %d: retained at a new subscription", rh);
		EXPECT_TRUE(what, first == (rh == 2 ? 0 : 1));
		snprintf(what, sizeof what, "retain handling %d: retained at a repeated subscribe", rh);
		EXPECT_TRUE(what, again == (rh == 0 ? 1 : 0));
		CHECK(eq1_mqtt_client_unsubscribe(sub, t, 5000));
		publish(pub, t, "", 1, true);
		seen_free(&s);
	}
	finish(sub);
	finish(pub);
}

/* 4. a shared subscription across two clients splits a stream; nothing is lost. */
static void scenario_shared(void)
{
	enum { N = 1000 };
	char filter[160], t[128];
	snprintf(filter, sizeof filter, "$share/grp/%s/sh/#", prefix);
	topic(t, sizeof t, "sh/x");
	eq1_mqtt_client *a = connected_client(), *b = connected_client(), *pub = connected_client();
	struct seen on_a, on_b;
	seen_init(&on_a, N);
	seen_init(&on_b, N);
	eq1_mqtt_subscribe_options qos1 = { .qos = 1 };
	EXPECT_TRUE("shared subscription granted (a)", subscribe(a, filter, qos1, &on_a) == 1);
	EXPECT_TRUE("shared subscription granted (b)", subscribe(b, filter, qos1, &on_b) == 1);
	eq1_token last = 0;
	for (int i = 0; i < N; i++) {
		char payload[16];
		snprintf(payload, sizeof payload, "%d", i);
		CHECK(eq1_mqtt_client_publish(pub, t, (const uint8_t *)payload, strlen(payload), 1,
					      false, &last));
	}
	CHECK(eq1_mqtt_client_wait(pub, last, 30000));
	int total = 0;
	for (int i = 0; i < 3000 && total < N; i++) {
		total = GET(&on_a, count) + GET(&on_b, count);
		if (total < N)
			sleep_ms(10);
	}
	int missing = 0;
	pthread_mutex_lock(&on_a.lock);
	pthread_mutex_lock(&on_b.lock);
	for (int i = 0; i < N; i++)
		if (on_a.per_index[i] + on_b.per_index[i] == 0)
			missing++;
	pthread_mutex_unlock(&on_b.lock);
	pthread_mutex_unlock(&on_a.lock);
	printf("INFO shared a=%d b=%d missing=%d\n", GET(&on_a, count), GET(&on_b, count), missing);
	EXPECT_TRUE("every message reached one of the group", missing == 0);
	EXPECT_TRUE("both members got some", GET(&on_a, count) > 0 && GET(&on_b, count) > 0);
	finish(a);
	finish(b);
	finish(pub);
	seen_free(&on_a);
	seen_free(&on_b);
}

/* 5. overlapping subscriptions with different callbacks: each gets each message once. */
static void scenario_overlap(void)
{
	enum { N = 50 };
	char wide[128], narrow[128], t_both[128], t_wide[128];
	topic(wide, sizeof wide, "ov/#");
	topic(narrow, sizeof narrow, "ov/+/c");
	topic(t_both, sizeof t_both, "ov/b/c");
	topic(t_wide, sizeof t_wide, "ov/b/d");
	eq1_mqtt_client *c = connected_client(), *pub = connected_client();
	struct seen on_wide, on_narrow;
	seen_init(&on_wide, 2 * N + 1);
	seen_init(&on_narrow, 2 * N + 1);
	eq1_mqtt_subscription subs[2] = {
		{ wide, { .qos = 1 }, on_message, &on_wide },
		{ narrow, { .qos = 1 }, on_message, &on_narrow },
	};
	eq1_mqtt_subscribe_result results[2];
	EXPECT_OK("subscribe_many two overlapping filters",
		  eq1_mqtt_client_subscribe_many(c, subs, 2, NULL, 0, 10000, results, NULL));
	EXPECT_TRUE("both granted QoS 1",
		    results[0].status == EQ1_STATUS_OK && results[0].granted_qos == 1 &&
			    results[1].status == EQ1_STATUS_OK && results[1].granted_qos == 1);
	EXPECT_TRUE("each got its own subscription identifier",
		    results[0].subscription_id != 0 && results[1].subscription_id != 0 &&
			    results[0].subscription_id != results[1].subscription_id);
	for (int i = 0; i < N; i++) {
		char payload[16];
		snprintf(payload, sizeof payload, "%d", i);
		publish(pub, t_both, payload, 1, false);
		snprintf(payload, sizeof payload, "%d", N + i);
		publish(pub, t_wide, payload, 1, false);
	}
	publish(pub, t_both, "marker", 1, false);
	EXPECT_TRUE("marker reached the wide subscription", WAIT(&on_wide, markers, 1));
	EXPECT_TRUE("marker reached the narrow subscription", WAIT(&on_narrow, markers, 1));
	int wide_bad = 0, narrow_bad = 0;
	pthread_mutex_lock(&on_wide.lock);
	pthread_mutex_lock(&on_narrow.lock);
	for (int i = 0; i < 2 * N; i++) {
		if (on_wide.per_index[i] != 1)
			wide_bad++;
		if (on_narrow.per_index[i] != (i < N ? 1 : 0))
			narrow_bad++;
	}
	pthread_mutex_unlock(&on_narrow.lock);
	pthread_mutex_unlock(&on_wide.lock);
	printf("INFO overlap wide=%d narrow=%d wide_ids=%d narrow_ids=%d max_ids=%d\n",
	       GET(&on_wide, count), GET(&on_narrow, count), GET(&on_wide, with_ids),
	       GET(&on_narrow, with_ids), GET(&on_wide, max_ids));
	EXPECT_TRUE("the wide callback got every message exactly once",
		    wide_bad == 0 && GET(&on_wide, count) == 2 * N + 1);
	EXPECT_TRUE("the narrow callback got each of its messages exactly once",
		    narrow_bad == 0 && GET(&on_narrow, count) == N + 1);
	EXPECT_TRUE("messages carried subscription identifiers",
		    GET(&on_wide, with_ids) == 2 * N + 1 && GET(&on_narrow, with_ids) == N + 1);
	EXPECT_TRUE("the narrow callback's messages carry its identifier",
		    on_narrow.last_id == results[1].subscription_id);
	finish(c);
	finish(pub);
	seen_free(&on_wide);
	seen_free(&on_narrow);
}

/* 6. per-filter SUBACK codes (the broker's ACL denies one filter) and UNSUBACK codes. */
static void scenario_acl(void)
{
	eq1_mqtt_client *c = connected_client();
	struct seen s;
	seen_init(&s, 0);
	eq1_mqtt_subscription subs[3] = {
		{ "allowed/1", { .qos = 1 }, on_message, &s },
		{ "denied/x", { .qos = 1 }, on_message, &s },
		{ "allowed/2", { .qos = 2 }, on_message, &s },
	};
	eq1_mqtt_subscribe_result results[3];
	eq1_mqtt_ack_properties ack = { 0 };
	eq1_mqtt_user_property props[1] = { { "purpose", "acl-test" } };
	EXPECT_OK("subscribe_many returns OK with a refused filter",
		  eq1_mqtt_client_subscribe_many(c, subs, 3, props, 1, 10000, results, &ack));
	printf("INFO acl codes %#x %#x %#x\n", results[0].reason_code, results[1].reason_code,
	       results[2].reason_code);
	EXPECT_TRUE("allowed/1 granted QoS 1",
		    results[0].status == EQ1_STATUS_OK && results[0].reason_code == 1 &&
			    results[0].granted_qos == 1);
	EXPECT_TRUE("denied/x refused 0x87 not authorized",
		    results[1].status == EQ1_STATUS_SUBSCRIBE_REFUSED &&
			    results[1].reason_code == 0x87 && results[1].granted_qos == -1);
	EXPECT_TRUE("allowed/2 granted QoS 2",
		    results[2].status == EQ1_STATUS_OK && results[2].reason_code == 2);
	EXPECT_OK("ack properties clear", eq1_mqtt_ack_properties_clear(&ack));
	EXPECT_TRUE("cleared ack is zeroed", ack.reason_string == NULL && ack.internal == NULL);

	const char *filters[2] = { "allowed/1", "allowed/never-subscribed" };
	eq1_mqtt_unsubscribe_result unsub[2];
	EXPECT_OK("unsubscribe with results",
		  eq1_mqtt_client_unsubscribe_many_with_results(c, filters, 2, props, 1, 10000,
								unsub, &ack));
	printf("INFO unsuback codes %#x %#x\n", unsub[0].reason_code, unsub[1].reason_code);
	EXPECT_TRUE("subscribed filter removed (0x00)",
		    unsub[0].status == EQ1_STATUS_OK && unsub[0].reason_code == 0x00);
	EXPECT_TRUE("never-subscribed filter: 0x11 no subscription existed, not a failure",
		    unsub[1].status == EQ1_STATUS_OK && unsub[1].reason_code == 0x11);
	EXPECT_OK("ack properties clear again", eq1_mqtt_ack_properties_clear(&ack));
	EXPECT_OK("plain unsubscribe of a never-subscribed filter is OK",
		  eq1_mqtt_client_unsubscribe(c, "allowed/nothing", 5000));
	finish(c);
	seen_free(&s);
}

/* 7. bad input at the C boundary, each with its status. */
static void scenario_badinput(void)
{
	eq1_mqtt_client *v5 = new_client(EQ1_MQTT_V5), *v311 = new_client(EQ1_MQTT_V311);
	struct seen s;
	seen_init(&s, 0);
	eq1_mqtt_subscribe_result results[2];
	eq1_mqtt_unsubscribe_result unsub[2];
	int granted = 7;

	eq1_mqtt_subscribe_options bad_rh = { .qos = 1, .retain_handling = 3 };
	EXPECT_ERR("retain handling 3", eq1_mqtt_client_subscribe_with_options(
		v5, "a", &bad_rh, on_message, &s, 1000, &granted), EQ1_STATUS_INVALID_ARGUMENT,
		   "retain handling");
	EXPECT_TRUE("out granted QoS reset on failure", granted == -1);
	eq1_mqtt_subscribe_options neg_rh = { .qos = 0, .retain_handling = -1 };
	EXPECT_ERR("retain handling -1", eq1_mqtt_client_subscribe_with_options(
		v5, "a", &neg_rh, on_message, &s, 1000, NULL), EQ1_STATUS_INVALID_ARGUMENT,
		   "retain handling");
	eq1_mqtt_subscribe_options qos3 = { .qos = 3 };
	EXPECT_ERR("QoS 3 in options", eq1_mqtt_client_subscribe_with_options(
		v5, "a", &qos3, on_message, &s, 1000, NULL), EQ1_STATUS_INVALID_QOS, "qos");
	EXPECT_ERR("NULL options", eq1_mqtt_client_subscribe_with_options(
		v5, "a", NULL, on_message, &s, 1000, NULL), EQ1_STATUS_NULL_ARGUMENT, "options");
	eq1_mqtt_subscribe_options ok = { .qos = 1 };
	EXPECT_ERR("empty shared group", eq1_mqtt_client_subscribe_with_options(
		v5, "$share//a", &ok, on_message, &s, 1000, NULL), EQ1_STATUS_INVALID_FILTER,
		   "group");
	EXPECT_ERR("wildcard in shared group", eq1_mqtt_client_subscribe_with_options(
		v5, "$share/g+/a", &ok, on_message, &s, 1000, NULL), EQ1_STATUS_INVALID_FILTER,
		   "group");
	EXPECT_ERR("shared without a filter", eq1_mqtt_client_subscribe_with_options(
		v5, "$share/g", &ok, on_message, &s, 1000, NULL), EQ1_STATUS_INVALID_FILTER,
		   "no topic filter");
	EXPECT_ERR("bad filter after the shared group", eq1_mqtt_client_subscribe_with_options(
		v5, "$share/g/a/#/b", &ok, on_message, &s, 1000, NULL), EQ1_STATUS_INVALID_FILTER,
		   "#");
	eq1_mqtt_subscribe_options shared_nl = { .qos = 1, .no_local = true };
	EXPECT_ERR("no-local on a shared subscription", eq1_mqtt_client_subscribe_with_options(
		v5, "$share/g/a", &shared_nl, on_message, &s, 1000, NULL),
		   EQ1_STATUS_INVALID_ARGUMENT, "shared");
	EXPECT_ERR("no-local on MQTT 3.1.1", eq1_mqtt_client_subscribe_with_options(
		v311, "a", &shared_nl, on_message, &s, 1000, NULL), EQ1_STATUS_MQTT5_REQUIRED,
		   "MQTT 5.0");
	eq1_mqtt_subscribe_options rap = { .qos = 1, .retain_as_published = true };
	EXPECT_ERR("retain-as-published on MQTT 3.1.1", eq1_mqtt_client_subscribe_with_options(
		v311, "a", &rap, on_message, &s, 1000, NULL), EQ1_STATUS_MQTT5_REQUIRED, "3.1.1");
	eq1_mqtt_subscribe_options rh1 = { .qos = 1, .retain_handling = 1 };
	EXPECT_ERR("retain handling on MQTT 3.1.1", eq1_mqtt_client_subscribe_with_options(
		v311, "a", &rh1, on_message, &s, 1000, NULL), EQ1_STATUS_MQTT5_REQUIRED, "3.1.1");
	EXPECT_ERR("plain options on a client not connected", eq1_mqtt_client_subscribe_with_options(
		v311, "a", &ok, on_message, &s, 1000, NULL), EQ1_STATUS_NOT_CONNECTED, "not connected");

	eq1_mqtt_subscription subs[2] = {
		{ "a", { .qos = 1 }, on_message, &s },
		{ "b", { .qos = 0 }, on_message, &s },
	};
	EXPECT_ERR("NULL subscriptions", eq1_mqtt_client_subscribe_many(
		v5, NULL, 2, NULL, 0, 1000, results, NULL), EQ1_STATUS_NULL_ARGUMENT, "subscriptions");
	EXPECT_ERR("count 0", eq1_mqtt_client_subscribe_many(
		v5, subs, 0, NULL, 0, 1000, results, NULL), EQ1_STATUS_INVALID_ARGUMENT, "count is 0");
	EXPECT_ERR("NULL results", eq1_mqtt_client_subscribe_many(
		v5, subs, 2, NULL, 0, 1000, NULL, NULL), EQ1_STATUS_NULL_ARGUMENT, "results_out");
	EXPECT_ERR("NULL client", eq1_mqtt_client_subscribe_many(
		NULL, subs, 2, NULL, 0, 1000, results, NULL), EQ1_STATUS_NULL_ARGUMENT, "client");
	EXPECT_ERR("NULL user properties with a count", eq1_mqtt_client_subscribe_many(
		v5, subs, 2, NULL, 1, 1000, results, NULL), EQ1_STATUS_NULL_ARGUMENT,
		   "user_properties");
	eq1_mqtt_user_property null_value[1] = { { "k", NULL } };
	EXPECT_ERR("NULL user property value", eq1_mqtt_client_subscribe_many(
		v5, subs, 2, null_value, 1, 1000, results, NULL), EQ1_STATUS_NULL_ARGUMENT, "value");
	eq1_mqtt_user_property prop[1] = { { "k", "v" } };
	EXPECT_ERR("user properties on MQTT 3.1.1", eq1_mqtt_client_subscribe_many(
		v311, subs, 2, prop, 1, 1000, results, NULL), EQ1_STATUS_MQTT5_REQUIRED, "3.1.1");
	eq1_mqtt_subscription twice[2] = {
		{ "a", { .qos = 1 }, on_message, &s },
		{ "a", { .qos = 0 }, on_message, &s },
	};
	EXPECT_ERR("the same filter twice", eq1_mqtt_client_subscribe_many(
		v5, twice, 2, NULL, 0, 1000, results, NULL), EQ1_STATUS_INVALID_ARGUMENT, "twice");
	eq1_mqtt_subscription no_cb[1] = { { "a", { .qos = 1 }, NULL, NULL } };
	EXPECT_ERR("NULL callback", eq1_mqtt_client_subscribe_many(
		v5, no_cb, 1, NULL, 0, 1000, results, NULL), EQ1_STATUS_NULL_ARGUMENT, "callback 0");
	eq1_mqtt_subscription no_filter[1] = { { NULL, { .qos = 1 }, on_message, &s } };
	EXPECT_ERR("NULL filter", eq1_mqtt_client_subscribe_many(
		v5, no_filter, 1, NULL, 0, 1000, results, NULL), EQ1_STATUS_NULL_ARGUMENT, "filter 0");
	eq1_mqtt_subscription bad_rh_many[1] = { { "a", { .qos = 1, .retain_handling = 9 },
						    on_message, &s } };
	EXPECT_ERR("bad retain handling in subscribe_many", eq1_mqtt_client_subscribe_many(
		v5, bad_rh_many, 1, NULL, 0, 1000, results, NULL), EQ1_STATUS_INVALID_ARGUMENT,
		   "retain handling");
	eq1_mqtt_subscription bad_group[1] = { { "$share/#/a", { .qos = 1 }, on_message, &s } };
	EXPECT_ERR("bad shared group in subscribe_many", eq1_mqtt_client_subscribe_many(
		v5, bad_group, 1, NULL, 0, 1000, results, NULL), EQ1_STATUS_INVALID_FILTER, "group");
	EXPECT_ERR("subscribe_many while not connected", eq1_mqtt_client_subscribe_many(
		v5, subs, 2, NULL, 0, 1000, results, NULL), EQ1_STATUS_NOT_CONNECTED,
		   "not connected");

	const char *filters[2] = { "a", "b" };
	EXPECT_ERR("unsubscribe: NULL filters", eq1_mqtt_client_unsubscribe_many_with_results(
		v5, NULL, 2, NULL, 0, 1000, unsub, NULL), EQ1_STATUS_NULL_ARGUMENT, "filters");
	EXPECT_ERR("unsubscribe: count 0", eq1_mqtt_client_unsubscribe_many_with_results(
		v5, filters, 0, NULL, 0, 1000, unsub, NULL), EQ1_STATUS_INVALID_ARGUMENT, "count");
	EXPECT_ERR("unsubscribe: NULL results", eq1_mqtt_client_unsubscribe_many_with_results(
		v5, filters, 2, NULL, 0, 1000, NULL, NULL), EQ1_STATUS_NULL_ARGUMENT, "results_out");
	EXPECT_ERR("unsubscribe: user properties on 3.1.1",
		   eq1_mqtt_client_unsubscribe_many_with_results(v311, filters, 2, prop, 1, 1000,
								 unsub, NULL),
		   EQ1_STATUS_MQTT5_REQUIRED, "3.1.1");
	EXPECT_OK("unsubscribe while not connected succeeds at once",
		  eq1_mqtt_client_unsubscribe_many_with_results(v5, filters, 2, prop, 1, 1000, unsub,
								NULL));
	EXPECT_TRUE("... with code 0 per filter",
		    unsub[0].reason_code == 0 && unsub[1].reason_code == 0 &&
			    unsub[1].status == EQ1_STATUS_OK);
	EXPECT_OK("clear NULL ack", eq1_mqtt_ack_properties_clear(NULL));
	eq1_mqtt_ack_properties zero = { 0 };
	EXPECT_OK("clear a zeroed ack", eq1_mqtt_ack_properties_clear(&zero));
	CHECK(eq1_mqtt_client_free(v5));
	CHECK(eq1_mqtt_client_free(v311));
	seen_free(&s);
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: %s host port scenario [prefix]\n", argv[0]);
		return 2;
	}
	host = argv[1];
	port = atoi(argv[2]);
	if (argc > 4)
		snprintf(prefix, sizeof prefix, "%s", argv[4]);
	const char *scenario = argv[3];
	if (strcmp(scenario, "nolocal") == 0)
		scenario_nolocal();
	else if (strcmp(scenario, "rap") == 0)
		scenario_rap();
	else if (strcmp(scenario, "retain") == 0)
		scenario_retain();
	else if (strcmp(scenario, "shared") == 0)
		scenario_shared();
	else if (strcmp(scenario, "overlap") == 0)
		scenario_overlap();
	else if (strcmp(scenario, "acl") == 0)
		scenario_acl();
	else if (strcmp(scenario, "badinput") == 0)
		scenario_badinput();
	else {
		fprintf(stderr, "unknown scenario %s\n", scenario);
		return 2;
	}
	return tu_summary();
}
