/*
 * eq1events.c - the connection callback of the TCP and Modbus clients
 * (eq1_*_client_set_connection_callback) against real peers the Python test starts:
 *
 *   eq1events tcp HOST PORT
 *       u16 echo server (tests/harness/tcp_echo_server.py), automatic reconnect: connect,
 *       the server resets the connection ("!reset"), the next request reconnects, disconnect.
 *       Events: CONNECTED, LOST (CONNECTION_LOST + detail), RECONNECTED, DISCONNECTED.
 *   eq1events modbus HOST PORT MARKER_DIR
 *       pymodbus server: connect and poll; MARKER_DIR/connected is written after the first
 *       read, MARKER_DIR/lost when the LOST event came (the test kills the server after the
 *       first and starts it again after the second). Events: CONNECTED, LOST, RECONNECTED,
 *       DISCONNECTED.
 *   eq1events bad
 *       NULL arguments of the three setters.
 *
 * Every event is checked to run on one thread that is neither main's (the caller of every
 * call that noticed a change) nor the library's I/O thread ("eq1-runtime"): the dispatcher,
 * "eq1-dispatch". Inside the callback the client is usable (is_connected), and freeing it
 * there is refused with EQ1_STATUS_CALLED_FROM_CALLBACK.
 */
#define _GNU_SOURCE
#include <pthread.h>

#include "test_util.h"

#define MAX_EVENTS 32

struct recorder {
	pthread_mutex_t lock;
	pthread_cond_t changed;
	int kinds[MAX_EVENTS];
	int statuses[MAX_EVENTS];
	char messages[MAX_EVENTS][256];
	int count;
	pthread_t threads[MAX_EVENTS];
	char thread_names[MAX_EVENTS][32];
	/* What the callback tried on the DISCONNECTED event (the test's free-inside check). */
	int free_inside_status;
	void *client;
	int kind_of_client; /* 0 tcp, 1 modbus */
	const char *marker_dir;
};

static void write_marker(const char *dir, const char *name)
{
	if (dir == NULL)
		return;
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	if (f != NULL)
		fclose(f);
}

static void on_event(void *user_data, const eq1_protocol_event *event)
{
	struct recorder *r = user_data;
	int free_status = -1;
	if (event->kind == EQ1_PROTOCOL_EVENT_KIND_DISCONNECTED) {
		free_status = r->kind_of_client == 0 ? (int)eq1_tcp_client_free(r->client)
						     : (int)eq1_modbus_client_free(r->client);
	}
	if (event->kind == EQ1_PROTOCOL_EVENT_KIND_LOST)
		write_marker(r->marker_dir, "lost");
	pthread_mutex_lock(&r->lock);
	if (r->count < MAX_EVENTS) {
		int i = r->count++;
		r->kinds[i] = (int)event->kind;
		r->statuses[i] = (int)event->status;
		snprintf(r->messages[i], sizeof r->messages[i], "%s", event->message);
		r->threads[i] = pthread_self();
		if (pthread_getname_np(pthread_self(), r->thread_names[i],
				       sizeof r->thread_names[i]) != 0)
			snprintf(r->thread_names[i], sizeof r->thread_names[i], "?");
	}
	if (free_status != -1)
		r->free_inside_status = free_status;
	pthread_cond_broadcast(&r->changed);
	pthread_mutex_unlock(&r->lock);
}

static void recorder_init(struct recorder *r, void *client, int kind, const char *marker_dir)
{
	memset(r, 0, sizeof *r);
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->changed, NULL);
	r->client = client;
	r->kind_of_client = kind;
	r->marker_dir = marker_dir;
	r->free_inside_status = -1;
}

static void recorder_destroy(struct recorder *r)
{
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->changed);
}

/* Waits (at most timeout_ms) until `n` events were recorded; returns the count. */
static int wait_events(struct recorder *r, int n, long timeout_ms)
{
	long deadline = now_ms() + timeout_ms;
	pthread_mutex_lock(&r->lock);
	while (r->count < n && now_ms() < deadline) {
		pthread_mutex_unlock(&r->lock);
		sleep_ms(10);
		pthread_mutex_lock(&r->lock);
	}
	int count = r->count;
	pthread_mutex_unlock(&r->lock);
	return count;
}

static bool has_kind(struct recorder *r, int kind)
{
	pthread_mutex_lock(&r->lock);
	bool found = false;
	for (int i = 0; i < r->count; i++)
		found = found || r->kinds[i] == kind;
	pthread_mutex_unlock(&r->lock);
	return found;
}

