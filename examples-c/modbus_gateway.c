/*
 * modbus_gateway.c - a small Modbus-to-MQTT gateway: polls holding registers of a Modbus TCP
 * device every 100 ms and publishes each change to MQTT as JSON; a retained will reports the
 * gateway's own status ("offline" if it vanishes, "online" while it runs).
 *
 *   ./modbus_gateway MODBUS_HOST MODBUS_PORT MQTT_HOST MQTT_PORT [ADDRESS COUNT [POLLS]]
 *     publishes  gateway/registers = {"address":A,"values":[...]}   (QoS 1, on change)
 *                gateway/status    = {"status":"online"} / "offline", retained; the will is
 *                                    {"status":"offline"}; a failed poll publishes
 *                                    {"status":"modbus-error","error":"<status name>"}
 *   POLLS (default 0 = forever) stops it after that many polls.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eq1.h"

#define STATUS_TOPIC "gateway/status"
#define REGISTERS_TOPIC "gateway/registers"

static int check(const char *what, eq1_status rc)
{
	if (rc == EQ1_STATUS_OK)
		return 0;
	char detail[256];
	eq1_last_error_message(detail, sizeof detail);
	fprintf(stderr, "%s failed: %s (%s)\n", what, eq1_status_str(rc), detail);
	return 1;
}

static eq1_status publish(eq1_mqtt_client *mqtt, const char *topic, const char *json, bool retain)
{
	eq1_token token = 0;
	return eq1_mqtt_client_publish(mqtt, topic, (const uint8_t *)json, strlen(json), 1, retain,
				       &token);
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: %s MODBUS_HOST MODBUS_PORT MQTT_HOST MQTT_PORT "
				"[ADDRESS COUNT [POLLS]]\n", argv[0]);
		return 2;
	}
	int address = argc > 5 ? atoi(argv[5]) : 0;
	int count = argc > 6 ? atoi(argv[6]) : 10;
	long polls = argc > 7 ? atol(argv[7]) : 0;
	if (count < 1 || count > 125) {
		fprintf(stderr, "COUNT must be 1..125\n");
		return 2;
	}

	eq1_modbus_options *mo = eq1_modbus_options_new();
	eq1_modbus_client *modbus = NULL;
	eq1_status rc = eq1_modbus_options_set_tcp(mo, argv[1], atoi(argv[2]));
	if (rc == EQ1_STATUS_OK)
		rc = eq1_modbus_options_set_timeout(mo, 500);
	if (rc == EQ1_STATUS_OK)
		rc = eq1_modbus_client_new(mo, &modbus);
	eq1_modbus_options_free(mo);
	if (check("modbus client", rc))
		return 1;

	eq1_mqtt_options *qo = eq1_mqtt_options_new();
	eq1_mqtt_options_set_broker(qo, argv[3], atoi(argv[4]));
	eq1_mqtt_options_set_client_id(qo, "modbus-gateway");
	eq1_mqtt_client *mqtt = NULL;
	rc = eq1_mqtt_client_new(qo, NULL, NULL, &mqtt);
	eq1_mqtt_options_free(qo);
	if (check("mqtt client", rc)) {
		eq1_modbus_client_free(modbus);
		return 1;
	}
	const char *offline = "{\"status\":\"offline\"}";
	if (check("set_will", eq1_mqtt_client_set_will(mqtt, STATUS_TOPIC, (const uint8_t *)offline,
						       strlen(offline), 1, true)) ||
	    check("mqtt connect", eq1_mqtt_client_connect(mqtt, 5000)) ||
	    check("publish online", publish(mqtt, STATUS_TOPIC, "{\"status\":\"online\"}", true))) {
		eq1_mqtt_client_free(mqtt);
		eq1_modbus_client_free(modbus);
		return 1;
	}
	/* Not fatal: the device may come later; every poll reconnects when needed. */
	check("modbus connect", eq1_modbus_client_connect(modbus));

	uint16_t last[125], now[125];
	bool have_last = false, failing = false;
	for (long n = 0; polls == 0 || n < polls; n++) {
		rc = eq1_modbus_read_holding_registers(modbus, EQ1_MODBUS_DEFAULT_UNIT, address, count,
						       now, 125, NULL);
		if (rc != EQ1_STATUS_OK) {
			if (!failing) {
				char json[160];
				snprintf(json, sizeof json,
					 "{\"status\":\"modbus-error\",\"error\":\"%s\"}",
					 eq1_status_name((int)rc));
				publish(mqtt, STATUS_TOPIC, json, true);
				failing = true;
			}
		} else {
			if (failing) {
				publish(mqtt, STATUS_TOPIC, "{\"status\":\"online\"}", true);
				failing = false;
			}
			if (!have_last || memcmp(now, last, sizeof(uint16_t) * (size_t)count) != 0) {
				char json[1024];
				int len = snprintf(json, sizeof json, "{\"address\":%d,\"values\":[",
						   address);
				for (int i = 0; i < count; i++)
					len += snprintf(json + len, sizeof json - (size_t)len, "%s%u",
							i ? "," : "", now[i]);
				snprintf(json + len, sizeof json - (size_t)len, "]}");
				if (check("publish registers", publish(mqtt, REGISTERS_TOPIC, json, false)))
					break;
				printf("published %s\n", json);
				fflush(stdout);
				memcpy(last, now, sizeof(uint16_t) * (size_t)count);
				have_last = true;
			}
		}
		nanosleep(&(struct timespec){ .tv_nsec = 100 * 1000000L }, NULL);
	}

	/* A clean leaver says "offline" itself: the broker drops the will on DISCONNECT. */
	eq1_token token = 0;
	rc = eq1_mqtt_client_publish(mqtt, STATUS_TOPIC, (const uint8_t *)offline, strlen(offline), 1,
				     true, &token);
	if (rc == EQ1_STATUS_OK)
		rc = eq1_mqtt_client_wait(mqtt, token, 5000);
	check("publish offline", rc);
	check("mqtt disconnect", eq1_mqtt_client_disconnect(mqtt, 5000));
	eq1_mqtt_client_free(mqtt);
	eq1_modbus_client_disconnect(modbus);
	eq1_modbus_client_free(modbus);
	return 0;
}
