/*
 * eq1v5.c - MQTT 5.0 session features through a real mosquitto (issue 8): acknowledgement
 * reasons (an ACL-denied publish is a failed delivery with 0x87), CONNACK information and an
 * assigned client identifier, retained-message expiry, and outbox message expiry
 * (EQ1_STATUS_EXPIRED), a DISCONNECT with reason 0x04 that makes the broker publish the
 * will, the CONNACK copy of eq1_mqtt_client_get_connack, the broker's announced limits
 * (Maximum QoS, Retain Available, Maximum Packet Size) refusing publishes before they are
 * sent, plus bad input at the C boundary of the new functions.
 *
 *   ./eq1v5 <mode> <host> <port>      mode: acl | connack | connack-get | limits |
 *                                           retained | outbox | will | bad-input
 *   ./eq1v5 redirect-follow|redirect-stay <host> <front port> <referenced port>
 *
 * connack-get and limits expect a broker with max_qos 1, retain_available false,
 * max_packet_size 2000, max_keepalive 20 and max_inflight_messages 7 (see
 * tests/test_v5_session.py).
 *
 * Prints "SUMMARY <n> failures"; exits 1 on any failure.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eq1.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int failures;

#define EXPECT(cond, ...)                                                          \
	do {                                                                       \
		if (!(cond)) {                                                     \
			failures++;                                                \
			printf("FAIL %s:%d: ", __FILE__, __LINE__);                \
			printf(__VA_ARGS__);                                       \
			printf("\n");                                              \
		}                                                                  \
	} while (0)

static void pause_ms(long ms)
{
	nanosleep(&(struct timespec){ .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L },
		  NULL);
}

/* ----- delivery reports ----- */

#define MAX_REPORTS 16
static struct {
	eq1_token token;
	eq1_status status;
	unsigned reason_code;
	char detail[256];
	char reason_string[128];
	size_t user_property_count;
} reports[MAX_REPORTS];
static int report_count;

static void on_report(void *user_data, const eq1_mqtt_delivery_report *r)
{
	(void)user_data;
	pthread_mutex_lock(&lock);
	if (report_count < MAX_REPORTS) {
		reports[report_count].token = r->token;
		reports[report_count].status = r->status;
		reports[report_count].reason_code = r->reason_code;
		snprintf(reports[report_count].detail, sizeof reports[0].detail, "%s", r->detail);
		snprintf(reports[report_count].reason_string, sizeof reports[0].reason_string, "%s",
			 r->reason_string ? r->reason_string : "(null)");
		reports[report_count].user_property_count = r->user_property_count;
		report_count++;
	}
	pthread_mutex_unlock(&lock);
}

static int find_report(eq1_token token)
{
	for (int i = 0; i < 500; i++) {
		pthread_mutex_lock(&lock);
		for (int k = 0; k < report_count; k++) {
			if (reports[k].token == token) {
				pthread_mutex_unlock(&lock);
				return k;
			}
		}
		pthread_mutex_unlock(&lock);
		pause_ms(10);
	}
	return -1;
}

/* ----- connection events ----- */

static char assigned_id[128], connack_client_id[128];
static int connected_events, has_keep_alive, has_receive_maximum, has_topic_alias_maximum;
static unsigned receive_maximum;

static void on_connection(void *user_data, const eq1_mqtt_connection_event *e)
{
	(void)user_data;
	pthread_mutex_lock(&lock);
	if (e->state == EQ1_CONNECTION_STATE_CONNECTED && e->connack) {
		connected_events++;
		snprintf(assigned_id, sizeof assigned_id, "%s",
			 e->connack->assigned_client_id ? e->connack->assigned_client_id : "");
		has_keep_alive = e->connack->has_server_keep_alive;
		has_receive_maximum = e->connack->has_receive_maximum;
		receive_maximum = e->connack->receive_maximum;
		has_topic_alias_maximum = e->connack->has_topic_alias_maximum;
	}
	pthread_mutex_unlock(&lock);
}

/* ----- messages ----- */

static int short_received, long_received, outbox_received, will_received;
static char will_payload[32];
static unsigned outbox_expiry;

static void on_message(void *user_data, const eq1_mqtt_message *m)
{
	(void)user_data;
	pthread_mutex_lock(&lock);
	if (!strcmp(m->topic, "r/short"))
		short_received++;
	if (!strcmp(m->topic, "r/long"))
		long_received++;
	if (!strcmp(m->topic, "will/gone")) {
		will_received++;
		snprintf(will_payload, sizeof will_payload, "%.*s", (int)m->payload_len,
			 (const char *)m->payload);
	}
	if (!strcmp(m->topic, "outbox/long")) {
		outbox_received++;
		outbox_expiry = m->properties && m->properties->has_message_expiry ?
					m->properties->message_expiry :
					0;
	}
	pthread_mutex_unlock(&lock);
}

