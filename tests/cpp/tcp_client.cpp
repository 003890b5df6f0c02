/*
 * tcp_client.cpp - eq1::TcpClient (bindings/cpp/eq1.hpp) against the echo/framing server of
 * tests/harness/tcp_echo_server.py (u16 framing) that tests/test_tcp.py starts:
 *
 *   tcp_client <host> <port> <closed-port>
 *
 * Round trips, moves, the exception class of each failure (timeout, frame limits, a refused
 * connection, a moved-from client), and a connection the server closes while the client is
 * idle reopened by the next request. Prints one line per check and
 * "SUMMARY: <n> checks, <f> failed"; exits 0 only if f == 0.
 */
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

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

static std::string text(const std::vector<std::uint8_t> &bytes)
{
	return std::string(bytes.begin(), bytes.end());
}

template <typename Exception, typename F>
static void expect_throw(const std::string &name, eq1_status status, F &&call)
{
	try {
		call();
		report(false, name + " (nothing thrown)");
	} catch (const Exception &e) {
		report(e.status() == status && !e.detail().empty(),
		       name + ": " + std::string(eq1::status_string(e.status())) + ": " + e.detail());
	} catch (const eq1::Error &e) {
		report(false, name + ": wrong class for " + std::string(e.what()));
	}
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		std::fprintf(stderr, "usage: %s host port closed-port\n", argv[0]);
		return 2;
	}
	eq1::TcpClient::Config config;
	config.host = argv[1];
	config.port = static_cast<std::uint16_t>(std::atoi(argv[2]));
	config.framing = eq1::TcpClient::Framing::length_u16;
	config.max_frame = 1000;
	config.timeout = 5s;
	config.auto_reconnect = true;
	config.reconnect_min = 50ms;
	config.reconnect_max = 500ms;

	eq1::TcpClient client(config);
	report(!client.is_connected(), "not connected before connect()");
	client.connect();
	report(client.is_connected(), "connected");
	bool all = true;
	for (int i = 0; i < 1000; i++) {
		std::string message = "message " + std::to_string(i) + std::string(i % 200, 'z');
		all = all && text(client.request(message)) == message;
	}
	report(all, "1000 requests each answered with their message");

	eq1::TcpClient moved(std::move(client));
	report(text(moved.request("after a move")) == "after a move", "a moved-to client works");
	expect_throw<eq1::ValidationError>("a moved-from client throws ValidationError",
					   EQ1_STATUS_NULL_ARGUMENT, [&] { client.request("x"); });
	report(!client.is_connected(), "a moved-from client is not connected");

	expect_throw<eq1::ConnectionError>("a receive with nothing coming: ConnectionError",
					   EQ1_STATUS_TIMEOUT, [&] { moved.receive(100, 200ms); });
	expect_throw<eq1::ValidationError>("a message above max_frame: ValidationError",
					   EQ1_STATUS_PAYLOAD_TOO_LARGE,
					   [&] { moved.send(std::string(1001, 'b')); });
	expect_throw<eq1::ProtocolError>("a frame above max_frame from the server: ProtocolError",
					 EQ1_STATUS_FRAME_TOO_LARGE, [&] { moved.request("!big:1001"); });
	report(text(moved.request("reconnected")) == "reconnected",
	       "the next request reconnects (automatic reconnect)");

	report(text(moved.request("!close")) == "!close", "the server answers, then closes");
	std::this_thread::sleep_for(300ms); /* idle: the server's FIN arrives meanwhile */
	report(text(moved.request("after the cut")) == "after the cut",
	       "a connection closed while idle is reopened by the next request");
	eq1_tcp_stats s = moved.stats();
	report(s.reconnects == 2 && s.requests == 1005 && s.failures == 1,
	       "stats: 2 reconnects, 1005 requests, 1 failure");

	eq1::TcpClient::Config closed = config;
	closed.port = static_cast<std::uint16_t>(std::atoi(argv[3]));
	eq1::TcpClient refused(closed);
	expect_throw<eq1::ConnectionError>("connect to a closed port: ConnectionError",
					   EQ1_STATUS_CONNECTION_REFUSED,
					   [&] { refused.connect(2s); });
	eq1::TcpClient::Config bad = config;
	bad.framing = eq1::TcpClient::Framing::delimiter;
	bad.delimiter = "";
	expect_throw<eq1::ValidationError>("an empty delimiter: ValidationError",
					   EQ1_STATUS_INVALID_ARGUMENT, [&] { eq1::TcpClient c(bad); });
	moved.disconnect();
	report(!moved.is_connected(), "disconnected");

	std::printf("SUMMARY: %d checks, %d failed\n", g_checks, g_failures);
	return g_failures == 0 ? 0 : 1;
}
