/*
 * test_cpp_wrapper.cpp - the C++ wrapper (bindings/cpp/eq1.hpp) against a real broker:
 * round trips at QoS 0/1/2, handlers that capture state, move semantics of Client and Options,
 * every exception family from a real cause, exceptions thrown inside handlers, and that
 * connection/delivery handlers, stats(), id(), unsubscribe and the will behave.
 *
 *   test_cpp_wrapper <host> <port>
 *
 * Prints one line per check ("ok   - ..." / "FAIL - ...") and "SUMMARY: <n> checks, <f> failed";
 * exits 0 only if f == 0.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "eq1.hpp"
#include "test_util.hpp"

using namespace std::chrono_literals;

static_assert(!std::is_copy_constructible_v<eq1::Client>, "Client is move-only");
static_assert(!std::is_copy_assignable_v<eq1::Client>, "Client is move-only");
static_assert(std::is_nothrow_move_constructible_v<eq1::Client>);
static_assert(std::is_nothrow_move_assignable_v<eq1::Client>);
static_assert(!std::is_copy_constructible_v<eq1::Options>, "Options is move-only");
static_assert(std::is_nothrow_move_constructible_v<eq1::Options>);
static_assert(std::is_nothrow_move_assignable_v<eq1::Options>);
static_assert(std::is_nothrow_destructible_v<eq1::Client>);
static_assert(!std::is_copy_constructible_v<eq1::Message>, "a Message is a borrowed view");
static_assert(std::is_base_of_v<std::runtime_error, eq1::Error>);
static_assert(std::is_base_of_v<eq1::Error, eq1::ConnectionError>);
static_assert(std::is_base_of_v<eq1::Error, eq1::AuthenticationError>);
static_assert(std::is_base_of_v<eq1::Error, eq1::ValidationError>);
static_assert(std::is_base_of_v<eq1::Error, eq1::ProtocolError>);

/* ---------------------------------------------------------------------------- checks */

static std::string g_host;
static int g_port;
static std::string g_base; // topic prefix unique to this process

#define CHECK(cond) report((cond), #cond, std::string(__FILE__ ":") + std::to_string(__LINE__))

/* What a subscription received; filled on the dispatcher thread, read by main. */
struct Inbox {
	struct Item {
		std::string topic;
		std::string payload;
		int qos;
		bool retain;
	};
	std::mutex mutex;
	std::condition_variable changed;
	std::vector<Item> items;

	void add(const eq1::Message &msg)
	{
		std::lock_guard<std::mutex> lock(mutex);
		items.push_back({std::string(msg.topic()), std::string(msg.payload_view()), msg.qos(),
				 msg.retain()});
		changed.notify_all();
	}
	bool wait_for(std::size_t count, std::chrono::milliseconds timeout = 10s)
	{
		std::unique_lock<std::mutex> lock(mutex);
		return changed.wait_for(lock, timeout, [&] { return items.size() >= count; });
	}
	std::size_t size()
	{
		std::lock_guard<std::mutex> lock(mutex);
		return items.size();
	}
	Item at(std::size_t i)
	{
		std::lock_guard<std::mutex> lock(mutex);
		return items.at(i);
	}
	eq1::MessageHandler handler()
	{
		return [this](const eq1::Message &msg) { add(msg); };
	}
};

/* Polls `cond` for up to `timeout`. */
static bool eventually(const std::function<bool()> &cond, std::chrono::milliseconds timeout = 10s)
{
	auto deadline = std::chrono::steady_clock::now() + timeout;
	while (!cond()) {
		if (std::chrono::steady_clock::now() > deadline)
			return false;
		std::this_thread::sleep_for(10ms);
	}
	return true;
}

static eq1::Options options_for_test(const std::string &client_id = "")
{
	eq1::Options options;
	options.broker(g_host, g_port).connect_timeout(10s).client_id(client_id);
	return options;
}

/* ---------------------------------------------------------------------------- tests */

static void test_version()
{
	CHECK(eq1::version() == EQ1_VERSION_STRING);
	CHECK(eq1::version_matches());
}