static int read_count(int *counter, int want)
{
	for (int i = 0; i < 500; i++) {
		pthread_mutex_lock(&lock);
		int n = *counter;
		pthread_mutex_unlock(&lock);
		if (n >= want)
			return n;
		pause_ms(10);
	}
	pthread_mutex_lock(&lock);
	int n = *counter;
	pthread_mutex_unlock(&lock);
	return n;
}

static eq1_mqtt_options *v5_options(const char *host, int port, const char *id)
{
	eq1_mqtt_options *o = eq1_mqtt_options_new();
	eq1_mqtt_options_set_broker(o, host, port);
	eq1_mqtt_options_set_protocol_version(o, EQ1_MQTT_V5);
	if (id)
		eq1_mqtt_options_set_client_id(o, id);
	return o;
}

static eq1_mqtt_client *v5_client(eq1_mqtt_options *o)
{
	eq1_mqtt_client *c = NULL;
	EXPECT(eq1_mqtt_client_new(o, NULL, NULL, &c) == EQ1_STATUS_OK, "client_new");
	eq1_mqtt_options_free(o);
	return c;
}

static eq1_token publish_expiring(eq1_mqtt_client *c, const char *topic, int qos, bool retain,
				  uint32_t expiry)
{
	eq1_mqtt_properties p = { 0 };
	p.has_message_expiry = true;
	p.message_expiry = expiry;
	eq1_token t = 0;
	EXPECT(eq1_mqtt_client_publish_with_properties(c, topic, (const uint8_t *)"x", 1, qos,
						       retain, &p, &t) == EQ1_STATUS_OK,
	       "publish %s", topic);
	return t;
}

/* The broker's ACL lets this client write only "allowed/#": a publish elsewhere is answered
 * with PUBACK / PUBREC 0x87, which must reach the caller as a failed delivery with its code. */
static void acl(const char *host, int port)
{
	eq1_mqtt_client *c = v5_client(v5_options(host, port, "acl-client"));
	EXPECT(eq1_mqtt_client_set_delivery_report_callback(c, on_report) == EQ1_STATUS_OK,
	       "report callback");
	EXPECT(eq1_mqtt_client_connect(c, 5000) == EQ1_STATUS_OK, "connect");
	for (int qos = 1; qos <= 2; qos++) {
		eq1_token denied = 0, allowed = 0;
		EXPECT(eq1_mqtt_client_publish(c, "denied/x", (const uint8_t *)"no", 2, qos, false,
					       &denied) == EQ1_STATUS_OK,
		       "publish denied");
		EXPECT(eq1_mqtt_client_publish(c, "allowed/x", (const uint8_t *)"ok", 2, qos, false,
					       &allowed) == EQ1_STATUS_OK,
		       "publish allowed");
		uint8_t code = 0xEE;
		char reason[64] = "unset";
		eq1_status s = eq1_mqtt_client_wait_report(c, denied, 5000, &code, reason,
							  sizeof reason);
		EXPECT(s == EQ1_STATUS_PUBLISH_REFUSED, "qos %d wait_report status %d", qos, s);
		EXPECT(code == 0x87, "qos %d wait_report code 0x%02x", qos, code);
		char detail[256];
		eq1_last_error_message(detail, sizeof detail);
		EXPECT(strstr(detail, "not authorized (0x87)") != NULL, "detail '%s'", detail);
		EXPECT(eq1_mqtt_client_wait(c, denied, 5000) == EQ1_STATUS_PUBLISH_REFUSED,
		       "plain wait");
		int k = find_report(denied);
		EXPECT(k >= 0, "qos %d report for the denied publish", qos);
		if (k >= 0) {
			EXPECT(reports[k].status == EQ1_STATUS_PUBLISH_REFUSED, "report status %d",
			       reports[k].status);
			EXPECT(reports[k].reason_code == 0x87, "report code 0x%02x",
			       reports[k].reason_code);
			EXPECT(strstr(reports[k].detail, "not authorized") != NULL,
			       "report detail '%s'", reports[k].detail);
		}
		code = 0xEE;
		EXPECT(eq1_mqtt_client_wait_report(c, allowed, 5000, &code, NULL, 0) ==
			       EQ1_STATUS_OK,
		       "allowed publish delivered");
		/* mosquitto answers 0x10 when no one subscribes, or 0x00. */
		EXPECT(code == 0x00 || code == 0x10, "allowed code 0x%02x", code);
		k = find_report(allowed);
		EXPECT(k >= 0 && reports[k].status == EQ1_STATUS_OK, "allowed report");
	}
	EXPECT(eq1_mqtt_client_disconnect(c, 2000) == EQ1_STATUS_OK, "disconnect");
	eq1_mqtt_client_free(c);
}

