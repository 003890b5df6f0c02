/*
 * eq1modbus.c - the eq1_modbus_* C API against a pymodbus server the test started
 * (tests/harness/modbus_server.py's map: coils[i] = i%2==0, discrete[i] = i%3==0,
 * holding[i] = 1000+i, input[i] = 2000+i, addresses 0..99).
 *
 *   eq1modbus tcp HOST PORT MODE ...   or   test_modbus rtu DEVICE BAUD MODE ...
 *   MODE roundtrip        every function code reads what the server holds and writes back
 *   MODE bad              every checked argument at the C boundary has its status + detail
 *   MODE threads N T [M]  T threads x N requests each, every answer checked, M requests in
 *                         flight at most (eq1_modbus_options_set_max_in_flight; default 1)
 *   tcp HOST PORT registry      "modbus-tcp" opened by name through eq1_protocol_open
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>

#include "test_util.h"

#define MAP_SIZE 100

static eq1_modbus_client *make_client(char **argv, int max_in_flight)
{
	eq1_modbus_options *o = eq1_modbus_options_new();
	REQUIRE(o != NULL, "options_new");
	if (strcmp(argv[1], "tcp") == 0)
		CHECK(eq1_modbus_options_set_tcp(o, argv[2], atoi(argv[3])));
	else
		CHECK(eq1_modbus_options_set_serial(o, argv[2], atoi(argv[3]), 8,
						    EQ1_MODBUS_PARITY_NONE, 1));
	CHECK(eq1_modbus_options_set_unit_id(o, 1));
	CHECK(eq1_modbus_options_set_timeout(o, 2000));
	CHECK(eq1_modbus_options_set_retries(o, 3));
	CHECK(eq1_modbus_options_set_max_in_flight(o, max_in_flight));
	eq1_modbus_client *c = NULL;
	CHECK(eq1_modbus_client_new(o, &c));
	eq1_modbus_options_free(o);
	return c;
}

static void roundtrip(eq1_modbus_client *c)
{
	uint8_t bits[MAP_SIZE];
	uint16_t words[MAP_SIZE];
	bool all = true;

	CHECK(eq1_modbus_read_coils(c, EQ1_MODBUS_DEFAULT_UNIT, 0, MAP_SIZE, bits, MAP_SIZE, NULL));
	for (int i = 0; i < MAP_SIZE; i++)
		all = all && bits[i] == (i % 2 == 0);
	EXPECT_TRUE("0x01 read coils 0..99 are the server's", all);

	CHECK(eq1_modbus_read_discrete_inputs(c, 1, 0, MAP_SIZE, bits, MAP_SIZE, NULL));
	all = true;
	for (int i = 0; i < MAP_SIZE; i++)
		all = all && bits[i] == (i % 3 == 0);
	EXPECT_TRUE("0x02 read discrete inputs 0..99 are the server's", all);

	CHECK(eq1_modbus_read_holding_registers(c, 1, 0, MAP_SIZE, words, MAP_SIZE, NULL));
	all = true;
	for (int i = 0; i < MAP_SIZE; i++)
		all = all && words[i] == 1000 + i;
	EXPECT_TRUE("0x03 read holding registers 0..99 are the server's", all);

	CHECK(eq1_modbus_read_input_registers(c, 1, 0, MAP_SIZE, words, MAP_SIZE, NULL));
	all = true;
	for (int i = 0; i < MAP_SIZE; i++)
		all = all && words[i] == 2000 + i;
	EXPECT_TRUE("0x04 read input registers 0..99 are the server's", all);

	eq1_modbus_call_options call = { 3000, 2 };
	CHECK(eq1_modbus_write_single_coil(c, 1, 1, 1, &call));
	CHECK(eq1_modbus_read_coils(c, 1, 1, 1, bits, 1, &call));
	EXPECT_TRUE("0x05 write single coil 1 = on reads back on", bits[0] == 1);

	CHECK(eq1_modbus_write_single_register(c, 1, 7, 0xBEEF, NULL));
	CHECK(eq1_modbus_read_holding_registers(c, 1, 7, 1, words, 1, NULL));
	EXPECT_TRUE("0x06 write single register 7 = 0xBEEF reads back", words[0] == 0xBEEF);

	uint8_t pattern[13] = { 1, 1, 0, 1, 0, 0, 1, 1, 1, 0, 1, 0, 1 };
	CHECK(eq1_modbus_write_multiple_coils(c, 1, 20, pattern, 13, NULL));
	CHECK(eq1_modbus_read_coils(c, 1, 20, 13, bits, MAP_SIZE, NULL));
	EXPECT_TRUE("0x0F write multiple coils 20..32 reads back",
		    memcmp(bits, pattern, 13) == 0);

	uint16_t values[10];
	for (int i = 0; i < 10; i++)
		values[i] = (uint16_t)(40000 + i * 3);
	CHECK(eq1_modbus_write_multiple_registers(c, 1, 30, values, 10, NULL));
	CHECK(eq1_modbus_read_holding_registers(c, 1, 30, 10, words, MAP_SIZE, NULL));
	EXPECT_TRUE("0x10 write multiple registers 30..39 reads back",
		    memcmp(words, values, sizeof values) == 0);

	uint16_t rw[3] = { 11, 22, 33 };
	CHECK(eq1_modbus_read_write_multiple_registers(c, 1, 49, 5, 50, rw, 3, words, MAP_SIZE,
						       NULL));
	EXPECT_TRUE("0x17 read/write multiple: writes 50..52, reads 49..53",
		    words[0] == 1049 && words[1] == 11 && words[2] == 22 && words[3] == 33 &&
			    words[4] == 1053);

	EXPECT_ERR("an address outside the map is illegal data address",
		   eq1_modbus_read_holding_registers(c, 1, MAP_SIZE, 1, words, MAP_SIZE, NULL),
		   EQ1_STATUS_MODBUS_ILLEGAL_DATA_ADDRESS, "illegal data address");
	EXPECT_ERR("a range running past the map is illegal data address",
		   eq1_modbus_read_input_registers(c, 1, 90, 20, words, MAP_SIZE, NULL),
		   EQ1_STATUS_MODBUS_ILLEGAL_DATA_ADDRESS, "0x02");
	/* pymodbus 3.8 answers coils 90..109 (past its map) with 2 bytes of bits instead of an
	 * exception: a response that does not fit its request is a bad frame, never padded. */
	EXPECT_ERR("too few coils in a response is a bad frame",
		   eq1_modbus_read_coils(c, 1, 90, 20, bits, MAP_SIZE, NULL),
		   EQ1_STATUS_MODBUS_BAD_FRAME, "16 bit(s) for a request of 20");
	EXPECT_ERR("a write outside the map is illegal data address",
		   eq1_modbus_write_single_register(c, 1, 500, 1, NULL),
		   EQ1_STATUS_MODBUS_ILLEGAL_DATA_ADDRESS, "write single register 500");

	eq1_modbus_stats s;
	CHECK(eq1_modbus_client_get_stats(c, &s));
	EXPECT_TRUE("stats count requests, exceptions and bytes",
		    s.requests == 17 && s.exceptions == 3 && s.failures == 4 && s.bytes_out > 0 &&
			    s.bytes_in > 0 && s.connects == 1);
	printf("stats: requests %llu failures %llu exceptions %llu bytes out %llu in %llu\n",
	       (unsigned long long)s.requests, (unsigned long long)s.failures,
	       (unsigned long long)s.exceptions, (unsigned long long)s.bytes_out,
	       (unsigned long long)s.bytes_in);
}