static void test_error_families()
{
	struct Case {
		eq1_status status;
		eq1::ErrorKind kind;
	};
	const Case cases[] = {
		{EQ1_STATUS_NULL_ARGUMENT, eq1::ErrorKind::validation},
		{EQ1_STATUS_INVALID_UTF8, eq1::ErrorKind::validation},
		{EQ1_STATUS_INVALID_TOPIC, eq1::ErrorKind::validation},
		{EQ1_STATUS_INVALID_FILTER, eq1::ErrorKind::validation},
		{EQ1_STATUS_INVALID_QOS, eq1::ErrorKind::validation},
		{EQ1_STATUS_PAYLOAD_TOO_LARGE, eq1::ErrorKind::validation},
		{EQ1_STATUS_INVALID_ARGUMENT, eq1::ErrorKind::validation},
		{EQ1_STATUS_INVALID_CLIENT_ID, eq1::ErrorKind::validation},
		{EQ1_STATUS_INVALID_STATE, eq1::ErrorKind::validation},
		{EQ1_STATUS_QUEUE_FULL, eq1::ErrorKind::validation},
		{EQ1_STATUS_SUBSCRIBE_REFUSED, eq1::ErrorKind::validation},
		{EQ1_STATUS_PUBLISH_REFUSED, eq1::ErrorKind::validation},
		{EQ1_STATUS_TLS_CONFIG, eq1::ErrorKind::validation},
		{EQ1_STATUS_BAD_CREDENTIALS, eq1::ErrorKind::authentication},
		{EQ1_STATUS_NOT_AUTHORIZED, eq1::ErrorKind::authentication},
		{EQ1_STATUS_TLS_CLIENT_CERT_REJECTED, eq1::ErrorKind::authentication},
		{EQ1_STATUS_PROTOCOL_ERROR, eq1::ErrorKind::protocol},
		{EQ1_STATUS_CONNECTION_REFUSED, eq1::ErrorKind::connection},
		{EQ1_STATUS_TIMEOUT, eq1::ErrorKind::connection},
		{EQ1_STATUS_DNS_FAILED, eq1::ErrorKind::connection},
		{EQ1_STATUS_CONNECTION_LOST, eq1::ErrorKind::connection},
		{EQ1_STATUS_TLS_UNKNOWN_ISSUER, eq1::ErrorKind::connection},
		{EQ1_STATUS_NOT_CONNECTED, eq1::ErrorKind::connection},
		{EQ1_STATUS_INTERNAL, eq1::ErrorKind::other},
		{EQ1_STATUS_CALLED_FROM_CALLBACK, eq1::ErrorKind::other},
	};
	bool all_kinds = true, all_thrown = true;
	std::string why;
	for (const Case &c : cases) {
		if (eq1::error_kind(c.status) != c.kind) {
			all_kinds = false;
			why += " kind(" + status_name(c.status) + ")";
		}
		try {
			eq1::throw_error(c.status, "detail text");
		} catch (const eq1::Error &e) {
			bool ok = e.status() == c.status && e.detail() == "detail text";
			switch (c.kind) {
			case eq1::ErrorKind::validation:
				ok = ok && dynamic_cast<const eq1::ValidationError *>(&e) != nullptr;
				break;
			case eq1::ErrorKind::authentication:
				ok = ok && dynamic_cast<const eq1::AuthenticationError *>(&e) != nullptr;
				break;
			case eq1::ErrorKind::protocol:
				ok = ok && dynamic_cast<const eq1::ProtocolError *>(&e) != nullptr;
				break;
			case eq1::ErrorKind::connection:
				ok = ok && dynamic_cast<const eq1::ConnectionError *>(&e) != nullptr;
				break;
			case eq1::ErrorKind::other:
			case eq1::ErrorKind::none:
				ok = ok && typeid(e) == typeid(eq1::Error);
				break;
			}
			if (!ok) {
				all_thrown = false;
				why += " throw(" + status_name(c.status) + ")";
			}
		}
	}
	report(all_kinds, "error_kind maps every status onto its family", why);
	report(all_thrown, "throw_error throws the family's class with status and detail", why);
	CHECK(eq1::error_kind(static_cast<eq1_status>(12345)) == eq1::ErrorKind::other);

	// Copying an exception keeps status and detail.
	eq1::ValidationError original(EQ1_STATUS_INVALID_QOS, "qos 7");
	eq1::ValidationError copy = original;
	CHECK(copy.status() == EQ1_STATUS_INVALID_QOS && copy.detail() == "qos 7");
	CHECK(std::string(copy.what()).find("qos 7") != std::string::npos);
}

static void test_options()
{
	eq1::Options a;
	a.broker(g_host, g_port).keep_alive(30s).clean_session(true).protocol_version(EQ1_MQTT_V311);
	eq1_mqtt_options *handle = a.native();
	CHECK(handle != nullptr);

	eq1::Options b(std::move(a));
	CHECK(a.native() == nullptr); // NOLINT(bugprone-use-after-move): checking the moved-from state
	CHECK(b.native() == handle);

	eq1::Options c;
	c = std::move(b);
	CHECK(c.native() == handle && b.native() == nullptr);

	// A moved-from Options refuses to be used.
	expect_throw<eq1::ValidationError>("setter on a moved-from Options",
					   [&] { a.client_id("x"); }, EQ1_STATUS_NULL_ARGUMENT);
	expect_throw<eq1::ValidationError>("Client from a moved-from Options",
					   [&] { eq1::Client client(a); }, EQ1_STATUS_NULL_ARGUMENT);

	// Fluent chain on a temporary, moved into a variable.
	eq1::Options chained = eq1::Options().broker(g_host, g_port).client_id("chained").inflight_window(5);
	CHECK(chained.native() != nullptr);
	eq1::Client from_chain(chained);
	CHECK(from_chain.id() == "chained");

	// Setters validate through the library.
	expect_throw<eq1::ValidationError>("port 0 is refused", [&] { c.broker("localhost", 0); },
					   EQ1_STATUS_INVALID_ARGUMENT);
	expect_throw<eq1::ValidationError>("keep-alive 70000 s is refused",
					   [&] { c.keep_alive(std::chrono::seconds(70000)); },
					   EQ1_STATUS_INVALID_ARGUMENT);
	expect_throw<eq1::ValidationError>("protocol version 2 is refused",
					   [&] { c.protocol_version(2); }, EQ1_STATUS_INVALID_ARGUMENT);
	expect_throw<eq1::ValidationError>("host with a NUL byte is refused by the wrapper",
					   [&] { c.broker(std::string_view("local\0host", 10), 1); },
					   EQ1_STATUS_INVALID_ARGUMENT);
}

