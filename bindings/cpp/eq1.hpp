/*
 * eq1.hpp - header-only C++17 wrapper over eq1.h (libeq1, the EQ-1 Network MQTT client).
 *
 *   #include "eq1.hpp"        // needs eq1.h on the include path; link with -leq1
 *
 *   eq1::Client client(eq1::Options().broker("localhost", 1883));
 *   client.connect();
 *   client.subscribe("test/topic", 1, [](const eq1::Message &m) { ... });
 *   client.wait(client.publish("test/topic", "Hello MQTT!", 1));
 *   client.disconnect();
 *
 * Ownership. eq1::Options and eq1::Client are move-only RAII handles: the destructor frees the
 * C object and never throws. A moved-from object may only be destroyed or assigned to; any
 * other call on it throws eq1::ValidationError (EQ1_STATUS_NULL_ARGUMENT).
 *
 * Errors. Every failing call throws an eq1::Error (a std::runtime_error) carrying the
 * eq1_status and the library's detail message (eq1_last_error_message). The subclass tells
 * the family of the cause, which the library's status table gives (eq1_status_family_of;
 * see error_kind()):
 *   ConnectionError      EQ1_STATUS_FAMILY_CONNECTION: the network, TLS to the broker,
 *                        time-outs, the broker refusing us for reasons other than
 *                        credentials, messages lost with the connection
 *   AuthenticationError  EQ1_STATUS_FAMILY_AUTHENTICATION: EQ1_STATUS_BAD_CREDENTIALS,
 *                        _NOT_AUTHORIZED, _TLS_CLIENT_CERT_REJECTED
 *   ValidationError      EQ1_STATUS_FAMILY_VALIDATION: bad arguments (EQ1_STATUS_INVALID_*,
 *                        _NULL_ARGUMENT, _PAYLOAD_TOO_LARGE, _TLS_CONFIG), refusals of a
 *                        request (_SUBSCRIBE_REFUSED, _PUBLISH_REFUSED, broker limits), a full
 *                        outbox (_QUEUE_FULL)
 *   ProtocolError        EQ1_STATUS_FAMILY_DECODE: EQ1_STATUS_PROTOCOL_ERROR
 *   Error (itself)       the usage and internal families (EQ1_STATUS_CALLED_FROM_CALLBACK,
 *                        EQ1_STATUS_INTERNAL) and unknown codes
 * Strings are passed as std::string_view; one that contains a NUL byte is refused with
 * ValidationError before the C library sees it (C would silently cut it there).
 *
 * Callbacks. Handlers are std::function objects owned by the Client. They run on the
 * client's dispatcher thread (never on the caller's), one at a time, in event order; they may
 * call any Client method except destroying or move-assigning that same Client. Data passed
 * to a handler (Message, ConnectionEvent, Delivery) is borrowed: it lives until the handler
 * returns, so copy what you keep (std::string(msg.topic())).
 *   - Every handler given to subscribe() is kept until the Client is destroyed, even after
 *     unsubscribe() or a re-subscription that replaced it: the dispatcher may still be
 *     running it (or about to) when those calls return, so freeing it earlier could leave
 *     the C library with a dangling pointer. Each subscribe() call therefore costs one
 *     std::function until the Client goes; reuse a few filters rather than subscribing to
 *     a fresh one per request in a long-running loop.
 *   - on_connection()/on_delivery() replace their handler safely at any time (the old one
 *     is destroyed once no call of it is running).
 *   - An exception thrown by a handler never crosses into the C library: the wrapper
 *     catches it. The library never prints, so neither does the wrapper: the first such
 *     exception is stored (later ones are only counted) and can be collected with
 *     Client::take_callback_exception(); callback_exception_count() counts them all.
 *   - Destroying a Client from inside one of its own handlers is a programming error: the C
 *     library refuses (EQ1_STATUS_CALLED_FROM_CALLBACK). The destructor cannot throw, so it
 *     then deliberately leaks the client and its handlers (which keep running) rather than
 *     free handlers the library will still call.
 *
 * Beyond MQTT. eq1::ModbusClient (Modbus TCP/RTU), eq1::SerialPort (a serial line) and
 * eq1::Protocol (any protocol by name from the library's registry, plugins included) follow
 * the same rules: move-only RAII, exceptions by status family, thread-safe calls.
 *
 * Threads. Client methods may be called from any thread, like the eq1_mqtt_client_*
 * functions, except destruction and move-assignment, which must not race with other calls
 * on the same Client. Options are not thread-safe (configure them from one thread).
 */
#ifndef EQ1_HPP
#define EQ1_HPP

#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "eq1.h"

namespace eq1 {

/** Identifies one publish; 0 is never a valid token. */
using Token = eq1_token;
/** Counters since the client was created (see eq1_mqtt_stats in eq1.h). */
using Stats = eq1_mqtt_stats;
/** What happened to the connection (EQ1_CONNECTION_STATE_*). */
using ConnectionState = eq1_connection_state;

/** Timeout used by wait/subscribe/unsubscribe/disconnect when none is given. */
inline constexpr std::chrono::milliseconds default_timeout{10000};

/** The library's version at run time, "MAJOR.MINOR.PATCH". */
inline std::string_view version() noexcept
{
	return eq1_version();
}

/** True when the library loaded at run time is the one this header was written for. */
inline bool version_matches() noexcept
{
	return eq1_version_number() == static_cast<std::uint32_t>(EQ1_VERSION_NUMBER);
}

/** A static description of a status (eq1_status_str). */
inline std::string_view status_string(eq1_status status) noexcept
{
	return eq1_status_str(static_cast<int>(status));
}

/* ------------------------------------------------------------------------------ errors */

/** Base of every exception the wrapper throws: the status and the library's detail text. */
class Error : public std::runtime_error {
public:
	Error(eq1_status status, std::string detail)
		: std::runtime_error(compose(status, detail)), status_(status),
		  detail_(std::make_shared<const std::string>(std::move(detail)))
	{
	}

	/** The eq1_status the failing call returned. */
	eq1_status status() const noexcept { return status_; }

	/** The detail message (eq1_last_error_message at the time of the failure); may be "". */
	const std::string &detail() const noexcept { return *detail_; }

private:
	static std::string compose(eq1_status status, const std::string &detail)
	{
		std::string text(status_string(status));
		if (!detail.empty()) {
			text += ": ";
			text += detail;
		}
		return text;
	}

	eq1_status status_;
	// Shared so that copying the exception (as throw/catch may do) never allocates.
	std::shared_ptr<const std::string> detail_;
};

/** The network, TLS to the broker, a time-out, or the broker refusing the connection. */
class ConnectionError : public Error {
public:
	using Error::Error;
};

/** Bad credentials, not authorized, or our client certificate rejected. */
class AuthenticationError : public Error {
public:
	using Error::Error;
};

/** A bad argument, a refused subscribe/publish, or a full outbox. */
class ValidationError : public Error {
public:
	using Error::Error;
};

/** The broker broke the MQTT protocol. */
class ProtocolError : public Error {
public:
	using Error::Error;
};

/** Which exception class a status maps onto. */
enum class ErrorKind { none, connection, authentication, validation, protocol, other };

/** The exception class of `status`, from its family in the library's status table
 *  (eq1_status_family_of); ErrorKind::none for EQ1_STATUS_OK. */
inline ErrorKind error_kind(eq1_status status) noexcept
{
	// On the number, so that a family added to eq1.h later falls through to "other" instead
	// of breaking -Wswitch -Werror builds.
	switch (static_cast<int>(eq1_status_family_of(static_cast<int>(status)))) {
	case static_cast<int>(EQ1_STATUS_FAMILY_OK):
		return ErrorKind::none;
	case static_cast<int>(EQ1_STATUS_FAMILY_VALIDATION):
		return ErrorKind::validation;
	case static_cast<int>(EQ1_STATUS_FAMILY_CONNECTION):
		return ErrorKind::connection;
	case static_cast<int>(EQ1_STATUS_FAMILY_AUTHENTICATION):
		return ErrorKind::authentication;
	case static_cast<int>(EQ1_STATUS_FAMILY_DECODE):
		return ErrorKind::protocol;
	}
	return ErrorKind::other; // usage, internal, unknown numbers and families
}

/** Throws the exception class of `status` (eq1::Error for EQ1_STATUS_OK and unknown codes). */
[[noreturn]] inline void throw_error(eq1_status status, std::string detail)
{
	switch (error_kind(status)) {
	case ErrorKind::connection:
		throw ConnectionError(status, std::move(detail));
	case ErrorKind::authentication:
		throw AuthenticationError(status, std::move(detail));
	case ErrorKind::validation:
		throw ValidationError(status, std::move(detail));
	case ErrorKind::protocol:
		throw ProtocolError(status, std::move(detail));
	case ErrorKind::none:
	case ErrorKind::other:
		break;
	}
	throw Error(status, std::move(detail));
}

/** This thread's eq1_last_error_message, "" when there is none. */
inline std::string last_error_message()
{
	std::size_t needed = eq1_last_error_message(nullptr, 0);
	if (needed == 0)
		return std::string();
	std::string text(needed + 1, '\0');
	std::size_t written = eq1_last_error_message(&text[0], text.size());
	text.resize(written < needed ? written : needed);
	return text;
}

namespace detail {

/** Throws for a failed C call, with this thread's detail message. */
inline void check(eq1_status status)
{
	if (status != EQ1_STATUS_OK)
		throw_error(status, last_error_message());
}

/** A NUL-terminated copy of `text`; one with an embedded NUL is refused with `status`. */
inline std::string c_string(std::string_view text, eq1_status status, const char *what)
{
	if (text.find('\0') != std::string_view::npos)
		throw ValidationError(status, std::string(what) + " contains a NUL byte");
	return std::string(text);
}

/** A duration in whole milliseconds, clamped into int (the C API's timeout type). */
template <class Rep, class Period>
inline int to_ms(std::chrono::duration<Rep, Period> duration) noexcept
{
	auto ms = std::chrono::duration_cast<std::chrono::duration<long long, std::milli>>(duration)
			  .count();
	return ms > INT_MAX ? INT_MAX : ms < INT_MIN ? INT_MIN : static_cast<int>(ms);
}

/** A count clamped into int. */
inline int to_int(long long value) noexcept
{
	return value > INT_MAX ? INT_MAX : value < INT_MIN ? INT_MIN : static_cast<int>(value);
}

} // namespace detail

/* ------------------------------------------------------------------------------ views */

/** A borrowed byte range (pointer + size), like std::span<const std::uint8_t>. */
class Bytes {
public:
	Bytes() noexcept = default;
	Bytes(const void *data, std::size_t size) noexcept
		: data_(static_cast<const std::uint8_t *>(data)), size_(size)
	{
	}
	Bytes(std::string_view text) noexcept // NOLINT: implicit on purpose
		: Bytes(text.data(), text.size())
	{
	}

	const std::uint8_t *data() const noexcept { return data_; }
	std::size_t size() const noexcept { return size_; }
	bool empty() const noexcept { return size_ == 0; }
	const std::uint8_t *begin() const noexcept { return data_; }
	const std::uint8_t *end() const noexcept { return data_ + size_; }
	std::uint8_t operator[](std::size_t i) const noexcept { return data_[i]; }

	/** The same bytes as characters. */
	std::string_view as_string_view() const noexcept
	{
		return size_ ? std::string_view(reinterpret_cast<const char *>(data_), size_)
			     : std::string_view();
	}

private:
	const std::uint8_t *data_ = nullptr;
	std::size_t size_ = 0;
};

/**
 * A received message: a view of the C library's eq1_mqtt_message, valid only until the
 * handler returns (which is why it cannot be copied). Copy what you keep.
 */
/**
 * MQTT 5.0 PUBLISH properties (std::nullopt / empty = absent), for Client::publish and as
 * received with a Message (Message::properties()).
 */
struct Properties {
	std::optional<bool> payload_is_utf8;
	std::optional<std::uint32_t> message_expiry;
	std::optional<std::string> content_type;
	std::optional<std::string> response_topic;
	std::optional<std::string> correlation_data;
	std::vector<std::pair<std::string, std::string>> user_properties;

	/** Copies the C view (a received message's eq1_mqtt_properties). */
	static Properties from_native(const eq1_mqtt_properties &p)
	{
		Properties out;
		if (p.has_payload_format)
			out.payload_is_utf8 = p.payload_is_utf8;
		if (p.has_message_expiry)
			out.message_expiry = p.message_expiry;
		if (p.content_type)
			out.content_type = p.content_type;
		if (p.response_topic)
			out.response_topic = p.response_topic;
		if (p.correlation_data)
			out.correlation_data = std::string(
				reinterpret_cast<const char *>(p.correlation_data), p.correlation_data_len);
		for (std::size_t i = 0; i < p.user_property_count; i++)
			out.user_properties.emplace_back(p.user_properties[i].name,
							 p.user_properties[i].value);
		return out;
	}
};

class Message {
public:
	explicit Message(const eq1_mqtt_message &message) noexcept : message_(&message) {}
	Message(const Message &) = delete;
	Message &operator=(const Message &) = delete;