static void bad_input(eq1_modbus_client *c)
{
	uint8_t bits[2100];
	uint16_t words[200];
	uint16_t values[200] = { 0 };
	eq1_modbus_options *o = eq1_modbus_options_new();

	EXPECT_ERR("set_tcp NULL options", eq1_modbus_options_set_tcp(NULL, "h", 1),
		   EQ1_STATUS_NULL_ARGUMENT, "options");
	EXPECT_ERR("set_tcp NULL host", eq1_modbus_options_set_tcp(o, NULL, 1),
		   EQ1_STATUS_NULL_ARGUMENT, "host");
	EXPECT_ERR("set_tcp invalid UTF-8 host", eq1_modbus_options_set_tcp(o, "\xff", 1),
		   EQ1_STATUS_INVALID_UTF8, "host");
	EXPECT_ERR("set_tcp port 0", eq1_modbus_options_set_tcp(o, "h", 0),
		   EQ1_STATUS_INVALID_ARGUMENT, "port");
	EXPECT_ERR("set_tcp port 65536", eq1_modbus_options_set_tcp(o, "h", 65536),
		   EQ1_STATUS_INVALID_ARGUMENT, "port");
	EXPECT_ERR("set_serial NULL device",
		   eq1_modbus_options_set_serial(o, NULL, 9600, 8, 0, 1),
		   EQ1_STATUS_NULL_ARGUMENT, "device");
	EXPECT_ERR("set_serial baud 0", eq1_modbus_options_set_serial(o, "/dev/x", 0, 8, 0, 1),
		   EQ1_STATUS_INVALID_ARGUMENT, "baud");
	EXPECT_ERR("set_serial data bits 9",
		   eq1_modbus_options_set_serial(o, "/dev/x", 9600, 9, 0, 1),
		   EQ1_STATUS_INVALID_ARGUMENT, "data bits");
	EXPECT_ERR("set_serial parity 3", eq1_modbus_options_set_serial(o, "/dev/x", 9600, 8, 3, 1),
		   EQ1_STATUS_INVALID_ARGUMENT, "parity");
	EXPECT_ERR("set_serial stop bits 3",
		   eq1_modbus_options_set_serial(o, "/dev/x", 9600, 8, 0, 3),
		   EQ1_STATUS_INVALID_ARGUMENT, "stop bits");
	EXPECT_ERR("set_unit_id 256", eq1_modbus_options_set_unit_id(o, 256),
		   EQ1_STATUS_INVALID_ARGUMENT, "unit id");
	EXPECT_ERR("set_timeout 0", eq1_modbus_options_set_timeout(o, 0),
		   EQ1_STATUS_INVALID_ARGUMENT, "timeout");
	EXPECT_ERR("set_retries -1", eq1_modbus_options_set_retries(o, -1),
		   EQ1_STATUS_INVALID_ARGUMENT, "retries");
	EXPECT_ERR("set_max_in_flight NULL options", eq1_modbus_options_set_max_in_flight(NULL, 1),
		   EQ1_STATUS_NULL_ARGUMENT, "options");
	EXPECT_ERR("set_max_in_flight 0", eq1_modbus_options_set_max_in_flight(o, 0),
		   EQ1_STATUS_INVALID_ARGUMENT, "max in flight 0 is outside 1..256");
	EXPECT_ERR("set_max_in_flight 257", eq1_modbus_options_set_max_in_flight(o, 257),
		   EQ1_STATUS_INVALID_ARGUMENT, "max in flight 257");
	EXPECT_OK("set_max_in_flight 256", eq1_modbus_options_set_max_in_flight(o, 256));
	eq1_modbus_client *out = (eq1_modbus_client *)1;
	EXPECT_ERR("client_new NULL options", eq1_modbus_client_new(NULL, &out),
		   EQ1_STATUS_NULL_ARGUMENT, "options");
	EXPECT_TRUE("client_new resets out on failure", out == NULL);
	EXPECT_ERR("client_new NULL out", eq1_modbus_client_new(o, NULL), EQ1_STATUS_NULL_ARGUMENT,
		   "out");
	eq1_modbus_options_free(o);
	eq1_modbus_options_free(NULL);
	eq1_modbus_client_free(NULL);

	EXPECT_ERR("read NULL client", eq1_modbus_read_coils(NULL, 1, 0, 1, bits, 1, NULL),
		   EQ1_STATUS_NULL_ARGUMENT, "client");
	EXPECT_ERR("read coils NULL buffer", eq1_modbus_read_coils(c, 1, 0, 1, NULL, 1, NULL),
		   EQ1_STATUS_NULL_ARGUMENT, "out");
	EXPECT_ERR("read holding NULL buffer",
		   eq1_modbus_read_holding_registers(c, 1, 0, 1, NULL, 1, NULL),
		   EQ1_STATUS_NULL_ARGUMENT, "out");
	EXPECT_ERR("read holding buffer too small",
		   eq1_modbus_read_holding_registers(c, 1, 0, 10, words, 9, NULL),
		   EQ1_STATUS_INVALID_ARGUMENT, "too small");
	EXPECT_ERR("read coils buffer too small",
		   eq1_modbus_read_coils(c, 1, 0, 10, bits, 2, NULL), EQ1_STATUS_INVALID_ARGUMENT,
		   "too small");
	EXPECT_ERR("read coils quantity 0", eq1_modbus_read_coils(c, 1, 0, 0, bits, 10, NULL),
		   EQ1_STATUS_INVALID_ARGUMENT, "quantity 0");
	EXPECT_ERR("read coils quantity 2001",
		   eq1_modbus_read_coils(c, 1, 0, 2001, bits, sizeof bits, NULL),
		   EQ1_STATUS_INVALID_ARGUMENT, "1..2000");
	EXPECT_ERR("read discrete inputs quantity 2001",
		   eq1_modbus_read_discrete_inputs(c, 1, 0, 2001, bits, sizeof bits, NULL),
		   EQ1_STATUS_INVALID_ARGUMENT, "1..2000");
	EXPECT_ERR("read holding quantity 126",
		   eq1_modbus_read_holding_registers(c, 1, 0, 126, words, 200, NULL),
		   EQ1_STATUS_INVALID_ARGUMENT, "1..125");
	EXPECT_ERR("read input quantity 126",
		   eq1_modbus_read_input_registers(c, 1, 0, 126, words, 200, NULL),
		   EQ1_STATUS_INVALID_ARGUMENT, "1..125");
	EXPECT_ERR("read quantity negative",
		   eq1_modbus_read_input_registers(c, 1, 0, -1, words, 200, NULL),
		   EQ1_STATUS_INVALID_ARGUMENT, "quantity -1");
	EXPECT_ERR("address + quantity beyond 65536",
		   eq1_modbus_read_holding_registers(c, 1, 65530, 7, words, 200, NULL),
		   EQ1_STATUS_INVALID_ARGUMENT, "beyond address 65535");
	EXPECT_ERR("address 65536", eq1_modbus_write_single_register(c, 1, 65536, 1, NULL),
		   EQ1_STATUS_INVALID_ARGUMENT, "address 65536");
	EXPECT_ERR("address negative", eq1_modbus_write_single_coil(c, 1, -1, 1, NULL),
		   EQ1_STATUS_INVALID_ARGUMENT, "address -1");
	EXPECT_ERR("unit 256", eq1_modbus_read_holding_registers(c, 256, 0, 1, words, 1, NULL),
		   EQ1_STATUS_INVALID_ARGUMENT, "unit id 256");
	EXPECT_ERR("unit -2", eq1_modbus_read_holding_registers(c, -2, 0, 1, words, 1, NULL),
		   EQ1_STATUS_INVALID_ARGUMENT, "unit id -2");
	eq1_modbus_call_options bad_timeout = { 0, -1 };
	EXPECT_ERR("call timeout 0",
		   eq1_modbus_read_holding_registers(c, 1, 0, 1, words, 1, &bad_timeout),
		   EQ1_STATUS_INVALID_ARGUMENT, "timeout 0");
	eq1_modbus_call_options bad_retries = { -1, 101 };
	EXPECT_ERR("call retries 101",
		   eq1_modbus_read_holding_registers(c, 1, 0, 1, words, 1, &bad_retries),
		   EQ1_STATUS_INVALID_ARGUMENT, "retries 101");
	EXPECT_ERR("write multiple coils NULL values",
		   eq1_modbus_write_multiple_coils(c, 1, 0, NULL, 4, NULL),
		   EQ1_STATUS_NULL_ARGUMENT, "values");
	EXPECT_ERR("write multiple coils count 0",
		   eq1_modbus_write_multiple_coils(c, 1, 0, bits, 0, NULL),
		   EQ1_STATUS_INVALID_ARGUMENT, "quantity 0");
	EXPECT_ERR("write multiple coils count 1969",
		   eq1_modbus_write_multiple_coils(c, 1, 0, bits, 1969, NULL),
		   EQ1_STATUS_INVALID_ARGUMENT, "1..1968");
	EXPECT_ERR("write multiple registers NULL values",
		   eq1_modbus_write_multiple_registers(c, 1, 0, NULL, 4, NULL),
		   EQ1_STATUS_NULL_ARGUMENT, "values");
	EXPECT_ERR("write multiple registers count 124",
		   eq1_modbus_write_multiple_registers(c, 1, 0, values, 124, NULL),
		   EQ1_STATUS_INVALID_ARGUMENT, "1..123");
	EXPECT_ERR("write multiple registers beyond 65536",
		   eq1_modbus_write_multiple_registers(c, 1, 65535, values, 2, NULL),
		   EQ1_STATUS_INVALID_ARGUMENT, "beyond address 65535");
	EXPECT_ERR("read/write: read quantity 126",
		   eq1_modbus_read_write_multiple_registers(c, 1, 0, 126, 0, values, 1, words, 200,
							    NULL),
		   EQ1_STATUS_INVALID_ARGUMENT, "1..125");
	EXPECT_ERR("read/write: write count 122",
		   eq1_modbus_read_write_multiple_registers(c, 1, 0, 1, 0, values, 122, words, 200,
							    NULL),
		   EQ1_STATUS_INVALID_ARGUMENT, "1..121");
	EXPECT_ERR("read/write: NULL out",
		   eq1_modbus_read_write_multiple_registers(c, 1, 0, 1, 0, values, 1, NULL, 1,
							    NULL),
		   EQ1_STATUS_NULL_ARGUMENT, "out");
	EXPECT_ERR("read/write: out too small",
		   eq1_modbus_read_write_multiple_registers(c, 1, 0, 5, 0, values, 1, words, 4,
							    NULL),
		   EQ1_STATUS_INVALID_ARGUMENT, "too small");
	EXPECT_ERR("get_stats NULL out", eq1_modbus_client_get_stats(c, NULL),
		   EQ1_STATUS_NULL_ARGUMENT, "out");

	/* A bad call sends nothing; a good one after them still works. */
	eq1_modbus_stats s;
	CHECK(eq1_modbus_client_get_stats(c, &s));
	EXPECT_TRUE("refused calls are not requests", s.requests == 0);
	EXPECT_OK("a good call after the bad ones",
		  eq1_modbus_read_holding_registers(c, 1, 0, 2, words, 2, NULL));
	EXPECT_TRUE("it read the server's values", words[0] == 1000 && words[1] == 1001);
	CHECK(eq1_modbus_client_disconnect(c));
	EXPECT_ERR("a call after disconnect is not connected",
		   eq1_modbus_read_holding_registers(c, 1, 0, 1, words, 1, NULL),
		   EQ1_STATUS_NOT_CONNECTED, "not connected");
}