static bool refuse_to_sign(void *, eq1_tls_signature_scheme, const std::uint8_t *, std::size_t,
			   std::uint8_t *, std::size_t, std::size_t *)
{
	return false;
}

/* TLS beyond files: the setters reach the library, which checks what they are given. */
static void test_tls_options()
{
	eq1::Options o;
	expect_throw<eq1::ValidationError>("tls_alpn before TLS is on",
					   [&] { o.tls_alpn({"mqtt"}); }, EQ1_STATUS_INVALID_STATE);
	expect_throw<eq1::ValidationError>("tls_ca_data with garbage",
					   [&] { o.tls_ca_data("not a certificate"); },
					   EQ1_STATUS_TLS_CONFIG);
	o.tls();
	o.tls_alpn({"mqtt", "x-eq1"}).tls_alpn({}).tls_server_name("broker.example");
	report(true, "tls_alpn and tls_server_name accepted after tls()");
	expect_throw<eq1::ValidationError>("tls_alpn with an empty id",
					   [&] { o.tls_alpn({""}); }, EQ1_STATUS_INVALID_ARGUMENT);
	expect_throw<eq1::ValidationError>("tls_server_name that is no name",
					   [&] { o.tls_server_name("a b"); }, EQ1_STATUS_INVALID_ARGUMENT);
	expect_throw<eq1::ValidationError>("tls_client_cert_data with garbage",
					   [&] { o.tls_client_cert_data("junk", "junk", "pw"); },
					   EQ1_STATUS_TLS_CONFIG);
	expect_throw<eq1::ValidationError>("tls_client_signer with garbage",
					   [&] { o.tls_client_signer("junk", refuse_to_sign, nullptr); },
					   EQ1_STATUS_TLS_CONFIG);
	expect_throw<eq1::ValidationError>("tls_crl_data with garbage",
					   [&] { o.tls_crl_data("junk"); }, EQ1_STATUS_TLS_CONFIG);
	expect_throw<eq1::ValidationError>("tls_crl_file that does not exist",
					   [&] { o.tls_crl_file("/nonexistent/crl.pem"); },
					   EQ1_STATUS_TLS_CONFIG);
}