	std::string_view topic() const noexcept
	{
		return std::string_view(message_->topic, message_->topic_len);
	}
	/** The payload bytes (pointer + size; data() may be null when empty). */
	Bytes payload() const noexcept { return Bytes(message_->payload, message_->payload_len); }
	/** The payload as characters (MQTT payloads are bytes; no NUL terminator). */
	std::string_view payload_view() const noexcept { return payload().as_string_view(); }
	int qos() const noexcept { return message_->qos; }
	bool retain() const noexcept { return message_->retain; }
	bool dup() const noexcept { return message_->dup; }
	/** MQTT 5.0 properties the sender set (std::nullopt when none, always on 3.1.1). */
	std::optional<Properties> properties() const
	{
		if (!message_->properties)
			return std::nullopt;
		return Properties::from_native(*message_->properties);
	}
	const eq1_mqtt_message &native() const noexcept { return *message_; }

private:
	const eq1_mqtt_message *message_;
};

/** A connection event, borrowed until the handler returns. */
struct ConnectionEvent {
	ConnectionState state;
	/** Why the connection was lost (EQ1_STATUS_OK otherwise). */
	eq1_status reason;
	std::string_view reason_text;
	/** On connect: did the broker keep the session? */
	bool session_present;
	std::string_view broker_host;
	int broker_port;
	/** On connect: what the broker's CONNACK said (assigned client id, limits...); null otherwise. */
	const eq1_mqtt_connack_info *connack = nullptr;
	/** On a loss by an MQTT 5.0 broker's DISCONNECT: its reason code (0 otherwise). */
	std::uint8_t disconnect_reason_code = 0;
	std::string_view disconnect_reason_string;
	/** That DISCONNECT's Server Reference ("" when none). */
	std::string_view server_reference;

	bool connected() const noexcept { return state == EQ1_CONNECTION_STATE_CONNECTED; }
};

/** A copy of what the broker said in CONNACK (Client::connack()). On MQTT 3.1.1 only
 *  session_present is known. A limit left empty was not announced (MQTT 5.0's default
 *  applies: no limit, or "available"). */
struct ConnAck {
	bool session_present = false;
	std::optional<std::string> assigned_client_id;
	std::optional<std::uint16_t> server_keep_alive;
	std::optional<std::string> response_information;
	std::optional<std::string> server_reference;
	std::optional<std::string> reason_string;
	std::vector<std::pair<std::string, std::string>> user_properties;
	std::optional<std::uint32_t> session_expiry;
	std::optional<std::uint16_t> receive_maximum;
	std::optional<std::uint32_t> maximum_packet_size;
	std::optional<std::uint8_t> maximum_qos;
	std::optional<bool> retain_available;
	std::optional<bool> wildcard_available;
	std::optional<bool> subscription_ids_available;
	std::optional<bool> shared_available;
	std::optional<std::uint16_t> topic_alias_maximum;

	static ConnAck from_native(const eq1_mqtt_connack_info &c)
	{
		auto text = [](const char *s) {
			return s ? std::optional<std::string>(s) : std::nullopt;
		};
		auto when = [](bool has, auto value) {
			return has ? std::optional<decltype(value)>(value) : std::nullopt;
		};
		ConnAck out;
		out.session_present = c.session_present;
		out.assigned_client_id = text(c.assigned_client_id);
		out.server_keep_alive = when(c.has_server_keep_alive, c.server_keep_alive);
		out.response_information = text(c.response_information);
		out.server_reference = text(c.server_reference);
		out.reason_string = text(c.reason_string);
		for (std::size_t i = 0; i < c.user_property_count; i++)
			out.user_properties.emplace_back(c.user_properties[i].name,
							 c.user_properties[i].value);
		out.session_expiry = when(c.has_session_expiry, c.session_expiry);
		out.receive_maximum = when(c.has_receive_maximum, c.receive_maximum);
		out.maximum_packet_size = when(c.has_maximum_packet_size, c.maximum_packet_size);
		out.maximum_qos = when(c.has_maximum_qos, c.maximum_qos);
		out.retain_available = when(c.has_retain_available, c.retain_available);
		out.wildcard_available = when(c.has_wildcard_available, c.wildcard_available);
		out.subscription_ids_available =
			when(c.has_subscription_ids_available, c.subscription_ids_available);
		out.shared_available = when(c.has_shared_available, c.shared_available);
		out.topic_alias_maximum = when(c.has_topic_alias_maximum, c.topic_alias_maximum);
		return out;
	}
};

/** The outcome of one publish, borrowed until the handler returns. */
struct Delivery {
	Token token;
	/** EQ1_STATUS_OK when delivered, otherwise why not (see error_kind()). */
	eq1_status status;
	std::string_view detail;
	/** MQTT 5.0: the reason code of the broker's acknowledgement (0x10 no matching
	 * subscribers, 0x87 not authorized, 0x97 quota exceeded...); 0 when it gave none. */
	std::uint8_t reason_code = 0;
	/** Its Reason String ("" when none). */
	std::string_view reason_string;
	/** Its user properties (`user_property_count` of them). */
	const eq1_mqtt_user_property *user_properties = nullptr;
	std::size_t user_property_count = 0;

	bool ok() const noexcept { return status == EQ1_STATUS_OK; }
};

/** What wait_report() returns: how a publish ended, with the broker's reason (MQTT 5.0). */
struct DeliveryReport {
	eq1_status status;
	/** Detail of a failure ("" when delivered). */
	std::string detail;
	std::uint8_t reason_code;
	std::string reason_string;

	bool ok() const noexcept { return status == EQ1_STATUS_OK; }
};

/** The reply to a request (Client::request), copied out of the library's eq1_mqtt_response. */
struct Reply {
	std::string topic;
	std::string payload;
	std::optional<Properties> properties;

	static Reply from_native(const eq1_mqtt_response &r)
	{
		Reply out;
		out.topic = r.topic ? r.topic : "";
		if (r.payload_len)
			out.payload.assign(reinterpret_cast<const char *>(r.payload), r.payload_len);
		if (r.properties)
			out.properties = Properties::from_native(*r.properties);
		return out;
	}
};

/** Receives an asynchronous request's outcome: EQ1_STATUS_OK with the reply, else the status
 *  (EQ1_STATUS_TIMEOUT, EQ1_STATUS_DISCONNECTED) and no reply. On the dispatcher thread. */
using ReplyHandler = std::function<void(eq1_status, const Reply *)>;

using MessageHandler = std::function<void(const Message &)>;
using ConnectionHandler = std::function<void(const ConnectionEvent &)>;
using DeliveryHandler = std::function<void(const Delivery &)>;

/** One step of MQTT 5.0 enhanced authentication (a view, valid until the handler returns):
 * reason_code 0x18 = the broker's challenge (answer proceed(response data)), 0x00 = the
 * broker's final data to verify (answer success() or failure()). */
struct AuthChallenge {
	std::string_view method;
	int reason_code;
	Bytes data;
	bool reauthenticating;
};

/** What an AuthHandler answers. */
struct AuthAnswer {
	int action = EQ1_MQTT_AUTH_FAILURE;
	std::string data;
	std::string reason;