struct worker {
	eq1_modbus_client *client;
	int index;
	int requests;
	int wrong;
	int failed;
};

static void *work(void *arg)
{
	struct worker *w = arg;
	uint16_t words[16];
	for (int i = 0; i < w->requests; i++) {
		/* Each thread reads its own range and length, and writes its own register with a
		 * counter: a response given to the wrong request would show. */
		int address = w->index * 10 + (i % 5);
		int quantity = 1 + w->index + (i % 3);
		eq1_status st;
		if (i % 4 == 3) {
			st = eq1_modbus_write_single_register(w->client, 1, 90 + w->index,
							      (uint16_t)i, NULL);
			if (st == EQ1_STATUS_OK)
				st = eq1_modbus_read_holding_registers(w->client, 1, 90 + w->index,
								       1, words, 16, NULL);
			if (st == EQ1_STATUS_OK && words[0] != (uint16_t)i)
				w->wrong++;
		} else {
			st = eq1_modbus_read_holding_registers(w->client, 1, address, quantity,
							       words, 16, NULL);
			for (int k = 0; st == EQ1_STATUS_OK && k < quantity; k++)
				if (words[k] != 1000 + address + k) {
					w->wrong++;
					break;
				}
		}
		if (st != EQ1_STATUS_OK) {
			char msg[512];
			printf("thread %d request %d: %s: %s\n", w->index, i,
			       eq1_status_str((int)st), tu_last_error(msg, sizeof msg));
			w->failed++;
		}
	}
	return NULL;
}