/* Round trips at QoS 0/1/2, text, binary and empty payloads; handlers capture state. */
static void test_round_trips()
{
	eq1::Client client(options_for_test());
	std::mutex events_mutex;
	std::vector<std::pair<eq1_connection_state, int>> events;
	client.on_connection([&](const eq1::ConnectionEvent &event) {
		std::lock_guard<std::mutex> lock(events_mutex);
		events.emplace_back(event.state, event.broker_port);
	});
	std::mutex tokens_mutex;
	std::set<eq1::Token> delivered_ok;
	client.on_delivery([&](const eq1::Delivery &delivery) {
		std::lock_guard<std::mutex> lock(tokens_mutex);
		if (delivery.ok())
			delivered_ok.insert(delivery.token);
	});

	client.connect();
	CHECK(client.is_connected());
	CHECK(eventually([&] {
		std::lock_guard<std::mutex> lock(events_mutex);
		return !events.empty();
	}));
	{
		std::lock_guard<std::mutex> lock(events_mutex);
		CHECK(!events.empty() && events[0].first == EQ1_CONNECTION_STATE_CONNECTED &&
		      events[0].second == g_port);
	}
	std::string id = client.id();
	CHECK(id.rfind("eq1-", 0) == 0 && id.size() == 20); // generated: "eq1-" + 16 hex digits

	Inbox inbox;
	// The handler is a mutable lambda with its own counter: the Client must keep this very
	// std::function object (not a fresh copy per message) for the counter to advance.
	auto calls = std::make_shared<std::atomic<int>>(0);
	int granted = client.subscribe(g_base + "/rt/#", 2,
				       [&inbox, calls, count = 0](const eq1::Message &msg) mutable {
					       ++count;
					       calls->store(count);
					       inbox.add(msg);
				       });
	CHECK(granted == 2);

	std::vector<eq1::Token> tokens;
	for (int qos = 0; qos <= 2; qos++) {
		std::string topic = g_base + "/rt/q" + std::to_string(qos);
		std::string text = "payload at qos " + std::to_string(qos);
		eq1::Token token = client.publish(topic, text, qos);
		CHECK(token != 0);
		tokens.push_back(token);
		client.wait(token, 10s);
		bool arrived = inbox.wait_for(static_cast<std::size_t>(qos) + 1);
		report(arrived, "QoS " + std::to_string(qos) + " round trip arrives");
		if (arrived) {
			Inbox::Item item = inbox.at(static_cast<std::size_t>(qos));
			report(item.topic == topic && item.payload == text && item.qos == qos &&
				       !item.retain,
			       "QoS " + std::to_string(qos) + " round trip: topic, payload, qos",
			       item.topic + " '" + item.payload + "' qos " + std::to_string(item.qos));
		}
	}

	// Binary payload with NUL bytes (Bytes: pointer + size) and an empty payload.
	const std::uint8_t binary[] = {0, 1, 2, 0, 255, 0};
	eq1::Token token = client.publish(g_base + "/rt/bin", eq1::Bytes(binary, sizeof binary), 1);
	tokens.push_back(token);
	client.wait(token);
	token = client.publish(g_base + "/rt/empty", eq1::Bytes(), 1);
	tokens.push_back(token);
	client.wait(token);
	CHECK(inbox.wait_for(5));
	if (inbox.size() >= 5) {
		CHECK(inbox.at(3).payload == std::string(reinterpret_cast<const char *>(binary), sizeof binary));
		CHECK(inbox.at(4).payload.empty());
	}
	CHECK(calls->load() == 5);
	{
		// Five publishes, all completed: the metrics text counts them.
		std::string metrics = client.metrics_text();
		CHECK(metrics.find("\neq1_mqtt_published_total 5\n") != std::string::npos);
		CHECK(metrics.size() > 6 && metrics.compare(metrics.size() - 6, 6, "# EOF\n") == 0);
	}

	// The delivery handler saw every token succeed.
	CHECK(eventually([&] {
		std::lock_guard<std::mutex> lock(tokens_mutex);
		return delivered_ok.size() == tokens.size();
	}));
	{
		std::lock_guard<std::mutex> lock(tokens_mutex);
		CHECK(std::set<eq1::Token>(tokens.begin(), tokens.end()) == delivered_ok);
	}

	eq1::Stats stats = client.stats();
	CHECK(stats.published == 5);
	CHECK(stats.delivered == 5);
	CHECK(stats.received == 5);

	client.disconnect(5s);
	CHECK(!client.is_connected());
	CHECK(eventually([&] {
		std::lock_guard<std::mutex> lock(events_mutex);
		return events.size() >= 2 && events.back().first == EQ1_CONNECTION_STATE_DISCONNECTED;
	}));
}

/* A Client moved (constructed and assigned) keeps its connection and its handlers. */
static void test_client_move()
{
	Inbox inbox;
	eq1::Client a(options_for_test("eq1cpp-move-" + std::to_string(getpid())));
	a.connect();
	a.subscribe(g_base + "/move/#", 1, inbox.handler());
	eq1_mqtt_client *handle = a.native_handle();

	eq1::Client b(std::move(a));
	CHECK(a.native_handle() == nullptr); // NOLINT(bugprone-use-after-move)
	CHECK(b.native_handle() == handle);
	CHECK(b.is_connected() && !a.is_connected());
	CHECK(a.id().empty());
	CHECK(a.metrics_text().empty());
	expect_throw<eq1::ValidationError>("publish on a moved-from Client",
					   [&] { a.publish(g_base + "/move/x", "x", 1); },
					   EQ1_STATUS_NULL_ARGUMENT);
	expect_throw<eq1::ValidationError>("subscribe on a moved-from Client",
					   [&] { a.subscribe(g_base + "/x", 0, inbox.handler()); },
					   EQ1_STATUS_NULL_ARGUMENT);

	b.wait(b.publish(g_base + "/move/1", "after move construction", 1));
	CHECK(inbox.wait_for(1));

	// Move-assign over another live, connected client: that one is freed, ours keeps going.
	eq1::Client c(options_for_test());
	c.connect();
	c = std::move(b);
	CHECK(c.native_handle() == handle && b.native_handle() == nullptr);
	c.wait(c.publish(g_base + "/move/2", "after move assignment", 1));
	CHECK(inbox.wait_for(2));
	if (inbox.size() >= 2)
		CHECK(inbox.at(1).payload == "after move assignment");
	CHECK(c.id() == "eq1cpp-move-" + std::to_string(getpid()));

	// Moving a client into a container and back out.
	std::vector<eq1::Client> clients;
	clients.push_back(std::move(c));
	clients.emplace_back(options_for_test());
	clients[0].wait(clients[0].publish(g_base + "/move/3", "from a vector", 1));
	CHECK(inbox.wait_for(3));
	clients[0].disconnect();
}