	static AuthAnswer proceed(std::string response) { return {EQ1_MQTT_AUTH_CONTINUE, std::move(response), {}}; }
	static AuthAnswer success() { return {EQ1_MQTT_AUTH_SUCCESS, {}, {}}; }
	static AuthAnswer failure(std::string why) { return {EQ1_MQTT_AUTH_FAILURE, {}, std::move(why)}; }
};

/** Answers each step of enhanced authentication; runs on the dispatcher thread. A handler
 * that throws fails the exchange (EQ1_STATUS_AUTH_FAILED). */
using AuthHandler = std::function<AuthAnswer(const AuthChallenge &)>;

/* ------------------------------------------------------------------------------ options */

/**
 * Client options (eq1_mqtt_options). Fluent setters mirror eq1_mqtt_options_set_* and throw
 * ValidationError for values out of range. Works on lvalues and temporaries alike:
 *   eq1::Options o; o.broker("h", 1883).keep_alive(std::chrono::seconds(30));
 *   eq1::Client c(eq1::Options().broker("h", 1883).client_id("me"));
 */
class Options {
public:
	Options() : handle_(eq1_mqtt_options_new())
	{
		if (handle_ == nullptr)
			throw std::bad_alloc();
	}
	~Options() { eq1_mqtt_options_free(handle_); }
	Options(Options &&other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
	Options &operator=(Options &&other) noexcept
	{
		if (this != &other) {
			eq1_mqtt_options_free(handle_);
			handle_ = std::exchange(other.handle_, nullptr);
		}
		return *this;
	}
	Options(const Options &) = delete;
	Options &operator=(const Options &) = delete;

	/** The one broker to connect to (replaces the list); port 1..65535. */
	Options &broker(std::string_view host, int port) &
	{
		std::string h = detail::c_string(host, EQ1_STATUS_INVALID_ARGUMENT, "host");
		detail::check(eq1_mqtt_options_set_broker(handle_, h.c_str(), port));
		return *this;
	}
	Options &&broker(std::string_view host, int port) && { return std::move(broker(host, port)); }

	/** Appends a failover broker (the first call replaces the default). */
	Options &add_broker(std::string_view host, int port, bool tls = false) &
	{
		std::string h = detail::c_string(host, EQ1_STATUS_INVALID_ARGUMENT, "host");
		detail::check(eq1_mqtt_options_add_broker(handle_, h.c_str(), port, tls));
		return *this;
	}
	Options &&add_broker(std::string_view host, int port, bool tls = false) &&
	{
		return std::move(add_broker(host, port, tls));
	}

	/** The one broker as a URI (replaces the list): mqtt://, mqtts://, ws://host:port/path,
	 *  wss://, unix:///path/to/socket; the scheme decides TLS. */
	Options &broker_uri(std::string_view uri) &
	{
		std::string u = detail::c_string(uri, EQ1_STATUS_INVALID_ARGUMENT, "broker URI");
		detail::check(eq1_mqtt_options_set_broker_uri(handle_, u.c_str()));
		return *this;
	}
	Options &&broker_uri(std::string_view uri) && { return std::move(broker_uri(uri)); }

	/** Appends a failover broker given as a URI; one list may mix transports. */
	Options &add_broker_uri(std::string_view uri) &
	{
		std::string u = detail::c_string(uri, EQ1_STATUS_INVALID_ARGUMENT, "broker URI");
		detail::check(eq1_mqtt_options_add_broker_uri(handle_, u.c_str()));
		return *this;
	}
	Options &&add_broker_uri(std::string_view uri) && { return std::move(add_broker_uri(uri)); }

	/** Every TCP, TLS and WebSocket connection through a proxy: http://user:pass@host:port
	 *  (HTTP CONNECT), socks5:// or socks5h:// (SOCKS5, the proxy resolving names). */
	Options &proxy(std::string_view uri) &
	{
		std::string u = detail::c_string(uri, EQ1_STATUS_INVALID_ARGUMENT, "proxy URI");
		detail::check(eq1_mqtt_options_set_proxy(handle_, u.c_str()));
		return *this;
	}
	Options &&proxy(std::string_view uri) && { return std::move(proxy(uri)); }

	/** Connect directly again (no proxy set with proxy()). */
	Options &no_proxy() &
	{
		detail::check(eq1_mqtt_options_set_proxy(handle_, nullptr));
		return *this;
	}
	Options &&no_proxy() && { return std::move(no_proxy()); }

	/** Take the proxy from http_proxy / https_proxy / all_proxy / no_proxy (read now) when
	 *  none is set with proxy(). */
	Options &proxy_from_env(bool enabled) &
	{
		detail::check(eq1_mqtt_options_set_proxy_from_env(handle_, enabled));
		return *this;
	}
	Options &&proxy_from_env(bool enabled) && { return std::move(proxy_from_env(enabled)); }

	/** Bind outgoing connections to a local IP address ("127.0.0.2", "::1"). */
	Options &bind_address(std::string_view address) &
	{
		std::string a = detail::c_string(address, EQ1_STATUS_INVALID_ARGUMENT, "bind address");
		detail::check(eq1_mqtt_options_set_bind_address(handle_, a.c_str()));
		return *this;
	}
	Options &&bind_address(std::string_view address) && { return std::move(bind_address(address)); }

	/** Bind outgoing connections to a network interface (SO_BINDTODEVICE; needs root). */
	Options &bind_interface(std::string_view interface) &
	{
		std::string i = detail::c_string(interface, EQ1_STATUS_INVALID_ARGUMENT, "interface");
		detail::check(eq1_mqtt_options_set_bind_interface(handle_, i.c_str()));
		return *this;
	}
	Options &&bind_interface(std::string_view interface) &&
	{
		return std::move(bind_interface(interface));
	}

	/** An extra HTTP header of the WebSocket upgrade request (ws://, wss:// brokers). */
	Options &websocket_header(std::string_view name, std::string_view value) &
	{
		std::string n = detail::c_string(name, EQ1_STATUS_INVALID_ARGUMENT, "header name");
		std::string v = detail::c_string(value, EQ1_STATUS_INVALID_ARGUMENT, "header value");
		detail::check(eq1_mqtt_options_add_websocket_header(handle_, n.c_str(), v.c_str()));
		return *this;
	}
	Options &&websocket_header(std::string_view name, std::string_view value) &&
	{
		return std::move(websocket_header(name, value));
	}

	/** Accept TLS and plaintext brokers in one list while credentials are set (default
	 *  false: Client refuses it with EQ1_STATUS_TLS_CONFIG, the password would go in clear). */
	Options &allow_plaintext_fallback(bool allow) &
	{
		detail::check(eq1_mqtt_options_set_allow_plaintext_fallback(handle_, allow));
		return *this;
	}
	Options &&allow_plaintext_fallback(bool allow) &&
	{
		return std::move(allow_plaintext_fallback(allow));
	}

	/** The client id; "" lets the library generate one. */
	Options &client_id(std::string_view id) &
	{
		std::string s = detail::c_string(id, EQ1_STATUS_INVALID_CLIENT_ID, "client id");
		detail::check(eq1_mqtt_options_set_client_id(handle_, s.c_str()));
		return *this;
	}
	Options &&client_id(std::string_view id) && { return std::move(client_id(id)); }

	/** User name only. */
	Options &credentials(std::string_view username) &
	{
		std::string u = detail::c_string(username, EQ1_STATUS_INVALID_ARGUMENT, "user name");
		detail::check(eq1_mqtt_options_set_credentials(handle_, u.c_str(), nullptr));
		return *this;
	}
	Options &&credentials(std::string_view username) && { return std::move(credentials(username)); }

	/** User name and password. */
	Options &credentials(std::string_view username, std::string_view password) &
	{
		std::string u = detail::c_string(username, EQ1_STATUS_INVALID_ARGUMENT, "user name");
		std::string p = detail::c_string(password, EQ1_STATUS_INVALID_ARGUMENT, "password");
		detail::check(eq1_mqtt_options_set_credentials(handle_, u.c_str(), p.c_str()));
		return *this;
	}
	Options &&credentials(std::string_view username, std::string_view password) &&
	{
		return std::move(credentials(username, password));
	}

	/** Keep-alive, 0..65535 s (0 turns it off). */
	Options &keep_alive(std::chrono::seconds interval) &
	{
		detail::check(eq1_mqtt_options_set_keep_alive(handle_, detail::to_int(interval.count())));
		return *this;
	}
	Options &&keep_alive(std::chrono::seconds interval) && { return std::move(keep_alive(interval)); }

	/** Clean session (3.1.1) / clean start (5.0); default true. */
	Options &clean_session(bool clean) &
	{
		detail::check(eq1_mqtt_options_set_clean_session(handle_, clean));
		return *this;
	}
	Options &&clean_session(bool clean) && { return std::move(clean_session(clean)); }

	/** MQTT 5.0: follow a CONNACK 0x9C / 0x9D Server Reference (default off: SERVER_MOVED). */
	Options &follow_redirects(bool follow) &
	{
		detail::check(eq1_mqtt_options_set_follow_redirects(handle_, follow));
		return *this;
	}
	Options &&follow_redirects(bool follow) && { return std::move(follow_redirects(follow)); }

	/** MQTT 5.0 session expiry interval (0: ends with the connection). */
	Options &session_expiry(std::chrono::seconds interval) &
	{
		auto s = interval.count();
		if (s < 0 || static_cast<unsigned long long>(s) > UINT32_MAX)
			throw ValidationError(EQ1_STATUS_INVALID_ARGUMENT,
					      "session expiry must be 0 .. 4294967295 seconds");
		detail::check(eq1_mqtt_options_set_session_expiry(handle_, static_cast<std::uint32_t>(s)));
		return *this;
	}
	Options &&session_expiry(std::chrono::seconds interval) &&
	{
		return std::move(session_expiry(interval));
	}

	/** EQ1_MQTT_V311 (default), EQ1_MQTT_V5 or EQ1_MQTT_V31 (old brokers; ids of 1..23 bytes). */
	Options &protocol_version(int version) &
	{
		detail::check(eq1_mqtt_options_set_protocol_version(handle_, version));
		return *this;
	}
	Options &&protocol_version(int version) && { return std::move(protocol_version(version)); }

	/** MQTT 5.0 enhanced authentication: the method CONNECT names and its initial data
	 * (Client::on_auth answers the broker's challenges). */
	Options &auth_method(std::string_view method, Bytes data = Bytes()) &
	{
		std::string m = detail::c_string(method, EQ1_STATUS_INVALID_ARGUMENT,
						 "authentication method");
		detail::check(eq1_mqtt_options_set_auth_method(handle_, m.c_str(), data.data(),
								data.size()));
		return *this;
	}
	Options &&auth_method(std::string_view method, Bytes data = Bytes()) &&
	{
		return std::move(auth_method(method, data));
	}

	/** Timeout of one connection attempt (> 0). */
	Options &connect_timeout(std::chrono::milliseconds timeout) &
	{
		detail::check(eq1_mqtt_options_set_connect_timeout(handle_, detail::to_ms(timeout)));
		return *this;
	}
	Options &&connect_timeout(std::chrono::milliseconds timeout) &&
	{
		return std::move(connect_timeout(timeout));
	}

	/** Maximum unacknowledged QoS 1/2 publishes, 1..65535. */
	Options &inflight_window(int window) &
	{
		detail::check(eq1_mqtt_options_set_inflight_window(handle_, window));
		return *this;
	}
	Options &&inflight_window(int window) && { return std::move(inflight_window(window)); }

	/** Largest packet sent or accepted, 16 .. 268435460 bytes. */
	Options &max_packet_size(std::int64_t bytes) &
	{
		detail::check(eq1_mqtt_options_set_max_packet_size(handle_, bytes));
		return *this;
	}
	Options &&max_packet_size(std::int64_t bytes) && { return std::move(max_packet_size(bytes)); }

	/** TLS for every broker, trusting the system's CA store. */
	Options &tls() &
	{
		detail::check(eq1_mqtt_options_set_tls(handle_, nullptr));
		return *this;
	}
	Options &&tls() && { return std::move(tls()); }

	/** TLS for every broker, trusting the CAs of a PEM file. */
	Options &tls(std::string_view ca_file) &
	{
		std::string f = detail::c_string(ca_file, EQ1_STATUS_INVALID_ARGUMENT, "CA file name");
		detail::check(eq1_mqtt_options_set_tls(handle_, f.c_str()));
		return *this;
	}
	Options &&tls(std::string_view ca_file) && { return std::move(tls(ca_file)); }

	/** Client certificate and unencrypted key (PEM); call after tls(). */
	Options &tls_client_cert(std::string_view cert_file, std::string_view key_file) &
	{
		std::string c = detail::c_string(cert_file, EQ1_STATUS_INVALID_ARGUMENT, "certificate file name");
		std::string k = detail::c_string(key_file, EQ1_STATUS_INVALID_ARGUMENT, "key file name");
		detail::check(eq1_mqtt_options_set_tls_client_cert(handle_, c.c_str(), k.c_str(), nullptr));
		return *this;
	}
	Options &&tls_client_cert(std::string_view cert_file, std::string_view key_file) &&
	{
		return std::move(tls_client_cert(cert_file, key_file));
	}

	/** Client certificate and encrypted PKCS#8 key (PEM) with its password. */
	Options &tls_client_cert(std::string_view cert_file, std::string_view key_file,
				 std::string_view key_password) &
	{
		std::string c = detail::c_string(cert_file, EQ1_STATUS_INVALID_ARGUMENT, "certificate file name");
		std::string k = detail::c_string(key_file, EQ1_STATUS_INVALID_ARGUMENT, "key file name");
		std::string p = detail::c_string(key_password, EQ1_STATUS_INVALID_ARGUMENT, "key password");
		detail::check(
			eq1_mqtt_options_set_tls_client_cert(handle_, c.c_str(), k.c_str(), p.c_str()));
		return *this;
	}
	Options &&tls_client_cert(std::string_view cert_file, std::string_view key_file,
				  std::string_view key_password) &&
	{
		return std::move(tls_client_cert(cert_file, key_file, key_password));
	}

	/**
	 * TLS for every broker, trusting the CA certificates in memory (PEM or DER bytes); the
	 * data is copied. Throws on data that holds no certificate (EQ1_STATUS_TLS_CONFIG).
	 */
	Options &tls_ca_data(std::string_view ca) &
	{
		detail::check(eq1_mqtt_options_set_tls_ca_data(
			handle_, reinterpret_cast<const std::uint8_t *>(ca.data()), ca.size()));
		return *this;
	}
	Options &&tls_ca_data(std::string_view ca) && { return std::move(tls_ca_data(ca)); }

	/**
	 * Client certificate chain and key from memory (PEM or DER; the key PKCS#8, encrypted
	 * PKCS#8, traditional RSA/EC or OpenSSL's traditional encryption), decoded and copied
	 * now. A missing or wrong `key_password` throws EQ1_STATUS_TLS_KEY_PASSWORD. Call after
	 * tls() or tls_ca_data().
	 */
	Options &tls_client_cert_data(std::string_view cert, std::string_view key,
				      std::optional<std::string_view> key_password = std::nullopt) &
	{
		std::string p = key_password ? detail::c_string(*key_password, EQ1_STATUS_INVALID_ARGUMENT,
							      "key password")
					     : std::string();
		detail::check(eq1_mqtt_options_set_tls_client_cert_data(
			handle_, reinterpret_cast<const std::uint8_t *>(cert.data()), cert.size(),
			reinterpret_cast<const std::uint8_t *>(key.data()), key.size(),
			key_password ? p.c_str() : nullptr));
		return *this;
	}
	Options &&tls_client_cert_data(std::string_view cert, std::string_view key,
				       std::optional<std::string_view> key_password = std::nullopt) &&
	{
		return std::move(tls_client_cert_data(cert, key, key_password));
	}

	/**
	 * Client certificate chain (PEM or DER) whose key stays in hardware: `callback` signs each
	 * handshake (see eq1_tls_sign_cb in eq1.h; it runs on the library's I/O thread).
	 * `user_data` must outlive these options and every client made from them.
	 */
	Options &tls_client_signer(std::string_view cert_chain, eq1_tls_sign_cb callback,
				   void *user_data) &
	{
		detail::check(eq1_mqtt_options_set_tls_client_signer(
			handle_, reinterpret_cast<const std::uint8_t *>(cert_chain.data()),
			cert_chain.size(), callback, user_data));
		return *this;
	}
	Options &&tls_client_signer(std::string_view cert_chain, eq1_tls_sign_cb callback,
				    void *user_data) &&
	{
		return std::move(tls_client_signer(cert_chain, callback, user_data));
	}

	/** ALPN protocol ids offered in the handshake, in order (empty: none). */
	Options &tls_alpn(const std::vector<std::string> &protocols) &
	{
		std::vector<const char *> ids;
		ids.reserve(protocols.size());
		for (const std::string &p : protocols) {
			if (p.find('\0') != std::string::npos)
				throw ValidationError(EQ1_STATUS_INVALID_ARGUMENT,
						      "ALPN protocol contains a NUL byte");
			ids.push_back(p.c_str());
		}
		detail::check(eq1_mqtt_options_set_tls_alpn(handle_, ids.empty() ? nullptr : ids.data(),
							   ids.size()));
		return *this;
	}
	Options &&tls_alpn(const std::vector<std::string> &protocols) &&
	{
		return std::move(tls_alpn(protocols));
	}

	/** The TLS server name (SNI and certificate check) instead of each broker's host. */
	Options &tls_server_name(std::string_view name) &
	{
		std::string n = detail::c_string(name, EQ1_STATUS_INVALID_ARGUMENT, "server name");
		detail::check(eq1_mqtt_options_set_tls_server_name(handle_, n.c_str()));
		return *this;
	}
	Options &&tls_server_name(std::string_view name) && { return std::move(tls_server_name(name)); }

	/** Adds the CRLs of a PEM/DER file: a revoked broker certificate fails with
	 *  EQ1_STATUS_TLS_CERT_REVOKED. */
	Options &tls_crl_file(std::string_view path) &
	{
		std::string f = detail::c_string(path, EQ1_STATUS_INVALID_ARGUMENT, "CRL file name");
		detail::check(eq1_mqtt_options_set_tls_crl_file(handle_, f.c_str()));
		return *this;
	}
	Options &&tls_crl_file(std::string_view path) && { return std::move(tls_crl_file(path)); }

	/** Adds the CRLs in memory (PEM or DER bytes), copied now. */
	Options &tls_crl_data(std::string_view crl) &
	{
		detail::check(eq1_mqtt_options_set_tls_crl_data(
			handle_, reinterpret_cast<const std::uint8_t *>(crl.data()), crl.size()));
		return *this;
	}
	Options &&tls_crl_data(std::string_view crl) && { return std::move(tls_crl_data(crl)); }

	/** Hostname verification (default on). */
	Options &tls_verify_hostname(bool verify) &
	{
		detail::check(eq1_mqtt_options_set_tls_verify_hostname(handle_, verify));
		return *this;
	}
	Options &&tls_verify_hostname(bool verify) && { return std::move(tls_verify_hostname(verify)); }

	/** Accept any server certificate: for tests only. */
	Options &tls_insecure(bool insecure) &
	{
		detail::check(eq1_mqtt_options_set_tls_insecure(handle_, insecure));
		return *this;
	}
	Options &&tls_insecure(bool insecure) && { return std::move(tls_insecure(insecure)); }

	/** EQ1_TLS_1_2 (default) or EQ1_TLS_1_3. */
	Options &tls_min_version(int version) &
	{
		detail::check(eq1_mqtt_options_set_tls_min_version(handle_, version));
		return *this;
	}
	Options &&tls_min_version(int version) && { return std::move(tls_min_version(version)); }

	/** Automatic reconnection with exponential backoff between the two delays. */
	Options &reconnect(bool enabled,
			   std::chrono::milliseconds min_delay = std::chrono::milliseconds(500),
			   std::chrono::milliseconds max_delay = std::chrono::milliseconds(30000)) &
	{
		detail::check(eq1_mqtt_options_set_reconnect(handle_, enabled, detail::to_ms(min_delay),
							      detail::to_ms(max_delay)));
		return *this;
	}
	Options &&reconnect(bool enabled,
			    std::chrono::milliseconds min_delay = std::chrono::milliseconds(500),
			    std::chrono::milliseconds max_delay = std::chrono::milliseconds(30000)) &&
	{
		return std::move(reconnect(enabled, min_delay, max_delay));
	}

	/** Outbox bounds, full policy (EQ1_QUEUE_REJECT_NEW / EQ1_QUEUE_DROP_OLDEST), and
	 * whether publishing before the first connect is allowed. */
	Options &offline_queue(std::int64_t max_messages, std::int64_t max_bytes,
			       int policy = EQ1_QUEUE_REJECT_NEW, bool queue_before_connect = false) &
	{
		detail::check(eq1_mqtt_options_set_offline_queue(handle_, max_messages, max_bytes, policy,
								  queue_before_connect));
		return *this;
	}
	Options &&offline_queue(std::int64_t max_messages, std::int64_t max_bytes,
				int policy = EQ1_QUEUE_REJECT_NEW, bool queue_before_connect = false) &&
	{
		return std::move(offline_queue(max_messages, max_bytes, policy, queue_before_connect));
	}

	/** Store and forward in `directory` (EQ1_DURABILITY_SYNC, _BATCHED or _NONE); see
	 *  eq1_mqtt_options_set_persistence. Needs a client id. */
	Options &persistence(const std::string &directory, int durability = EQ1_DURABILITY_BATCHED) &
	{
		detail::check(eq1_mqtt_options_set_persistence(handle_, directory.c_str(), durability));
		return *this;
	}
	Options &&persistence(const std::string &directory, int durability = EQ1_DURABILITY_BATCHED) &&
	{
		return std::move(persistence(directory, durability));
	}

	/** How often the batched store syncs to disk (milliseconds, default 100). */
	Options &persistence_interval(int interval_ms) &
	{
		detail::check(eq1_mqtt_options_set_persistence_interval(handle_, interval_ms));
		return *this;
	}
	Options &&persistence_interval(int interval_ms) &&
	{
		return std::move(persistence_interval(interval_ms));
	}

	/** Store size bound (0: unbounded) and whether queued QoS 0 messages are kept too. */
	Options &persistence_limit(std::uint64_t max_bytes, bool keep_qos0 = false) &
	{
		detail::check(eq1_mqtt_options_set_persistence_limit(handle_, max_bytes, keep_qos0));
		return *this;
	}
	Options &&persistence_limit(std::uint64_t max_bytes, bool keep_qos0 = false) &&
	{
		return std::move(persistence_limit(max_bytes, keep_qos0));
	}

	/** MQTT 5.0: automatic topic aliases for repeated topics (default on). */
	Options &topic_alias_auto(bool enabled) &
	{
		detail::check(eq1_mqtt_options_set_topic_alias_auto(handle_, enabled));
		return *this;
	}
	Options &&topic_alias_auto(bool enabled) && { return std::move(topic_alias_auto(enabled)); }

	/** Request/response: response topics are `<prefix><client id>` (default "eq1/response/"). */
	Options &response_topic_prefix(std::string_view prefix) &
	{
		std::string p = detail::c_string(prefix, EQ1_STATUS_INVALID_TOPIC, "response topic prefix");
		detail::check(eq1_mqtt_options_set_response_topic_prefix(handle_, p.c_str()));
		return *this;
	}
	Options &&response_topic_prefix(std::string_view prefix) &&
	{
		return std::move(response_topic_prefix(prefix));
	}

	/** Request/response: requests waiting for replies at once (default 10,000). */
	Options &max_pending_requests(std::int64_t maximum) &
	{
		detail::check(eq1_mqtt_options_set_max_pending_requests(handle_, maximum));
		return *this;
	}
	Options &&max_pending_requests(std::int64_t maximum) &&
	{
		return std::move(max_pending_requests(maximum));
	}

	/** The C handle (null after a move), for eq1.h functions not wrapped here. */
	eq1_mqtt_options *native() noexcept { return handle_; }
	const eq1_mqtt_options *native() const noexcept { return handle_; }

private:
	eq1_mqtt_options *handle_;
};

/* ------------------------------------------------------------------------ subscribing */

/** Subscription options; no_local, retain_as_published and retain_handling need MQTT 5.0. */
struct SubscribeOptions {
	int qos = 0;
	/** The broker does not send this client its own publishes on this subscription. */
	bool no_local = false;
	/** Messages keep the retain flag they were published with. */
	bool retain_as_published = false;
	/** 0: retained messages at every subscribe, 1: only for a new subscription, 2: never. */
	int retain_handling = 0;
};

/** The reason string and user properties of an MQTT 5.0 SUBACK / UNSUBACK. */
struct AckProperties {
	std::optional<std::string> reason_string;
	std::vector<std::pair<std::string, std::string>> user_properties;
};

/** How the broker answered one filter of subscribe_many(). */
struct SubscribeResult {
	std::string filter;
	/** EQ1_STATUS_OK when granted, EQ1_STATUS_SUBSCRIBE_REFUSED when refused. */
	eq1_status status;
	/** SUBACK reason code: 0..2 the granted QoS, 0x80 and above a refusal. */
	int reason_code;
	/** The granted QoS, -1 when refused. */
	int granted_qos;
	/** The subscription identifier its messages are routed by (0: none sent). */
	std::uint32_t subscription_id;
	bool granted() const noexcept { return status == EQ1_STATUS_OK; }
};

struct SubscribeAck {
	std::vector<SubscribeResult> results;
	AckProperties ack;
};

/** How the broker answered one filter of unsubscribe_many(). */
struct UnsubscribeResult {
	std::string filter;
	/** EQ1_STATUS_OK (also for 0x11, no subscription existed) or
	 *  EQ1_STATUS_UNSUBSCRIBE_REFUSED. */
	eq1_status status;
	int reason_code;
};

struct UnsubscribeAck {
	std::vector<UnsubscribeResult> results;
	AckProperties ack;
};

using UserProperties = std::vector<std::pair<std::string, std::string>>;

/* ------------------------------------------------------------------------------ client */

namespace detail {

/** C user properties pointing into `pairs`, which must outlive them. */
inline std::vector<eq1_mqtt_user_property> c_user_properties(
	const std::vector<std::pair<std::string, std::string>> &pairs)
{
	std::vector<eq1_mqtt_user_property> out;
	out.reserve(pairs.size());
	for (const auto &[name, value] : pairs)
		out.push_back(eq1_mqtt_user_property{name.c_str(), value.c_str()});
	return out;
}

/** Copies a filled eq1_mqtt_ack_properties and clears it. */
inline AckProperties take_ack(eq1_mqtt_ack_properties &c)
{
	AckProperties ack;
	if (c.reason_string)
		ack.reason_string = std::string(c.reason_string);
	for (std::size_t i = 0; i < c.user_property_count; i++)
		ack.user_properties.emplace_back(c.user_properties[i].name,
						 c.user_properties[i].value);
	eq1_mqtt_ack_properties_clear(&c);
	return ack;
}

} // namespace detail

/** One subscription of Client::subscribe_many(). */
struct SubscriptionSpec {
	std::string filter;
	SubscribeOptions options;
	MessageHandler handler;
};

namespace detail {

struct ClientState;

/** One subscribe() call's handler; the C library gets its address as user_data. */
struct Subscription {
	MessageHandler handler;
	ClientState *state;
};

/** Everything the C library may point at; heap-allocated so that a Client can move. */
struct ClientState {
	std::mutex mutex;
	std::shared_ptr<const ConnectionHandler> on_connection;
	std::shared_ptr<const DeliveryHandler> on_delivery;
	std::shared_ptr<const AuthHandler> on_auth;
	// Every handler ever subscribed, per filter (the last one is current); kept until the
	// client is freed so that the C library never holds a dangling user_data.
	std::map<std::string, std::vector<std::unique_ptr<Subscription>>, std::less<>> subscriptions;
	std::exception_ptr callback_exception;
	std::size_t callback_exceptions = 0;

