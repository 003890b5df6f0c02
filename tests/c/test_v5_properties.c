/*
 * test_v5_properties.c - MQTT 5.0 PUBLISH properties through a real mosquitto: every property
 * set on a publish comes back on the subscription; bad properties are refused with their own
 * status; a 3.1.1 client refuses properties.   ./test_v5_properties <host> <port>
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eq1.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int received, failures;
static char got_content_type[64], got_response_topic[64], got_names[128], got_values[128];
static unsigned char got_correlation[16];
static size_t got_correlation_len, got_user_count;
static int got_has_format, got_utf8, got_has_expiry, got_null_properties;
static unsigned got_expiry;

#define EXPECT(cond, ...)                                                          \
	do {                                                                       \
		if (!(cond)) {                                                     \
			failures++;                                                \
			printf("FAIL %s:%d: ", __FILE__, __LINE__);                \
			printf(__VA_ARGS__);                                       \
			printf("\n");                                              \
		}                                                                  \
	} while (0)

static void on_message(void *user_data, const eq1_mqtt_message *msg)
{
	(void)user_data;
	pthread_mutex_lock(&lock);
	const eq1_mqtt_properties *p = msg->properties;
	if (!p) {
		got_null_properties++;
	} else {
		got_has_format = p->has_payload_format;
		got_utf8 = p->payload_is_utf8;
		got_has_expiry = p->has_message_expiry;
		got_expiry = p->message_expiry;
		snprintf(got_content_type, sizeof got_content_type, "%s",
			 p->content_type ? p->content_type : "(null)");
		snprintf(got_response_topic, sizeof got_response_topic, "%s",
			 p->response_topic ? p->response_topic : "(null)");
		got_correlation_len = p->correlation_data_len;
		if (p->correlation_data_len <= sizeof got_correlation)
			memcpy(got_correlation, p->correlation_data, p->correlation_data_len);
		got_user_count = p->user_property_count;
		got_names[0] = got_values[0] = '\0';
		for (size_t i = 0; i < p->user_property_count; i++) {
			strncat(got_names, p->user_properties[i].name, 20);
			strncat(got_names, ";", 2);
			strncat(got_values, p->user_properties[i].value, 20);
			strncat(got_values, ";", 2);
		}
	}
	received++;
	pthread_mutex_unlock(&lock);
}

static void wait_received(int n)
{
	for (int i = 0; i < 500; i++) {
		pthread_mutex_lock(&lock);
		int r = received;
		pthread_mutex_unlock(&lock);
		if (r >= n)
			return;
		nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
	}
}

static eq1_mqtt_client *client_for(const char *host, int port, int version)
{
	eq1_mqtt_options *o = eq1_mqtt_options_new();
	eq1_mqtt_options_set_broker(o, host, port);
	eq1_mqtt_options_set_protocol_version(o, version);
	eq1_mqtt_client *c = NULL;
	EXPECT(eq1_mqtt_client_new(o, NULL, NULL, &c) == EQ1_STATUS_OK, "client_new");
	eq1_mqtt_options_free(o);
	EXPECT(eq1_mqtt_client_connect(c, 5000) == EQ1_STATUS_OK, "connect v%d", version);
	return c;
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return 64;
	const char *host = argv[1];
	int port = atoi(argv[2]);
	eq1_mqtt_client *c = client_for(host, port, EQ1_MQTT_V5);
	EXPECT(eq1_mqtt_client_subscribe(c, "props/#", 1, on_message, NULL, 5000, NULL) ==
		       EQ1_STATUS_OK,
	       "subscribe");

	/* Every property, through the broker and back. */
	eq1_mqtt_user_property users[] = { { "site", "plant-7" }, { "unit", "°C" } };
	const unsigned char correlation[] = { 0x00, 0x01, 0xfe, 0xff };
	eq1_mqtt_properties props = { 0 };
	props.has_payload_format = true;
	props.payload_is_utf8 = true;
	props.has_message_expiry = true;
	props.message_expiry = 3600;
	props.content_type = "application/json";
	props.response_topic = "props/reply";
	props.correlation_data = correlation;
	props.correlation_data_len = sizeof correlation;
	props.user_properties = users;
	props.user_property_count = 2;
	const char *text = "{\"t\":21.5}";
	eq1_token token = 0;
	EXPECT(eq1_mqtt_client_publish_with_properties(c, "props/full", (const uint8_t *)text,
						       strlen(text), 1, false, &props,
						       &token) == EQ1_STATUS_OK,
	       "publish with properties");
	EXPECT(eq1_mqtt_client_wait(c, token, 5000) == EQ1_STATUS_OK, "acknowledged");
	wait_received(1);
	pthread_mutex_lock(&lock);
	EXPECT(received == 1 && got_null_properties == 0, "message with properties arrived");
	EXPECT(got_has_format && got_utf8, "payload format indicator");
	/* mosquitto forwards the remaining expiry: at most what was sent, and close to it. */
	EXPECT(got_has_expiry && got_expiry <= 3600 && got_expiry >= 3590, "expiry %u", got_expiry);
	EXPECT(!strcmp(got_content_type, "application/json"), "content type '%s'", got_content_type);
	EXPECT(!strcmp(got_response_topic, "props/reply"), "response topic '%s'",
	       got_response_topic);
	EXPECT(got_correlation_len == 4 && !memcmp(got_correlation, correlation, 4),
	       "correlation data");
	EXPECT(got_user_count == 2 && !strcmp(got_names, "site;unit;") &&
		       !strcmp(got_values, "plant-7;°C;"),
	       "user properties '%s' '%s'", got_names, got_values);
	pthread_mutex_unlock(&lock);

	/* No properties: the message says so with NULL. */
	EXPECT(eq1_mqtt_client_publish(c, "props/none", (const uint8_t *)"x", 1, 1, false,
				       &token) == EQ1_STATUS_OK,
	       "plain publish");
	eq1_mqtt_client_wait(c, token, 5000);
	wait_received(2);
	pthread_mutex_lock(&lock);
	EXPECT(received == 2 && got_null_properties == 1, "plain message has NULL properties");
	pthread_mutex_unlock(&lock);

	/* Bad properties: each refused with its own status, nothing queued. */
	eq1_mqtt_properties bad = { 0 };
	bad.content_type = "\xff\xfe";
	EXPECT(eq1_mqtt_client_publish_with_properties(c, "props/bad", NULL, 0, 1, false, &bad,
						       NULL) == EQ1_STATUS_INVALID_UTF8,
	       "invalid UTF-8 content type");
	bad = (eq1_mqtt_properties){ 0 };
	bad.response_topic = "reply/+";
	EXPECT(eq1_mqtt_client_publish_with_properties(c, "props/bad", NULL, 0, 1, false, &bad,
						       NULL) == EQ1_STATUS_INVALID_TOPIC,
	       "wildcard response topic");
	bad = (eq1_mqtt_properties){ 0 };
	bad.user_property_count = 1;
	EXPECT(eq1_mqtt_client_publish_with_properties(c, "props/bad", NULL, 0, 1, false, &bad,
						       NULL) == EQ1_STATUS_NULL_ARGUMENT,
	       "user properties NULL with a count");
	eq1_mqtt_user_property half[] = { { "name", NULL } };
	bad.user_properties = half;
	EXPECT(eq1_mqtt_client_publish_with_properties(c, "props/bad", NULL, 0, 1, false, &bad,
						       NULL) == EQ1_STATUS_NULL_ARGUMENT,
	       "user property without a value");
	char detail[256];
	eq1_last_error_message(detail, sizeof detail);
	EXPECT(strstr(detail, "user property 0 value") != NULL, "detail '%s'", detail);
	EXPECT(eq1_mqtt_client_disconnect(c, 2000) == EQ1_STATUS_OK, "disconnect");
	eq1_mqtt_client_free(c);

	/* A 3.1.1 client cannot send properties. */
	eq1_mqtt_client *old = client_for(host, port, EQ1_MQTT_V311);
	EXPECT(eq1_mqtt_client_publish_with_properties(old, "props/v3", NULL, 0, 1, false,
						       &props, NULL) ==
		       EQ1_STATUS_INVALID_ARGUMENT,
	       "properties on MQTT 3.1.1");
	eq1_mqtt_client_disconnect(old, 2000);
	eq1_mqtt_client_free(old);

	printf("SUMMARY %d failures\n", failures);
	return failures ? 1 : 0;
}
