"""ctypes declarations of libeq1's C API (``include/eq1.h``) and the loading of the library.

Every function used has its ``argtypes``/``restype`` set here, in one place. The library is
loaded on first use, not on import, from (in order):

1. the file named by the environment variable ``EQ1_LIBRARY``;
2. ``libeq1.so`` / ``libeq1.so.0`` beside this package (inside the ``communicator`` folder, where
   ``pip install`` puts the library it built);
3. the system loader: ``ctypes.util.find_library("eq1")``, then ``libeq1.so.0``.

When none loads, :class:`LibraryNotFoundError` lists every path tried and why it failed.
The callback trampolines passed to the library live in module globals for the life of the
process, so the library can never call a freed ctypes thunk.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import os
import threading
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_bool,
    c_char_p,
    c_int,
    c_int64,
    c_uint8,
    c_uint16,
    c_size_t,
    c_uint32,
    c_uint64,
    c_void_p,
)
from pathlib import Path
from typing import Any, Callable

from communicator.common.exceptions import (
    LibraryNotFoundError,
    ProtocolError,
    Status,
    error_from_status,
)
from communicator.common.logging import logger, python_level_for

ENV_VAR = "EQ1_LIBRARY"
SONAME = "libeq1.so.0"
#: The C API this binding was written against (EQ1_VERSION_MAJOR).
EXPECTED_MAJOR = 0

# eq1.h constants
EQ1_QUEUE_REJECT_NEW = 0
EQ1_QUEUE_DROP_OLDEST = 1
EQ1_DURABILITY_NONE = 0
EQ1_DURABILITY_SYNC = 1
EQ1_DURABILITY_BATCHED = 2
EQ1_MQTT_V31 = 3
EQ1_MQTT_V311 = 4
EQ1_MQTT_V5 = 5
EQ1_MQTT_AUTH_CONTINUE = 1
EQ1_MQTT_AUTH_SUCCESS = 2
EQ1_MQTT_AUTH_FAILURE = 3
MQTT_MAX_PACKET_SIZE = 268435460
MAX_STRING_LEN = 65535

EQ1_CONNECTION_STATE_CONNECTED = 1
EQ1_CONNECTION_STATE_LOST = 2
EQ1_CONNECTION_STATE_DISCONNECTED = 3


class Eq1UserProperty(Structure):
    """``eq1_mqtt_user_property``"""

    _fields_ = [("name", c_char_p), ("value", c_char_p)]


class Eq1ConnAckInfo(Structure):
    """``eq1_mqtt_connack_info``"""

    _fields_ = [
        ("session_present", c_bool),
        ("assigned_client_id", c_char_p),
        ("has_server_keep_alive", c_bool),
        ("server_keep_alive", ctypes.c_uint16),
        ("response_information", c_char_p),
        ("server_reference", c_char_p),
        ("reason_string", c_char_p),
        ("user_properties", POINTER(Eq1UserProperty)),
        ("user_property_count", c_size_t),
        ("has_session_expiry", c_bool),
        ("session_expiry", ctypes.c_uint32),
        ("has_receive_maximum", c_bool),
        ("receive_maximum", ctypes.c_uint16),
        ("has_maximum_packet_size", c_bool),
        ("maximum_packet_size", ctypes.c_uint32),
        ("has_maximum_qos", c_bool),
        ("maximum_qos", ctypes.c_uint8),
        ("has_retain_available", c_bool),
        ("retain_available", c_bool),
        ("has_wildcard_available", c_bool),
        ("wildcard_available", c_bool),
        ("has_subscription_ids_available", c_bool),
        ("subscription_ids_available", c_bool),
        ("has_shared_available", c_bool),
        ("shared_available", c_bool),
        ("has_topic_alias_maximum", c_bool),
        ("topic_alias_maximum", ctypes.c_uint16),
    ]


class Eq1ConnectionEvent(Structure):
    """``eq1_mqtt_connection_event``"""

    _fields_ = [
        ("state", c_int),
        ("reason", c_int),
        ("reason_text", c_char_p),
        ("session_present", c_bool),
        ("broker_host", c_char_p),
        ("broker_port", c_int),
        ("connack", POINTER(Eq1ConnAckInfo)),
        ("disconnect_reason_code", ctypes.c_uint8),
        ("disconnect_reason_string", c_char_p),
        ("server_reference", c_char_p),
    ]


class Eq1DeliveryReport(Structure):
    """``eq1_mqtt_delivery_report``"""

    _fields_ = [
        ("token", c_uint64),
        ("status", c_int),
        ("detail", c_char_p),
        ("reason_code", ctypes.c_uint8),
        ("reason_string", c_char_p),
        ("user_properties", POINTER(Eq1UserProperty)),
        ("user_property_count", c_size_t),
    ]


class Eq1Properties(Structure):
    """``eq1_mqtt_properties`` (MQTT 5.0 PUBLISH properties; zero = absent)"""

    _fields_ = [
        ("has_payload_format", c_bool),
        ("payload_is_utf8", c_bool),
        ("has_message_expiry", c_bool),
        ("message_expiry", ctypes.c_uint32),
        ("content_type", c_char_p),
        ("response_topic", c_char_p),
        ("correlation_data", c_void_p),
        ("correlation_data_len", c_size_t),
        ("user_properties", POINTER(Eq1UserProperty)),
        ("user_property_count", c_size_t),
    ]


class Eq1SubscribeOptions(Structure):
    """``eq1_mqtt_subscribe_options``"""

    _fields_ = [
        ("qos", c_int),
        ("no_local", c_bool),
        ("retain_as_published", c_bool),
        ("retain_handling", c_int),
    ]


class Eq1SubscribeResult(Structure):
    """``eq1_mqtt_subscribe_result``"""

    _fields_ = [
        ("status", c_int),
        ("reason_code", ctypes.c_uint8),
        ("granted_qos", c_int),
        ("subscription_id", ctypes.c_uint32),
    ]


class Eq1UnsubscribeResult(Structure):
    """``eq1_mqtt_unsubscribe_result``"""

    _fields_ = [("status", c_int), ("reason_code", ctypes.c_uint8)]


class Eq1AckProperties(Structure):
    """``eq1_mqtt_ack_properties`` (release with eq1_mqtt_ack_properties_clear)"""

    _fields_ = [
        ("reason_string", c_char_p),
        ("user_properties", POINTER(Eq1UserProperty)),
        ("user_property_count", c_size_t),
        ("internal", c_void_p),
    ]


class Eq1Message(Structure):
    """``eq1_mqtt_message``"""

    _fields_ = [
        ("topic", c_void_p),
        ("topic_len", c_size_t),
        ("payload", c_void_p),
        ("payload_len", c_size_t),
        ("qos", c_int),
        ("retain", c_bool),
        ("dup", c_bool),
        ("properties", POINTER(Eq1Properties)),
    ]


class Eq1Response(Structure):
    """``eq1_mqtt_response`` (the reply to a request)"""

    _fields_ = [
        ("topic", c_char_p),
        ("payload", c_void_p),
        ("payload_len", c_size_t),
        ("properties", POINTER(Eq1Properties)),
    ]


class Eq1AuthChallenge(Structure):
    """``eq1_mqtt_auth_challenge``"""

    _fields_ = [
        ("method", c_char_p),
        ("reason_code", ctypes.c_uint8),
        ("data", c_void_p),
        ("data_len", c_size_t),
        ("reauthenticating", c_bool),
    ]


class Eq1AuthResponse(Structure):
    """``eq1_mqtt_auth_response`` (the buffers belong to the library)"""

    _fields_ = [
        ("action", c_int),
        ("data", c_void_p),
        ("data_capacity", c_size_t),
        ("data_len", c_size_t),
        ("reason", c_void_p),
        ("reason_capacity", c_size_t),
    ]


STATS_FIELDS = ("published", "delivered", "failed", "received", "queued", "dropped",
                "reconnects", "bytes_in", "bytes_out")


class Eq1Stats(Structure):
    """``eq1_mqtt_stats``"""

    _fields_ = [(name, c_uint64) for name in STATS_FIELDS]


MODBUS_STATS_FIELDS = ("requests", "failures", "timeouts", "bad_frames", "exceptions",
                       "retries", "connects", "bytes_out", "bytes_in", "late_responses")


class Eq1ModbusCallOptions(Structure):
    """``eq1_modbus_call_options``"""

    _fields_ = [("timeout_ms", c_int), ("retries", c_int)]


class Eq1ModbusStats(Structure):
    """``eq1_modbus_stats``"""

    _fields_ = [(name, c_uint64) for name in MODBUS_STATS_FIELDS]


# ---- serial (communicator.protocols.serial)

SERIAL_STATS_FIELDS = ("requests", "failures", "timeouts", "bytes_sent", "bytes_received")


class Eq1SerialStats(Structure):
    """``eq1_serial_stats``"""

    _fields_ = [(name, c_uint64) for name in SERIAL_STATS_FIELDS]


# ---- TCP request/response (eq1_tcp_*)
TCP_STATS_FIELDS = ("requests", "failures", "timeouts", "bytes_sent", "bytes_received",
                    "reconnects", "retries")


class Eq1TcpStats(Structure):
    """``eq1_tcp_stats``"""

    _fields_ = [(name, c_uint64) for name in TCP_STATS_FIELDS]
# ---- end TCP


class Eq1ProtocolEvent(Structure):
    """``eq1_protocol_event``: a connection event of a TCP, serial or Modbus client."""

    _fields_ = [("kind", c_int), ("status", c_int), ("message", c_char_p)]


# Callback types (the user_data pointer first, as in eq1.h).
FREE_CB = CFUNCTYPE(None, c_void_p)
PROTOCOL_EVENT_CB = CFUNCTYPE(None, c_void_p, POINTER(Eq1ProtocolEvent))
CONNECTION_CB = CFUNCTYPE(None, c_void_p, POINTER(Eq1ConnectionEvent))
DELIVERY_CB = CFUNCTYPE(None, c_void_p, c_uint64, c_int, c_char_p)
# The message arrives as its address, read with Eq1Message.from_address: cheaper per message
# than a POINTER(Eq1Message) argument and its .contents.
MESSAGE_CB = CFUNCTYPE(None, c_void_p, c_void_p)
RESPONSE_CB = CFUNCTYPE(None, c_void_p, c_int, POINTER(Eq1Response))
DELIVERY_REPORT_CB = CFUNCTYPE(None, c_void_p, POINTER(Eq1DeliveryReport))
LOG_CB = CFUNCTYPE(None, c_void_p, c_int, c_char_p)
AUTH_CB = CFUNCTYPE(None, c_void_p, POINTER(Eq1AuthChallenge), POINTER(Eq1AuthResponse))
# eq1_tls_sign_cb: (user_data, scheme, data, data_len, signature, capacity, signature_len).
SIGN_CB = CFUNCTYPE(c_bool, c_void_p, c_int, c_void_p, c_size_t, c_void_p, c_size_t,
                    POINTER(c_size_t))


class Eq1Subscription(Structure):
    """``eq1_mqtt_subscription``"""

    _fields_ = [
        ("filter", c_char_p),
        ("options", Eq1SubscribeOptions),
        ("callback", MESSAGE_CB),
        ("user_data", c_void_p),
    ]
# NULL function pointers of each type (ctypes refuses None where a CFUNCTYPE is declared).
NO_FREE_CB = FREE_CB()
NO_DELIVERY_CB = DELIVERY_CB()
NO_DELIVERY_REPORT_CB = DELIVERY_REPORT_CB()
NO_LOG_CB = LOG_CB()
NO_AUTH_CB = AUTH_CB()

_client_p = c_void_p
_options_p = c_void_p
_status = c_int

# name -> (restype, argtypes), in the order of eq1.h.
PROTOTYPES: dict[str, tuple[Any, list[Any]]] = {
    "eq1_version": (c_char_p, []),
    "eq1_version_number": (c_uint32, []),
    "eq1_last_error_message": (c_size_t, [c_char_p, c_size_t]),
    "eq1_status_str": (c_char_p, [c_int]),
    "eq1_status_name": (c_char_p, [c_int]),
    "eq1_status_family_of": (c_int, [c_int]),
    "eq1_status_count": (c_size_t, []),
    "eq1_status_at": (c_int, [c_size_t]),
    "eq1_set_log_callback": (_status, [LOG_CB, c_void_p, c_int]),
    "eq1_mqtt_options_new": (_options_p, []),
    "eq1_mqtt_options_free": (None, [_options_p]),
    "eq1_mqtt_options_set_broker": (_status, [_options_p, c_char_p, c_int]),
    "eq1_mqtt_options_add_broker": (_status, [_options_p, c_char_p, c_int, c_bool]),
    "eq1_mqtt_options_set_client_id": (_status, [_options_p, c_char_p]),
    "eq1_mqtt_options_set_credentials": (_status, [_options_p, c_char_p, c_char_p]),
    "eq1_mqtt_options_set_keep_alive": (_status, [_options_p, c_int]),
    "eq1_mqtt_options_set_clean_session": (_status, [_options_p, c_bool]),
    "eq1_mqtt_options_set_protocol_version": (_status, [_options_p, c_int]),
    "eq1_mqtt_options_set_connect_timeout": (_status, [_options_p, c_int]),
    "eq1_mqtt_options_set_inflight_window": (_status, [_options_p, c_int]),
    "eq1_mqtt_options_set_max_packet_size": (_status, [_options_p, c_int64]),
    "eq1_mqtt_options_set_tls": (_status, [_options_p, c_char_p]),
    "eq1_mqtt_options_set_tls_client_cert": (_status, [_options_p, c_char_p, c_char_p,
                                                       c_char_p]),
    "eq1_mqtt_options_set_tls_verify_hostname": (_status, [_options_p, c_bool]),
    "eq1_mqtt_options_set_tls_insecure": (_status, [_options_p, c_bool]),
    "eq1_mqtt_options_set_tls_min_version": (_status, [_options_p, c_int]),
    "eq1_mqtt_options_set_allow_plaintext_fallback": (_status, [_options_p, c_bool]),
    "eq1_mqtt_options_set_reconnect": (_status, [_options_p, c_bool, c_int, c_int]),
    "eq1_mqtt_options_set_offline_queue": (_status, [_options_p, c_int64, c_int64, c_int,
                                                     c_bool]),
    "eq1_mqtt_options_set_inbound_queue": (_status, [_options_p, c_int64, c_int64]),
    "eq1_mqtt_options_set_persistence": (_status, [_options_p, c_char_p, c_int]),
    "eq1_mqtt_options_set_persistence_interval": (_status, [_options_p, c_int]),
    "eq1_mqtt_options_set_persistence_limit": (_status, [_options_p, c_uint64, c_bool]),
    "eq1_mqtt_options_set_broker_uri": (_status, [_options_p, c_char_p]),
    "eq1_mqtt_options_add_broker_uri": (_status, [_options_p, c_char_p]),
    "eq1_mqtt_options_set_proxy": (_status, [_options_p, c_char_p]),
    "eq1_mqtt_options_set_proxy_from_env": (_status, [_options_p, c_bool]),
    "eq1_mqtt_options_set_bind_address": (_status, [_options_p, c_char_p]),
    "eq1_mqtt_options_set_bind_interface": (_status, [_options_p, c_char_p]),
    "eq1_mqtt_options_add_websocket_header": (_status, [_options_p, c_char_p, c_char_p]),
    "eq1_mqtt_options_set_tls_ca_data": (_status, [_options_p, c_char_p, c_size_t]),
    "eq1_mqtt_options_set_tls_client_cert_data": (_status, [_options_p, c_char_p, c_size_t,
                                                            c_char_p, c_size_t, c_char_p]),
    "eq1_mqtt_options_set_tls_client_signer": (_status, [_options_p, c_char_p, c_size_t,
                                                         SIGN_CB, c_void_p]),
    "eq1_mqtt_options_set_tls_alpn": (_status, [_options_p, POINTER(c_char_p), c_size_t]),
    "eq1_mqtt_options_set_tls_server_name": (_status, [_options_p, c_char_p]),
    "eq1_mqtt_options_set_tls_crl_file": (_status, [_options_p, c_char_p]),
    "eq1_mqtt_options_set_tls_crl_data": (_status, [_options_p, c_char_p, c_size_t]),
    "eq1_mqtt_client_new": (_status, [_options_p, c_void_p, FREE_CB, POINTER(_client_p)]),
    "eq1_mqtt_client_free": (_status, [_client_p]),
    "eq1_mqtt_client_set_will": (_status, [_client_p, c_char_p, c_char_p, c_size_t, c_int,
                                           c_bool]),
    "eq1_mqtt_client_clear_will": (_status, [_client_p]),
    "eq1_mqtt_client_connect": (_status, [_client_p, c_int]),
    "eq1_mqtt_client_disconnect": (_status, [_client_p, c_int]),
    "eq1_mqtt_client_disconnect_with": (_status, [_client_p, ctypes.c_uint8, c_bool, c_uint32,
                                                  POINTER(Eq1UserProperty), c_size_t, c_int]),
    "eq1_mqtt_client_is_connected": (c_bool, [_client_p]),
    "eq1_mqtt_client_publish": (_status, [_client_p, c_char_p, c_char_p, c_size_t, c_int,
                                          c_bool, POINTER(c_uint64)]),
    "eq1_mqtt_client_wait": (_status, [_client_p, c_uint64, c_int]),
    "eq1_mqtt_client_wait_report": (_status, [_client_p, c_uint64, c_int,
                                              POINTER(ctypes.c_uint8), c_char_p, c_size_t]),
    "eq1_mqtt_client_subscribe": (_status, [_client_p, c_char_p, c_int, MESSAGE_CB, c_void_p,
                                            c_int, POINTER(c_int)]),
    "eq1_mqtt_client_unsubscribe": (_status, [_client_p, c_char_p, c_int]),
    "eq1_mqtt_client_unsubscribe_many": (_status, [_client_p, POINTER(c_char_p), c_size_t,
                                                   c_int]),
    "eq1_mqtt_client_get_stats": (_status, [_client_p, POINTER(Eq1Stats)]),
    "eq1_mqtt_client_metrics_text": (c_size_t, [_client_p, c_char_p, c_size_t]),
    "eq1_mqtt_client_get_id": (c_size_t, [_client_p, c_char_p, c_size_t]),
    "eq1_mqtt_client_restored_count": (_status, [_client_p, POINTER(c_size_t)]),
    "eq1_mqtt_client_restored_message": (_status, [_client_p, c_size_t, POINTER(c_uint64),
                                                   POINTER(c_int), c_char_p, c_size_t,
                                                   POINTER(c_size_t)]),
    "eq1_mqtt_client_subscribe_with_options": (
        _status, [_client_p, c_char_p, POINTER(Eq1SubscribeOptions), MESSAGE_CB, c_void_p,
                  c_int, POINTER(c_int)]),
    "eq1_mqtt_client_subscribe_many": (
        _status, [_client_p, POINTER(Eq1Subscription), c_size_t, POINTER(Eq1UserProperty),
                  c_size_t, c_int, POINTER(Eq1SubscribeResult), POINTER(Eq1AckProperties)]),
    "eq1_mqtt_client_unsubscribe_many_with_results": (
        _status, [_client_p, POINTER(c_char_p), c_size_t, POINTER(Eq1UserProperty), c_size_t,
                  c_int, POINTER(Eq1UnsubscribeResult), POINTER(Eq1AckProperties)]),
    "eq1_mqtt_client_publish_with_properties": (
        _status, [_client_p, c_char_p, c_char_p, c_size_t, c_int, c_bool,
                  POINTER(Eq1Properties), POINTER(c_uint64)]),
    "eq1_mqtt_client_set_will_with_properties": (
        _status, [_client_p, c_char_p, c_char_p, c_size_t, c_int, c_bool,
                  POINTER(Eq1Properties), c_uint32]),
    "eq1_mqtt_options_set_session_expiry": (_status, [_options_p, c_uint32]),
    "eq1_mqtt_options_set_receive_maximum": (_status, [_options_p, c_int]),
    "eq1_mqtt_options_set_topic_alias_maximum": (_status, [_options_p, c_int]),
    "eq1_mqtt_options_set_request_response_information": (_status, [_options_p, c_bool]),
    "eq1_mqtt_options_set_request_problem_information": (_status, [_options_p, c_bool]),
    "eq1_mqtt_options_add_connect_user_property": (_status, [_options_p, c_char_p, c_char_p]),
    "eq1_mqtt_options_set_follow_redirects": (_status, [_options_p, c_bool]),
    "eq1_mqtt_options_set_protocol_fallback": (_status, [_options_p, c_bool]),
    "eq1_mqtt_ack_properties_clear": (_status, [POINTER(Eq1AckProperties)]),
    "eq1_mqtt_client_get_connack": (_status, [_client_p, POINTER(POINTER(Eq1ConnAckInfo))]),
    "eq1_mqtt_connack_info_free": (None, [POINTER(Eq1ConnAckInfo)]),
    "eq1_mqtt_client_request": (_status, [_client_p, c_char_p, c_char_p, c_size_t, c_int,
                                          POINTER(POINTER(Eq1Response))]),
    "eq1_mqtt_client_request_async": (_status, [_client_p, c_char_p, c_char_p, c_size_t,
                                                c_int, RESPONSE_CB, c_void_p]),
    "eq1_mqtt_response_free": (None, [POINTER(Eq1Response)]),
    "eq1_mqtt_client_respond": (_status, [_client_p, POINTER(Eq1Message), c_char_p, c_size_t,
                                          c_int, POINTER(c_uint64)]),
    "eq1_mqtt_options_set_topic_alias_auto": (_status, [_options_p, c_bool]),
    "eq1_mqtt_options_set_response_topic_prefix": (_status, [_options_p, c_char_p]),
    "eq1_mqtt_options_set_max_pending_requests": (_status, [_options_p, c_int64]),
    "eq1_mqtt_options_set_auth_method": (_status, [_options_p, c_char_p, c_char_p, c_size_t]),
    "eq1_mqtt_client_reauthenticate": (_status, [_client_p, c_char_p, c_size_t, c_int]),
    "eq1_mqtt_client_set_connection_callback": (_status, [_client_p, CONNECTION_CB]),
    "eq1_mqtt_client_set_delivery_callback": (_status, [_client_p, DELIVERY_CB]),
    "eq1_mqtt_client_set_delivery_report_callback": (_status, [_client_p, DELIVERY_REPORT_CB]),
    "eq1_mqtt_client_set_message_callback": (_status, [_client_p, MESSAGE_CB, c_void_p]),
    "eq1_mqtt_client_set_auth_callback": (_status, [_client_p, AUTH_CB, c_void_p]),
    "eq1_tcp_options_new": (c_void_p, []),
    "eq1_tcp_options_free": (None, [c_void_p]),
    "eq1_tcp_options_set_endpoint": (_status, [c_void_p, c_char_p, c_uint16]),
    "eq1_tcp_options_set_connect_timeout": (_status, [c_void_p, c_int]),
    "eq1_tcp_options_set_auto_reconnect": (_status, [c_void_p, c_bool, c_int, c_int]),
    "eq1_tcp_options_set_framing": (_status, [c_void_p, c_int, c_void_p, c_size_t]),
    "eq1_tcp_options_set_max_frame": (_status, [c_void_p, c_size_t]),
    "eq1_tcp_options_set_tls": (_status, [c_void_p, c_char_p, c_bool]),
    "eq1_tcp_options_set_tls_client_cert": (_status, [c_void_p, c_char_p, c_char_p, c_char_p]),
    "eq1_tcp_client_new": (_status, [c_void_p, c_void_p]),
    "eq1_tcp_client_free": (_status, [c_void_p]),
    "eq1_tcp_client_set_connection_callback": (_status, [c_void_p, PROTOCOL_EVENT_CB, c_void_p]),
    "eq1_tcp_client_connect": (_status, [c_void_p, c_int]),
    "eq1_tcp_client_disconnect": (_status, [c_void_p]),
    "eq1_tcp_client_is_connected": (c_bool, [c_void_p]),
    "eq1_tcp_client_send": (_status, [c_void_p, c_void_p, c_size_t, c_int]),
    "eq1_tcp_client_receive": (_status, [c_void_p, c_int, c_void_p, c_size_t, c_void_p]),
    "eq1_tcp_client_request": (_status, [c_void_p, c_void_p, c_size_t, c_int, c_void_p, c_size_t, c_void_p]),
    "eq1_tcp_client_get_stats": (_status, [c_void_p, c_void_p]),
    "eq1_serial_options_new": (_status, [c_char_p, c_uint32, c_void_p]),
    "eq1_serial_options_free": (None, [c_void_p]),
    "eq1_serial_options_set_line": (_status, [c_void_p, c_int, c_int, c_int]),
    "eq1_serial_options_set_flow_control": (_status, [c_void_p, c_int]),
    "eq1_serial_client_new": (_status, [c_void_p, c_void_p]),
    "eq1_serial_client_free": (_status, [c_void_p]),
    "eq1_serial_client_set_connection_callback": (_status, [c_void_p, PROTOCOL_EVENT_CB,
                                                            c_void_p]),
    "eq1_serial_client_connect": (_status, [c_void_p]),
    "eq1_serial_client_disconnect": (_status, [c_void_p]),
    "eq1_serial_client_send": (_status, [c_void_p, c_void_p, c_size_t]),
    "eq1_serial_client_receive": (_status, [c_void_p, c_int, c_void_p, c_size_t, c_void_p]),
    "eq1_serial_client_request": (_status, [c_void_p, c_void_p, c_size_t, c_int, c_void_p, c_size_t, c_void_p]),
    "eq1_serial_client_get_stats": (_status, [c_void_p, c_void_p]),
    "eq1_modbus_options_new": (_options_p, []),
    "eq1_modbus_options_free": (None, [_options_p]),
    "eq1_modbus_options_set_tcp": (_status, [_options_p, c_char_p, c_int]),
    "eq1_modbus_options_set_serial": (_status, [_options_p, c_char_p, c_int, c_int, c_int,
                                                c_int]),
    "eq1_modbus_options_set_unit_id": (_status, [_options_p, c_int]),
    "eq1_modbus_options_set_timeout": (_status, [_options_p, c_int]),
    "eq1_modbus_options_set_retries": (_status, [_options_p, c_int]),
    "eq1_modbus_options_set_max_in_flight": (_status, [_options_p, c_int]),
    "eq1_modbus_client_new": (_status, [_options_p, POINTER(c_void_p)]),
    "eq1_modbus_client_free": (_status, [_client_p]),
    "eq1_modbus_client_set_connection_callback": (_status, [_client_p, PROTOCOL_EVENT_CB,
                                                            c_void_p]),
    "eq1_modbus_client_connect": (_status, [_client_p]),
    "eq1_modbus_client_disconnect": (_status, [_client_p]),
    "eq1_modbus_client_get_stats": (_status, [_client_p, POINTER(Eq1ModbusStats)]),
    "eq1_modbus_read_coils": (_status, [_client_p, c_int, c_int, c_int, POINTER(c_uint8),
                                        c_size_t, POINTER(Eq1ModbusCallOptions)]),
    "eq1_modbus_read_discrete_inputs": (_status, [_client_p, c_int, c_int, c_int,
                                                  POINTER(c_uint8), c_size_t,
                                                  POINTER(Eq1ModbusCallOptions)]),
    "eq1_modbus_read_holding_registers": (_status, [_client_p, c_int, c_int, c_int,
                                                    POINTER(c_uint16), c_size_t,
                                                    POINTER(Eq1ModbusCallOptions)]),
    "eq1_modbus_read_input_registers": (_status, [_client_p, c_int, c_int, c_int,
                                                  POINTER(c_uint16), c_size_t,
                                                  POINTER(Eq1ModbusCallOptions)]),
    "eq1_modbus_write_single_coil": (_status, [_client_p, c_int, c_int, c_int,
                                               POINTER(Eq1ModbusCallOptions)]),
    "eq1_modbus_write_single_register": (_status, [_client_p, c_int, c_int, c_uint16,
                                                   POINTER(Eq1ModbusCallOptions)]),
    "eq1_modbus_write_multiple_coils": (_status, [_client_p, c_int, c_int, POINTER(c_uint8),
                                                  c_size_t, POINTER(Eq1ModbusCallOptions)]),
    "eq1_modbus_write_multiple_registers": (_status, [_client_p, c_int, c_int,
                                                      POINTER(c_uint16), c_size_t,
                                                      POINTER(Eq1ModbusCallOptions)]),
    "eq1_modbus_read_write_multiple_registers": (
        _status, [_client_p, c_int, c_int, c_int, c_int, POINTER(c_uint16), c_size_t,
                  POINTER(c_uint16), c_size_t, POINTER(Eq1ModbusCallOptions)]),
    "eq1_protocol_options_new": (c_void_p, []),
    "eq1_protocol_options_free": (None, [c_void_p]),
    "eq1_protocol_options_set": (_status, [c_void_p, c_char_p, c_char_p]),
    "eq1_protocol_open": (_status, [c_char_p, c_void_p, c_void_p]),
    "eq1_protocol_close": (_status, [c_void_p]),
    "eq1_protocol_connect": (_status, [c_void_p, c_int]),
    "eq1_protocol_disconnect": (_status, [c_void_p, c_int]),
    "eq1_protocol_is_connected": (c_bool, [c_void_p]),
    "eq1_protocol_send": (_status, [c_void_p, c_void_p, c_size_t, c_int]),
    "eq1_protocol_receive": (_status, [c_void_p, c_int, c_void_p, c_size_t, c_void_p]),
    "eq1_protocol_request": (_status, [c_void_p, c_void_p, c_size_t, c_int, c_void_p, c_size_t, c_void_p]),
    "eq1_protocol_publish": (_status, [c_void_p, c_char_p, c_void_p, c_size_t, c_int, c_bool]),
    "eq1_protocol_subscribe": (_status, [c_void_p, c_char_p, c_int, c_int]),
    "eq1_protocol_names": (c_size_t, [c_char_p, c_size_t]),
    "eq1_protocol_load_plugin": (_status, [c_char_p, c_char_p, c_size_t]),
}

# Functions that never block (they check their arguments, queue and return in about a
# microsecond): called with the GIL held, through a PyDLL view of the same library (see
# gil_held()). A CDLL call releases the GIL and takes it back on return; with a dispatcher
# thread running Python callbacks that take it per message, taking it back is a wait and a
# thread hand-off per call (publish_async at QoS 0 spent most of its time there).
GIL_HELD = ("eq1_mqtt_client_publish",)

_load_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_lib_path: str | None = None
_gil_held: ctypes.PyDLL | None = None


def candidate_paths() -> list[str]:
    """Where the library is looked for, in order (system-loader names included)."""
    candidates: list[str] = []
    env = os.environ.get(ENV_VAR)
    if env:
        candidates.append(env)
    here = Path(__file__).resolve().parent
    candidates += [str(here / "libeq1.so"), str(here / SONAME)]
    found = ctypes.util.find_library("eq1")
    if found:
        candidates.append(found)
    candidates.append(SONAME)
    return candidates


def _declare(lib: ctypes.CDLL, path: str) -> None:
    missing = []
    for name, (restype, argtypes) in PROTOTYPES.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            missing.append(name)
            continue
        fn.restype = restype
        fn.argtypes = argtypes
    if missing:
        raise LibraryNotFoundError(
            f"{path} is not a usable libeq1: missing function(s) {', '.join(missing)}")
    major = lib.eq1_version_number() // 10000
    if major != EXPECTED_MAJOR:
        raise LibraryNotFoundError(
            f"{path} is libeq1 {lib.eq1_version().decode()}; this binding needs "
            f"{EXPECTED_MAJOR}.x")


def load() -> ctypes.CDLL:
    """The loaded library (loads it on first call). Raises LibraryNotFoundError."""
    global _lib, _lib_path
    if _lib is not None:
        return _lib
    with _load_lock:
        if _lib is not None:
            return _lib
        tried: list[str] = []
        env = os.environ.get(ENV_VAR)
        if not env:
            tried.append(f"${ENV_VAR}: not set")
        for path in candidate_paths():
            is_file_path = os.sep in path
            if is_file_path and not os.path.exists(path):
                tried.append(f"{path}: no such file")
                continue
            try:
                lib = ctypes.CDLL(path)
            except OSError as e:
                tried.append(f"{path}: {e}")
                continue
            try:
                _declare(lib, path)
            except LibraryNotFoundError as e:
                tried.append(e.detail)
                continue
            _lib, _lib_path = lib, path
            break
        else:
            if not ctypes.util.find_library("eq1"):
                tried.append("ctypes.util.find_library('eq1'): not found")
            raise LibraryNotFoundError(
                "libeq1 could not be loaded; tried:\n  " + "\n  ".join(tried)
                + f"\nSet {ENV_VAR} to the path of libeq1.so (built by `cargo build --release`"
                " into target/release).")
    install_log_bridge(_initial_log_level(), load_library=False)
    return _lib


def gil_held() -> ctypes.PyDLL:
    """The library again, as a PyDLL: only the GIL_HELD functions, with the same prototypes,
    called without releasing the GIL. Loads the library if needed."""
    global _gil_held
    if _gil_held is not None:
        return _gil_held
    load()
    with _load_lock:
        if _gil_held is None:
            assert _lib_path is not None
            lib = ctypes.PyDLL(_lib_path)  # dlopen of the same file: the same loaded library
            for name in GIL_HELD:
                restype, argtypes = PROTOTYPES[name]
                fn = getattr(lib, name)
                fn.restype = restype
                fn.argtypes = argtypes
            _gil_held = lib
    return _gil_held


# A ctypes callback on a thread Python did not start takes the GIL with PyGILState_Ensure and
# gives it back with PyGILState_Release, which, when no thread state was there before, creates
# a thread state and deletes it again: per callback, an allocation of its frame stack (an mmap)
# and its release (a munmap and a TLB shoot-down on every core). The dispatcher thread keeps
# one thread state while it is useful (pin_thread_state from inside a callback, unpin from
# inside a later one on the same thread), so each callback only takes and gives back the GIL.
_gilstate_ensure = ctypes.pythonapi.PyGILState_Ensure
_gilstate_ensure.restype = c_int
_gilstate_ensure.argtypes = []
_gilstate_release = ctypes.pythonapi.PyGILState_Release
_gilstate_release.restype = None
_gilstate_release.argtypes = [c_int]
_PYGILSTATE_LOCKED = 0


def pin_thread_state() -> None:
    """From inside a callback (the GIL held): this thread's state outlives the callback."""
    _gilstate_ensure()  # the GIL is ours already: only counts one more use of the state