/* An empty client id on MQTT 5.0: mosquitto assigns one; CONNACK says so, get_id returns it. */
static void connack(const char *host, int port)
{
	eq1_mqtt_options *o = v5_options(host, port, "");
	eq1_mqtt_client *c = v5_client(o);
	EXPECT(eq1_mqtt_client_set_connection_callback(c, on_connection) == EQ1_STATUS_OK,
	       "connection callback");
	EXPECT(eq1_mqtt_client_connect(c, 5000) == EQ1_STATUS_OK, "connect with empty id");
	EXPECT(read_count(&connected_events, 1) == 1, "connected event with CONNACK info");
	size_t n = eq1_mqtt_client_get_id(c, connack_client_id, sizeof connack_client_id);
	pthread_mutex_lock(&lock);
	EXPECT(n > 0 && strlen(assigned_id) > 0, "assigned id '%s'", assigned_id);
	EXPECT(!strcmp(assigned_id, connack_client_id), "get_id '%s' = assigned '%s'",
	       connack_client_id, assigned_id);
	printf("ASSIGNED %s\n", assigned_id);
	/* The broker's configuration (max_inflight_messages 7, see the test) is announced. */
	EXPECT(has_receive_maximum && receive_maximum == 7, "receive maximum %u (%d)",
	       receive_maximum, has_receive_maximum);
	pthread_mutex_unlock(&lock);
	EXPECT(eq1_mqtt_client_disconnect(c, 2000) == EQ1_STATUS_OK, "disconnect");
	eq1_mqtt_client_free(c);
}

/* eq1_mqtt_client_get_connack: NOT_CONNECTED before the first connect; afterwards a copy of
 * the CONNACK (assigned id, server keep-alive, every limit this broker announces) that stays
 * valid after disconnect and after the client is freed (valgrind checks the reads). */
static void connack_get(const char *host, int port)
{
	eq1_mqtt_options *o = v5_options(host, port, "");
	eq1_mqtt_options_set_keep_alive(o, 60);
	eq1_mqtt_client *c = v5_client(o);
	eq1_mqtt_connack_info *info = (eq1_mqtt_connack_info *)&info; /* reset on entry */
	EXPECT(eq1_mqtt_client_get_connack(c, &info) == EQ1_STATUS_NOT_CONNECTED,
	       "get_connack before any connect");
	EXPECT(info == NULL, "out reset to NULL");
	EXPECT(eq1_mqtt_client_get_connack(NULL, &info) == EQ1_STATUS_NULL_ARGUMENT,
	       "get_connack(NULL client)");
	EXPECT(eq1_mqtt_client_get_connack(c, NULL) == EQ1_STATUS_NULL_ARGUMENT,
	       "get_connack(NULL out)");
	eq1_mqtt_connack_info_free(NULL);
	EXPECT(eq1_mqtt_client_connect(c, 5000) == EQ1_STATUS_OK, "connect with empty id");
	EXPECT(eq1_mqtt_client_get_connack(c, &info) == EQ1_STATUS_OK && info != NULL,
	       "get_connack after connect");
	char id[128] = "";
	eq1_mqtt_client_get_id(c, id, sizeof id);
	EXPECT(eq1_mqtt_client_disconnect(c, 2000) == EQ1_STATUS_OK, "disconnect");
	/* The last CONNACK is still there once disconnected. */
	eq1_mqtt_connack_info *again = NULL;
	EXPECT(eq1_mqtt_client_get_connack(c, &again) == EQ1_STATUS_OK && again != NULL,
	       "get_connack after disconnect");
	eq1_mqtt_client_free(c);
	if (info != NULL) {
		EXPECT(!info->session_present, "no session present");
		EXPECT(info->assigned_client_id != NULL &&
			       !strncmp(info->assigned_client_id, "auto-", 5),
		       "assigned id '%s'",
		       info->assigned_client_id ? info->assigned_client_id : "(null)");
		EXPECT(info->assigned_client_id != NULL && !strcmp(info->assigned_client_id, id),
		       "assigned id = get_id '%s'", id);
		if (info->assigned_client_id)
			printf("ASSIGNED %s\n", info->assigned_client_id);
		EXPECT(info->has_server_keep_alive && info->server_keep_alive == 20,
		       "server keep-alive %u (%d)", info->server_keep_alive,
		       info->has_server_keep_alive);
		EXPECT(info->has_receive_maximum && info->receive_maximum == 7,
		       "receive maximum %u (%d)", info->receive_maximum, info->has_receive_maximum);
		EXPECT(info->has_maximum_qos && info->maximum_qos == 1, "maximum qos %u (%d)",
		       info->maximum_qos, info->has_maximum_qos);
		EXPECT(info->has_retain_available && !info->retain_available,
		       "retain available %d (%d)", info->retain_available,
		       info->has_retain_available);
		EXPECT(info->has_maximum_packet_size && info->maximum_packet_size == 2000,
		       "maximum packet size %u (%d)", info->maximum_packet_size,
		       info->has_maximum_packet_size);
		EXPECT(info->reason_string == NULL && info->server_reference == NULL,
		       "no reason string, no server reference");
	}
	if (again != NULL)
		EXPECT(again->assigned_client_id != NULL && !strcmp(again->assigned_client_id, id),
		       "second copy's assigned id");
	eq1_mqtt_connack_info_free(info);
	eq1_mqtt_connack_info_free(again);
}

