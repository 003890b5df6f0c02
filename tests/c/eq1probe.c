/*
 * eq1probe.c - a command-line MQTT client on libeq1 that the pytest suite drives to check
 * behaviour against a real mosquitto: connect outcomes (auth, TLS), round trips at each QoS,
 * retained messages, and wills (the test kills this process or lets it disconnect cleanly).
 *
 *   eq1probe [options] connect | roundtrip | sub | pub | hold
 *
 * Output lines are meant for the tests: "STATUS <EQ1_STATUS_...> <detail>", "MSG ...",
 * "SUMMARY ...", "READY".
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "eq1.h"

struct config {
	const char *host, *user, *pass, *ca, *cert, *key, *keypass, *client_id;
	const char *will_topic, *will_payload, *topic, *payload;
	int port, version, will_qos, will_retain, qos, retain, count, wait_ms, expect;
	int keepalive, clean, verify_hostname, insecure, disconnect_after;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int *seen;     /* roundtrip: how often each message index arrived */
static atomic_int received_total;

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static void print_status(eq1_status status)
{
	char detail[1024] = "";
	if (status != EQ1_STATUS_OK)
		eq1_last_error_message(detail, sizeof detail);
	const char *name = eq1_status_str(status);
	int len = (int)strcspn(name, ":");
	printf("STATUS %.*s %s\n", len, name, detail);
	fflush(stdout);
}

static int check(const char *what, eq1_status status)
{
	if (status == EQ1_STATUS_OK)
		return 0;
	char detail[1024] = "";
	eq1_last_error_message(detail, sizeof detail);
	printf("FAIL %s: %s (%s)\n", what, eq1_status_str(status), detail);
	fflush(stdout);
	return 1;
}

static void on_connection(void *user_data, const eq1_mqtt_connection_event *event)
{
	(void)user_data;
	printf("CONNECTION state=%d reason=%d session_present=%d broker=%s:%d text=%s\n",
	       (int)event->state, (int)event->reason, event->session_present, event->broker_host,
	       event->broker_port, event->reason_text);
	fflush(stdout);
}

static void on_print(void *user_data, const eq1_mqtt_message *msg)
{
	(void)user_data;
	printf("MSG topic=%s qos=%d retain=%d len=%zu payload=%.*s\n", msg->topic, msg->qos,
	       msg->retain, msg->payload_len, (int)msg->payload_len, (const char *)msg->payload);
	fflush(stdout);
	atomic_fetch_add(&received_total, 1);
}

static void on_count(void *user_data, const eq1_mqtt_message *msg)
{
	struct config *c = user_data;
	char text[32] = "";
	size_t n = msg->payload_len < sizeof text - 1 ? msg->payload_len : sizeof text - 1;
	memcpy(text, msg->payload, n);
	int index = -1;
	if (sscanf(text, "msg-%d", &index) == 1 && index >= 0 && index < c->count) {
		pthread_mutex_lock(&lock);
		seen[index]++;
		pthread_mutex_unlock(&lock);
	}
	atomic_fetch_add(&received_total, 1);
}

static eq1_mqtt_client *make_client(const struct config *c)
{
	eq1_mqtt_options *o = eq1_mqtt_options_new();
	int bad = check("set_broker", eq1_mqtt_options_set_broker(o, c->host, c->port));
	bad |= check("set_version", eq1_mqtt_options_set_protocol_version(o, c->version));
	bad |= check("set_keep_alive", eq1_mqtt_options_set_keep_alive(o, c->keepalive));
	bad |= check("set_clean", eq1_mqtt_options_set_clean_session(o, c->clean));
	bad |= check("set_reconnect", eq1_mqtt_options_set_reconnect(o, false, 500, 30000));
	if (c->client_id)
		bad |= check("set_client_id", eq1_mqtt_options_set_client_id(o, c->client_id));
	if (c->user)
		bad |= check("set_credentials", eq1_mqtt_options_set_credentials(o, c->user, c->pass));
	if (c->ca || c->insecure) {
		bad |= check("set_tls", eq1_mqtt_options_set_tls(o, c->ca));
		if (!c->verify_hostname)
			bad |= check("verify_hostname",
				     eq1_mqtt_options_set_tls_verify_hostname(o, false));
		if (c->insecure)
			bad |= check("insecure", eq1_mqtt_options_set_tls_insecure(o, true));
		if (c->cert)
			bad |= check("client_cert", eq1_mqtt_options_set_tls_client_cert(
							    o, c->cert, c->key, c->keypass));
	}
	eq1_mqtt_client *client = NULL;
	if (!bad)
		bad |= check("client_new", eq1_mqtt_client_new(o, NULL, NULL, &client));
	eq1_mqtt_options_free(o);
	if (bad) {
		eq1_mqtt_client_free(client);
		return NULL;
	}
	eq1_mqtt_client_set_connection_callback(client, on_connection);
	if (c->will_topic) {
		const char *p = c->will_payload ? c->will_payload : "";
		if (check("set_will", eq1_mqtt_client_set_will(client, c->will_topic,
							       (const uint8_t *)p, strlen(p),
							       c->will_qos, c->will_retain))) {
			eq1_mqtt_client_free(client);
			return NULL;
		}
	}
	return client;
}

