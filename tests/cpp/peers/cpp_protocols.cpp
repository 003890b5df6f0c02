/*
 * cpp_protocols.cpp - eq1::ModbusClient, eq1::SerialPort and eq1::Protocol (bindings/cpp/eq1.hpp)
 * against real peers the test started. Not in tests/cpp/ itself, where CTest runs every program
 * with a broker's "<host> <port>": these need other peers (tests/test_cpp_protocols.py).
 *
 *   cpp_protocols modbus HOST PORT   pymodbus's server (tests/harness/modbus_server.py's map)
 *   cpp_protocols serial A B         the two ends of a socat pty pair
 *   cpp_protocols plugin ECHO_SO     the echo plugin of tests/c/plugin_echo.c
 *
 * Prints one line per check and "SUMMARY: <n> checks, <f> failed"; exits 0 only if f == 0.
 */
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "eq1.hpp"
#include "../test_util.hpp"

using namespace std::chrono_literals;

static_assert(!std::is_copy_constructible_v<eq1::SerialPort>, "SerialPort is move-only");
static_assert(std::is_nothrow_move_constructible_v<eq1::SerialPort>);
static_assert(!std::is_copy_constructible_v<eq1::Protocol>, "Protocol is move-only");
static_assert(std::is_nothrow_move_assignable_v<eq1::Protocol>);

#define EXPECT(name, cond) report((cond), name, #cond)

static void modbus(const std::string &host, int port)
{
	eq1::ModbusClient::Config config;
	config.host = host;
	config.port = port;
	config.timeout_ms = 2000;
	eq1::ModbusClient client(config);
	client.connect();

	std::vector<bool> coils = client.read_coils(0, 100);
	bool all = coils.size() == 100;
	for (int i = 0; all && i < 100; i++)
		all = coils[static_cast<std::size_t>(i)] == (i % 2 == 0);
	EXPECT("0x01 read coils are the server's", all);
	std::vector<bool> discrete = client.read_discrete_inputs(0, 100, 1);
	all = discrete.size() == 100;
	for (int i = 0; all && i < 100; i++)
		all = discrete[static_cast<std::size_t>(i)] == (i % 3 == 0);
	EXPECT("0x02 read discrete inputs are the server's", all);
	std::vector<std::uint16_t> holding = client.read_holding_registers(0, 100);
	all = holding.size() == 100;
	for (int i = 0; all && i < 100; i++)
		all = holding[static_cast<std::size_t>(i)] == 1000 + i;
	EXPECT("0x03 read holding registers are the server's", all);
	std::vector<std::uint16_t> input = client.read_input_registers(10, 5);
	EXPECT("0x04 read input registers are the server's",
	      input == (std::vector<std::uint16_t>{2010, 2011, 2012, 2013, 2014}));

	client.write_single_coil(1, true);
	EXPECT("0x05 write single coil reads back", client.read_coils(1, 1) == std::vector<bool>{true});
	client.write_single_register(2, 65535);
	EXPECT("0x06 write single register reads back",
	      client.read_holding_registers(2, 1) == std::vector<std::uint16_t>{65535});
	client.write_multiple_coils(40, {true, false, true});
	EXPECT("0x0F write multiple coils reads back",
	      client.read_coils(40, 3) == (std::vector<bool>{true, false, true}));
	client.write_multiple_registers(50, {7, 8, 9});
	EXPECT("0x10 write multiple registers reads back",
	      client.read_holding_registers(50, 3) == (std::vector<std::uint16_t>{7, 8, 9}));
	EXPECT("0x17 read/write multiple registers",
	      client.read_write_multiple_registers(60, 2, 61, {5}) ==
		      (std::vector<std::uint16_t>{1060, 5}));

	expect_throw<eq1::ValidationError>("an address outside the map is illegal data address",
					   [&] { client.read_holding_registers(100, 1); },
					   EQ1_STATUS_MODBUS_ILLEGAL_DATA_ADDRESS);
	expect_throw<eq1::ValidationError>("126 registers are refused before sending",
					   [&] { client.read_holding_registers(0, 126); },
					   EQ1_STATUS_INVALID_ARGUMENT);
	eq1_modbus_call_options quick{500, 0};
	EXPECT("per-call options are used",
	      client.read_holding_registers(3, 1, EQ1_MODBUS_DEFAULT_UNIT, &quick) ==
		      std::vector<std::uint16_t>{1003});
	eq1_modbus_stats stats = client.stats();
	EXPECT("stats count the requests and the exception", stats.requests >= 14 &&
							    stats.exceptions == 1 && stats.bytes_in > 0);

	eq1::ModbusClient moved(std::move(client));
	EXPECT("a moved client still works", moved.read_holding_registers(0, 1) ==
						   std::vector<std::uint16_t>{1000});
	expect_throw<eq1::ValidationError>("the moved-from client throws",
					   [&] { client.read_coils(0, 1); }, // NOLINT: on purpose
					   EQ1_STATUS_NULL_ARGUMENT);
	moved.disconnect();

	eq1::ModbusClient::Config closed = config;
	closed.port = 1; // nothing listens on port 1 of the loopback
	closed.retries = 0;
	eq1::ModbusClient refused(closed);
	expect_throw<eq1::ConnectionError>("connect to a closed port", [&] { refused.connect(); },
					   EQ1_STATUS_CONNECTION_REFUSED);
}

