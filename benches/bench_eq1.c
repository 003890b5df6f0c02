/*
 * bench_eq1.c - EQ-1 Network (libeq1, C ABI) benchmark: the eq1 counterpart of the peer
 * harness's bench_mosq.c. Harness semantics: see bench_common.h (from the peer bench folder,
 * ../shared/bench/src, which scripts/bench.sh copies to a temporary directory).
 *
 * Build (scripts/bench.sh does this):
 *   cc -O2 -Wall -Wextra -std=gnu11 -I<bench>/src -I include benches/bench_eq1.c \
 *      -L target/release -leq1 -lpthread -Wl,-rpath,$PWD/target/release -o <bench>/bin/bench_eq1
 *
 * Library notes:
 *  - connect: eq1_mqtt_options_set_broker(host, port), MQTT 3.1.1 (protocol version 4),
 *    keep-alive 60 s (as bench_mosq), inflight window = -w (QoS 1/2 only; eq1's default is 20).
 *  - The message callback (per subscription) calls rx_on_message; the delivery callback (per
 *    publish token) calls txwin_complete. eq1 completes a QoS 0 publish once it was written to
 *    the socket, a QoS 1 one on PUBACK, a QoS 2 one on PUBCOMP: the harness's definition.
 *  - eq1_mqtt_client_publish never waits on the network; it refuses a publish with
 *    EQ1_STATUS_QUEUE_FULL when the outbox (default 100,000 messages / 64 MiB) is full: that
 *    is the harness's "full, retry" case (wait <= 1 ms for a completion, retry the message).
 *  - TCP_NODELAY is always on in eq1 (src/mqtt/transport.rs) and cannot be turned off: -D
 *    changes nothing and every result reports nodelay=1.
 *  - Callbacks run on the client's own dispatcher thread; the library's I/O runs on one
 *    process-wide tokio worker thread, started with the first client (after the harness's
 *    fork, so each process has its own).
 */
#include "bench_common.h"
#include "eq1.h"

static const char *LIB = "eq1";

enum { R_SUB, R_PUB, R_PING, R_PONG };

typedef struct {
	int role;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int lost;           /* unexpected connection loss */
	eq1_mqtt_client *cli;
	rx_t *rx;           /* R_SUB */
	txwin_t *tx;        /* R_PUB */
	char echo_topic[160];   /* R_PONG publishes here */
	long echo_seq;          /* R_PING: last echoed sequence */
} ctx_t;

static void ctx_init(ctx_t *c, int role)
{
	memset(c, 0, sizeof(*c));
	c->role = role;
	c->echo_seq = -1;
	pthread_mutex_init(&c->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cv, &ca);
}

static void die(const char *what, eq1_status st)
{
	char detail[512];
	eq1_last_error_message(detail, sizeof(detail));
	fprintf(stderr, "eq1: %s: %s (%s)\n", what, eq1_status_str((int)st), detail);
	exit(1);
}

static void on_connection(void *user_data, const eq1_mqtt_connection_event *ev)
{
	ctx_t *c = user_data;
	if (ev->state == EQ1_CONNECTION_STATE_LOST) {
		fprintf(stderr, "eq1: unexpected connection loss: %s (%s)\n",
			eq1_status_str((int)ev->reason), ev->reason_text);
		pthread_mutex_lock(&c->mu);
		c->lost = 1;
		pthread_cond_broadcast(&c->cv);
		pthread_mutex_unlock(&c->mu);
	}
}

static void on_message(void *user_data, const eq1_mqtt_message *msg)
{
	ctx_t *c = user_data;
	switch (c->role) {
	case R_SUB:
		rx_on_message(c->rx, msg->payload, (int)msg->payload_len);
		break;
	case R_PONG: {
		/* allowed from inside a callback (see eq1.h) */
		eq1_status st = eq1_mqtt_client_publish(c->cli, c->echo_topic, msg->payload,
							msg->payload_len, 1, false, NULL);
		if (st != EQ1_STATUS_OK) fprintf(stderr, "eq1 pong: publish: %s\n", eq1_status_str((int)st));
		break;
	}
	case R_PING: {
		long seq = -1;
		if (msg->payload_len >= 8) memcpy(&seq, msg->payload, 8);
		pthread_mutex_lock(&c->mu);
		c->echo_seq = seq;
		pthread_cond_signal(&c->cv);
		pthread_mutex_unlock(&c->mu);
		break;
	}
	}
}

static void on_delivery(void *user_data, eq1_token token, eq1_status status, const char *detail)
{
	(void)token;
	ctx_t *c = user_data;
	if (status != EQ1_STATUS_OK)
		fprintf(stderr, "eq1: publish failed: %s (%s)\n", eq1_status_str((int)status), detail);
	if (c->role == R_PUB) txwin_complete(c->tx, status == EQ1_STATUS_OK);
}

