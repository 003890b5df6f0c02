/*
 * bench_modbus.c - Modbus TCP requests/s and latency (p50/p99) of sequential "read 10 holding
 * registers" requests. Built twice by scripts/bench-modbus.sh: against libeq1, and with
 * -DBENCH_LIBMODBUS against Debian's libmodbus (when installed).
 *
 *   bench_modbus HOST PORT N     prints: "<client> N=<n> req/s=<r> p50_us=<a> p99_us=<b>"
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef BENCH_LIBMODBUS
#include <modbus.h>
#define CLIENT "libmodbus"
#else
#include "eq1.h"
#define CLIENT "libeq1"
#endif

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int compare(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	if (argc < 4)
		return 2;
	int n = atoi(argv[3]);
	int64_t *lat = calloc((size_t)n, sizeof *lat);
	uint16_t regs[10];
#ifdef BENCH_LIBMODBUS
	modbus_t *ctx = modbus_new_tcp(argv[1], atoi(argv[2]));
	modbus_set_slave(ctx, 1);
	if (ctx == NULL || modbus_connect(ctx) != 0)
		return 1;
#else
	eq1_modbus_options *o = eq1_modbus_options_new();
	eq1_modbus_client *c = NULL;
	if (eq1_modbus_options_set_tcp(o, argv[1], atoi(argv[2])) != EQ1_STATUS_OK ||
	    eq1_modbus_client_new(o, &c) != EQ1_STATUS_OK || eq1_modbus_client_connect(c) != EQ1_STATUS_OK)
		return 1;
	eq1_modbus_options_free(o);
#endif
	int64_t start = now_ns();
	for (int i = 0; i < n; i++) {
		int64_t t0 = now_ns();
#ifdef BENCH_LIBMODBUS
		if (modbus_read_registers(ctx, 0, 10, regs) != 10)
			return 1;
#else
		if (eq1_modbus_read_holding_registers(c, 1, 0, 10, regs, 10, NULL) != EQ1_STATUS_OK)
			return 1;
#endif
		lat[i] = now_ns() - t0;
	}
	double seconds = (double)(now_ns() - start) / 1e9;
	qsort(lat, (size_t)n, sizeof *lat, compare);
	printf("%s N=%d req/s=%.0f p50_us=%.0f p99_us=%.0f\n", CLIENT, n, n / seconds,
	       lat[n / 2] / 1e3, lat[(n * 99) / 100] / 1e3);
#ifdef BENCH_LIBMODBUS
	modbus_close(ctx);
	modbus_free(ctx);
#else
	eq1_modbus_client_free(c);
#endif
	free(lat);
	return 0;
}