static int marker_received;
static void on_limits_message(void *user_data, const eq1_mqtt_message *m)
{
	(void)user_data;
	pthread_mutex_lock(&lock);
	if (!strcmp(m->topic, "limits/marker"))
		marker_received++;
	pthread_mutex_unlock(&lock);
}

/* The broker's limits are obeyed before anything is sent: with Maximum QoS 1 a QoS 2 publish
 * is refused with EQ1_STATUS_QOS_NOT_SUPPORTED [MQTT-3.2.2-11], with Retain Available 0 a
 * retained publish with EQ1_STATUS_FEATURE_NOT_SUPPORTED [MQTT-3.2.2-14], and a publish above
 * the Maximum Packet Size with EQ1_STATUS_PAYLOAD_TOO_LARGE [MQTT-3.2.2-15]. A subscribe at
 * QoS 2 is granted QoS 1. A marker published afterwards arrives: the connection is fine, and
 * the test reads the broker's log to see that none of the refused publishes reached it. */
static void limits(const char *host, int port)
{
	eq1_mqtt_client *c = v5_client(v5_options(host, port, "limits-client"));
	EXPECT(eq1_mqtt_client_connect(c, 5000) == EQ1_STATUS_OK, "connect");
	int granted = -1;
	EXPECT(eq1_mqtt_client_subscribe(c, "limits/#", 2, on_limits_message, NULL, 5000,
					 &granted) == EQ1_STATUS_OK,
	       "subscribe at QoS 2");
	EXPECT(granted == 1, "granted QoS %d (the broker's maximum is 1)", granted);
	eq1_token t = 0;
	char detail[256];
	eq1_status s = eq1_mqtt_client_publish(c, "limits/qos2", (const uint8_t *)"x", 1, 2,
					       false, &t);
	EXPECT(s == EQ1_STATUS_QOS_NOT_SUPPORTED && t == 0, "QoS 2 publish: status %d", s);
	eq1_last_error_message(detail, sizeof detail);
	EXPECT(strstr(detail, "maximum QoS is 1") != NULL, "QoS detail '%s'", detail);
	s = eq1_mqtt_client_publish(c, "limits/retained", (const uint8_t *)"x", 1, 1, true, &t);
	EXPECT(s == EQ1_STATUS_FEATURE_NOT_SUPPORTED && t == 0, "retained publish: status %d", s);
	eq1_last_error_message(detail, sizeof detail);
	EXPECT(strstr(detail, "retained") != NULL, "retain detail '%s'", detail);
	static uint8_t big[2000];
	memset(big, 'b', sizeof big);
	s = eq1_mqtt_client_publish(c, "limits/big", big, sizeof big, 1, false, &t);
	EXPECT(s == EQ1_STATUS_PAYLOAD_TOO_LARGE && t == 0, "oversize publish: status %d", s);
	eq1_last_error_message(detail, sizeof detail);
	EXPECT(strstr(detail, "maximum packet size is 2000") != NULL, "size detail '%s'", detail);
	/* Within the limits: QoS 1, not retained, 1,900 bytes, goes out and comes back. */
	s = eq1_mqtt_client_publish(c, "limits/marker", big, 1900, 1, false, &t);
	EXPECT(s == EQ1_STATUS_OK, "marker publish: status %d", s);
	EXPECT(eq1_mqtt_client_wait(c, t, 5000) == EQ1_STATUS_OK, "marker delivered");
	EXPECT(read_count(&marker_received, 1) == 1, "marker received");
	EXPECT(eq1_mqtt_client_is_connected(c), "still connected");
	EXPECT(eq1_mqtt_client_disconnect(c, 2000) == EQ1_STATUS_OK, "disconnect");
	eq1_mqtt_client_free(c);
}

/* A retained message whose expiry passed is not delivered to a late subscriber; one with a
 * long expiry is. */