	void record(std::exception_ptr error) noexcept
	{
		try {
			std::lock_guard<std::mutex> lock(mutex);
			++callback_exceptions;
			if (!callback_exception)
				callback_exception = std::move(error);
		} catch (...) {
			// Locking failed: nothing more can be done without throwing into C.
		}
	}

	template <class Handler>
	std::shared_ptr<const Handler> load(const std::shared_ptr<const Handler> &slot)
	{
		std::lock_guard<std::mutex> lock(mutex);
		return slot;
	}
};

} // namespace detail

// The functions the C library calls: C language linkage, and no exception ever leaves them.
extern "C" {

inline void eq1cpp_on_message(void *user_data, const eq1_mqtt_message *message) noexcept
{
	auto *subscription = static_cast<detail::Subscription *>(user_data);
	if (subscription == nullptr || message == nullptr)
		return;
	try {
		Message view(*message);
		subscription->handler(view);
	} catch (...) {
		subscription->state->record(std::current_exception());
	}
}

inline void eq1cpp_on_connection(void *user_data, const eq1_mqtt_connection_event *event) noexcept
{
	auto *state = static_cast<detail::ClientState *>(user_data);
	if (state == nullptr || event == nullptr)
		return;
	try {
		// A copy of the pointer: on_connection() may replace the handler meanwhile.
		std::shared_ptr<const ConnectionHandler> handler = state->load(state->on_connection);
		if (handler && *handler) {
			ConnectionEvent view{event->state,
					     event->reason,
					     event->reason_text ? event->reason_text : "",
					     event->session_present,
					     event->broker_host ? event->broker_host : "",
					     event->broker_port,
					     event->connack,
					     event->disconnect_reason_code,
					     event->disconnect_reason_string ? event->disconnect_reason_string : "",
					     event->server_reference ? event->server_reference : ""};
			(*handler)(view);
		}
	} catch (...) {
		state->record(std::current_exception());
	}
}

inline void eq1cpp_on_delivery(void *user_data, const eq1_mqtt_delivery_report *report) noexcept
{
	auto *state = static_cast<detail::ClientState *>(user_data);
	if (state == nullptr || report == nullptr)
		return;
	try {
		std::shared_ptr<const DeliveryHandler> handler = state->load(state->on_delivery);
		if (handler && *handler) {
			Delivery view{report->token,
				      report->status,
				      report->detail ? report->detail : "",
				      report->reason_code,
				      report->reason_string ? report->reason_string : "",
				      report->user_properties,
				      report->user_property_count};
			(*handler)(view);
		}
	} catch (...) {
		state->record(std::current_exception());
	}
}

inline void eq1cpp_on_reply(void *user_data, eq1_status status,
			    const eq1_mqtt_response *response) noexcept
{
	// Called exactly once per request: the handler is ours to delete.
	std::unique_ptr<ReplyHandler> handler(static_cast<ReplyHandler *>(user_data));
	if (!handler || !*handler)
		return;
	try {
		if (status == EQ1_STATUS_OK && response != nullptr) {
			Reply reply = Reply::from_native(*response);
			(*handler)(status, &reply);
		} else {
			(*handler)(status, nullptr);
		}
	} catch (...) {
		// Nowhere to report it: an exception never crosses into C.
	}
}

inline void eq1cpp_on_auth(void *user_data, const eq1_mqtt_auth_challenge *challenge,
			   eq1_mqtt_auth_response *response) noexcept
{
	auto *state = static_cast<detail::ClientState *>(user_data);
	if (state == nullptr || challenge == nullptr || response == nullptr)
		return;
	try {
		std::shared_ptr<const AuthHandler> handler = state->load(state->on_auth);
		if (!handler || !*handler)
			return; // stays EQ1_MQTT_AUTH_FAILURE
		AuthChallenge view{challenge->method ? challenge->method : "",
				   static_cast<int>(challenge->reason_code),
				   Bytes(challenge->data, challenge->data_len),
				   challenge->reauthenticating};
		AuthAnswer answer = (*handler)(view);
		if (answer.data.size() > response->data_capacity)
			answer = AuthAnswer::failure("the authentication response is too long");
		response->action = answer.action;
		std::memcpy(response->data, answer.data.data(), answer.data.size());
		response->data_len = answer.data.size();
		std::size_t n = answer.reason.size() < response->reason_capacity - 1
					? answer.reason.size()
					: response->reason_capacity - 1;
		std::memcpy(response->reason, answer.reason.data(), n);
		response->reason[n] = '\0';
	} catch (...) {
		response->action = EQ1_MQTT_AUTH_FAILURE;
		state->record(std::current_exception());
	}
}

} // extern "C"

/**
 * An MQTT client (eq1_mqtt_client) and the handlers the C library calls. Move-only; the
 * destructor frees the C client (no DISCONNECT: call disconnect() first for a clean end).
 */
class Client {
public:
	/** A client with default options (localhost:1883, MQTT 3.1.1). */
	Client() : Client(Options()) {}

