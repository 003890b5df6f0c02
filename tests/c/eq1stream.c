/*
 * eq1stream.c - a publisher and a subscriber on libeq1, driven line by line from stdin by the
 * reliability tests (tests/test_reliability.py), which meanwhile cut connections, blackhole
 * them, kill and restart brokers. It counts everything: tokens accepted and their outcomes,
 * messages received (unique, duplicate, out of order), reconnects.
 *
 *   eq1stream --brokers host:port[,host:port...] [--sub-brokers ...] [options]
 *   (an item of a broker list may also be a broker URI: ws://host:port/path, unix:///path)
 *   stdin commands: publish N [pace_us] | wait_delivered MS | wait_received N MS [IDLE_MS] |
 *                   stats | quit
 * RECEIVED lists up to 10 missing sequence numbers as seq@ack_ms (CLOCK_MONOTONIC ms at which
 * the broker acknowledged it; 0 = never acknowledged).
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "eq1.h"

#define MAX_MESSAGES 1000000

struct settings {
	const char *brokers, *sub_brokers, *topic, *pub_id, *sub_id;
	int version, qos, clean, keepalive, reconnect_min, reconnect_max, policy, same_client;
	int window;
	long long queue_max, queue_bytes;
	int queue_before_connect;
};

static struct settings cfg = { .topic = "eq1/stream", .version = 4, .qos = 1, .clean = 1,
			       .keepalive = 5, .reconnect_min = 100, .reconnect_max = 1000,
			       .queue_max = 100000, .queue_bytes = 64 << 20, .window = 20 };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static unsigned char *seen;       /* receive count per sequence number (saturating) */
static long *seq_of_token;        /* publish token -> sequence number */
static long long *acked_at_ms;    /* sequence number -> CLOCK_MONOTONIC ms of its ack */
static long next_seq;             /* next sequence number to publish */
static long accepted, queue_full, refused;
static long ok, failed, dropped;
static long unique, duplicates, out_of_order, highest = -1;
static atomic_long published_counter;

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
	nanosleep(&ts, NULL);
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	static pthread_mutex_t out = PTHREAD_MUTEX_INITIALIZER;
	va_list ap;
	va_start(ap, fmt);
	pthread_mutex_lock(&out);
	vprintf(fmt, ap);
	fputc('\n', stdout);
	fflush(stdout);
	pthread_mutex_unlock(&out);
	va_end(ap);
}

static void on_connection(void *user_data, const eq1_mqtt_connection_event *e)
{
	say("CONNECTION role=%s state=%d reason=%s session_present=%d broker=%s:%d text=%s",
	    (const char *)user_data, (int)e->state, eq1_status_str(e->reason), e->session_present,
	    e->broker_host, e->broker_port, e->reason_text);
}

static void on_delivery(void *user_data, eq1_token token, eq1_status status, const char *detail)
{
	(void)user_data;
	(void)token;
	pthread_mutex_lock(&lock);
	if (status == EQ1_STATUS_OK && token < MAX_MESSAGES && seq_of_token[token] >= 0)
		acked_at_ms[seq_of_token[token]] = now_ms();
	if (status == EQ1_STATUS_OK)
		ok++;
	else if (status == EQ1_STATUS_DROPPED)
		dropped++;
	else {
		failed++;
		if (failed <= 5)
			say("DELIVERY_FAILED token=%llu status=%s detail=%s",
			    (unsigned long long)token, eq1_status_str(status), detail);
	}
	pthread_cond_broadcast(&changed);
	pthread_mutex_unlock(&lock);
}

static void on_message(void *user_data, const eq1_mqtt_message *msg)
{
	(void)user_data;
	char text[32] = "";
	size_t n = msg->payload_len < sizeof text - 1 ? msg->payload_len : sizeof text - 1;
	memcpy(text, msg->payload, n);
	long seq = -1;
	if (sscanf(text, "seq-%ld", &seq) != 1 || seq < 0 || seq >= MAX_MESSAGES)
		return;
	pthread_mutex_lock(&lock);
	if (seen[seq] == 0)
		unique++;
	else
		duplicates++;
	if (seen[seq] < 255)
		seen[seq]++;
	if (seq < highest)
		out_of_order++;
	else
		highest = seq;
	pthread_cond_broadcast(&changed);
	pthread_mutex_unlock(&lock);
}