static const char *kind_name(int kind)
{
	switch (kind) {
	case EQ1_PROTOCOL_EVENT_KIND_CONNECTED:
		return "CONNECTED";
	case EQ1_PROTOCOL_EVENT_KIND_LOST:
		return "LOST";
	case EQ1_PROTOCOL_EVENT_KIND_RECONNECTED:
		return "RECONNECTED";
	case EQ1_PROTOCOL_EVENT_KIND_DISCONNECTED:
		return "DISCONNECTED";
	default:
		return "?";
	}
}

/* The checks both protocols share: the order, the loss's status, the threads. */
static void check_events(struct recorder *r, pthread_t main_thread, const char *what)
{
	static const int want[] = {EQ1_PROTOCOL_EVENT_KIND_CONNECTED, EQ1_PROTOCOL_EVENT_KIND_LOST,
				   EQ1_PROTOCOL_EVENT_KIND_RECONNECTED,
				   EQ1_PROTOCOL_EVENT_KIND_DISCONNECTED};
	pthread_mutex_lock(&r->lock);
	char order[256] = "";
	for (int i = 0; i < r->count; i++) {
		strncat(order, kind_name(r->kinds[i]), sizeof order - strlen(order) - 2);
		strncat(order, " ", sizeof order - strlen(order) - 1);
		printf("%s event %d: %s status %s thread %s message \"%s\"\n", what, i,
		       kind_name(r->kinds[i]), eq1_status_name(r->statuses[i]),
		       r->thread_names[i], r->messages[i]);
	}
	printf("%s order: %s\n", what, order);
	bool in_order = r->count == 4;
	for (int i = 0; in_order && i < 4; i++)
		in_order = r->kinds[i] == want[i];
	EXPECT_TRUE("events: connected, lost, reconnected, disconnected, in that order", in_order);
	EXPECT_TRUE("the loss carries its status and a detail",
		    r->count >= 2 && r->statuses[1] == EQ1_STATUS_CONNECTION_LOST &&
			    strlen(r->messages[1]) > 0);
	EXPECT_TRUE("the other events carry EQ1_STATUS_OK and an empty message",
		    r->count == 4 && r->statuses[0] == 0 && r->statuses[2] == 0 &&
			    r->statuses[3] == 0 && r->messages[0][0] == '\0');
	bool off_main = r->count > 0, one_thread = r->count > 0, dispatcher = r->count > 0;
	for (int i = 0; i < r->count; i++) {
		off_main = off_main && !pthread_equal(r->threads[i], main_thread);
		one_thread = one_thread && pthread_equal(r->threads[i], r->threads[0]);
		dispatcher = dispatcher && strcmp(r->thread_names[i], "eq1-dispatch") == 0;
	}
	EXPECT_TRUE("no event ran on the caller's thread", off_main);
	EXPECT_TRUE("every event ran on the same thread", one_thread);
	EXPECT_TRUE("that thread is the dispatcher (eq1-dispatch), not the I/O thread (eq1-runtime)",
		    dispatcher);
	EXPECT_TRUE("freeing the client inside its callback is refused",
		    r->free_inside_status == EQ1_STATUS_CALLED_FROM_CALLBACK);
	pthread_mutex_unlock(&r->lock);
}

static bool answered(eq1_tcp_client *c, const char *text)
{
	uint8_t got[64];
	size_t n = 0;
	size_t len = strlen(text);
	return eq1_tcp_client_request(c, (const uint8_t *)text, len, 5000, got, sizeof got, &n) ==
		       EQ1_STATUS_OK &&
	       n == len && memcmp(got, text, len) == 0;
}

static void tcp(const char *host, int port)
{
	eq1_tcp_options *o = eq1_tcp_options_new();
	CHECK(eq1_tcp_options_set_endpoint(o, host, (uint16_t)port));
	CHECK(eq1_tcp_options_set_framing(o, EQ1_TCP_FRAMING_LENGTH_U16, NULL, 0));
	CHECK(eq1_tcp_options_set_auto_reconnect(o, true, 50, 500));
	eq1_tcp_client *c = NULL;
	CHECK(eq1_tcp_client_new(o, &c));
	eq1_tcp_options_free(o);
	struct recorder r;
	recorder_init(&r, c, 0, NULL);
	CHECK(eq1_tcp_client_set_connection_callback(c, on_event, &r));
	pthread_t main_thread = pthread_self();

	CHECK(eq1_tcp_client_connect(c, 5000));
	EXPECT_TRUE("a request before the cut is answered", answered(c, "before"));
	EXPECT_TRUE("the server answers, then resets the connection", answered(c, "!reset"));
	sleep_ms(300); /* idle: the RST arrives meanwhile */
	EXPECT_TRUE("the next request is answered on a new connection", answered(c, "after"));
	EXPECT_TRUE("a second set replaces the callback (same one again)",
		    eq1_tcp_client_set_connection_callback(c, on_event, &r) == EQ1_STATUS_OK);
	CHECK(eq1_tcp_client_disconnect(c));
	EXPECT_TRUE("four events arrive", wait_events(&r, 4, 10000) == 4);
	check_events(&r, main_thread, "tcp");
	CHECK(eq1_tcp_client_free(c));
	recorder_destroy(&r);
}