static void threads(eq1_modbus_client *c, int requests, int count)
{
	pthread_t ids[16];
	struct worker workers[16];
	REQUIRE(count > 0 && count <= 16, "1..16 threads");
	for (int t = 0; t < count; t++) {
		workers[t] = (struct worker){ c, t, requests, 0, 0 };
		REQUIRE(pthread_create(&ids[t], NULL, work, &workers[t]) == 0, "pthread_create");
	}
	int wrong = 0, failed = 0;
	for (int t = 0; t < count; t++) {
		pthread_join(ids[t], NULL);
		wrong += workers[t].wrong;
		failed += workers[t].failed;
	}
	printf("threads: %d x %d requests, %d wrong, %d failed\n", count, requests, wrong, failed);
	EXPECT_TRUE("every threaded request got its own correct answer", wrong == 0 && failed == 0);
	eq1_modbus_stats s;
	CHECK(eq1_modbus_client_get_stats(c, &s));
	EXPECT_TRUE("stats counted every call, none failed",
		    s.requests >= (uint64_t)(count * requests) && s.failures == 0);
	printf("threads stats: retries %llu timeouts %llu late responses %llu connects %llu\n",
	       (unsigned long long)s.retries, (unsigned long long)s.timeouts,
	       (unsigned long long)s.late_responses, (unsigned long long)s.connects);
}