static int fail(const char *what, eq1_status status)
{
	char detail[512] = "";
	eq1_last_error_message(detail, sizeof detail);
	say("FAIL %s: %s (%s)", what, eq1_status_str(status), detail);
	return 1;
}

static eq1_mqtt_client *make_client(const char *brokers, const char *id, const char *role)
{
	eq1_mqtt_options *o = eq1_mqtt_options_new();
	char *list = strdup(brokers);
	eq1_status s = EQ1_STATUS_OK;
	for (char *save = NULL, *item = strtok_r(list, ",", &save); item && !s;
	     item = strtok_r(NULL, ",", &save)) {
		if (strstr(item, "://")) { /* a broker URI: ws://, unix://, mqtts:// ... */
			s = eq1_mqtt_options_add_broker_uri(o, item);
			continue;
		}
		char *colon = strrchr(item, ':');
		if (!colon)
			return fail("broker list", EQ1_STATUS_INVALID_ARGUMENT), NULL;
		*colon = '\0';
		s = eq1_mqtt_options_add_broker(o, item, atoi(colon + 1), false);
	}
	free(list);
	if (!s && id)
		s = eq1_mqtt_options_set_client_id(o, id);
	if (!s)
		s = eq1_mqtt_options_set_protocol_version(o, cfg.version);
	if (!s)
		s = eq1_mqtt_options_set_clean_session(o, cfg.clean);
	if (!s && cfg.version == 5 && !cfg.clean)
		s = eq1_mqtt_options_set_session_expiry(o, 3600);
	if (!s)
		s = eq1_mqtt_options_set_keep_alive(o, cfg.keepalive);
	if (!s)
		s = eq1_mqtt_options_set_reconnect(o, true, cfg.reconnect_min, cfg.reconnect_max);
	if (!s)
		s = eq1_mqtt_options_set_connect_timeout(o, 2000);
	if (!s)
		s = eq1_mqtt_options_set_inflight_window(o, cfg.window);
	if (!s)
		s = eq1_mqtt_options_set_offline_queue(o, cfg.queue_max, cfg.queue_bytes, cfg.policy,
						       cfg.queue_before_connect);
	eq1_mqtt_client *c = NULL;
	if (!s)
		s = eq1_mqtt_client_new(o, (void *)role, NULL, &c);
	eq1_mqtt_options_free(o);
	if (s) {
		fail("client setup", s);
		return NULL;
	}
	eq1_mqtt_client_set_connection_callback(c, on_connection);
	return c;
}

static void *progress(void *arg)
{
	(void)arg;
	for (;;) {
		sleep_us(100 * 1000);
		pthread_mutex_lock(&lock);
		long p = atomic_load(&published_counter), r = unique, d = ok;
		pthread_mutex_unlock(&lock);
		say("PROGRESS published=%ld delivered=%ld received=%ld", p, d, r);
	}
	return NULL;
}

static void cmd_publish(eq1_mqtt_client *pub, long count, long pace_us)
{
	long acc = 0, full = 0, bad = 0;
	for (long i = 0; i < count && next_seq < MAX_MESSAGES; i++) {
		char text[32];
		int n = snprintf(text, sizeof text, "seq-%ld", next_seq);
		eq1_token token;
		eq1_status s = eq1_mqtt_client_publish(pub, cfg.topic, (const uint8_t *)text,
						       (size_t)n, cfg.qos, false, &token);
		if (s == EQ1_STATUS_OK) {
			pthread_mutex_lock(&lock);
			if (token < MAX_MESSAGES)
				seq_of_token[token] = next_seq;
			pthread_mutex_unlock(&lock);
			acc++;
			next_seq++;
			atomic_fetch_add(&published_counter, 1);
		} else if (s == EQ1_STATUS_QUEUE_FULL) {
			full++;
			next_seq++; /* this sequence number was refused: never expected */
		} else {
			bad++;
			if (bad <= 3)
				fail("publish", s);
		}
		if (pace_us > 0)
			sleep_us(pace_us);
	}
	pthread_mutex_lock(&lock);
	accepted += acc;
	queue_full += full;
	refused += bad;
	pthread_mutex_unlock(&lock);
	say("PUBLISHED n=%ld accepted=%ld queue_full=%ld refused=%ld", count, acc, full, bad);
}