static void retained(const char *host, int port)
{
	eq1_mqtt_client *c = v5_client(v5_options(host, port, "retainer"));
	EXPECT(eq1_mqtt_client_connect(c, 5000) == EQ1_STATUS_OK, "connect");
	EXPECT(eq1_mqtt_client_wait(c, publish_expiring(c, "r/short", 1, true, 1), 5000) ==
		       EQ1_STATUS_OK,
	       "short retained");
	EXPECT(eq1_mqtt_client_wait(c, publish_expiring(c, "r/long", 1, true, 600), 5000) ==
		       EQ1_STATUS_OK,
	       "long retained");
	pause_ms(2500);
	/* Subscribed in this order: mosquitto would send r/short's retained copy before r/long's,
	 * so once r/long arrived, r/short is known not to come. */
	EXPECT(eq1_mqtt_client_subscribe(c, "r/short", 1, on_message, NULL, 5000, NULL) ==
		       EQ1_STATUS_OK,
	       "subscribe short");
	EXPECT(eq1_mqtt_client_subscribe(c, "r/long", 1, on_message, NULL, 5000, NULL) ==
		       EQ1_STATUS_OK,
	       "subscribe long");
	EXPECT(read_count(&long_received, 1) == 1, "long-lived retained message delivered");
	pthread_mutex_lock(&lock);
	EXPECT(short_received == 0, "expired retained message delivered %d times",
	       short_received);
	pthread_mutex_unlock(&lock);
	eq1_mqtt_client_disconnect(c, 2000);
	eq1_mqtt_client_free(c);
}

/* Queued before connecting: a message with a 1 s expiry that waits 2.5 s is dropped with
 * EQ1_STATUS_EXPIRED; one with 600 s goes out with the remaining interval. */
static void outbox(const char *host, int port)
{
	eq1_mqtt_client *sub = v5_client(v5_options(host, port, "outbox-sub"));
	EXPECT(eq1_mqtt_client_connect(sub, 5000) == EQ1_STATUS_OK, "subscriber connect");
	EXPECT(eq1_mqtt_client_subscribe(sub, "outbox/#", 1, on_message, NULL, 5000, NULL) ==
		       EQ1_STATUS_OK,
	       "subscribe");

	eq1_mqtt_options *o = v5_options(host, port, "outbox-pub");
	eq1_mqtt_options_set_offline_queue(o, 100, 1 << 20, EQ1_QUEUE_REJECT_NEW, true);
	eq1_mqtt_client *c = v5_client(o);
	EXPECT(eq1_mqtt_client_set_delivery_report_callback(c, on_report) == EQ1_STATUS_OK,
	       "report callback");
	eq1_token short_token = publish_expiring(c, "outbox/short", 1, false, 1);
	eq1_token long_token = publish_expiring(c, "outbox/long", 1, false, 600);
	pause_ms(2500);
	EXPECT(eq1_mqtt_client_connect(c, 5000) == EQ1_STATUS_OK, "connect");
	eq1_status s = eq1_mqtt_client_wait(c, short_token, 5000);
	EXPECT(s == EQ1_STATUS_EXPIRED, "short message status %d", s);
	char detail[256];
	eq1_last_error_message(detail, sizeof detail);
	EXPECT(strstr(detail, "expired") != NULL, "detail '%s'", detail);
	int k = find_report(short_token);
	EXPECT(k >= 0 && reports[k].status == EQ1_STATUS_EXPIRED, "expired report");
	EXPECT(eq1_mqtt_client_wait(c, long_token, 5000) == EQ1_STATUS_OK, "long delivered");
	EXPECT(read_count(&outbox_received, 1) == 1, "long message received");
	pthread_mutex_lock(&lock);
	EXPECT(outbox_expiry > 0 && outbox_expiry <= 598, "remaining interval %u", outbox_expiry);
	pthread_mutex_unlock(&lock);
	eq1_mqtt_client_disconnect(c, 2000);
	eq1_mqtt_client_free(c);
	eq1_mqtt_client_disconnect(sub, 2000);
	eq1_mqtt_client_free(sub);
}

/* DISCONNECT with reason 0x04 ("disconnect with will message"), a session expiry change and
 * user properties: mosquitto publishes the will, which a normal DISCONNECT would discard. */
static void will(const char *host, int port)
{
	eq1_mqtt_client *sub = v5_client(v5_options(host, port, "will-watcher"));
	EXPECT(eq1_mqtt_client_connect(sub, 5000) == EQ1_STATUS_OK, "watcher connect");
	EXPECT(eq1_mqtt_client_subscribe(sub, "will/gone", 1, on_message, NULL, 5000, NULL) ==
		       EQ1_STATUS_OK,
	       "subscribe will/gone");
	eq1_mqtt_options *o = v5_options(host, port, "will-leaver");
	EXPECT(eq1_mqtt_options_set_session_expiry(o, 60) == EQ1_STATUS_OK, "session expiry");
	eq1_mqtt_client *c = v5_client(o);
	EXPECT(eq1_mqtt_client_set_will(c, "will/gone", (const uint8_t *)"bye", 3, 1, false) ==
		       EQ1_STATUS_OK,
	       "set will");
	EXPECT(eq1_mqtt_client_connect(c, 5000) == EQ1_STATUS_OK, "connect");
	eq1_mqtt_user_property props[] = { { "why", "test" } };
	EXPECT(eq1_mqtt_client_disconnect_with(c, 0x04, true, 0, props, 1, 2000) == EQ1_STATUS_OK,
	       "disconnect with will");
	EXPECT(read_count(&will_received, 1) == 1, "the broker published the will");
	pthread_mutex_lock(&lock);
	EXPECT(!strcmp(will_payload, "bye"), "will payload '%s'", will_payload);
	pthread_mutex_unlock(&lock);
	EXPECT(eq1_mqtt_client_disconnect_with(c, 0, false, 0, NULL, 0, 2000) ==
		       EQ1_STATUS_NOT_CONNECTED,
	       "second disconnect");
	eq1_mqtt_client_free(c);
	eq1_mqtt_client_disconnect(sub, 2000);
	eq1_mqtt_client_free(sub);
}