def unpin_thread_state() -> None:
    """From inside a later callback on the same thread: undoes pin_thread_state (the state
    is deleted when that callback returns)."""
    _gilstate_release(_PYGILSTATE_LOCKED)  # one use less; the GIL stays with the callback


def _initial_log_level() -> int:
    from communicator.common.logging import native_max_level_for

    return native_max_level_for(logger.getEffectiveLevel())


def library_path() -> str:
    """The path (or loader name) the library was loaded from; loads it if needed."""
    load()
    assert _lib_path is not None
    return _lib_path


def version() -> str:
    """libeq1's run-time version, "MAJOR.MINOR.PATCH"."""
    return str(load().eq1_version().decode())


def last_error_message() -> str:
    """The detail message of the last failed call on this thread."""
    lib = load()
    size = lib.eq1_last_error_message(None, 0)
    if size == 0:
        return ""
    buf = ctypes.create_string_buffer(size + 1)
    lib.eq1_last_error_message(buf, size + 1)
    return buf.value.decode("utf-8", errors="replace")


def status_text(status: int) -> str:
    """libeq1's static description of a status."""
    return str(load().eq1_status_str(int(status)).decode("utf-8", errors="replace"))


def status_family(status: int) -> int:
    """libeq1's family number (``eq1_status_family``) of any status number."""
    return int(load().eq1_status_family_of(int(status)))