static void cmd_wait_delivered(long timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;
	pthread_mutex_lock(&lock);
	while (ok + failed + dropped < accepted && now_ms() < deadline) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&changed, &lock, &ts);
	}
	say("DELIVERED accepted=%ld ok=%ld failed=%ld dropped=%ld pending=%ld", accepted, ok,
	    failed, dropped, accepted - ok - failed - dropped);
	pthread_mutex_unlock(&lock);
}

/* Waits until `want` unique messages arrived, `timeout_ms` passed, or (idle_ms > 0) nothing
 * new arrived for idle_ms. */
static void cmd_wait_received(long want, long timeout_ms, long idle_ms)
{
	long long deadline = now_ms() + timeout_ms, last_change = now_ms();
	long last_unique = -1;
	pthread_mutex_lock(&lock);
	while (unique < want && now_ms() < deadline &&
	       (idle_ms <= 0 || now_ms() - last_change < idle_ms)) {
		if (unique != last_unique) {
			last_unique = unique;
			last_change = now_ms();
		}
		pthread_mutex_unlock(&lock);
		sleep_us(20 * 1000);
		pthread_mutex_lock(&lock);
	}
	pthread_mutex_unlock(&lock);
	sleep_us(300 * 1000); /* late duplicates would show up now */
	pthread_mutex_lock(&lock);
	long missing = 0, first_missing = -1;
	char listed[600] = "";
	size_t used = 0;
	for (long i = 0; i < next_seq; i++) {
		if (!seen[i]) {
			missing++;
			if (first_missing < 0)
				first_missing = i;
			if (missing <= 10 && used < sizeof listed - 48)
				used += (size_t)snprintf(listed + used, sizeof listed - used,
							 "%s%ld@%lld", used ? "," : "", i,
							 acked_at_ms[i]);
		}
	}
	say("RECEIVED unique=%ld duplicates=%ld out_of_order=%ld missing=%ld first_missing=%ld "
	    "highest=%ld missing_list=%s",
	    unique, duplicates, out_of_order, missing, first_missing, highest,
	    used ? listed : "-");
	pthread_mutex_unlock(&lock);
}

