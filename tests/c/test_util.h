/*
 * test_util.h - small shared helpers for the libeq1 C test programs.
 *
 * Define _POSIX_C_SOURCE (200809L) before including anything: sleep_ms/now_ms use
 * nanosleep and clock_gettime(CLOCK_MONOTONIC).
 *
 *   CHECK(call)              fatal: `call` must return EQ1_STATUS_OK, else print
 *                            file:line, the call, eq1_status_str and eq1_last_error_message,
 *                            and exit(1).
 *   REQUIRE(cond, fmt, ...)  fatal: `cond` must hold, else print file:line + message, exit(1).
 *   EXPECT_ERR(name, call, want_status, needle)
 *                            one check: `call` returns exactly `want_status`, and the
 *                            thread's eq1_last_error_message is non-empty, was written by this
 *                            call (the previous message is primed with a sentinel first) and
 *                            contains `needle` (case-insensitive). Non-fatal: counts a failure.
 *   EXPECT_OK(name, call)    one check: `call` returns EQ1_STATUS_OK.
 *   EXPECT_TRUE(name, cond)  one check: `cond` holds.
 *   tu_summary()             prints "SUMMARY: <n> checks, <f> failed" and returns the exit code.
 *
 * Every check prints one line: "ok   - <name>" or "FAIL - <name> (file:line): ...".
 */
#ifndef EQ1_TEST_UTIL_H
#define EQ1_TEST_UTIL_H

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eq1.h"

/* Counters of the non-fatal checks (one program = one translation unit). */
static int tu_checks;
static int tu_failures;

static inline void sleep_ms(long ms)
{
	struct timespec ts;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) != 0) {
		/* interrupted: sleep the rest */
	}
}

/* Monotonic milliseconds (arbitrary origin). */
static inline int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The calling thread's last error message (possibly truncated to `len`). */
static inline const char *tu_last_error(char *buf, size_t len)
{
	if (len > 0)
		buf[0] = '\0';
	eq1_last_error_message(buf, len);
	return buf;
}

static inline bool tu_contains_nocase(const char *haystack, const char *needle)
{
	size_t n = strlen(needle);
	if (n == 0)
		return true;
	for (const char *h = haystack; *h; h++) {
		size_t i = 0;
		while (i < n && h[i] &&
		       tolower((unsigned char)h[i]) == tolower((unsigned char)needle[i]))
			i++;
		if (i == n)
			return true;
	}
	return false;
}

static inline void tu_die(const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	fflush(stdout);
	printf("FATAL %s:%d: ", file, line);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	exit(1);
}

static inline void tu_die_status(const char *file, int line, const char *expr, eq1_status st)
{
	char msg[1024];
	tu_last_error(msg, sizeof msg);
	tu_die(file, line, "%s -> %s (%d): %s", expr, eq1_status_str((int)st), (int)st, msg);
}

#define CHECK(call)                                                                      \
	do {                                                                             \
		eq1_status tu_st_ = (call);                                              \
		if (tu_st_ != EQ1_STATUS_OK)                                             \
			tu_die_status(__FILE__, __LINE__, #call, tu_st_);                \
	} while (0)

#define REQUIRE(cond, ...)                                                               \
	do {                                                                             \
		if (!(cond))                                                             \
			tu_die(__FILE__, __LINE__, __VA_ARGS__);                         \
	} while (0)

static inline void tu_pass(const char *name)
{
	tu_checks++;
	printf("ok   - %s\n", name);
	fflush(stdout);
}

static inline void tu_fail(const char *file, int line, const char *name, const char *fmt, ...)
{
	va_list ap;
	tu_checks++;
	tu_failures++;
	printf("FAIL - %s (%s:%d): ", name, file, line);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

/* Sentinel detail message, written by a call that is known to fail (an absurd log level). */
static char tu_sentinel[256];

static inline void tu_prime_last_error(void)
{
	eq1_set_log_callback(NULL, NULL, -424242); /* fails: the level is outside 1..5 */
	tu_last_error(tu_sentinel, sizeof tu_sentinel);
}

static inline void tu_expect_err(const char *file, int line, const char *name, const char *expr,
				 eq1_status got, eq1_status want, const char *needle)
{
	char msg[1024];
	size_t needed = eq1_last_error_message(NULL, 0);
	tu_last_error(msg, sizeof msg);
	if (got != want) {
		tu_fail(file, line, name, "%s -> %s (%d), expected %s (%d); message: '%s'", expr,
			eq1_status_str((int)got), (int)got, eq1_status_str((int)want), (int)want,
			msg);
	} else if (needed == 0 || msg[0] == '\0') {
		tu_fail(file, line, name, "%s -> %s but eq1_last_error_message is empty", expr,
			eq1_status_str((int)got));
	} else if (tu_sentinel[0] != '\0' && strcmp(msg, tu_sentinel) == 0) {
		tu_fail(file, line, name, "%s -> %s but the detail message was not updated ('%s')",
			expr, eq1_status_str((int)got), msg);
	} else if (!tu_contains_nocase(msg, needle)) {
		tu_fail(file, line, name, "%s -> %s; message '%s' does not mention '%s'", expr,
			eq1_status_str((int)got), msg, needle);
	} else {
		tu_checks++;
		printf("ok   - %s -> %s: \"%s\"\n", name, eq1_status_str((int)got), msg);
		fflush(stdout);
	}
}

#define EXPECT_ERR(name, call, want, needle)                                             \
	do {                                                                             \
		tu_prime_last_error();                                                   \
		eq1_status tu_got_ = (call);                                             \
		tu_expect_err(__FILE__, __LINE__, (name), #call, tu_got_, (want), (needle)); \
	} while (0)

#define EXPECT_OK(name, call)                                                            \
	do {                                                                             \
		eq1_status tu_got_ = (call);                                             \
		if (tu_got_ == EQ1_STATUS_OK) {                                          \
			tu_pass(name);                                                   \
		} else {                                                                 \
			char tu_msg_[1024];                                              \
			tu_last_error(tu_msg_, sizeof tu_msg_);                          \
			tu_fail(__FILE__, __LINE__, (name), "%s -> %s (%d): %s", #call,   \
				eq1_status_str((int)tu_got_), (int)tu_got_, tu_msg_);    \
		}                                                                        \
	} while (0)

#define EXPECT_TRUE(name, cond)                                                          \
	do {                                                                             \
		if (cond)                                                                \
			tu_pass(name);                                                   \
		else                                                                     \
			tu_fail(__FILE__, __LINE__, (name), "condition false: %s", #cond); \
	} while (0)

static inline int tu_summary(void)
{
	printf("SUMMARY: %d checks, %d failed\n", tu_checks, tu_failures);
	fflush(stdout);
	return tu_failures == 0 ? 0 : 1;
}

#endif /* EQ1_TEST_UTIL_H */