	/** A client with these options (copied: the Options may be destroyed afterwards). */
	explicit Client(const Options &options) : state_(std::make_unique<detail::ClientState>())
	{
		eq1_mqtt_client *handle = nullptr;
		detail::check(eq1_mqtt_client_new(options.native(), state_.get(), nullptr, &handle));
		handle_ = handle;
	}

	~Client() { reset(); }

	Client(Client &&other) noexcept
		: handle_(std::exchange(other.handle_, nullptr)), state_(std::move(other.state_))
	{
	}
	Client &operator=(Client &&other) noexcept
	{
		if (this != &other) {
			reset();
			handle_ = std::exchange(other.handle_, nullptr);
			state_ = std::move(other.state_);
		}
		return *this;
	}
	Client(const Client &) = delete;
	Client &operator=(const Client &) = delete;

	/** Connects; returns after CONNACK. 0 ms: the options' connect timeout. */
	void connect(std::chrono::milliseconds timeout = std::chrono::milliseconds(0))
	{
		detail::check(eq1_mqtt_client_connect(handle_, detail::to_ms(timeout)));
	}

	/** Queues a publish (the payload is copied) and returns its token at once. */
	Token publish(std::string_view topic, Bytes payload, int qos = 0, bool retain = false)
	{
		std::string t = detail::c_string(topic, EQ1_STATUS_INVALID_TOPIC, "topic");
		Token token = 0;
		detail::check(eq1_mqtt_client_publish(handle_, t.c_str(), payload.data(), payload.size(),
						       qos, retain, &token));
		return token;
	}
	Token publish(std::string_view topic, std::string_view payload, int qos = 0, bool retain = false)
	{
		return publish(topic, Bytes(payload), qos, retain);
	}
	/** publish with MQTT 5.0 properties (ValidationError on an MQTT 3.1.1 client). */
	Token publish(std::string_view topic, Bytes payload, int qos, bool retain,
		      const Properties &properties)
	{
		std::string t = detail::c_string(topic, EQ1_STATUS_INVALID_TOPIC, "topic");
		std::vector<eq1_mqtt_user_property> pairs;
		eq1_mqtt_properties p = c_properties(properties, pairs);
		Token token = 0;
		detail::check(eq1_mqtt_client_publish_with_properties(
			handle_, t.c_str(), payload.data(), payload.size(), qos, retain, &p, &token));
		return token;
	}

	/** The C view of `properties`; `pairs` holds its user properties and must outlive it. */
	static eq1_mqtt_properties c_properties(const Properties &properties,
						std::vector<eq1_mqtt_user_property> &pairs)
	{
		for (const auto &[name, value] : properties.user_properties)
			pairs.push_back({ name.c_str(), value.c_str() });
		eq1_mqtt_properties p{};
		p.has_payload_format = properties.payload_is_utf8.has_value();
		p.payload_is_utf8 = properties.payload_is_utf8.value_or(false);
		p.has_message_expiry = properties.message_expiry.has_value();
		p.message_expiry = properties.message_expiry.value_or(0);
		p.content_type = properties.content_type ? properties.content_type->c_str() : nullptr;
		p.response_topic =
			properties.response_topic ? properties.response_topic->c_str() : nullptr;
		if (properties.correlation_data) {
			p.correlation_data =
				reinterpret_cast<const std::uint8_t *>(properties.correlation_data->data());
			p.correlation_data_len = properties.correlation_data->size();
		}
		p.user_properties = pairs.empty() ? nullptr : pairs.data();
		p.user_property_count = pairs.size();
		return p;
	}

	/**
	 * MQTT 5.0 request/response: publishes `payload` to `topic` with a response topic and a
	 * fresh correlation data and returns the reply; throws ConnectionError (EQ1_STATUS_TIMEOUT)
	 * when none came in time, ValidationError (EQ1_STATUS_MQTT5_REQUIRED) on MQTT 3.1.1.
	 * Not from inside the client's own handlers (use request_async there).
	 */
	Reply request(std::string_view topic, Bytes payload,
		      std::chrono::milliseconds timeout = default_timeout)
	{
		std::string t = detail::c_string(topic, EQ1_STATUS_INVALID_TOPIC, "topic");
		eq1_mqtt_response *response = nullptr;
		detail::check(eq1_mqtt_client_request(handle_, t.c_str(), payload.data(), payload.size(),
						       detail::to_ms(timeout), &response));
		std::unique_ptr<eq1_mqtt_response, void (*)(eq1_mqtt_response *)> owned(
			response, &eq1_mqtt_response_free);
		return Reply::from_native(*owned);
	}
	Reply request(std::string_view topic, std::string_view payload,
		      std::chrono::milliseconds timeout = default_timeout)
	{
		return request(topic, Bytes(payload), timeout);
	}

	/** request without waiting: `handler` is called exactly once, on the dispatcher thread. */
	void request_async(std::string_view topic, Bytes payload, std::chrono::milliseconds timeout,
			   ReplyHandler handler)
	{
		std::string t = detail::c_string(topic, EQ1_STATUS_INVALID_TOPIC, "topic");
		auto owned = std::make_unique<ReplyHandler>(std::move(handler));
		detail::check(eq1_mqtt_client_request_async(handle_, t.c_str(), payload.data(),
							     payload.size(), detail::to_ms(timeout),
							     &eq1cpp_on_reply, owned.get()));
		(void)owned.release(); // eq1cpp_on_reply deletes it
	}

	/** Answers `request` (a received message): publishes to its response topic with its
	 *  correlation data. ValidationError (EQ1_STATUS_NO_RESPONSE_TOPIC) when it has none. */
	Token respond(const Message &request, Bytes payload, int qos = 1)
	{
		Token token = 0;
		detail::check(eq1_mqtt_client_respond(handle_, &request.native(), payload.data(),
						       payload.size(), qos, &token));
		return token;
	}
	Token respond(const Message &request, std::string_view payload, int qos = 1)
	{
		return respond(request, Bytes(payload), qos);
	}

	/** Blocks until the publish behind `token` completed; throws its failure or a timeout. */
	void wait(Token token, std::chrono::milliseconds timeout = default_timeout)
	{
		detail::check(eq1_mqtt_client_wait(handle_, token, detail::to_ms(timeout)));
	}

	/**
	 * Like wait(), but returns how the publish ended instead of throwing its failure, with
	 * the reason code and reason string of the broker's acknowledgement (MQTT 5.0). Throws
	 * on a timeout or a token never issued.
	 */
	DeliveryReport wait_report(Token token, std::chrono::milliseconds timeout = default_timeout)
	{
		std::uint8_t code = 0;
		char reason[1024];
		eq1_status status = eq1_mqtt_client_wait_report(handle_, token, detail::to_ms(timeout),
								&code, reason, sizeof reason);
		if (status == EQ1_STATUS_TIMEOUT || status == EQ1_STATUS_INVALID_ARGUMENT ||
		    status == EQ1_STATUS_NULL_ARGUMENT || status == EQ1_STATUS_INVALID_STATE ||
		    status == EQ1_STATUS_INTERNAL)
			detail::check(status);
		return DeliveryReport{status,
				      status == EQ1_STATUS_OK ? std::string() : last_error_message(),
				      code, reason};
	}

	/**
	 * Subscribes `handler` to `filter`, waits for SUBACK, returns the granted QoS. Subscribing
	 * the same filter again replaces its handler (the old one is kept until the Client is
	 * destroyed; see the notes at the top). A message matching several filters reaches each.
	 */
	int subscribe(std::string_view filter, int qos, MessageHandler handler,
		      std::chrono::milliseconds timeout = default_timeout)
	{
		detail::ClientState &state = live_state();
		std::string f = detail::c_string(filter, EQ1_STATUS_INVALID_FILTER, "filter");
		if (!handler)
			throw ValidationError(EQ1_STATUS_NULL_ARGUMENT,
					      "the message handler is empty; a subscription needs one");
		detail::Subscription *subscription;
		{
			// Stored before the C library sees it, and never freed before the client.
			auto owned = std::make_unique<detail::Subscription>(
				detail::Subscription{std::move(handler), &state});
			subscription = owned.get();
			std::lock_guard<std::mutex> lock(state.mutex);
			state.subscriptions[f].push_back(std::move(owned));
		}
		int granted = -1;
		detail::check(eq1_mqtt_client_subscribe(handle_, f.c_str(), qos, &eq1cpp_on_message,
							 subscription, detail::to_ms(timeout), &granted));
		return granted;
	}

	/** subscribe() with subscription options (MQTT 5.0 ones throw ValidationError with
	 *  EQ1_STATUS_MQTT5_REQUIRED on an MQTT 3.1.1 client). */
	int subscribe(std::string_view filter, const SubscribeOptions &options,
		      MessageHandler handler, std::chrono::milliseconds timeout = default_timeout)
	{
		std::vector<SubscriptionSpec> one;
		one.push_back(SubscriptionSpec{std::string(filter), options, std::move(handler)});
		SubscribeAck ack = subscribe_many(std::move(one), {}, timeout);
		const SubscribeResult &r = ack.results.at(0);
		if (!r.granted())
			throw ValidationError(r.status, "the broker refused the subscription to '" +
							       r.filter + "' (reason code " +
							       std::to_string(r.reason_code) + ")");
		return r.granted_qos;
	}

	/**
	 * Subscribes several filters in one call and returns the broker's answer per filter, in
	 * order (a refused filter does not throw: its result says so). With MQTT 5.0 each
	 * subscription has its own identifier, so a message matching two overlapping
	 * subscriptions reaches each handler once. Throws like subscribe() when the call fails.
	 */
	SubscribeAck subscribe_many(std::vector<SubscriptionSpec> specs,
				    const UserProperties &user_properties = {},
				    std::chrono::milliseconds timeout = default_timeout)
	{
		detail::ClientState &state = live_state();
		std::vector<std::string> filters;
		std::vector<eq1_mqtt_subscription> c_subs;
		filters.reserve(specs.size());
		c_subs.reserve(specs.size());
		for (auto &spec : specs)
			filters.push_back(detail::c_string(spec.filter, EQ1_STATUS_INVALID_FILTER,
							   "filter"));
		for (std::size_t i = 0; i < specs.size(); i++) {
			if (!specs[i].handler)
				throw ValidationError(EQ1_STATUS_NULL_ARGUMENT,
						      "the message handler is empty; a subscription needs one");
			auto owned = std::make_unique<detail::Subscription>(
				detail::Subscription{std::move(specs[i].handler), &state});
			detail::Subscription *subscription = owned.get();
			{
				std::lock_guard<std::mutex> lock(state.mutex);
				state.subscriptions[filters[i]].push_back(std::move(owned));
			}
			const SubscribeOptions &o = specs[i].options;
			c_subs.push_back(eq1_mqtt_subscription{
				filters[i].c_str(),
				eq1_mqtt_subscribe_options{o.qos, o.no_local, o.retain_as_published,
							   o.retain_handling},
				&eq1cpp_on_message, subscription});
		}
		std::vector<eq1_mqtt_user_property> props = detail::c_user_properties(user_properties);
		std::vector<eq1_mqtt_subscribe_result> results(specs.size());
		eq1_mqtt_ack_properties c_ack{};
		detail::check(eq1_mqtt_client_subscribe_many(
			handle_, c_subs.empty() ? nullptr : c_subs.data(), c_subs.size(),
			props.empty() ? nullptr : props.data(), props.size(), detail::to_ms(timeout),
			results.empty() ? nullptr : results.data(), &c_ack));
		SubscribeAck ack;
		ack.ack = detail::take_ack(c_ack);
		for (std::size_t i = 0; i < results.size(); i++)
			ack.results.push_back(SubscribeResult{filters[i], results[i].status,
							      results[i].reason_code,
							      results[i].granted_qos,
							      results[i].subscription_id});
		return ack;
	}