/* Bad input at the C boundary of the new functions. */
static void bad_input(const char *host, int port)
{
	char detail[256];
	uint8_t code = 0xEE;
	char buf[8] = "xx";
	EXPECT(eq1_mqtt_client_set_delivery_report_callback(NULL, on_report) ==
		       EQ1_STATUS_NULL_ARGUMENT,
	       "report callback on NULL");
	EXPECT(eq1_mqtt_client_wait_report(NULL, 1, 0, &code, buf, sizeof buf) ==
		       EQ1_STATUS_NULL_ARGUMENT,
	       "wait_report on NULL");
	EXPECT(code == 0 && buf[0] == '\0', "out-params reset on entry");
	eq1_mqtt_client *c = v5_client(v5_options(host, port, "bad-input"));
	EXPECT(eq1_mqtt_client_wait_report(c, 1, 0, NULL, NULL, 5) == EQ1_STATUS_NULL_ARGUMENT,
	       "NULL reason buffer with a length");
	eq1_last_error_message(detail, sizeof detail);
	EXPECT(strstr(detail, "reason_buf") != NULL, "detail '%s'", detail);
	EXPECT(eq1_mqtt_client_wait_report(c, 99, 0, &code, buf, sizeof buf) ==
		       EQ1_STATUS_INVALID_ARGUMENT,
	       "never-issued token");
	EXPECT(eq1_mqtt_client_wait_report(c, 1, -1, NULL, NULL, 0) == EQ1_STATUS_INVALID_ARGUMENT,
	       "negative timeout");
	EXPECT(eq1_mqtt_client_set_delivery_report_callback(c, NULL) == EQ1_STATUS_OK,
	       "remove report callback");
	/* Will properties and delay. */
	eq1_mqtt_properties wp = { 0 };
	EXPECT(eq1_mqtt_client_set_will_with_properties(NULL, "w", NULL, 0, 1, false, &wp, 5) ==
		       EQ1_STATUS_NULL_ARGUMENT,
	       "will on NULL client");
	EXPECT(eq1_mqtt_client_set_will_with_properties(c, NULL, NULL, 0, 1, false, &wp, 5) ==
		       EQ1_STATUS_NULL_ARGUMENT,
	       "will with NULL topic");
	EXPECT(eq1_mqtt_client_set_will_with_properties(c, "w/+", NULL, 0, 1, false, &wp, 5) ==
		       EQ1_STATUS_INVALID_TOPIC,
	       "will with a wildcard topic");
	EXPECT(eq1_mqtt_client_set_will_with_properties(c, "w", NULL, 0, 3, false, &wp, 5) ==
		       EQ1_STATUS_INVALID_QOS,
	       "will with QoS 3");
	wp.content_type = "\xc3\x28";
	EXPECT(eq1_mqtt_client_set_will_with_properties(c, "w", NULL, 0, 1, false, &wp, 5) ==
		       EQ1_STATUS_INVALID_UTF8,
	       "will with an invalid UTF-8 content type");
	wp = (eq1_mqtt_properties){ 0 };
	wp.correlation_data_len = 4;
	EXPECT(eq1_mqtt_client_set_will_with_properties(c, "w", NULL, 0, 1, false, &wp, 5) ==
		       EQ1_STATUS_NULL_ARGUMENT,
	       "will with NULL correlation data of length 4");
	wp = (eq1_mqtt_properties){ 0 };
	static uint8_t big[70000];
	EXPECT(eq1_mqtt_client_set_will_with_properties(c, "w", big, sizeof big, 1, false, &wp, 5) ==
		       EQ1_STATUS_PAYLOAD_TOO_LARGE,
	       "oversize will payload");
	wp.has_message_expiry = true;
	wp.message_expiry = 30;
	EXPECT(eq1_mqtt_client_set_will_with_properties(c, "w", (const uint8_t *)"x", 1, 1, false,
							&wp, 5) == EQ1_STATUS_OK,
	       "valid will");
	eq1_mqtt_options *o3 = eq1_mqtt_options_new();
	eq1_mqtt_options_set_broker(o3, host, port);
	eq1_mqtt_client *c3 = v5_client(o3);
	EXPECT(eq1_mqtt_client_set_will_with_properties(c3, "w", NULL, 0, 1, false, NULL, 5) ==
		       EQ1_STATUS_INVALID_ARGUMENT,
	       "will delay on MQTT 3.1.1");
	EXPECT(eq1_mqtt_client_set_will_with_properties(c3, "w", NULL, 0, 1, false, NULL, 0) ==
		       EQ1_STATUS_OK,
	       "no properties, no delay on MQTT 3.1.1");
	/* DISCONNECT options on MQTT 3.1.1. */
	EXPECT(eq1_mqtt_client_disconnect_with(c3, 0x04, false, 0, NULL, 0, 100) ==
		       EQ1_STATUS_MQTT5_REQUIRED,
	       "disconnect reason on MQTT 3.1.1");
	EXPECT(eq1_mqtt_client_disconnect_with(c3, 0, true, 0, NULL, 0, 100) ==
		       EQ1_STATUS_MQTT5_REQUIRED,
	       "disconnect session expiry on MQTT 3.1.1");
	eq1_mqtt_client_free(c3);
	/* DISCONNECT options (checked before the client's state). */
	eq1_mqtt_user_property bad_props[] = { { "k", "\xc3\x28" } };
	eq1_mqtt_user_property null_props[] = { { NULL, "v" } };
	EXPECT(eq1_mqtt_client_disconnect_with(NULL, 0, false, 0, NULL, 0, 100) ==
		       EQ1_STATUS_NULL_ARGUMENT,
	       "disconnect_with on NULL");
	EXPECT(eq1_mqtt_client_disconnect_with(c, 0, false, 0, NULL, 2, 100) ==
		       EQ1_STATUS_NULL_ARGUMENT,
	       "NULL user properties with a count");
	eq1_last_error_message(detail, sizeof detail);
	EXPECT(strstr(detail, "user_properties") != NULL, "detail '%s'", detail);
	EXPECT(eq1_mqtt_client_disconnect_with(c, 0, false, 0, null_props, 1, 100) ==
		       EQ1_STATUS_NULL_ARGUMENT,
	       "NULL user property name");
	EXPECT(eq1_mqtt_client_disconnect_with(c, 0, false, 0, bad_props, 1, 100) ==
		       EQ1_STATUS_INVALID_UTF8,
	       "invalid UTF-8 user property");
	EXPECT(eq1_mqtt_client_disconnect_with(c, 0x8E, false, 0, NULL, 0, 100) ==
		       EQ1_STATUS_INVALID_ARGUMENT,
	       "server-only reason 0x8E");
	eq1_last_error_message(detail, sizeof detail);
	EXPECT(strstr(detail, "0x8E") != NULL, "detail '%s'", detail);
	EXPECT(eq1_mqtt_client_disconnect_with(c, 0, true, 10, NULL, 0, 100) ==
		       EQ1_STATUS_INVALID_ARGUMENT,
	       "session expiry 0 -> 10");
	EXPECT(eq1_mqtt_client_disconnect_with(c, 0, false, 0, NULL, 0, -1) ==
		       EQ1_STATUS_INVALID_ARGUMENT,
	       "negative timeout");
	EXPECT(eq1_mqtt_client_disconnect_with(c, 0x04, false, 0, NULL, 0, 100) ==
		       EQ1_STATUS_NOT_CONNECTED,
	       "valid disconnect while idle");
	EXPECT(eq1_mqtt_options_set_follow_redirects(NULL, true) == EQ1_STATUS_NULL_ARGUMENT,
	       "follow_redirects on NULL options");
	EXPECT(eq1_status_family_of(EQ1_STATUS_SERVER_MOVED) == EQ1_STATUS_FAMILY_CONNECTION,
	       "SERVER_MOVED family");
	EXPECT(!strcmp(eq1_status_name(EQ1_STATUS_SERVER_MOVED), "EQ1_STATUS_SERVER_MOVED"),
	       "SERVER_MOVED name");
	EXPECT(eq1_status_family_of(EQ1_STATUS_EXPIRED) == EQ1_STATUS_FAMILY_CONNECTION,
	       "EXPIRED family");
	EXPECT(!strcmp(eq1_status_name(EQ1_STATUS_EXPIRED), "EQ1_STATUS_EXPIRED"),
	       "EXPIRED name");
	eq1_mqtt_client_free(c);
}

