/*
 * bench_persistence.c - durable publish at QoS 1: libeq1 without persistence, with
 * persistence in the batched and sync modes, and Paho C's MQTTAsync with its default file
 * persistence (MQTTASYNC_PERSISTENCE_DEFAULT), against one local mosquitto
 * (scripts/bench-persistence.sh starts it and runs the modes interleaved).
 *
 *   bench_persistence MODE HOST PORT STORE_DIR N THREADS PAYLOAD_BYTES WINDOW
 *   MODE: eq1-none | eq1-batched | eq1-sync | paho-none | paho-default |
 *         eq1-drop-oldest-batched | eq1-drop-oldest-sync
 *
 * The drop-oldest modes never connect: the client queues (queue before connect) into a store
 * bounded at EQ1_BENCH_STORE_LIMIT bytes (default 1 MiB) with EQ1_QUEUE_DROP_OLDEST, so once
 * the store is full every publish drops the oldest stored message (reported DROPPED to the
 * delivery callback). Printed: publishes per second and the publish latency, over all N
 * (most of them at the bound), and how many were dropped.
 *
 * THREADS threads publish N messages in all, each as fast as publish returns (a full
 * outbox or inflight window is waited out and not counted as latency). Printed (one line):
 * throughput = N / (time from the first publish to the last acknowledgement), and the
 * latency of the publish call itself (p50, p99, max): in the durable modes that is the time
 * until the message is as durable as the mode promises.
 */
#define _GNU_SOURCE
#include <MQTTAsync.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "eq1.h"

static const char *mode, *host, *dir;
static int port, threads, payload_len, window;
static long total;
static double *latency_us;
static atomic_long next_index, acked, failed;
static eq1_mqtt_client *eq1;
static MQTTAsync paho;
static atomic_int paho_connected;
static int drop_oldest;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void pause_us(long us)
{
	struct timespec ts = { 0, us * 1000 };
	nanosleep(&ts, NULL);
}

static void on_delivery(void *user_data, eq1_token token, eq1_status status, const char *detail)
{
	(void)user_data;
	(void)token;
	(void)detail;
	if (status == EQ1_STATUS_OK)
		atomic_fetch_add(&acked, 1);
	else
		atomic_fetch_add(&failed, 1);
}

static void paho_ok(void *context, MQTTAsync_successData *response)
{
	(void)context;
	(void)response;
	atomic_fetch_add(&acked, 1);
}

static void paho_fail(void *context, MQTTAsync_failureData *response)
{
	(void)context;
	(void)response;
	atomic_fetch_add(&failed, 1);
}

static void paho_connect_ok(void *context, MQTTAsync_successData *response)
{
	(void)context;
	(void)response;
	atomic_store(&paho_connected, 1);
}

static void paho_connect_fail(void *context, MQTTAsync_failureData *response)
{
	(void)context;
	(void)response;
	atomic_store(&paho_connected, -1);
}

static int paho_arrived(void *context, char *topic, int len, MQTTAsync_message *m)
{
	(void)context;
	(void)len;
	MQTTAsync_freeMessage(&m);
	MQTTAsync_free(topic);
	return 1;
}

static void *publisher(void *arg)
{
	(void)arg;
	char *payload = malloc((size_t)payload_len);
	memset(payload, 'p', (size_t)payload_len);
	int is_paho = strncmp(mode, "paho", 4) == 0;
	for (;;) {
		long i = atomic_fetch_add(&next_index, 1);
		if (i >= total)
			break;
		for (;;) {
			double start = now_s();
			int busy;
			if (is_paho) {
				MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
				ro.onSuccess = paho_ok;
				ro.onFailure = paho_fail;
				int rc = MQTTAsync_send(paho, "bench/persist", payload_len, payload, 1, 0,
							&ro);
				busy = rc == MQTTASYNC_MAX_MESSAGES_INFLIGHT ||
				       rc == MQTTASYNC_MAX_BUFFERED_MESSAGES;
				if (!busy && rc != MQTTASYNC_SUCCESS) {
					fprintf(stderr, "MQTTAsync_send: %d\n", rc);
					exit(1);
				}
			} else {
				eq1_status s = eq1_mqtt_client_publish(eq1, "bench/persist",
								       (const uint8_t *)payload,
								       (size_t)payload_len, 1, false, NULL);
				busy = s == EQ1_STATUS_QUEUE_FULL || s == EQ1_STATUS_STORE_FULL;
				if (!busy && s != EQ1_STATUS_OK) {
					char buf[256];
					eq1_last_error_message(buf, sizeof buf);
					fprintf(stderr, "publish: %s %s\n", eq1_status_name(s), buf);
					exit(1);
				}
			}
			if (!busy) {
				latency_us[i] = (now_s() - start) * 1e6;
				break;
			}
			pause_us(50);
		}
	}
	free(payload);
	return NULL;
}