static eq1_mqtt_client *client_up(const char *id, ctx_t *c, const opts_t *o)
{
	eq1_status st;
	eq1_mqtt_options *opt = eq1_mqtt_options_new();
	if (!opt) { fprintf(stderr, "eq1_mqtt_options_new failed\n"); exit(1); }
	if ((st = eq1_mqtt_options_set_broker(opt, o->host, o->port))) die("set_broker", st);
	if ((st = eq1_mqtt_options_set_client_id(opt, id))) die("set_client_id", st);
	if ((st = eq1_mqtt_options_set_protocol_version(opt, EQ1_MQTT_V311))) die("set_protocol_version", st);
	if ((st = eq1_mqtt_options_set_keep_alive(opt, 60))) die("set_keep_alive", st);
	/* library inflight window for outgoing QoS1/2 (eq1 default 20, like mosquitto) */
	if ((st = eq1_mqtt_options_set_inflight_window(opt, o->window)))
		fprintf(stderr, "eq1: inflight window %d rejected: %s\n", o->window, eq1_status_str((int)st));
	eq1_mqtt_client *cli = NULL;
	st = eq1_mqtt_client_new(opt, c, NULL, &cli);
	eq1_mqtt_options_free(opt);
	if (st) die("client_new", st);
	c->cli = cli;
	if ((st = eq1_mqtt_client_set_connection_callback(cli, on_connection))) die("set_connection_callback", st);
	if ((st = eq1_mqtt_client_set_delivery_callback(cli, on_delivery))) die("set_delivery_callback", st);
	if ((st = eq1_mqtt_client_connect(cli, 10000))) die("connect", st);
	return cli;
}

static void client_sub(eq1_mqtt_client *cli, ctx_t *c, const char *topic, int qos)
{
	/* returns after SUBACK */
	eq1_status st = eq1_mqtt_client_subscribe(cli, topic, qos, on_message, c, 10000, NULL);
	if (st) die("subscribe", st);
}

static void client_down(eq1_mqtt_client *cli)
{
	eq1_mqtt_client_disconnect(cli, 1000);
	eq1_mqtt_client_free(cli);
}

/* ------------------------------------------------------------ throughput */
static int run_sub(const opts_t *o, shm_t *shm)
{
	char id[64];
	ctx_t c;
	rx_t rx;
	ctx_init(&c, R_SUB);
	rx_init(&rx, o->n);
	c.rx = &rx;
	snprintf(id, sizeof(id), "eq1-sub-%d", (int)getpid());
	eq1_mqtt_client *cli = client_up(id, &c, o);
	client_sub(cli, &c, o->topic, o->qos);
	double cpu0 = cpu_s();
	__atomic_store_n(&shm->sub_ready, 1, __ATOMIC_RELEASE);
	rx_wait_done(&rx, shm, o);
	rx_publish_to_shm(&rx, shm, cpu0);
	client_down(cli);
	return 0;
}

static int run_pub(const opts_t *o, shm_t *shm, pid_t child)
{
	char id[64];
	ctx_t c;
	txwin_t tx;
	ctx_init(&c, R_PUB);
	txwin_init(&tx);
	c.tx = &tx;
	snprintf(id, sizeof(id), "eq1-pub-%d", (int)getpid());
	eq1_mqtt_client *cli = client_up(id, &c, o);
	if (!wait_flag(&shm->sub_ready, 15.0)) {
		fprintf(stderr, "subscriber not ready\n");
		kill(child, SIGKILL);
		return 1;
	}
	unsigned char *buf = malloc((size_t)o->size);
	memset(buf, 'x', (size_t)o->size);
	long sent = 0, retries = 0;
	int ok = 1;
	double cpu0 = cpu_s();
	shm->pub_t_first = now_s();
	while (sent < o->n) {
		if (o->cap > 0 && sent - txwin_completed(&tx) >= o->cap) {
			txwin_wait(&tx, sent - o->cap + 1, 1.0);
			continue;
		}
		memcpy(buf, &sent, 8);
		eq1_status st = eq1_mqtt_client_publish(cli, o->topic, buf, (size_t)o->size, o->qos, false, NULL);
		if (st == EQ1_STATUS_OK) {
			sent++;
		} else if (st == EQ1_STATUS_QUEUE_FULL) {
			retries++;
			txwin_wait(&tx, txwin_completed(&tx) + 1, 0.001);
		} else {
			char detail[512];
			eq1_last_error_message(detail, sizeof(detail));
			fprintf(stderr, "eq1_mqtt_client_publish: %s (%s)\n", eq1_status_str((int)st), detail);
			ok = 0;
			break;
		}
	}
	/* wait for all completions */
	double t_end = now_s() + o->timeout_s;
	while (txwin_completed(&tx) < sent && now_s() < t_end && !c.lost)
		txwin_wait(&tx, sent, 0.05);
	if (txwin_completed(&tx) < sent) ok = 0;
	shm->pub_t_done = now_s();
	double pub_cpu = cpu_s() - cpu0;
	long pub_rss = maxrss_kb();
	__atomic_store_n(&shm->pub_done, ok ? 1 : 2, __ATOMIC_RELEASE);
	wait_flag(&shm->sub_done, o->timeout_s);
	int crc = reap_child(child, 30.0);
	if (crc != 0) ok = 0;
	if (o->qos > 0 && shm->sub_unique != o->n) ok = 0;
	print_thr_result(LIB, o, shm, sent, pub_cpu, pub_rss, retries, tx.failed, ok);
	client_down(cli);
	free(buf);
	return ok ? 0 : 1;
}