	/** Unsubscribes several filters with one UNSUBSCRIBE; per filter the UNSUBACK's reason
	 *  code (0x11: no subscription existed). */
	UnsubscribeAck unsubscribe_many(const std::vector<std::string> &filters,
					const UserProperties &user_properties = {},
					std::chrono::milliseconds timeout = default_timeout)
	{
		std::vector<std::string> owned;
		std::vector<const char *> c_filters;
		owned.reserve(filters.size());
		for (const auto &f : filters)
			owned.push_back(detail::c_string(f, EQ1_STATUS_INVALID_FILTER, "filter"));
		for (const auto &f : owned)
			c_filters.push_back(f.c_str());
		std::vector<eq1_mqtt_user_property> props = detail::c_user_properties(user_properties);
		std::vector<eq1_mqtt_unsubscribe_result> results(filters.size());
		eq1_mqtt_ack_properties c_ack{};
		detail::check(eq1_mqtt_client_unsubscribe_many_with_results(
			handle_, c_filters.empty() ? nullptr : c_filters.data(), c_filters.size(),
			props.empty() ? nullptr : props.data(), props.size(), detail::to_ms(timeout),
			results.empty() ? nullptr : results.data(), &c_ack));
		UnsubscribeAck ack;
		ack.ack = detail::take_ack(c_ack);
		for (std::size_t i = 0; i < results.size(); i++)
			ack.results.push_back(
				UnsubscribeResult{owned[i], results[i].status, results[i].reason_code});
		return ack;
	}

	/** Removes the subscription to `filter` and waits for UNSUBACK. */
	void unsubscribe(std::string_view filter, std::chrono::milliseconds timeout = default_timeout)
	{
		std::string f = detail::c_string(filter, EQ1_STATUS_INVALID_FILTER, "filter");
		detail::check(eq1_mqtt_client_unsubscribe(handle_, f.c_str(), detail::to_ms(timeout)));
	}

	/** Waits for in-flight QoS 1/2 publishes, then sends DISCONNECT. May connect again. */
	void disconnect(std::chrono::milliseconds timeout = default_timeout)
	{
		detail::check(eq1_mqtt_client_disconnect(handle_, detail::to_ms(timeout)));
	}

	/**
	 * disconnect() with what the MQTT 5.0 DISCONNECT says: `reason_code` (0x04 asks the
	 * broker to publish the will), a new session expiry interval, user properties. Throws
	 * like eq1_mqtt_client_disconnect_with fails (MQTT5_REQUIRED on 3.1.1 for non-defaults).
	 */
	void disconnect_with(std::uint8_t reason_code,
			     std::optional<std::uint32_t> session_expiry = std::nullopt,
			     const UserProperties &user_properties = {},
			     std::chrono::milliseconds timeout = default_timeout)
	{
		std::vector<eq1_mqtt_user_property> props = detail::c_user_properties(user_properties);
		detail::check(eq1_mqtt_client_disconnect_with(
			handle_, reason_code, session_expiry.has_value(), session_expiry.value_or(0),
			props.empty() ? nullptr : props.data(), props.size(), detail::to_ms(timeout)));
	}

	/** The will sent with the next CONNECT; only while not connected. */
	void set_will(std::string_view topic, Bytes payload, int qos = 0, bool retain = false)
	{
		std::string t = detail::c_string(topic, EQ1_STATUS_INVALID_TOPIC, "will topic");
		detail::check(eq1_mqtt_client_set_will(handle_, t.c_str(), payload.data(), payload.size(),
							qos, retain));
	}
	void set_will(std::string_view topic, std::string_view payload, int qos = 0, bool retain = false)
	{
		set_will(topic, Bytes(payload), qos, retain);
	}
	/**
	 * MQTT 5.0: the will with its properties and a Will Delay Interval (seconds, 0: none):
	 * the broker waits that long, and sends nothing if the session resumes meanwhile.
	 */
	void set_will(std::string_view topic, Bytes payload, int qos, bool retain,
		      const Properties &properties, std::uint32_t delay_seconds = 0)
	{
		std::string t = detail::c_string(topic, EQ1_STATUS_INVALID_TOPIC, "will topic");
		std::vector<eq1_mqtt_user_property> pairs;
		eq1_mqtt_properties p = c_properties(properties, pairs);
		detail::check(eq1_mqtt_client_set_will_with_properties(
			handle_, t.c_str(), payload.data(), payload.size(), qos, retain, &p, delay_seconds));
	}

	/** Sets (an empty function removes) the connection handler. */
	void on_connection(ConnectionHandler handler)
	{
		detail::ClientState &state = live_state();
		bool set = static_cast<bool>(handler);
		auto shared = std::make_shared<const ConnectionHandler>(std::move(handler));
		{
			std::lock_guard<std::mutex> lock(state.mutex);
			state.on_connection.swap(shared);
		}
		// `shared` (the old handler) is released here, or by the dispatcher if it is running it.
		detail::check(eq1_mqtt_client_set_connection_callback(
			handle_, set ? &eq1cpp_on_connection : nullptr));
	}

	/** Sets (an empty function removes) the delivery handler, called once per token. */
	void on_delivery(DeliveryHandler handler)
	{
		detail::ClientState &state = live_state();
		bool set = static_cast<bool>(handler);
		auto shared = std::make_shared<const DeliveryHandler>(std::move(handler));
		{
			std::lock_guard<std::mutex> lock(state.mutex);
			state.on_delivery.swap(shared);
		}
		detail::check(eq1_mqtt_client_set_delivery_report_callback(
			handle_, set ? &eq1cpp_on_delivery : nullptr));
	}

	/** Sets (an empty function removes) the enhanced-authentication handler
	 * (Options::auth_method). */
	void on_auth(AuthHandler handler)
	{
		detail::ClientState &state = live_state();
		bool set = static_cast<bool>(handler);
		auto shared = std::make_shared<const AuthHandler>(std::move(handler));
		{
			std::lock_guard<std::mutex> lock(state.mutex);
			state.on_auth.swap(shared);
		}
		detail::check(eq1_mqtt_client_set_auth_callback(handle_, set ? &eq1cpp_on_auth : nullptr,
								 &state));
	}

	/** Re-authenticates (AUTH 0x19 with the configured method and data) and waits for the
	 * broker's success; publishing goes on meanwhile. */
	void reauthenticate(Bytes data, std::chrono::milliseconds timeout)
	{
		detail::check(eq1_mqtt_client_reauthenticate(handle_, data.data(), data.size(),
							     detail::to_ms(timeout)));
	}

	/** True while connected (false after a move). */
	bool is_connected() const noexcept { return eq1_mqtt_client_is_connected(handle_); }

	/** The client's counters. */
	Stats stats() const
	{
		Stats stats{};
		detail::check(eq1_mqtt_client_get_stats(handle_, &stats));
		return stats;
	}

	/** The metrics in the OpenMetrics / Prometheus text format (eq1_mqtt_client_metrics_text);
	 *  "" after a move. */
	std::string metrics_text() const
	{
		std::string text(eq1_mqtt_client_metrics_text(handle_, nullptr, 0) + 256, '\0');
		for (;;) {
			// Uptimes and counters may grow between two calls: retry with the new length.
			std::size_t needed = eq1_mqtt_client_metrics_text(handle_, &text[0], text.size());
			if (needed < text.size()) {
				text.resize(needed);
				return text;
			}
			text.assign(needed + 256, '\0');
		}
	}

	/** The client id (given or generated); "" after a move. */
	std::string id() const
	{
		std::size_t needed = eq1_mqtt_client_get_id(handle_, nullptr, 0);
		if (needed == 0)
			return std::string();
		std::string id(needed + 1, '\0');
		std::size_t written = eq1_mqtt_client_get_id(handle_, &id[0], id.size());
		id.resize(written < needed ? written : needed);
		return id;
	}

	/** A message restored from the store when the client was created. */
	struct Restored {
		eq1_token token;
		int qos;
		std::string topic;
	};

	/** What the store held when the client was created (accepted by an earlier run, not
	 *  completed), in acceptance order; each keeps its original token. */
	std::vector<Restored> restored() const
	{
		std::size_t count = 0;
		detail::check(eq1_mqtt_client_restored_count(handle_, &count));
		std::vector<Restored> out;
		for (std::size_t i = 0; i < count; ++i) {
			Restored r{0, 0, std::string()};
			std::size_t len = 0;
			detail::check(eq1_mqtt_client_restored_message(handle_, i, &r.token, &r.qos, nullptr,
									0, &len));
			std::string topic(len + 1, '\0');
			detail::check(eq1_mqtt_client_restored_message(handle_, i, nullptr, nullptr,
									&topic[0], topic.size(), nullptr));
			topic.resize(len);
			r.topic = std::move(topic);
			out.push_back(std::move(r));
		}
		return out;
	}

	/** The CONNACK of the current connection, or of the last one when not connected now;
	 *  empty before the first connect. */
	std::optional<ConnAck> connack() const
	{
		eq1_mqtt_connack_info *info = nullptr;
		eq1_status status = eq1_mqtt_client_get_connack(handle_, &info);
		if (status == EQ1_STATUS_NOT_CONNECTED)
			return std::nullopt;
		detail::check(status);
		std::unique_ptr<eq1_mqtt_connack_info, void (*)(eq1_mqtt_connack_info *)> owned(
			info, &eq1_mqtt_connack_info_free);
		return ConnAck::from_native(*owned);
	}

	/** The first exception a handler threw since the last call (null if none); clears it. */
	std::exception_ptr take_callback_exception() noexcept
	{
		if (!state_)
			return nullptr;
		try {
			std::lock_guard<std::mutex> lock(state_->mutex);
			return std::exchange(state_->callback_exception, nullptr);
		} catch (...) {
			return nullptr;
		}
	}

	/** How many exceptions handlers have thrown in all (stored or not). */
	std::size_t callback_exception_count() const noexcept
	{
		if (!state_)
			return 0;
		try {
			std::lock_guard<std::mutex> lock(state_->mutex);
			return state_->callback_exceptions;
		} catch (...) {
			return 0;
		}
	}

	/** The C handle (null after a move), for eq1.h functions not wrapped here. Do not free it. */
	eq1_mqtt_client *native_handle() const noexcept { return handle_; }

private:
	detail::ClientState &live_state() const
	{
		if (!state_)
			throw ValidationError(EQ1_STATUS_NULL_ARGUMENT, "this eq1::Client was moved from");
		return *state_;
	}

	void reset() noexcept
	{
		if (handle_ != nullptr) {
			eq1_status status = eq1_mqtt_client_free(handle_);
			handle_ = nullptr;
			if (status == EQ1_STATUS_CALLED_FROM_CALLBACK) {
				// Freed from its own handler: the C client lives on and will call our
				// handlers again, so they must outlive it. Leak both (see the notes).
				(void)state_.release();
				return;
			}
		}
		state_.reset();
	}