static void cmd_stats(eq1_mqtt_client *c, const char *role)
{
	eq1_mqtt_stats st;
	eq1_status s = eq1_mqtt_client_get_stats(c, &st);
	if (s) {
		fail("stats", s);
		return;
	}
	say("STATS role=%s published=%llu delivered=%llu failed=%llu received=%llu queued=%llu "
	    "dropped=%llu reconnects=%llu bytes_in=%llu bytes_out=%llu",
	    role, (unsigned long long)st.published, (unsigned long long)st.delivered,
	    (unsigned long long)st.failed, (unsigned long long)st.received,
	    (unsigned long long)st.queued, (unsigned long long)st.dropped,
	    (unsigned long long)st.reconnects, (unsigned long long)st.bytes_in,
	    (unsigned long long)st.bytes_out);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "brokers", 1, 0, 'b' },     { "sub-brokers", 1, 0, 'B' },
		{ "topic", 1, 0, 't' },	      { "version", 1, 0, 'V' },
		{ "qos", 1, 0, 'q' },	      { "persistent", 0, 0, 'P' },
		{ "keepalive", 1, 0, 'k' },   { "reconnect-min", 1, 0, 'm' },
		{ "reconnect-max", 1, 0, 'M' }, { "queue-max", 1, 0, 'Q' },
		{ "queue-bytes", 1, 0, 'Y' }, { "drop-oldest", 0, 0, 'D' },
		{ "same-client", 0, 0, 'S' }, { "id", 1, 0, 'i' },
		{ "window", 1, 0, 'w' },      { "queue-before-connect", 0, 0, 'O' },
		{ 0, 0, 0, 0 }
	};
	int opt;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'b': cfg.brokers = optarg; break;
		case 'B': cfg.sub_brokers = optarg; break;
		case 't': cfg.topic = optarg; break;
		case 'V': cfg.version = atoi(optarg); break;
		case 'q': cfg.qos = atoi(optarg); break;
		case 'P': cfg.clean = 0; break;
		case 'k': cfg.keepalive = atoi(optarg); break;
		case 'm': cfg.reconnect_min = atoi(optarg); break;
		case 'M': cfg.reconnect_max = atoi(optarg); break;
		case 'Q': cfg.queue_max = atoll(optarg); break;
		case 'Y': cfg.queue_bytes = atoll(optarg); break;
		case 'D': cfg.policy = EQ1_QUEUE_DROP_OLDEST; break;
		case 'S': cfg.same_client = 1; break;
		case 'i': cfg.pub_id = optarg; break;
		case 'w': cfg.window = atoi(optarg); break;
		case 'O': cfg.queue_before_connect = 1; break;
		default: return 64;
		}
	}
	if (!cfg.brokers) {
		fprintf(stderr, "usage: eq1stream --brokers host:port[,...] [options]\n");
		return 64;
	}
	seen = calloc(MAX_MESSAGES, 1);
	acked_at_ms = calloc(MAX_MESSAGES, sizeof *acked_at_ms);
	seq_of_token = malloc(MAX_MESSAGES * sizeof *seq_of_token);
	for (long i = 0; i < MAX_MESSAGES; i++)
		seq_of_token[i] = -1;
	char pub_id[96], sub_id[96];
	snprintf(pub_id, sizeof pub_id, "%s-pub", cfg.pub_id ? cfg.pub_id : "eq1stream");
	snprintf(sub_id, sizeof sub_id, "%s-sub", cfg.pub_id ? cfg.pub_id : "eq1stream");

	eq1_mqtt_client *pub = make_client(cfg.brokers, pub_id, "pub");
	eq1_mqtt_client *sub = cfg.same_client ? pub
					       : make_client(cfg.sub_brokers ? cfg.sub_brokers
									     : cfg.brokers,
							     sub_id, "sub");
	if (!pub || !sub)
		return 1;
	eq1_mqtt_client_set_delivery_callback(pub, on_delivery);
	eq1_status s;
	if ((s = eq1_mqtt_client_connect(pub, 5000)))
		return fail("connect pub", s);
	if (sub != pub && (s = eq1_mqtt_client_connect(sub, 5000)))
		return fail("connect sub", s);
	int granted = -1;
	if ((s = eq1_mqtt_client_subscribe(sub, cfg.topic, cfg.qos, on_message, NULL, 5000,
					   &granted)))
		return fail("subscribe", s);
	pthread_t ticker;
	pthread_create(&ticker, NULL, progress, NULL);
	pthread_detach(ticker);
	say("READY granted=%d", granted);

	char line[256];
	while (fgets(line, sizeof line, stdin)) {
		long a = 0, b = 0, c = 0;
		if (sscanf(line, "publish %ld %ld", &a, &b) >= 1)
			cmd_publish(pub, a, b);
		else if (sscanf(line, "wait_delivered %ld", &a) == 1)
			cmd_wait_delivered(a);
		else if (sscanf(line, "wait_received %ld %ld %ld", &a, &b, &c) >= 2)
			cmd_wait_received(a, b, c);
		else if (!strncmp(line, "stats", 5)) {
			cmd_stats(pub, "pub");
			if (sub != pub)
				cmd_stats(sub, "sub");
		} else if (!strncmp(line, "quit", 4))
			break;
		else
			say("UNKNOWN %s", line);
	}
	eq1_mqtt_client_disconnect(pub, 2000);
	if (sub != pub) {
		eq1_mqtt_client_disconnect(sub, 2000);
		eq1_mqtt_client_free(sub);
	}
	eq1_mqtt_client_free(pub);
	say("BYE");
	/* The progress thread is detached and still sleeping: leave without joining it. */
	_exit(0);
}