/* Each exception family from a real cause. */
static void test_exceptions_from_real_causes()
{
	eq1::Client client(options_for_test());
	client.connect();

	expect_throw<eq1::ValidationError>("publish to a/# throws ValidationError",
					   [&] { client.publish("a/#", "x", 1); }, EQ1_STATUS_INVALID_TOPIC);
	expect_throw<eq1::ValidationError>("publish at QoS 3 throws ValidationError",
					   [&] { client.publish(g_base + "/q3", "x", 3); },
					   EQ1_STATUS_INVALID_QOS);
	expect_throw<eq1::ValidationError>("subscribe at QoS 3 throws ValidationError",
					   [&] { client.subscribe(g_base + "/q3", 3, [](const eq1::Message &) {}); },
					   EQ1_STATUS_INVALID_QOS);
	expect_throw<eq1::ValidationError>("subscribe to a/#/b throws ValidationError",
					   [&] { client.subscribe("a/#/b", 0, [](const eq1::Message &) {}); },
					   EQ1_STATUS_INVALID_FILTER);
	expect_throw<eq1::ValidationError>("subscribe with an empty handler throws ValidationError",
					   [&] { client.subscribe(g_base + "/empty", 0, eq1::MessageHandler()); },
					   EQ1_STATUS_NULL_ARGUMENT);
	expect_throw<eq1::ValidationError>("topic with a NUL byte throws ValidationError",
					   [&] { client.publish(std::string_view("a\0b", 3), "x", 0); },
					   EQ1_STATUS_INVALID_TOPIC);
	expect_throw<eq1::ValidationError>("set_will while connected throws ValidationError",
					   [&] { client.set_will(g_base + "/will", "x", 1); },
					   EQ1_STATUS_INVALID_STATE);
	// Any filter may be unsubscribed (a persistent session of an earlier run may hold it).
	try {
		client.unsubscribe(g_base + "/never");
		report(true, "unsubscribe from a filter never subscribed succeeds", "");
	} catch (const eq1::Error &e) {
		report(false, "unsubscribe from a filter never subscribed succeeds", e.what());
	}

	// Catchable as the base classes too, with the detail from eq1_last_error_message.
	try {
		client.publish("a/#", "x", 1);
		report(false, "ValidationError caught as std::runtime_error", "no exception");
	} catch (const std::runtime_error &e) {
		const auto *error = dynamic_cast<const eq1::Error *>(&e);
		report(error != nullptr && std::string(e.what()).find("a/#") != std::string::npos,
		       "ValidationError caught as std::runtime_error names the topic", e.what());
	}
	client.disconnect();

	// A client that never connected cannot publish (the default outbox refuses it).
	eq1::Client idle(options_for_test());
	try {
		idle.publish(g_base + "/idle", "x", 1);
		report(false, "publish before connect throws ConnectionError", "no exception");
	} catch (const eq1::ConnectionError &e) {
		report(e.status() == EQ1_STATUS_NOT_CONNECTED, "publish before connect throws ConnectionError",
		       status_name(e.status()));
	} catch (const eq1::Error &e) {
		report(false, "publish before connect throws ConnectionError",
		       std::string(typeid(e).name()) + " " + status_name(e.status()));
	}

	// A port where nothing listens: bound (so nobody else takes it) but not listening.
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	sockaddr_in addr{};
	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	addr.sin_port = 0;
	socklen_t len = sizeof addr;
	bool bound = fd >= 0 && bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) == 0 &&
		     getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len) == 0;
	CHECK(bound);
	if (bound) {
		int closed_port = ntohs(addr.sin_port);
		eq1::Client refused(eq1::Options()
					    .broker("127.0.0.1", closed_port)
					    .connect_timeout(5s)
					    .reconnect(false));
		expect_throw<eq1::ConnectionError>("connect to a closed port throws ConnectionError",
						   [&] { refused.connect(); }, EQ1_STATUS_CONNECTION_REFUSED);
		CHECK(!refused.is_connected());
	}
	if (fd >= 0)
		close(fd);
}

/* Exceptions thrown inside handlers stay in C++: stored, counted, the client carries on. */
static void test_exceptions_inside_handlers()
{
	eq1::Client client(options_for_test());
	client.connect();
	Inbox inbox;
	std::atomic<int> thrown{0};
	client.subscribe(g_base + "/throw/#", 1, [&](const eq1::Message &msg) {
		inbox.add(msg);
		if (msg.payload_view() == "std") {
			++thrown;
			throw std::runtime_error("boom from a message handler");
		}
		if (msg.payload_view() == "int") {
			++thrown;
			throw 42; // not even a std::exception
		}
	});
	std::atomic<int> delivery_calls{0};
	client.on_delivery([&](const eq1::Delivery &) {
		++delivery_calls;
		throw std::logic_error("boom from the delivery handler");
	});

	client.wait(client.publish(g_base + "/throw/a", "std", 1));
	client.wait(client.publish(g_base + "/throw/b", "int", 1));
	client.wait(client.publish(g_base + "/throw/c", "fine", 1));
	CHECK(inbox.wait_for(3));
	CHECK(thrown.load() == 2);
	CHECK(eventually([&] { return delivery_calls.load() == 3; }));
	// Recorded after each handler returns: the count may trail the call counter briefly.
	CHECK(eventually([&] { return client.callback_exception_count() == 5; }));

	std::exception_ptr first = client.take_callback_exception();
	CHECK(first != nullptr);
	try {
		if (first)
			std::rethrow_exception(first);
	} catch (const std::runtime_error &e) {
		CHECK(std::string(e.what()) == "boom from a message handler");
	} catch (...) {
		report(false, "the first stored exception is the message handler's");
	}
	CHECK(client.take_callback_exception() == nullptr); // taken: cleared

	// Still fully working after all that.
	client.on_delivery(nullptr);
	client.wait(client.publish(g_base + "/throw/d", "still alive", 2));
	CHECK(inbox.wait_for(4));
	client.disconnect();
}

