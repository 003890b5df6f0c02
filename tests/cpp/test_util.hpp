/*
 * test_util.hpp - the checks shared by the C++ test programs (tests/cpp/, tests/cpp/peers/):
 * every check prints "ok   - <name>" or "FAIL - <name>: <why>"; main prints
 * "SUMMARY: <g_checks> checks, <g_failures> failed".
 */
#ifndef EQ1_TEST_UTIL_HPP
#define EQ1_TEST_UTIL_HPP

#include <cstdio>
#include <exception>
#include <string>
#include <typeinfo>

#include "eq1.hpp"

static int g_checks;
static int g_failures;

static inline void report(bool ok, const std::string &name, const std::string &why = "")
{
	++g_checks;
	if (ok) {
		std::printf("ok   - %s\n", name.c_str());
	} else {
		++g_failures;
		std::printf("FAIL - %s%s%s\n", name.c_str(), why.empty() ? "" : ": ", why.c_str());
	}
	std::fflush(stdout);
}

static inline std::string status_name(eq1_status status)
{
	return std::to_string(static_cast<int>(status)) + " (" + std::string(eq1::status_string(status)) + ")";
}

/* `call` must throw exactly an E (or a subclass) with status `want` and a detail message. */
template <class E, class F>
static void expect_throw(const std::string &name, F &&call, eq1_status want)
{
	try {
		call();
		report(false, name, "no exception");
	} catch (const E &e) {
		bool ok = e.status() == want && !e.detail().empty() &&
			  std::string(e.what()).find(e.detail()) != std::string::npos;
		report(ok, name,
		       ok ? "" : "status " + status_name(e.status()) + " want " + status_name(want) +
				       ", what(): " + e.what());
	} catch (const eq1::Error &e) {
		report(false, name,
		       std::string("wrong class ") + typeid(e).name() + ", status " + status_name(e.status()) +
			       ": " + e.what());
	} catch (const std::exception &e) {
		report(false, name, std::string("not an eq1::Error: ") + typeid(e).name() + ": " + e.what());
	}
}

#endif /* EQ1_TEST_UTIL_HPP */