	eq1_mqtt_client *handle_ = nullptr;
	std::unique_ptr<detail::ClientState> state_;
};

/* ------------------------------------------------------------------ TCP request/response */

/**
 * A TCP (or TLS) request/response client over eq1_tcp_*: RAII, movable, thread-safe (requests
 * from several threads take turns). Every failure throws the exception class of its status:
 * ConnectionError for EQ1_STATUS_TIMEOUT, _CONNECTION_LOST, _NOT_CONNECTED, refused and TLS
 * handshake failures; ValidationError for bad arguments and EQ1_STATUS_PAYLOAD_TOO_LARGE;
 * ProtocolError for EQ1_STATUS_FRAME_TOO_LARGE (the server sent a frame above max_frame).
 *
 *   eq1::TcpClient tcp({"127.0.0.1", 7000, eq1::TcpClient::Framing::length_u16});
 *   tcp.connect();
 *   std::vector<std::uint8_t> answer = tcp.request("ping");
 *
 * With auto_reconnect, a connection the server closed while idle is reopened before the next
 * send or request, and a request whose connection broke before any byte of its answer arrived
 * is sent once more: at least once, the server may receive it twice (see
 * eq1_tcp_options_set_auto_reconnect).
 */
class TcpClient {
public:
	enum class Framing : int {
		raw = EQ1_TCP_FRAMING_RAW,
		length_u16 = EQ1_TCP_FRAMING_LENGTH_U16,
		length_u32 = EQ1_TCP_FRAMING_LENGTH_U32,
		delimiter = EQ1_TCP_FRAMING_DELIMITER,
	};
	struct Config {
		std::string host = "127.0.0.1";
		std::uint16_t port = 0;
		Framing framing = Framing::raw;
		/** The end of every message with Framing::delimiter. */
		std::string delimiter = "\n";
		std::size_t max_frame = 16 * 1024 * 1024;
		std::chrono::milliseconds connect_timeout{10000};
		/** Default timeout of connect, send, receive and request. */
		std::chrono::milliseconds timeout{10000};
		bool auto_reconnect = false;
		std::chrono::milliseconds reconnect_min{100};
		std::chrono::milliseconds reconnect_max{5000};
		/** TLS on when set: a PEM file of trusted CAs ("" = the system's trust store). */
		std::optional<std::string> tls_ca_file;
		bool tls_verify_hostname = true;
		/** A client certificate and key (PEM files; turns TLS on). */
		std::optional<std::string> tls_cert_file;
		std::optional<std::string> tls_key_file;
		std::optional<std::string> tls_key_password;
	};

	explicit TcpClient(const Config &config) : timeout_(config.timeout)
	{
		eq1_tcp_options *options = eq1_tcp_options_new();
		if (options == nullptr)
			throw Error(EQ1_STATUS_INTERNAL, "eq1_tcp_options_new failed");
		std::unique_ptr<eq1_tcp_options, void (*)(eq1_tcp_options *)> guard(
			options, eq1_tcp_options_free);
		std::string host = detail::c_string(config.host, EQ1_STATUS_INVALID_ARGUMENT, "host");
		detail::check(eq1_tcp_options_set_endpoint(options, host.c_str(), config.port));
		detail::check(eq1_tcp_options_set_connect_timeout(options,
								  detail::to_ms(config.connect_timeout)));
		detail::check(eq1_tcp_options_set_framing(
			options, static_cast<int>(config.framing),
			reinterpret_cast<const std::uint8_t *>(config.delimiter.data()),
			config.delimiter.size()));
		detail::check(eq1_tcp_options_set_max_frame(options, config.max_frame));
		detail::check(eq1_tcp_options_set_auto_reconnect(options, config.auto_reconnect,
								 detail::to_ms(config.reconnect_min),
								 detail::to_ms(config.reconnect_max)));
		if (config.tls_ca_file) {
			std::string ca = detail::c_string(*config.tls_ca_file,
							  EQ1_STATUS_INVALID_ARGUMENT, "tls_ca_file");
			detail::check(eq1_tcp_options_set_tls(options, ca.empty() ? nullptr : ca.c_str(),
							      config.tls_verify_hostname));
		}
		if (config.tls_cert_file || config.tls_key_file) {
			std::string cert = detail::c_string(config.tls_cert_file.value_or(""),
							    EQ1_STATUS_INVALID_ARGUMENT, "tls_cert_file");
			std::string key = detail::c_string(config.tls_key_file.value_or(""),
							   EQ1_STATUS_INVALID_ARGUMENT, "tls_key_file");
			std::optional<std::string> password;
			if (config.tls_key_password)
				password = detail::c_string(*config.tls_key_password,
							    EQ1_STATUS_INVALID_ARGUMENT,
							    "tls_key_password");
			detail::check(eq1_tcp_options_set_tls_client_cert(
				options, cert.c_str(), key.c_str(),
				password ? password->c_str() : nullptr));
		}
		detail::check(eq1_tcp_client_new(options, &handle_));
	}
	TcpClient(const TcpClient &) = delete;
	TcpClient &operator=(const TcpClient &) = delete;
	TcpClient(TcpClient &&other) noexcept
		: handle_(std::exchange(other.handle_, nullptr)), timeout_(other.timeout_)
	{
	}
	TcpClient &operator=(TcpClient &&other) noexcept
	{
		if (this != &other) {
			eq1_tcp_client_free(handle_);
			handle_ = std::exchange(other.handle_, nullptr);
			timeout_ = other.timeout_;
		}
		return *this;
	}
	~TcpClient() { eq1_tcp_client_free(handle_); }

	void connect() { connect(timeout_); }
	void connect(std::chrono::milliseconds timeout)
	{
		detail::check(eq1_tcp_client_connect(get(), detail::to_ms(timeout)));
	}
	void disconnect() { detail::check(eq1_tcp_client_disconnect(get())); }
	/** As far as the client knows (a loss is seen by the next call); false when moved from. */
	bool is_connected() const noexcept { return eq1_tcp_client_is_connected(handle_); }

	/** Sends one message (framed per the config). */
	void send(Bytes data) { send(data, timeout_); }
	void send(std::string_view data) { send(Bytes(data), timeout_); }
	void send(Bytes data, std::chrono::milliseconds timeout)
	{
		detail::check(eq1_tcp_client_send(get(), data.data(), data.size(),
						  detail::to_ms(timeout)));
	}
	/** One message (framed modes; a larger one than max_size throws ValidationError and is
	 *  kept for the next receive) or what has arrived, up to max_size bytes (raw). */
	std::vector<std::uint8_t> receive(std::size_t max_size = 65536)
	{
		return receive(max_size, timeout_);
	}
	std::vector<std::uint8_t> receive(std::size_t max_size, std::chrono::milliseconds timeout)
	{
		std::vector<std::uint8_t> out(max_size > 0 ? max_size : 1);
		std::size_t got = 0;
		detail::check(eq1_tcp_client_receive(get(), detail::to_ms(timeout), out.data(),
						     max_size, &got));
		out.resize(got);
		return out;
	}
	/** Sends `data` and returns one message as its answer (as receive). */
	std::vector<std::uint8_t> request(Bytes data, std::size_t max_size = 65536)
	{
		return request(data, max_size, timeout_);
	}
	std::vector<std::uint8_t> request(std::string_view data, std::size_t max_size = 65536)
	{
		return request(Bytes(data), max_size, timeout_);
	}
	std::vector<std::uint8_t> request(Bytes data, std::size_t max_size,
					  std::chrono::milliseconds timeout)
	{
		std::vector<std::uint8_t> out(max_size > 0 ? max_size : 1);
		std::size_t got = 0;
		detail::check(eq1_tcp_client_request(get(), data.data(), data.size(),
						     detail::to_ms(timeout), out.data(), max_size,
						     &got));
		out.resize(got);
		return out;
	}
	eq1_tcp_stats stats() const
	{
		eq1_tcp_stats s{};
		detail::check(eq1_tcp_client_get_stats(get(), &s));
		return s;
	}
	eq1_tcp_client *native() const noexcept { return handle_; }

private:
	eq1_tcp_client *get() const
	{
		if (handle_ == nullptr)
			throw ValidationError(EQ1_STATUS_NULL_ARGUMENT,
					      "this eq1::TcpClient was moved from");
		return handle_;
	}
	eq1_tcp_client *handle_ = nullptr;
	std::chrono::milliseconds timeout_;
};

/* ------------------------------------------------------------------ end TCP request/response */

/**
 * A Modbus client (TCP, or RTU over a serial line) over eq1_modbus_*: RAII, movable, thread-safe
 * (over TCP the library pipelines calls from several threads by transaction id, up to
 * Config::max_in_flight at once; over RTU it serializes them). Every failure throws the
 * exception class of its status (Modbus exceptions are EQ1_STATUS_MODBUS_*). `unit` -1 uses
 * the configured unit id; `call` overrides timeout and retries for one call.
 */
class ModbusClient {
public:
	struct Config {
		std::string host = "127.0.0.1";
		int port = 502;
		int unit_id = 1;
		int timeout_ms = 1000;
		int retries = 1;
		/** Modbus TCP: requests on the connection at once (1..256); 1 serializes. */
		int max_in_flight = 1; // serialized; raise for servers known to pipeline
		/** Set: RTU over this serial device instead of TCP. */
		std::optional<std::string> serial_device;
		int baud = 19200;
		int data_bits = 8;
		int parity = EQ1_MODBUS_PARITY_NONE;
		int stop_bits = 1;
	};

	explicit ModbusClient(const Config &config)
	{
		eq1_modbus_options *options = eq1_modbus_options_new();
		if (options == nullptr)
			throw Error(EQ1_STATUS_INTERNAL, "eq1_modbus_options_new failed");
		std::unique_ptr<eq1_modbus_options, void (*)(eq1_modbus_options *)> guard(
			options, eq1_modbus_options_free);
		if (config.serial_device) {
			std::string device = detail::c_string(*config.serial_device,
							      EQ1_STATUS_INVALID_ARGUMENT, "device");
			detail::check(eq1_modbus_options_set_serial(options, device.c_str(), config.baud,
								    config.data_bits, config.parity,
								    config.stop_bits));
		} else {
			std::string host =
				detail::c_string(config.host, EQ1_STATUS_INVALID_ARGUMENT, "host");
			detail::check(eq1_modbus_options_set_tcp(options, host.c_str(), config.port));
		}
		detail::check(eq1_modbus_options_set_unit_id(options, config.unit_id));
		detail::check(eq1_modbus_options_set_timeout(options, config.timeout_ms));
		detail::check(eq1_modbus_options_set_retries(options, config.retries));
		detail::check(eq1_modbus_options_set_max_in_flight(options, config.max_in_flight));
		detail::check(eq1_modbus_client_new(options, &handle_));
	}
	ModbusClient(const ModbusClient &) = delete;
	ModbusClient &operator=(const ModbusClient &) = delete;
	ModbusClient(ModbusClient &&other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
	ModbusClient &operator=(ModbusClient &&other) noexcept
	{
		if (this != &other) {
			eq1_modbus_client_free(handle_);
			handle_ = std::exchange(other.handle_, nullptr);
		}
		return *this;
	}
	~ModbusClient() { eq1_modbus_client_free(handle_); }

	void connect() { detail::check(eq1_modbus_client_connect(get())); }
	void disconnect() { detail::check(eq1_modbus_client_disconnect(get())); }

	std::vector<bool> read_coils(int address, int count, int unit = EQ1_MODBUS_DEFAULT_UNIT,
				     const eq1_modbus_call_options *call = nullptr)
	{
		std::vector<uint8_t> out(count > 0 ? static_cast<size_t>(count) : 1);
		detail::check(eq1_modbus_read_coils(get(), unit, address, count, out.data(), out.size(),
						    call));
		return std::vector<bool>(out.begin(), out.begin() + count);
	}
	std::vector<bool> read_discrete_inputs(int address, int count,
					       int unit = EQ1_MODBUS_DEFAULT_UNIT,
					       const eq1_modbus_call_options *call = nullptr)
	{
		std::vector<uint8_t> out(count > 0 ? static_cast<size_t>(count) : 1);
		detail::check(eq1_modbus_read_discrete_inputs(get(), unit, address, count, out.data(),
							      out.size(), call));
		return std::vector<bool>(out.begin(), out.begin() + count);
	}
	std::vector<uint16_t> read_holding_registers(int address, int count,
						     int unit = EQ1_MODBUS_DEFAULT_UNIT,
						     const eq1_modbus_call_options *call = nullptr)
	{
		std::vector<uint16_t> out(count > 0 ? static_cast<size_t>(count) : 1);
		detail::check(eq1_modbus_read_holding_registers(get(), unit, address, count,
								out.data(), out.size(), call));
		out.resize(static_cast<size_t>(count));
		return out;
	}
	std::vector<uint16_t> read_input_registers(int address, int count,
						   int unit = EQ1_MODBUS_DEFAULT_UNIT,
						   const eq1_modbus_call_options *call = nullptr)
	{
		std::vector<uint16_t> out(count > 0 ? static_cast<size_t>(count) : 1);
		detail::check(eq1_modbus_read_input_registers(get(), unit, address, count, out.data(),
							      out.size(), call));
		out.resize(static_cast<size_t>(count));
		return out;
	}
	void write_single_coil(int address, bool value, int unit = EQ1_MODBUS_DEFAULT_UNIT,
			       const eq1_modbus_call_options *call = nullptr)
	{
		detail::check(eq1_modbus_write_single_coil(get(), unit, address, value ? 1 : 0, call));
	}
	void write_single_register(int address, uint16_t value, int unit = EQ1_MODBUS_DEFAULT_UNIT,
				   const eq1_modbus_call_options *call = nullptr)
	{
		detail::check(eq1_modbus_write_single_register(get(), unit, address, value, call));
	}
	void write_multiple_coils(int address, const std::vector<bool> &values,
				  int unit = EQ1_MODBUS_DEFAULT_UNIT,
				  const eq1_modbus_call_options *call = nullptr)
	{
		std::vector<uint8_t> bytes(values.begin(), values.end());
		detail::check(eq1_modbus_write_multiple_coils(get(), unit, address, bytes.data(),
							      bytes.size(), call));
	}
	void write_multiple_registers(int address, const std::vector<uint16_t> &values,
				      int unit = EQ1_MODBUS_DEFAULT_UNIT,
				      const eq1_modbus_call_options *call = nullptr)
	{
		detail::check(eq1_modbus_write_multiple_registers(get(), unit, address, values.data(),
								  values.size(), call));
	}
	std::vector<uint16_t> read_write_multiple_registers(
		int read_address, int read_count, int write_address,
		const std::vector<uint16_t> &values, int unit = EQ1_MODBUS_DEFAULT_UNIT,
		const eq1_modbus_call_options *call = nullptr)
	{
		std::vector<uint16_t> out(read_count > 0 ? static_cast<size_t>(read_count) : 1);
		detail::check(eq1_modbus_read_write_multiple_registers(
			get(), unit, read_address, read_count, write_address, values.data(),
			values.size(), out.data(), out.size(), call));
		out.resize(static_cast<size_t>(read_count));
		return out;
	}
	eq1_modbus_stats stats() const
	{
		eq1_modbus_stats s{};
		detail::check(eq1_modbus_client_get_stats(get(), &s));
		return s;
	}
	eq1_modbus_client *native() const noexcept { return handle_; }

private:
	eq1_modbus_client *get() const
	{
		if (handle_ == nullptr)
			throw ValidationError(EQ1_STATUS_NULL_ARGUMENT,
					      "this eq1::ModbusClient was moved from");
		return handle_;
	}
	eq1_modbus_client *handle_ = nullptr;
};

/* ------------------------------------------------------- serial lines and any protocol */

namespace detail {

/** Receives into a buffer of `max_len` bytes through `receive(buf, len, &out_len)`. */
template <class Receive>
inline std::vector<std::uint8_t> receive_into(std::size_t max_len, Receive receive)
{
	if (max_len == 0)
		throw ValidationError(EQ1_STATUS_INVALID_ARGUMENT, "max_len is 0");
	std::vector<std::uint8_t> buf(max_len);
	std::size_t len = 0;
	check(receive(buf.data(), buf.size(), &len));
	buf.resize(len);
	return buf;
}

} // namespace detail

/**
 * A serial line (RS-232/485 adapter, pseudo-terminal) over eq1_serial_*: raw bytes both ways.
 * RAII, movable, thread-safe (calls take turns on the line). receive() returns what has
 * arrived (at least one byte, at most max_len) or throws ConnectionError with
 * EQ1_STATUS_TIMEOUT; a device that cannot be opened throws ConnectionError
 * (EQ1_STATUS_SERIAL_ERROR); a bad setting ValidationError (EQ1_STATUS_INVALID_ARGUMENT).
 */
class SerialPort {
public:
	struct Config {
		std::string device;
		std::uint32_t baud = 9600;
		int data_bits = 8;
		int parity = EQ1_SERIAL_PARITY_NONE;
		int stop_bits = 1;
		int flow_control = EQ1_SERIAL_FLOW_NONE;
	};