static std::vector<std::uint8_t> read_exactly(eq1::SerialPort &port, std::size_t n)
{
	std::vector<std::uint8_t> got;
	while (got.size() < n) {
		std::vector<std::uint8_t> part = port.receive(n - got.size(), 5s);
		got.insert(got.end(), part.begin(), part.end());
	}
	return got;
}

static void serial(const std::string &a_path, const std::string &b_path)
{
	eq1::SerialPort::Config config;
	config.device = a_path;
	config.baud = 115200;
	eq1::SerialPort a(config);
	config.device = b_path;
	eq1::SerialPort b(config);
	a.connect();
	b.connect();

	std::vector<std::uint8_t> every(256);
	for (std::size_t i = 0; i < every.size(); i++)
		every[i] = static_cast<std::uint8_t>(i);
	a.send(eq1::Bytes(every.data(), every.size()));
	EXPECT("A -> B: all 256 byte values", read_exactly(b, 256) == every);
	b.send("from B");
	std::vector<std::uint8_t> back = read_exactly(a, 6);
	EXPECT("B -> A: text", std::string(back.begin(), back.end()) == "from B");

	std::thread echo([&] {
		std::vector<std::uint8_t> question = read_exactly(b, 4);
		b.send(eq1::Bytes(question.data(), question.size()));
	});
	std::vector<std::uint8_t> answer = a.request("ping", 64, 5s);
	if (answer.size() < 4) {
		std::vector<std::uint8_t> rest = read_exactly(a, 4 - answer.size());
		answer.insert(answer.end(), rest.begin(), rest.end());
	}
	echo.join();
	EXPECT("request gets the echo", std::string(answer.begin(), answer.end()) == "ping");
	EXPECT("stats count the request", a.stats().requests == 1 && a.stats().bytes_sent == 260);

	expect_throw<eq1::ConnectionError>("receive with nothing arriving times out",
					   [&] { a.receive(16, 200ms); }, EQ1_STATUS_TIMEOUT);
	expect_throw<eq1::ValidationError>("receive of 0 bytes", [&] { a.receive(0); },
					   EQ1_STATUS_INVALID_ARGUMENT);

	eq1::SerialPort::Config bad = config;
	bad.data_bits = 9;
	expect_throw<eq1::ValidationError>("data bits 9", [&] { eq1::SerialPort p(bad); },
					   EQ1_STATUS_INVALID_ARGUMENT);
	bad = config;
	bad.parity = 7;
	expect_throw<eq1::ValidationError>("parity 7", [&] { eq1::SerialPort p(bad); },
					   EQ1_STATUS_INVALID_ARGUMENT);
	bad = config;
	bad.stop_bits = 3;
	expect_throw<eq1::ValidationError>("stop bits 3", [&] { eq1::SerialPort p(bad); },
					   EQ1_STATUS_INVALID_ARGUMENT);
	bad = config;
	bad.flow_control = 9;
	expect_throw<eq1::ValidationError>("flow control 9", [&] { eq1::SerialPort p(bad); },
					   EQ1_STATUS_INVALID_ARGUMENT);
	bad = config;
	bad.baud = 0;
	expect_throw<eq1::ValidationError>("baud 0", [&] { eq1::SerialPort p(bad); },
					   EQ1_STATUS_INVALID_ARGUMENT);
	bad = config;
	bad.device = std::string("/dev/tty\0S0", 11);
	expect_throw<eq1::ValidationError>("a device path with a NUL", [&] { eq1::SerialPort p(bad); },
					   EQ1_STATUS_INVALID_ARGUMENT);
	bad = config;
	bad.device = "/dev/eq1-no-such-serial-device";
	eq1::SerialPort missing(bad);
	expect_throw<eq1::ConnectionError>("a device that does not exist",
					   [&] { missing.connect(); }, EQ1_STATUS_SERIAL_ERROR);

	/* The same line through the registry. */
	a.disconnect();
	eq1::Protocol line("serial", {{"device", a_path}, {"baud", "115200"}});
	line.connect();
	line.send("generic");
	std::vector<std::uint8_t> generic = read_exactly(b, 7);
	EXPECT("Protocol(\"serial\") sends to the other end",
	      std::string(generic.begin(), generic.end()) == "generic");
	expect_throw<eq1::ValidationError>("Protocol(\"serial\") cannot publish",
					   [&] { line.publish("t", "x"); },
					   EQ1_STATUS_UNSUPPORTED_OPERATION);
}