static int compare(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void connect_eq1(void)
{
	eq1_mqtt_options *o = eq1_mqtt_options_new();
	eq1_mqtt_options_set_broker(o, host, port);
	eq1_mqtt_options_set_client_id(o, "bench-eq1-persist");
	eq1_mqtt_options_set_inflight_window(o, window);
	if (strcmp(mode, "eq1-none") != 0) {
		int d = strstr(mode, "sync") != NULL ? EQ1_DURABILITY_SYNC : EQ1_DURABILITY_BATCHED;
		if (eq1_mqtt_options_set_persistence(o, dir, d) != EQ1_STATUS_OK) {
			fprintf(stderr, "set_persistence failed\n");
			exit(1);
		}
	}
	if (drop_oldest) {
		const char *limit = getenv("EQ1_BENCH_STORE_LIMIT");
		eq1_mqtt_options_set_persistence_limit(o, limit ? strtoull(limit, NULL, 10) : 1 << 20,
						       false);
		eq1_mqtt_options_set_offline_queue(o, 10000000, 1LL << 32, EQ1_QUEUE_DROP_OLDEST,
						   true);
	}
	eq1_status s = eq1_mqtt_client_new(o, NULL, NULL, &eq1);
	eq1_mqtt_options_free(o);
	if (s != EQ1_STATUS_OK) {
		char buf[256];
		eq1_last_error_message(buf, sizeof buf);
		fprintf(stderr, "client_new: %s %s\n", eq1_status_name(s), buf);
		exit(1);
	}
	eq1_mqtt_client_set_delivery_callback(eq1, on_delivery);
	if (drop_oldest)
		return;
	if (eq1_mqtt_client_connect(eq1, 10000) != EQ1_STATUS_OK) {
		fprintf(stderr, "connect failed\n");
		exit(1);
	}
}

static void connect_paho(void)
{
	char uri[128];
	snprintf(uri, sizeof uri, "tcp://%s:%d", host, port);
	int persistence = strcmp(mode, "paho-default") == 0 ? MQTTCLIENT_PERSISTENCE_DEFAULT
							     : MQTTCLIENT_PERSISTENCE_NONE;
	if (MQTTAsync_create(&paho, uri, "bench-paho-persist", persistence, (void *)dir) !=
	    MQTTASYNC_SUCCESS) {
		fprintf(stderr, "MQTTAsync_create failed\n");
		exit(1);
	}
	MQTTAsync_setCallbacks(paho, NULL, NULL, paho_arrived, NULL);
	MQTTAsync_connectOptions c = MQTTAsync_connectOptions_initializer;
	c.keepAliveInterval = 60;
	c.cleansession = 1;
	c.maxInflight = window;
	c.onSuccess = paho_connect_ok;
	c.onFailure = paho_connect_fail;
	if (MQTTAsync_connect(paho, &c) != MQTTASYNC_SUCCESS) {
		fprintf(stderr, "MQTTAsync_connect failed\n");
		exit(1);
	}
	while (atomic_load(&paho_connected) == 0)
		pause_us(1000);
	if (atomic_load(&paho_connected) < 0) {
		fprintf(stderr, "paho connect failed\n");
		exit(1);
	}
}

int main(int argc, char **argv)
{
	if (argc != 9) {
		fprintf(stderr, "usage: %s MODE HOST PORT DIR N THREADS PAYLOAD WINDOW\n", argv[0]);
		return 2;
	}
	mode = argv[1];
	host = argv[2];
	port = atoi(argv[3]);
	dir = argv[4];
	total = atol(argv[5]);
	threads = atoi(argv[6]);
	payload_len = atoi(argv[7]);
	window = atoi(argv[8]);
	latency_us = calloc((size_t)total, sizeof *latency_us);
	drop_oldest = strncmp(mode, "eq1-drop-oldest", 15) == 0;
	int is_paho = strncmp(mode, "paho", 4) == 0;
	if (is_paho)
		connect_paho();
	else
		connect_eq1();

	pthread_t *ids = calloc((size_t)threads, sizeof *ids);
	double start = now_s();
	for (int t = 0; t < threads; t++)
		pthread_create(&ids[t], NULL, publisher, NULL);
	for (int t = 0; t < threads; t++)
		pthread_join(ids[t], NULL);
	double published = now_s();
	if (drop_oldest) {
		qsort(latency_us, (size_t)total, sizeof *latency_us, compare);
		printf("mode=%s threads=%d n=%ld payload=%d window=%d throughput=%.0f msg/s "
		       "publish_p50=%.1f us publish_p99=%.1f us publish_max=%.1f us dropped=%ld\n",
		       mode, threads, total, payload_len, window, (double)total / (published - start),
		       latency_us[total / 2], latency_us[(long)((double)total * 0.99)],
		       latency_us[total - 1], atomic_load(&failed));
		eq1_mqtt_client_free(eq1);
		free(ids);
		free(latency_us);
		return 0;
	}
	while (atomic_load(&acked) + atomic_load(&failed) < total) {
		if (now_s() - published > 120) {
			fprintf(stderr, "gave up waiting for acknowledgements\n");
			return 1;
		}
		pause_us(200);
	}
	double end = now_s();
	qsort(latency_us, (size_t)total, sizeof *latency_us, compare);
	printf("mode=%s threads=%d n=%ld payload=%d window=%d throughput=%.0f msg/s "
	       "publish_p50=%.1f us publish_p99=%.1f us publish_max=%.1f us failed=%ld\n",
	       mode, threads, total, payload_len, window, (double)total / (end - start),
	       latency_us[total / 2], latency_us[(long)((double)total * 0.99)],
	       latency_us[total - 1], atomic_load(&failed));
	if (is_paho) {
		MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
		d.timeout = 1000;
		MQTTAsync_disconnect(paho, &d);
		pause_us(200000);
		MQTTAsync_destroy(&paho);
	} else {
		eq1_mqtt_client_disconnect(eq1, 5000);
		eq1_mqtt_client_free(eq1);
	}
	free(ids);
	free(latency_us);
	return 0;
}