static void modbus(const char *host, int port, const char *marker_dir)
{
	eq1_modbus_options *o = eq1_modbus_options_new();
	CHECK(eq1_modbus_options_set_tcp(o, host, port));
	CHECK(eq1_modbus_options_set_timeout(o, 1000));
	CHECK(eq1_modbus_options_set_retries(o, 0));
	eq1_modbus_client *c = NULL;
	CHECK(eq1_modbus_client_new(o, &c));
	eq1_modbus_options_free(o);
	struct recorder r;
	recorder_init(&r, c, 1, marker_dir);
	CHECK(eq1_modbus_client_set_connection_callback(c, on_event, &r));
	pthread_t main_thread = pthread_self();

	CHECK(eq1_modbus_client_connect(c));
	uint16_t regs[4];
	CHECK(eq1_modbus_read_holding_registers(c, EQ1_MODBUS_DEFAULT_UNIT, 0, 4, regs, 4, NULL));
	EXPECT_TRUE("the first read returns the server's map", regs[0] == 1000 && regs[3] == 1003);
	write_marker(marker_dir, "connected");
	/* Poll every 100 ms until a read succeeds after the loss (the test brings it back). */
	long deadline = now_ms() + 90000;
	unsigned failed = 0;
	bool recovered = false;
	while (!recovered && now_ms() < deadline) {
		int status = eq1_modbus_read_holding_registers(c, EQ1_MODBUS_DEFAULT_UNIT, 0, 4, regs, 4, NULL);
		if (status != EQ1_STATUS_OK) {
			if (failed++ % 50 == 0) {
				char detail[256];
				eq1_last_error_message(detail, sizeof detail);
				printf("modbus: read failed: %s %s\n", eq1_status_name(status), detail);
			}
		}
		else if (has_kind(&r, EQ1_PROTOCOL_EVENT_KIND_RECONNECTED))
			recovered = regs[0] == 1000;
		sleep_ms(100);
	}
	printf("modbus: %u failed reads while the server was down\n", failed);
	EXPECT_TRUE("reads succeed again after the server came back", recovered);
	CHECK(eq1_modbus_client_disconnect(c));
	EXPECT_TRUE("four events arrive", wait_events(&r, 4, 10000) == 4);
	check_events(&r, main_thread, "modbus");
	CHECK(eq1_modbus_client_free(c));
	recorder_destroy(&r);
}

static void bad(void)
{
	EXPECT_ERR("tcp: NULL client",
		   eq1_tcp_client_set_connection_callback(NULL, on_event, NULL),
		   EQ1_STATUS_NULL_ARGUMENT, "client");
	EXPECT_ERR("serial: NULL client",
		   eq1_serial_client_set_connection_callback(NULL, on_event, NULL),
		   EQ1_STATUS_NULL_ARGUMENT, "client");
	EXPECT_ERR("modbus: NULL client",
		   eq1_modbus_client_set_connection_callback(NULL, on_event, NULL),
		   EQ1_STATUS_NULL_ARGUMENT, "client");
	/* Removing a callback that was never set, and freeing with no dispatcher. */
	eq1_serial_options *so = NULL;
	CHECK(eq1_serial_options_new("/dev/null-not-a-tty", 9600, &so));
	eq1_serial_client *s = NULL;
	CHECK(eq1_serial_client_new(so, &s));
	eq1_serial_options_free(so);
	EXPECT_OK("serial: removing an unset callback", eq1_serial_client_set_connection_callback(s, NULL, NULL));
	EXPECT_OK("serial: setting one", eq1_serial_client_set_connection_callback(s, on_event, NULL));
	EXPECT_OK("serial: free joins its dispatcher", eq1_serial_client_free(s));
	EXPECT_OK("modbus: free(NULL)", eq1_modbus_client_free(NULL));
}

int main(int argc, char **argv)
{
	if (argc >= 4 && strcmp(argv[1], "tcp") == 0)
		tcp(argv[2], atoi(argv[3]));
	else if (argc >= 5 && strcmp(argv[1], "modbus") == 0)
		modbus(argv[2], atoi(argv[3]), argv[4]);
	else if (argc >= 2 && strcmp(argv[1], "bad") == 0)
		bad();
	else
		REQUIRE(false, "usage: %s tcp HOST PORT | modbus HOST PORT DIR | bad", argv[0]);
	return tu_summary();
}