_statuses: dict[int, str] | None = None


def library_statuses() -> dict[int, str]:
    """Every status libeq1 defines: number -> bare name (``20: "TIMEOUT"``), in its order."""
    global _statuses
    if _statuses is None:
        lib = load()
        listed: dict[int, str] = {}
        for index in range(lib.eq1_status_count()):
            number = int(lib.eq1_status_at(index))
            name = lib.eq1_status_name(number)
            listed[number] = (name or b"").decode().removeprefix("EQ1_STATUS_")
        _statuses = listed
    return _statuses


def check(status: int, what: str = "") -> None:
    """Raises the mapped exception when a call failed (call on the thread that made it)."""
    if status == Status.OK:
        return
    detail = last_error_message() or status_text(status)
    if what:
        detail = f"{what}: {detail}"
    raise error_from_status(status, detail)


# ---------------------------------------------------------------- log bridge

def _on_log(_user_data: int | None, level: int, message: bytes | None) -> None:
    try:
        text = message.decode("utf-8", errors="replace") if message else ""
        logger.log(python_level_for(level), "libeq1: %s", text)
    except BaseException:  # noqa: BLE001 - nothing may escape into the library's thread
        pass


_log_trampoline = LOG_CB(_on_log)
_log_level_installed: int | None = None


def install_log_bridge(max_level: int, load_library: bool = True) -> None:
    """Routes libeq1's log records to the ``communicator`` logger, up to ``max_level``."""
    global _log_level_installed
    if _lib is None and not load_library:
        return
    lib = load() if _lib is None else _lib
    if _log_level_installed == max_level:
        return
    check(lib.eq1_set_log_callback(_log_trampoline, None, max_level), "set log callback")
    _log_level_installed = max_level


def remove_log_bridge() -> None:
    """Stops libeq1's log records (at exit: no callback into a finalizing interpreter)."""
    global _log_level_installed
    if _lib is not None and _log_level_installed is not None:
        _lib.eq1_set_log_callback(NO_LOG_CB, None, 1)
        _log_level_installed = None


# Closers registered by live clients; run at exit, before the interpreter finalizes, so that
# no library thread calls into Python after that.
_exit_hooks: list[Callable[[], None]] = []


def at_exit(hook: Callable[[], None]) -> None:
    _exit_hooks.append(hook)


@atexit.register
def _shutdown() -> None:
    for hook in list(_exit_hooks):
        try:
            hook()
        except ProtocolError:
            pass
    remove_log_bridge()