/* Unsubscribe stops delivery; subscribing a filter again replaces its handler; handlers may
 * call the client (publish from inside a handler). */
static void test_subscriptions()
{
	eq1::Client client(options_for_test());
	client.connect();
	Inbox first, second, sentinel;
	const std::string filter = g_base + "/sub/x";
	client.subscribe(filter, 1, first.handler());
	client.subscribe(g_base + "/sub/sentinel", 1, sentinel.handler());
	client.wait(client.publish(filter, "one", 1));
	CHECK(first.wait_for(1));

	// Same filter again: the new handler replaces the old one.
	client.subscribe(filter, 1, second.handler());
	client.wait(client.publish(filter, "two", 1));
	CHECK(second.wait_for(1));
	// Messages on one connection arrive in order: once the sentinel is in, "two" was routed.
	client.wait(client.publish(g_base + "/sub/sentinel", "s1", 1));
	CHECK(sentinel.wait_for(1));
	CHECK(first.size() == 1);

	client.unsubscribe(filter);
	client.wait(client.publish(filter, "three", 1));
	client.wait(client.publish(g_base + "/sub/sentinel", "s2", 1));
	CHECK(sentinel.wait_for(2));
	CHECK(first.size() == 1 && second.size() == 1);

	// A handler that publishes (request/response) through the same client.
	Inbox replies;
	client.subscribe(g_base + "/sub/reply", 1, replies.handler());
	client.subscribe(g_base + "/sub/request", 1, [&client](const eq1::Message &msg) {
		client.wait(client.publish(g_base + "/sub/reply", "re: " + std::string(msg.payload_view()), 1));
	});
	client.publish(g_base + "/sub/request", "ping", 1);
	CHECK(replies.wait_for(1));
	if (replies.size() >= 1)
		CHECK(replies.at(0).payload == "re: ping");
	client.disconnect();
}

/* The will: set before connect, published by the broker when the client goes away without
 * DISCONNECT (destroying a Client frees it without one). */
static void test_will()
{
	Inbox wills;
	eq1::Client watcher(options_for_test());
	watcher.connect();
	watcher.subscribe(g_base + "/will", 1, wills.handler());
	{
		eq1::Client dying(options_for_test());
		dying.set_will(g_base + "/will", "gone", 1, false);
		dying.connect();
		// Destroyed here without disconnect().
	}
	CHECK(wills.wait_for(1));
	if (wills.size() >= 1)
		CHECK(wills.at(0).payload == "gone");
	{
		// MQTT 5.0: DISCONNECT with reason 0x04 asks the broker to publish the will.
		eq1::Client leaving(options_for_test().protocol_version(EQ1_MQTT_V5));
		leaving.set_will(g_base + "/will", "left", 1, false);
		leaving.connect();
		expect_throw<eq1::ValidationError>("server-only DISCONNECT reason", [&] {
			leaving.disconnect_with(0x8E);
		}, EQ1_STATUS_INVALID_ARGUMENT);
		leaving.disconnect_with(0x04, std::nullopt, {{"why", "test"}});
	}
	CHECK(wills.wait_for(2));
	if (wills.size() >= 2)
		CHECK(wills.at(1).payload == "left");
	expect_throw<eq1::ValidationError>("DISCONNECT reason on MQTT 3.1.1", [&] {
		eq1::Client old(options_for_test());
		old.disconnect_with(0x04);
	}, EQ1_STATUS_MQTT5_REQUIRED);
	watcher.disconnect();
}