/* --------------------------------------------------------------- latency */
static int run_pong(const opts_t *o, shm_t *shm)
{
	char id[64], t_in[160];
	ctx_t c;
	ctx_init(&c, R_PONG);
	snprintf(t_in, sizeof(t_in), "%s/ping", o->topic);
	snprintf(c.echo_topic, sizeof(c.echo_topic), "%s/pong", o->topic);
	snprintf(id, sizeof(id), "eq1-pong-%d", (int)getpid());
	eq1_mqtt_client *cli = client_up(id, &c, o);
	client_sub(cli, &c, t_in, 1);
	__atomic_store_n(&shm->sub_ready, 1, __ATOMIC_RELEASE);
	wait_flag(&shm->pub_done, o->timeout_s);
	client_down(cli);
	return 0;
}

static int run_ping(const opts_t *o, shm_t *shm, pid_t child)
{
	char id[64], t_out[160], t_in[160];
	ctx_t c;
	ctx_init(&c, R_PING);
	snprintf(t_out, sizeof(t_out), "%s/ping", o->topic);
	snprintf(t_in, sizeof(t_in), "%s/pong", o->topic);
	snprintf(id, sizeof(id), "eq1-ping-%d", (int)getpid());
	eq1_mqtt_client *cli = client_up(id, &c, o);
	client_sub(cli, &c, t_in, 1);
	if (!wait_flag(&shm->sub_ready, 15.0)) { fprintf(stderr, "pong not ready\n"); kill(child, SIGKILL); return 1; }
	long total = o->warmup + o->n;
	uint64_t *rtt = calloc((size_t)o->n, sizeof(uint64_t));
	unsigned char *buf = malloc((size_t)o->size);
	memset(buf, 'x', (size_t)o->size);
	int ok = 1;
	double cpu0 = 0, t0w = 0;
	for (long i = 0; i < total; i++) {
		if (i == o->warmup) { cpu0 = cpu_s(); t0w = now_s(); }
		memcpy(buf, &i, 8);
		uint64_t t0 = now_ns();
		eq1_status st = eq1_mqtt_client_publish(cli, t_out, buf, (size_t)o->size, 1, false, NULL);
		if (st) { fprintf(stderr, "ping publish: %s\n", eq1_status_str((int)st)); ok = 0; break; }
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += 5;
		pthread_mutex_lock(&c.mu);
		while (c.echo_seq != i) {
			if (pthread_cond_timedwait(&c.cv, &c.mu, &ts) == ETIMEDOUT) break;
		}
		int got = c.echo_seq == i;
		pthread_mutex_unlock(&c.mu);
		uint64_t t1 = now_ns();
		if (!got) { fprintf(stderr, "ping: echo %ld timed out\n", i); ok = 0; break; }
		if (i >= o->warmup) rtt[i - o->warmup] = t1 - t0;
	}
	double wall = now_s() - t0w, cpu = cpu_s() - cpu0;
	__atomic_store_n(&shm->pub_done, 1, __ATOMIC_RELEASE);
	reap_child(child, 30.0);
	if (ok) print_lat_result(LIB, o, rtt, o->n, wall, cpu, maxrss_kb());
	client_down(cli);
	free(rtt);
	free(buf);
	return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
	opts_t o;
	parse_opts(argc, argv, &o);
	fprintf(stderr, "libeq1 %s (header %s)\n", eq1_version(), EQ1_VERSION_STRING);
	/* TCP_NODELAY is always on in eq1: report it as such whatever -D says */
	o.nodelay = 1;
	shm_t *shm = shm_create();
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) { perror("fork"); return 1; }
	if (pid == 0) _exit(o.lat_mode ? run_pong(&o, shm) : run_sub(&o, shm));
	return o.lat_mode ? run_ping(&o, shm, pid) : run_pub(&o, shm, pid);
}