	explicit SerialPort(const Config &config)
	{
		std::string device =
			detail::c_string(config.device, EQ1_STATUS_INVALID_ARGUMENT, "device");
		eq1_serial_options *options = nullptr;
		detail::check(eq1_serial_options_new(device.c_str(), config.baud, &options));
		std::unique_ptr<eq1_serial_options, void (*)(eq1_serial_options *)> guard(
			options, eq1_serial_options_free);
		detail::check(eq1_serial_options_set_line(options, config.data_bits, config.parity,
							  config.stop_bits));
		detail::check(eq1_serial_options_set_flow_control(options, config.flow_control));
		detail::check(eq1_serial_client_new(options, &handle_));
	}
	SerialPort(const SerialPort &) = delete;
	SerialPort &operator=(const SerialPort &) = delete;
	SerialPort(SerialPort &&other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
	SerialPort &operator=(SerialPort &&other) noexcept
	{
		if (this != &other) {
			eq1_serial_client_free(handle_);
			handle_ = std::exchange(other.handle_, nullptr);
		}
		return *this;
	}
	~SerialPort() { eq1_serial_client_free(handle_); }

	/** Opens and configures the device. */
	void connect() { detail::check(eq1_serial_client_connect(get())); }
	void disconnect() { detail::check(eq1_serial_client_disconnect(get())); }

	/** Writes every byte of `data`. */
	void send(Bytes data) { detail::check(eq1_serial_client_send(get(), data.data(), data.size())); }
	void send(std::string_view text) { send(Bytes(text)); }

	/** What has arrived, up to `max_len` bytes, waiting up to `timeout` for the first. */
	std::vector<std::uint8_t> receive(std::size_t max_len = 1024,
					  std::chrono::milliseconds timeout = std::chrono::seconds(1))
	{
		eq1_serial_client *c = get();
		return detail::receive_into(max_len, [&](std::uint8_t *buf, std::size_t len,
							 std::size_t *out) {
			return eq1_serial_client_receive(c, detail::to_ms(timeout), buf, len, out);
		});
	}

	/** Sends `data`, then receives its answer as receive() does. */
	std::vector<std::uint8_t> request(Bytes data, std::size_t max_len = 1024,
					  std::chrono::milliseconds timeout = std::chrono::seconds(1))
	{
		eq1_serial_client *c = get();
		return detail::receive_into(max_len, [&](std::uint8_t *buf, std::size_t len,
							 std::size_t *out) {
			return eq1_serial_client_request(c, data.data(), data.size(),
							 detail::to_ms(timeout), buf, len, out);
		});
	}
	std::vector<std::uint8_t> request(std::string_view text, std::size_t max_len = 1024,
					  std::chrono::milliseconds timeout = std::chrono::seconds(1))
	{
		return request(Bytes(text), max_len, timeout);
	}

	eq1_serial_stats stats() const
	{
		eq1_serial_stats s{};
		detail::check(eq1_serial_client_get_stats(get(), &s));
		return s;
	}
	eq1_serial_client *native() const noexcept { return handle_; }

private:
	eq1_serial_client *get() const
	{
		if (handle_ == nullptr)
			throw ValidationError(EQ1_STATUS_NULL_ARGUMENT,
					      "this eq1::SerialPort was moved from");
		return handle_;
	}
	eq1_serial_client *handle_ = nullptr;
};

/**
 * One handle for a protocol of any kind, opened by name from the library's registry
 * (eq1_protocol_*): the built-ins "mqtt", "tcp", "serial", "modbus-tcp", "modbus-rtu" and the
 * plugins loaded with Protocol::load_plugin(). Options are the kind's text keys and values
 * (see the Protocols section of eq1.h). An operation the kind does not have throws
 * ValidationError (EQ1_STATUS_UNSUPPORTED_OPERATION). RAII, movable, thread-safe.
 */
class Protocol {
public:
	using Options = std::map<std::string, std::string>;

	/** Loads a plugin's shared object and registers its protocol; returns its name. */
	static std::string load_plugin(std::string_view path)
	{
		std::string p = detail::c_string(path, EQ1_STATUS_INVALID_ARGUMENT, "path");
		char name[128] = {0};
		detail::check(eq1_protocol_load_plugin(p.c_str(), name, sizeof name));
		return name;
	}

	/** The names the registry knows, sorted. */
	static std::vector<std::string> names()
	{
		std::string text(eq1_protocol_names(nullptr, 0), '\0');
		// Another thread may load a plugin in between: ask again until the list fits.
		for (;;) {
			std::size_t needed = eq1_protocol_names(&text[0], text.size() + 1);
			if (needed <= text.size()) {
				text.resize(needed);
				break;
			}
			text.assign(needed, '\0');
		}
		std::vector<std::string> out;
		for (std::size_t start = 0; start < text.size();) {
			std::size_t end = text.find('\n', start);
			if (end == std::string::npos)
				end = text.size();
			out.emplace_back(text.substr(start, end - start));
			start = end + 1;
		}
		return out;
	}

	explicit Protocol(std::string_view name, const Options &options = {})
	{
		std::string n = detail::c_string(name, EQ1_STATUS_INVALID_ARGUMENT, "name");
		eq1_protocol_options *o = eq1_protocol_options_new();
		if (o == nullptr)
			throw Error(EQ1_STATUS_INTERNAL, "eq1_protocol_options_new failed");
		std::unique_ptr<eq1_protocol_options, void (*)(eq1_protocol_options *)> guard(
			o, eq1_protocol_options_free);
		for (const auto &[key, value] : options) {
			std::string k = detail::c_string(key, EQ1_STATUS_INVALID_ARGUMENT, "option key");
			std::string v =
				detail::c_string(value, EQ1_STATUS_INVALID_ARGUMENT, "option value");
			detail::check(eq1_protocol_options_set(o, k.c_str(), v.c_str()));
		}
		detail::check(eq1_protocol_open(n.c_str(), o, &handle_));
	}
	Protocol(const Protocol &) = delete;
	Protocol &operator=(const Protocol &) = delete;
	Protocol(Protocol &&other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
	Protocol &operator=(Protocol &&other) noexcept
	{
		if (this != &other) {
			eq1_protocol_close(handle_);
			handle_ = std::exchange(other.handle_, nullptr);
		}
		return *this;
	}
	/** Disconnects (if connected) and releases the instance. */
	~Protocol() { eq1_protocol_close(handle_); }

	void connect(std::chrono::milliseconds timeout = default_timeout)
	{
		detail::check(eq1_protocol_connect(get(), detail::to_ms(timeout)));
	}
	void disconnect(std::chrono::milliseconds timeout = default_timeout)
	{
		detail::check(eq1_protocol_disconnect(get(), detail::to_ms(timeout)));
	}
	bool is_connected() const noexcept { return eq1_protocol_is_connected(handle_); }

	void send(Bytes data, std::chrono::milliseconds timeout = default_timeout)
	{
		detail::check(eq1_protocol_send(get(), data.data(), data.size(),
						detail::to_ms(timeout)));
	}
	void send(std::string_view text, std::chrono::milliseconds timeout = default_timeout)
	{
		send(Bytes(text), timeout);
	}
	/** One message (or what arrived, for a raw kind) of at most `max_len` bytes. */
	std::vector<std::uint8_t> receive(std::size_t max_len = 65536,
					  std::chrono::milliseconds timeout = default_timeout)
	{
		eq1_protocol *p = get();
		return detail::receive_into(max_len, [&](std::uint8_t *buf, std::size_t len,
							 std::size_t *out) {
			return eq1_protocol_receive(p, detail::to_ms(timeout), buf, len, out);
		});
	}
	std::vector<std::uint8_t> request(Bytes data, std::size_t max_len = 65536,
					  std::chrono::milliseconds timeout = default_timeout)
	{
		eq1_protocol *p = get();
		return detail::receive_into(max_len, [&](std::uint8_t *buf, std::size_t len,
							 std::size_t *out) {
			return eq1_protocol_request(p, data.data(), data.size(), detail::to_ms(timeout),
						    buf, len, out);
		});
	}
	std::vector<std::uint8_t> request(std::string_view text, std::size_t max_len = 65536,
					  std::chrono::milliseconds timeout = default_timeout)
	{
		return request(Bytes(text), max_len, timeout);
	}
	void publish(std::string_view topic, Bytes payload, int qos = 0, bool retain = false)
	{
		std::string t = detail::c_string(topic, EQ1_STATUS_INVALID_TOPIC, "topic");
		detail::check(eq1_protocol_publish(get(), t.c_str(), payload.data(), payload.size(), qos,
						   retain));
	}
	void publish(std::string_view topic, std::string_view payload, int qos = 0,
		     bool retain = false)
	{
		publish(topic, Bytes(payload), qos, retain);
	}
	void subscribe(std::string_view filter, int qos = 0,
		       std::chrono::milliseconds timeout = default_timeout)
	{
		std::string f = detail::c_string(filter, EQ1_STATUS_INVALID_FILTER, "filter");
		detail::check(eq1_protocol_subscribe(get(), f.c_str(), qos, detail::to_ms(timeout)));
	}
	eq1_protocol *native() const noexcept { return handle_; }

private:
	eq1_protocol *get() const
	{
		if (handle_ == nullptr)
			throw ValidationError(EQ1_STATUS_NULL_ARGUMENT,
					      "this eq1::Protocol was moved from");
		return handle_;
	}
	eq1_protocol *handle_ = nullptr;
};

} // namespace eq1

#endif /* EQ1_HPP */
