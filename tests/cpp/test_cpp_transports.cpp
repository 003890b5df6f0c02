/*
 * test_cpp_transports.cpp - the C++ wrapper's transport options (bindings/cpp/eq1.hpp): broker
 * URIs, proxy, binding and WebSocket headers chain and refuse bad values with ValidationError
 * carrying the library's status; then a QoS 1 round trip over each broker URI given.
 *
 *   test_cpp_transports <host> <port> [broker-uri...]
 *
 * Prints one line per check and "SUMMARY: <n> checks, <f> failed"; exits 0 only if f == 0.
 */
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "eq1.hpp"

using namespace std::chrono_literals;

static int g_checks;
static int g_failures;

static void report(bool ok, const std::string &name)
{
	std::printf("%s - %s\n", ok ? "ok  " : "FAIL", name.c_str());
	std::fflush(stdout);
	g_checks++;
	if (!ok)
		g_failures++;
}

template <typename F> static void expect_invalid(const std::string &name, F &&call)
{
	try {
		call();
		report(false, name + " throws ValidationError");
	} catch (const eq1::ValidationError &e) {
		report(e.status() == EQ1_STATUS_INVALID_ARGUMENT,
		       name + " throws ValidationError INVALID_ARGUMENT");
	} catch (...) {
		report(false, name + " throws ValidationError (threw something else)");
	}
}

static void round_trip(const std::string &uri)
{
	try {
		eq1::Client client(eq1::Options()
					   .broker_uri(uri)
					   .websocket_header("X-Eq1-Test", "cpp")
					   .connect_timeout(10s));
		client.connect();
		std::atomic<int> received{0};
		client.subscribe("eq1test/cpp/transport", 1,
				 [&](const eq1::Message &) { received++; });
		client.wait(client.publish("eq1test/cpp/transport", std::string_view("hi"), 1), 10s);
		for (int i = 0; i < 1000 && received.load() == 0; i++)
			std::this_thread::sleep_for(10ms);
		report(received.load() == 1, "round trip over " + uri);
		client.disconnect();
	} catch (const eq1::Error &e) {
		report(false, "round trip over " + uri + ": " + e.what());
	}
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		std::fprintf(stderr, "usage: test_cpp_transports <host> <port> [uri...]\n");
		return 2;
	}
	try {
		eq1::Options options;
		options.broker_uri("wss://[::1]:8443/mqtt")
			.add_broker_uri("unix:///tmp/eq1.sock")
			.proxy("socks5h://u:p%40ss@127.0.0.1:1080")
			.no_proxy()
			.proxy_from_env(false)
			.bind_address("127.0.0.2")
			.bind_interface("lo")
			.websocket_header("Authorization", "Bearer t");
		report(true, "every transport option chains");
	} catch (const eq1::Error &e) {
		report(false, std::string("every transport option chains: ") + e.what());
	}
	eq1::Options options;
	expect_invalid("broker_uri(no scheme)", [&] { options.broker_uri("localhost:1883"); });
	expect_invalid("add_broker_uri(ftp://h)", [&] { options.add_broker_uri("ftp://h"); });
	expect_invalid("proxy(https://p)", [&] { options.proxy("https://p"); });
	expect_invalid("bind_address(localhost)", [&] { options.bind_address("localhost"); });
	expect_invalid("bind_interface(\"\")", [&] { options.bind_interface(""); });
	expect_invalid("websocket_header(Host)", [&] { options.websocket_header("Host", "x"); });

	round_trip("mqtt://" + std::string(argv[1]) + ":" + argv[2]);
	for (int i = 3; i < argc; i++)
		round_trip(argv[i]);
	std::printf("SUMMARY: %d checks, %d failed\n", g_checks, g_failures);
	return g_failures == 0 ? 0 : 1;
}