static int cmd_connect(const struct config *c, eq1_mqtt_client *client)
{
	(void)c;
	eq1_status status = eq1_mqtt_client_connect(client, 10000);
	print_status(status);
	if (status == EQ1_STATUS_OK)
		check("disconnect", eq1_mqtt_client_disconnect(client, 2000));
	return status == EQ1_STATUS_OK ? 0 : 3;
}

static int cmd_roundtrip(struct config *c, eq1_mqtt_client *client)
{
	seen = calloc((size_t)c->count, sizeof *seen);
	int granted = -1;
	if (check("connect", eq1_mqtt_client_connect(client, 10000)) ||
	    check("subscribe", eq1_mqtt_client_subscribe(client, c->topic, c->qos, on_count, c,
							  5000, &granted)))
		return 1;
	eq1_token last = 0;
	for (int i = 0; i < c->count; i++) {
		char text[32];
		int n = snprintf(text, sizeof text, "msg-%d", i);
		eq1_status s;
		while ((s = eq1_mqtt_client_publish(client, c->topic, (const uint8_t *)text,
						    (size_t)n, c->qos, false, &last)) ==
		       EQ1_STATUS_QUEUE_FULL)
			sleep_ms(1);
		if (check("publish", s))
			return 1;
	}
	if (check("wait", eq1_mqtt_client_wait(client, last, 30000)))
		return 1;
	long long deadline = now_ms() + c->wait_ms;
	while (now_ms() < deadline && atomic_load(&received_total) < c->count)
		sleep_ms(5);
	sleep_ms(300); /* late duplicates, if any, would arrive now */
	int missing = 0, duplicates = 0;
	pthread_mutex_lock(&lock);
	for (int i = 0; i < c->count; i++) {
		if (seen[i] == 0)
			missing++;
		else if (seen[i] > 1)
			duplicates += seen[i] - 1;
	}
	pthread_mutex_unlock(&lock);
	printf("SUMMARY sent=%d received=%d missing=%d duplicates=%d granted=%d\n", c->count,
	       atomic_load(&received_total), missing, duplicates, granted);
	check("disconnect", eq1_mqtt_client_disconnect(client, 5000));
	free(seen);
	return missing == 0 ? 0 : 4;
}

static int cmd_sub(const struct config *c, eq1_mqtt_client *client)
{
	int granted = -1;
	if (check("connect", eq1_mqtt_client_connect(client, 10000)) ||
	    check("subscribe", eq1_mqtt_client_subscribe(client, c->topic, c->qos, on_print, NULL,
							  5000, &granted)))
		return 1;
	printf("READY granted=%d\n", granted);
	fflush(stdout);
	long long deadline = now_ms() + c->wait_ms;
	while (now_ms() < deadline && (c->expect < 0 || atomic_load(&received_total) < c->expect))
		sleep_ms(5);
	printf("SUMMARY received=%d\n", atomic_load(&received_total));
	check("disconnect", eq1_mqtt_client_disconnect(client, 2000));
	return 0;
}

static int cmd_pub(const struct config *c, eq1_mqtt_client *client)
{
	const char *p = c->payload ? c->payload : "";
	eq1_token token = 0;
	if (check("connect", eq1_mqtt_client_connect(client, 10000)) ||
	    check("publish", eq1_mqtt_client_publish(client, c->topic, (const uint8_t *)p, strlen(p),
						     c->qos, c->retain, &token)) ||
	    check("wait", eq1_mqtt_client_wait(client, token, 10000)))
		return 1;
	printf("PUBLISHED token=%llu\n", (unsigned long long)token);
	check("disconnect", eq1_mqtt_client_disconnect(client, 2000));
	return 0;
}