/* MQTT 5.0 properties set on a publish come back with the message; 3.1.1 refuses them. */
static void test_mqtt5_properties()
{
	eq1::Client client(options_for_test().protocol_version(EQ1_MQTT_V5));
	client.connect();
	std::mutex mutex;
	std::optional<eq1::Properties> got;
	int messages = 0;
	client.subscribe(g_base + "/props", 1, [&](const eq1::Message &m) {
		std::lock_guard<std::mutex> lock(mutex);
		got = m.properties();
		messages++;
	});
	eq1::Properties sent;
	sent.content_type = "text/plain";
	sent.response_topic = g_base + "/reply";
	sent.correlation_data = std::string("\x00\x01", 2);
	sent.user_properties = { { "k", "v" } };
	sent.message_expiry = 120;
	client.wait(client.publish(g_base + "/props", eq1::Bytes(std::string_view("x")), 1, false,
				   sent));
	for (int i = 0; i < 500; i++) {
		{
			std::lock_guard<std::mutex> lock(mutex);
			if (messages > 0)
				break;
		}
		std::this_thread::sleep_for(10ms);
	}
	std::lock_guard<std::mutex> lock(mutex);
	CHECK(got.has_value());
	if (got) {
		CHECK(got->content_type == sent.content_type);
		CHECK(got->response_topic == sent.response_topic);
		CHECK(got->correlation_data == sent.correlation_data);
		CHECK(got->user_properties == sent.user_properties);
		CHECK(got->message_expiry && *got->message_expiry <= 120 && *got->message_expiry >= 110);
	}
	eq1::Client old(options_for_test());
	old.connect();
	bool refused = false;
	try {
		old.publish(g_base + "/props", eq1::Bytes(std::string_view("x")), 1, false, sent);
	} catch (const eq1::ValidationError &e) {
		refused = e.status() == EQ1_STATUS_INVALID_ARGUMENT;
	}
	CHECK(refused);
	old.disconnect();
	client.disconnect();
}

static void test_request_response()
{
	eq1::Client responder(options_for_test().protocol_version(EQ1_MQTT_V5));
	responder.connect();
	responder.subscribe(g_base + "/svc", 1, [&](const eq1::Message &m) {
		responder.respond(m, "re:" + std::string(m.payload_view()));
	});
	eq1::Client requester(options_for_test().protocol_version(EQ1_MQTT_V5));
	requester.connect();
	eq1::Reply reply = requester.request(g_base + "/svc", "hello");
	CHECK(reply.payload == "re:hello");
	CHECK(reply.properties && reply.properties->correlation_data);
	bool timed_out = false;
	try {
		requester.request(g_base + "/nobody", "?", 300ms);
	} catch (const eq1::ConnectionError &e) {
		timed_out = e.status() == EQ1_STATUS_TIMEOUT;
	}
	CHECK(timed_out);
	std::mutex mutex;
	std::condition_variable cv;
	std::string async_reply;
	bool done = false;
	requester.request_async(g_base + "/svc", eq1::Bytes(std::string_view("async")), 10s,
				[&](eq1_status status, const eq1::Reply *r) {
					std::lock_guard<std::mutex> lock(mutex);
					async_reply = status == EQ1_STATUS_OK && r ? r->payload : "";
					done = true;
					cv.notify_all();
				});
	{
		std::unique_lock<std::mutex> lock(mutex);
		cv.wait_for(lock, 10s, [&] { return done; });
		CHECK(async_reply == "re:async");
	}
	eq1::Client old(options_for_test());
	old.connect();
	bool refused = false;
	try {
		old.request(g_base + "/svc", "x", 1s);
	} catch (const eq1::ValidationError &e) {
		refused = e.status() == EQ1_STATUS_MQTT5_REQUIRED;
	}
	CHECK(refused);
	old.disconnect();
	requester.disconnect();
	responder.disconnect();
}

/* MQTT 5.0 session information: CONNACK in the connection event, reason codes in wait_report
 * and the delivery handler, EQ1_STATUS_EXPIRED for a message that waited past its expiry. */
static void test_mqtt5_session_information()
{
	eq1::Client client(options_for_test().protocol_version(EQ1_MQTT_V5).offline_queue(
		100, 1 << 20, EQ1_QUEUE_REJECT_NEW, true));
	std::mutex mutex;
	bool saw_connack = false;
	std::vector<eq1::Token> expired;
	client.on_connection([&](const eq1::ConnectionEvent &event) {
		std::lock_guard<std::mutex> lock(mutex);
		if (event.connected() && event.connack != nullptr)
			saw_connack = true;
	});
	client.on_delivery([&](const eq1::Delivery &delivery) {
		std::lock_guard<std::mutex> lock(mutex);
		if (delivery.status == EQ1_STATUS_EXPIRED)
			expired.push_back(delivery.token);
	});
	eq1::Properties will_properties;
	will_properties.content_type = "text/plain";
	client.set_will(g_base + "/will", eq1::Bytes(std::string_view("bye")), 1, false,
			will_properties, 5);
	expect_throw<eq1::ValidationError>("will delay on MQTT 3.1.1", [&] {
		eq1::Client old(options_for_test());
		old.set_will(g_base + "/will", eq1::Bytes(std::string_view("bye")), 1, false,
			     will_properties, 5);
	}, EQ1_STATUS_INVALID_ARGUMENT);
	eq1::Properties short_lived;
	short_lived.message_expiry = 1;
	eq1::Token doomed = client.publish(g_base + "/expiring", eq1::Bytes(std::string_view("x")),
					   1, false, short_lived);
	CHECK(!client.connack().has_value()); /* never connected */
	std::this_thread::sleep_for(2200ms);
	client.connect();
	std::optional<eq1::ConnAck> connack = client.connack();
	CHECK(connack.has_value() && !connack->session_present);
	/* mosquitto announces its topic alias maximum (10 by default) and no QoS limit. */
	CHECK(connack.has_value() && connack->topic_alias_maximum.has_value());
	CHECK(connack.has_value() && !connack->maximum_qos.has_value());
	eq1::DeliveryReport outcome = client.wait_report(doomed);
	CHECK(outcome.status == EQ1_STATUS_EXPIRED && !outcome.ok());
	CHECK(outcome.detail.find("expired") != std::string::npos);
	eq1::DeliveryReport fine =
		client.wait_report(client.publish(g_base + "/fine", eq1::Bytes(std::string_view("x")), 1));
	CHECK(fine.ok() && (fine.reason_code == 0x00 || fine.reason_code == 0x10));
	CHECK(eventually([&] {
		std::lock_guard<std::mutex> lock(mutex);
		return saw_connack && expired.size() == 1 && expired[0] == doomed;
	}));
	client.disconnect();
}