/* "modbus-tcp" from the protocol registry: request PDUs in, response PDUs out. */
static int registry(const char *host, const char *port)
{
	eq1_protocol_options *o = eq1_protocol_options_new();
	CHECK(eq1_protocol_options_set(o, "host", host));
	CHECK(eq1_protocol_options_set(o, "port", port));
	CHECK(eq1_protocol_options_set(o, "timeout_ms", "2000"));
	eq1_protocol *p = NULL;
	CHECK(eq1_protocol_open("modbus-tcp", o, &p));
	CHECK(eq1_protocol_connect(p, 2000));
	const uint8_t read[] = { 0x03, 0x00, 0x00, 0x00, 0x02 };
	uint8_t buf[256];
	size_t len = 0;
	CHECK(eq1_protocol_request(p, read, sizeof read, 2000, buf, sizeof buf, &len));
	const uint8_t want[] = { 0x03, 4, 0x03, 0xE8, 0x03, 0xE9 };
	EXPECT_TRUE("registry: read holding registers 0..1 PDU", len == sizeof want &&
							      memcmp(buf, want, len) == 0);
	const uint8_t outside[] = { 0x03, 0x00, 0x64, 0x00, 0x01 };
	EXPECT_ERR("registry: outside the map is illegal data address",
		   eq1_protocol_request(p, outside, sizeof outside, 2000, buf, sizeof buf, &len),
		   EQ1_STATUS_MODBUS_ILLEGAL_DATA_ADDRESS, "0x02");
	const uint8_t too_many[] = { 0x03, 0x00, 0x00, 0x00, 0x7E };
	EXPECT_ERR("registry: 126 registers refused before sending",
		   eq1_protocol_request(p, too_many, sizeof too_many, 2000, buf, sizeof buf, &len),
		   EQ1_STATUS_INVALID_ARGUMENT, "1..125");
	CHECK(eq1_protocol_options_set(o, "colour", "red"));
	eq1_protocol *bad = NULL;
	EXPECT_ERR("registry: an unknown option is refused", eq1_protocol_open("modbus-tcp", o, &bad),
		   EQ1_STATUS_INVALID_ARGUMENT, "colour");
	eq1_protocol_options_free(o);
	CHECK(eq1_protocol_disconnect(p, 2000));
	CHECK(eq1_protocol_close(p));
	return tu_summary();
}

int main(int argc, char **argv)
{
	if (argc >= 5 && strcmp(argv[4], "registry") == 0)
		return registry(argv[2], argv[3]);
	if (argc < 5) {
		fprintf(stderr, "usage: %s tcp HOST PORT MODE... | rtu DEVICE BAUD MODE...\n",
			argv[0]);
		return 2;
	}
	const char *mode = argv[4];
	int max_in_flight = strcmp(mode, "threads") == 0 && argc >= 8 ? atoi(argv[7]) : 1;
	eq1_modbus_client *c = make_client(argv, max_in_flight);
	printf("max in flight: %d\n", max_in_flight);
	CHECK(eq1_modbus_client_connect(c));
	if (strcmp(mode, "roundtrip") == 0)
		roundtrip(c);
	else if (strcmp(mode, "bad") == 0)
		bad_input(c);
	else if (strcmp(mode, "threads") == 0 && argc >= 7)
		threads(c, atoi(argv[5]), atoi(argv[6]));
	else
		REQUIRE(false, "unknown mode %s", mode);
	CHECK(eq1_modbus_client_disconnect(c));
	eq1_modbus_client_free(c);
	return tu_summary();
}
