/*
 * test_fork.c - fork() with a live client: the child must get EQ1_STATUS_INVALID_STATE for
 * the parent's client, must be able to create and use a client of its own, must be able to
 * free the inherited handle without hanging, and the library must write nothing to its stderr.
 * The parent's client must keep working.
 *
 *   test_fork <host> <port>
 *
 * Prints one line per check (both processes) and "SUMMARY: <n> checks, <f> failed" for each;
 * exits 0 only if both passed. The child's stderr goes to a temporary file, checked empty.
 *
 * Under valgrind (run it with --child-silent-after-fork=yes) the child counts its own memory
 * errors. Its leak check cannot pass: memory that the parent's threads held on their stacks and
 * in their thread-locals is unreachable in the child, where those threads do not exist, so the
 * child's exit status 99 (valgrind's) is accepted there.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_util.h"

#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#define VALGRIND_COUNT_ERRORS 0
#endif
#define VALGRIND_ERROR_EXIT 99

static atomic_int received;
static atomic_int frees;

static void on_message(void *user_data, const eq1_mqtt_message *msg)
{
	(void)user_data;
	(void)msg;
	atomic_fetch_add(&received, 1);
}

static void count_free(void *user_data)
{
	(void)user_data;
	atomic_fetch_add(&frees, 1);
}

static void on_log(void *user_data, eq1_log_level level, const char *message)
{
	(void)user_data;
	printf("# [pid %d] log %d: %s\n", (int)getpid(), (int)level, message);
	fflush(stdout);
}

static eq1_mqtt_client *new_client(const char *host, int port, const char *id)
{
	eq1_mqtt_options *o = eq1_mqtt_options_new();
	REQUIRE(o != NULL, "eq1_mqtt_options_new returned NULL");
	CHECK(eq1_mqtt_options_set_broker(o, host, port));
	CHECK(eq1_mqtt_options_set_client_id(o, id));
	eq1_mqtt_client *c = NULL;
	CHECK(eq1_mqtt_client_new(o, NULL, count_free, &c));
	eq1_mqtt_options_free(o);
	return c;
}

/* Subscribes, publishes one QoS 1 message to itself and waits until it arrives. */
static void round_trip(eq1_mqtt_client *c, const char *topic, const char *what)
{
	char name[160];
	int before = atomic_load(&received);
	snprintf(name, sizeof name, "%s: subscribe", what);
	EXPECT_OK(name, eq1_mqtt_client_subscribe(c, topic, 1, on_message, NULL, 5000, NULL));
	eq1_token token = 0;
	snprintf(name, sizeof name, "%s: publish", what);
	EXPECT_OK(name, eq1_mqtt_client_publish(c, topic, (const uint8_t *)"hi", 2, 1, false,
						&token));
	snprintf(name, sizeof name, "%s: wait for the PUBACK", what);
	EXPECT_OK(name, eq1_mqtt_client_wait(c, token, 5000));
	int64_t deadline = now_ms() + 5000;
	while (atomic_load(&received) == before && now_ms() < deadline)
		sleep_ms(5);
	snprintf(name, sizeof name, "%s: message received", what);
	EXPECT_TRUE(name, atomic_load(&received) > before);
}

static int child(eq1_mqtt_client *inherited, const char *host, int port)
{
	/* Everything the library might print lands in this file instead of the test's stderr. */
	FILE *err = tmpfile();
	REQUIRE(err != NULL, "tmpfile failed");
	fflush(stderr);
	REQUIRE(dup2(fileno(err), STDERR_FILENO) == STDERR_FILENO, "dup2 failed");

	const eq1_status S = EQ1_STATUS_INVALID_STATE;
	EXPECT_ERR("child: publish on the parent's client",
		   eq1_mqtt_client_publish(inherited, "eq1/fork", (const uint8_t *)"x", 1, 0, false,
					   NULL),
		   S, "fork");
	EXPECT_ERR("child: connect on the parent's client",
		   eq1_mqtt_client_connect(inherited, 1000), S, "create its own");
	EXPECT_ERR("child: subscribe on the parent's client",
		   eq1_mqtt_client_subscribe(inherited, "eq1/fork", 0, on_message, NULL, 1000,
					     NULL),
		   S, "parent process");
	eq1_mqtt_stats stats;
	EXPECT_ERR("child: get_stats on the parent's client",
		   eq1_mqtt_client_get_stats(inherited, &stats), S, "fork");
	EXPECT_ERR("child: disconnect on the parent's client",
		   eq1_mqtt_client_disconnect(inherited, 1000), S, "fork");
	EXPECT_TRUE("child: the parent's client is not connected here",
		    !eq1_mqtt_client_is_connected(inherited));

	eq1_mqtt_client *own = new_client(host, port, "eq1-fork-child");
	EXPECT_OK("child: connect its own client", eq1_mqtt_client_connect(own, 5000));
	round_trip(own, "eq1/fork/child", "child");
	EXPECT_OK("child: disconnect its own client", eq1_mqtt_client_disconnect(own, 5000));
	EXPECT_OK("child: free its own client", eq1_mqtt_client_free(own));
	EXPECT_TRUE("child: its own user_data_free ran", atomic_load(&frees) == 1);

	EXPECT_OK("child: free the parent's client (no hang)", eq1_mqtt_client_free(inherited));
	EXPECT_TRUE("child: the inherited user_data_free ran once", atomic_load(&frees) == 2);

	fflush(stderr);
	long written = ftell(err);
	if (written > 0) {
		char text[4096] = "";
		rewind(err);
		size_t n = fread(text, 1, sizeof text - 1, err);
		text[n] = '\0';
		printf("# child stderr:\n%s\n", text);
	}
	EXPECT_TRUE("child: nothing written to stderr", written == 0);
	if (RUNNING_ON_VALGRIND)
		EXPECT_TRUE("child: no memory errors (valgrind)", VALGRIND_COUNT_ERRORS == 0);
	return tu_summary();
}

int main(int argc, char **argv)
{
	REQUIRE(argc == 3, "usage: test_fork <host> <port>");
	const char *host = argv[1];
	int port = atoi(argv[2]);
	CHECK(eq1_set_log_callback(on_log, NULL, EQ1_LOG_LEVEL_WARN));

	eq1_mqtt_client *parent = new_client(host, port, "eq1-fork-parent");
	CHECK(eq1_mqtt_client_connect(parent, 5000));
	round_trip(parent, "eq1/fork/parent", "parent before fork");

	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	REQUIRE(pid >= 0, "fork failed");
	if (pid == 0) {
		int code = child(parent, host, port);
		fflush(stdout);
		_exit(code);
	}

	int status = 0;
	REQUIRE(waitpid(pid, &status, 0) == pid, "waitpid failed");
	EXPECT_TRUE("the child exited normally", WIFEXITED(status));
	int child_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	EXPECT_TRUE("the child's checks passed",
		    child_code == 0 || (RUNNING_ON_VALGRIND && child_code == VALGRIND_ERROR_EXIT));

	round_trip(parent, "eq1/fork/parent", "parent after fork");
	EXPECT_OK("parent: disconnect", eq1_mqtt_client_disconnect(parent, 5000));
	EXPECT_OK("parent: free", eq1_mqtt_client_free(parent));
	EXPECT_TRUE("parent: user_data_free ran once", atomic_load(&frees) == 1);
	return tu_summary();
}