static void test_mqtt5_subscribe()
{
	eq1::Client client(options_for_test().protocol_version(EQ1_MQTT_V5));
	client.connect();
	Inbox wide, narrow, local;
	std::vector<eq1::SubscriptionSpec> specs;
	specs.push_back({g_base + "/ov/#", {1}, [&](const eq1::Message &m) { wide.add(m); }});
	specs.push_back({g_base + "/ov/+/c", {0}, [&](const eq1::Message &m) { narrow.add(m); }});
	eq1::SubscribeAck ack = client.subscribe_many(std::move(specs), {{"k", "v"}});
	CHECK(ack.results.size() == 2 && ack.results[0].granted() && ack.results[1].granted());
	CHECK(ack.results[0].granted_qos == 1 && ack.results[1].reason_code == 0);
	CHECK(ack.results[0].subscription_id != 0 &&
	      ack.results[0].subscription_id != ack.results[1].subscription_id);
	eq1::SubscribeOptions no_local{1, true, false, 0};
	CHECK(client.subscribe(g_base + "/nl", no_local,
			       [&](const eq1::Message &m) { local.add(m); }) == 1);
	client.wait(client.publish(g_base + "/nl", "own", 1));
	for (int i = 0; i < 5; i++)
		client.wait(client.publish(g_base + "/ov/b/c", std::to_string(i), 1));
	client.wait(client.publish(g_base + "/ov/b/c", "end", 1));
	CHECK(wide.wait_for(6) && narrow.wait_for(6));
	CHECK(wide.at(5).payload == "end" && narrow.at(5).payload == "end");
	CHECK(wide.size() == 6 && narrow.size() == 6); // each message once per subscription
	CHECK(local.size() == 0);

	eq1::UnsubscribeAck un = client.unsubscribe_many({g_base + "/ov/#", g_base + "/never"});
	CHECK(un.results.size() == 2 && un.results[0].reason_code == 0 &&
	      un.results[1].reason_code == 0x11 && un.results[1].status == EQ1_STATUS_OK);

	eq1::Client v311(options_for_test());
	v311.connect();
	expect_throw<eq1::ValidationError>("no-local on MQTT 3.1.1 throws ValidationError", [&] {
		v311.subscribe(g_base + "/x", no_local, [](const eq1::Message &) {});
	}, EQ1_STATUS_MQTT5_REQUIRED);
	eq1::SubscribeOptions bad_rh{0, false, false, 5};
	expect_throw<eq1::ValidationError>("retain handling 5 throws ValidationError", [&] {
		client.subscribe(g_base + "/x", bad_rh, [](const eq1::Message &) {});
	}, EQ1_STATUS_INVALID_ARGUMENT);
	client.disconnect();
	v311.disconnect();
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		std::fprintf(stderr, "usage: %s <host> <port>\n", argv[0]);
		return 2;
	}
	g_host = argv[1];
	g_port = std::atoi(argv[2]);
	g_base = "eq1cpp/" + std::to_string(getpid());

	const std::pair<const char *, void (*)()> tests[] = {
		{"version", test_version},
		{"error families", test_error_families},
		{"options", test_options},
		{"tls options", test_tls_options},
		{"round trips", test_round_trips},
		{"client move", test_client_move},
		{"exceptions from real causes", test_exceptions_from_real_causes},
		{"exceptions inside handlers", test_exceptions_inside_handlers},
		{"subscriptions", test_subscriptions},
		{"will", test_will},
		{"mqtt5 properties", test_mqtt5_properties},
		{"request/response", test_request_response},
		{"mqtt5 session information", test_mqtt5_session_information},
		{"mqtt5 subscribe", test_mqtt5_subscribe},
	};
	for (const auto &test : tests) {
		std::printf("# %s\n", test.first);
		try {
			test.second();
		} catch (const eq1::Error &e) {
			report(false, std::string(test.first) + " threw unexpectedly",
			       status_name(e.status()) + ": " + e.what());
		} catch (const std::exception &e) {
			report(false, std::string(test.first) + " threw unexpectedly", e.what());
		}
	}
	std::printf("SUMMARY: %d checks, %d failed\n", g_checks, g_failures);
	return g_failures == 0 ? 0 : 1;
}