/* ----- server redirection ----- */

static int redirect_port_seen, redirect_received;

static void on_redirect_connection(void *user_data, const eq1_mqtt_connection_event *e)
{
	(void)user_data;
	pthread_mutex_lock(&lock);
	if (e->state == EQ1_CONNECTION_STATE_CONNECTED)
		redirect_port_seen = e->broker_port;
	pthread_mutex_unlock(&lock);
}

static void on_redirect_message(void *user_data, const eq1_mqtt_message *m)
{
	(void)user_data;
	pthread_mutex_lock(&lock);
	if (!strcmp(m->topic, "moved/c") && m->payload_len == 4 && !memcmp(m->payload, "here", 4))
		redirect_received++;
	pthread_mutex_unlock(&lock);
}

/* The front at <front port> refuses the CONNECT with CONNACK 0x9C "use another server" and the
 * Server Reference "<host>:<referenced port>" (a mosquitto). Following redirects, the connect
 * ends at that mosquitto (publish round trip through it); not following, it fails with
 * EQ1_STATUS_SERVER_MOVED naming the reference and the client stays unconnected. */
static void redirect(const char *host, int front_port, int referenced_port, bool follow)
{
	eq1_mqtt_options *o = v5_options(host, front_port, follow ? "redirect-follow" :
								     "redirect-stay");
	EXPECT(eq1_mqtt_options_set_follow_redirects(o, follow) == EQ1_STATUS_OK,
	       "set_follow_redirects");
	EXPECT(eq1_mqtt_options_set_reconnect(o, false, 100, 1000) == EQ1_STATUS_OK,
	       "no automatic reconnect");
	eq1_mqtt_client *c = v5_client(o);
	EXPECT(eq1_mqtt_client_set_connection_callback(c, on_redirect_connection) ==
		       EQ1_STATUS_OK,
	       "connection callback");
	eq1_status s = eq1_mqtt_client_connect(c, 20000);
	char reference[64];
	snprintf(reference, sizeof reference, "%s:%d", host, referenced_port);
	if (follow) {
		EXPECT(s == EQ1_STATUS_OK, "connect follows the redirect: status %d", s);
		EXPECT(eq1_mqtt_client_is_connected(c), "connected");
		int granted = -1;
		EXPECT(eq1_mqtt_client_subscribe(c, "moved/c", 1, on_redirect_message, NULL, 5000,
						 &granted) == EQ1_STATUS_OK,
		       "subscribe at the referenced broker");
		eq1_token t = 0;
		EXPECT(eq1_mqtt_client_publish(c, "moved/c", (const uint8_t *)"here", 4, 1, false,
					       &t) == EQ1_STATUS_OK,
		       "publish");
		EXPECT(eq1_mqtt_client_wait(c, t, 5000) == EQ1_STATUS_OK, "publish delivered");
		EXPECT(read_count(&redirect_received, 1) == 1, "own message back");
		pthread_mutex_lock(&lock);
		EXPECT(redirect_port_seen == referenced_port, "connected event names port %d",
		       redirect_port_seen);
		pthread_mutex_unlock(&lock);
		EXPECT(eq1_mqtt_client_disconnect(c, 2000) == EQ1_STATUS_OK, "disconnect");
	} else {
		EXPECT(s == EQ1_STATUS_SERVER_MOVED, "connect without following: status %d", s);
		char detail[256];
		eq1_last_error_message(detail, sizeof detail);
		EXPECT(strstr(detail, reference) != NULL, "detail '%s' names '%s'", detail,
		       reference);
		EXPECT(!eq1_mqtt_client_is_connected(c), "not connected");
		pthread_mutex_lock(&lock);
		EXPECT(redirect_port_seen == 0, "no connected event (port %d)", redirect_port_seen);
		pthread_mutex_unlock(&lock);
	}
	eq1_mqtt_client_free(c);
}

int main(int argc, char **argv)
{
	if (argc < 4)
		return 64;
	const char *mode = argv[1], *host = argv[2];
	int port = atoi(argv[3]);
	if (!strcmp(mode, "acl"))
		acl(host, port);
	else if (!strcmp(mode, "connack"))
		connack(host, port);
	else if (!strcmp(mode, "connack-get"))
		connack_get(host, port);
	else if (!strcmp(mode, "limits"))
		limits(host, port);
	else if (!strcmp(mode, "retained"))
		retained(host, port);
	else if (!strcmp(mode, "outbox"))
		outbox(host, port);
	else if (!strcmp(mode, "will"))
		will(host, port);
	else if (!strcmp(mode, "bad-input"))
		bad_input(host, port);
	else if (!strcmp(mode, "redirect-follow") && argc > 4)
		redirect(host, port, atoi(argv[4]), true);
	else if (!strcmp(mode, "redirect-stay") && argc > 4)
		redirect(host, port, atoi(argv[4]), false);
	else
		return 64;
	printf("SUMMARY %d failures\n", failures);
	return failures ? 1 : 0;
}