/* Connects (with the will) and waits: the test kills us, or we disconnect cleanly. */
static int cmd_hold(const struct config *c, eq1_mqtt_client *client)
{
	if (check("connect", eq1_mqtt_client_connect(client, 10000)))
		return 1;
	printf("READY\n");
	fflush(stdout);
	sleep_ms(c->disconnect_after > 0 ? c->disconnect_after : c->wait_ms);
	if (c->disconnect_after > 0) {
		if (check("disconnect", eq1_mqtt_client_disconnect(client, 2000)))
			return 1;
		printf("DISCONNECTED\n");
		fflush(stdout);
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct config c = { .host = "127.0.0.1", .port = 0, .version = 4, .qos = 1, .count = 10,
			    .wait_ms = 10000, .expect = -1, .keepalive = 60, .clean = 1,
			    .verify_hostname = 1, .topic = "eq1/probe" };
	static const struct option longopts[] = {
		{ "host", 1, 0, 'h' },	      { "port", 1, 0, 'p' },
		{ "version", 1, 0, 'V' },     { "user", 1, 0, 'u' },
		{ "pass", 1, 0, 'P' },	      { "ca", 1, 0, 'C' },
		{ "cert", 1, 0, 'c' },	      { "key", 1, 0, 'k' },
		{ "keypass", 1, 0, 'K' },     { "client-id", 1, 0, 'i' },
		{ "will-topic", 1, 0, 'w' },  { "will-payload", 1, 0, 'W' },
		{ "will-qos", 1, 0, 'Q' },    { "will-retain", 0, 0, 'R' },
		{ "topic", 1, 0, 't' },	      { "payload", 1, 0, 'm' },
		{ "qos", 1, 0, 'q' },	      { "retain", 0, 0, 'r' },
		{ "count", 1, 0, 'n' },	      { "wait-ms", 1, 0, 'T' },
		{ "expect", 1, 0, 'e' },      { "keepalive", 1, 0, 'a' },
		{ "no-clean", 0, 0, 'N' },    { "no-verify-hostname", 0, 0, 'H' },
		{ "insecure", 0, 0, 'I' },    { "disconnect-after", 1, 0, 'D' },
		{ 0, 0, 0, 0 }
	};
	int opt;
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 'h': c.host = optarg; break;
		case 'p': c.port = atoi(optarg); break;
		case 'V': c.version = atoi(optarg); break;
		case 'u': c.user = optarg; break;
		case 'P': c.pass = optarg; break;
		case 'C': c.ca = optarg; break;
		case 'c': c.cert = optarg; break;
		case 'k': c.key = optarg; break;
		case 'K': c.keypass = optarg; break;
		case 'i': c.client_id = optarg; break;
		case 'w': c.will_topic = optarg; break;
		case 'W': c.will_payload = optarg; break;
		case 'Q': c.will_qos = atoi(optarg); break;
		case 'R': c.will_retain = 1; break;
		case 't': c.topic = optarg; break;
		case 'm': c.payload = optarg; break;
		case 'q': c.qos = atoi(optarg); break;
		case 'r': c.retain = 1; break;
		case 'n': c.count = atoi(optarg); break;
		case 'T': c.wait_ms = atoi(optarg); break;
		case 'e': c.expect = atoi(optarg); break;
		case 'a': c.keepalive = atoi(optarg); break;
		case 'N': c.clean = 0; break;
		case 'H': c.verify_hostname = 0; break;
		case 'I': c.insecure = 1; break;
		case 'D': c.disconnect_after = atoi(optarg); break;
		default: fprintf(stderr, "unknown option\n"); return 64;
		}
	}
	if (optind >= argc || c.port <= 0 || c.count <= 0) {
		fprintf(stderr, "usage: eq1probe --port N [options] connect|roundtrip|sub|pub|hold\n");
		return 64;
	}
	const char *command = argv[optind];
	eq1_mqtt_client *client = make_client(&c);
	if (!client)
		return 1;
	int rc;
	if (!strcmp(command, "connect"))
		rc = cmd_connect(&c, client);
	else if (!strcmp(command, "roundtrip"))
		rc = cmd_roundtrip(&c, client);
	else if (!strcmp(command, "sub"))
		rc = cmd_sub(&c, client);
	else if (!strcmp(command, "pub"))
		rc = cmd_pub(&c, client);
	else if (!strcmp(command, "hold"))
		rc = cmd_hold(&c, client);
	else {
		fprintf(stderr, "unknown command %s\n", command);
		rc = 64;
	}
	if (check("free", eq1_mqtt_client_free(client)))
		rc = rc ? rc : 1;
	return rc;
}