static void plugin(const std::string &path)
{
	expect_throw<eq1::ValidationError>("an unknown name", [] { eq1::Protocol p("echo"); },
					   EQ1_STATUS_UNKNOWN_PROTOCOL);
	EXPECT("load_plugin returns the plugin's name", eq1::Protocol::load_plugin(path) == "echo");
	std::vector<std::string> names = eq1::Protocol::names();
	EXPECT("names() lists the plugin beside the built-ins",
	      names == (std::vector<std::string>{"echo", "modbus-rtu", "modbus-tcp", "mqtt", "serial",
						 "tcp"}));
	expect_throw<eq1::ValidationError>("loading it again: the name is taken",
					   [&] { eq1::Protocol::load_plugin(path); },
					   EQ1_STATUS_PROTOCOL_EXISTS);
	expect_throw<eq1::ValidationError>("a plugin path that does not exist",
					   [&] { eq1::Protocol::load_plugin(path + ".missing"); },
					   EQ1_STATUS_PLUGIN_LOAD);

	eq1::Protocol echo("echo", {{"capacity", "1000"}});
	EXPECT("not connected before connect", !echo.is_connected());
	echo.connect(1s);
	EXPECT("connected", echo.is_connected());
	echo.send("hello");
	std::vector<std::uint8_t> got = echo.receive(64, 1s);
	EXPECT("receive returns what was sent", std::string(got.begin(), got.end()) == "hello");
	got = echo.request("again", 3, 1s);
	EXPECT("request returns at most max_len of the echo", std::string(got.begin(), got.end()) == "aga");
	got = echo.receive(64, 1s);
	EXPECT("the rest follows", std::string(got.begin(), got.end()) == "in");
	expect_throw<eq1::ConnectionError>("the plugin's timeout status comes through",
					   [&] { echo.receive(64, 100ms); }, EQ1_STATUS_TIMEOUT);
	expect_throw<eq1::ValidationError>("publish on a plugin without publish",
					   [&] { echo.publish("a/b", "x", 1); },
					   EQ1_STATUS_UNSUPPORTED_OPERATION);
	expect_throw<eq1::ValidationError>("an option the plugin does not know",
					   [] { eq1::Protocol p("echo", {{"colour", "red"}}); },
					   EQ1_STATUS_INVALID_ARGUMENT);

	eq1::Protocol moved = std::move(echo);
	EXPECT("a moved protocol still works", moved.is_connected());
	EXPECT("the moved-from one is not connected", !echo.is_connected()); // NOLINT: on purpose
	expect_throw<eq1::ValidationError>("the moved-from one throws",
					   [&] { echo.send("x"); }, EQ1_STATUS_NULL_ARGUMENT);
	moved.disconnect(1s);
}

int main(int argc, char **argv)
{
	std::string mode = argc > 1 ? argv[1] : "";
	try {
		if (mode == "modbus" && argc == 4)
			modbus(argv[2], std::atoi(argv[3]));
		else if (mode == "serial" && argc == 4)
			serial(argv[2], argv[3]);
		else if (mode == "plugin" && argc == 3)
			plugin(argv[2]);
		else {
			std::printf("usage: cpp_protocols modbus HOST PORT | serial A B | plugin ECHO_SO\n");
			return 2;
		}
	} catch (const std::exception &e) {
		report(false, "unexpected exception", e.what());
	}
	std::printf("SUMMARY: %d checks, %d failed\n", g_checks, g_failures);
	return g_failures == 0 ? 0 : 1;
}
