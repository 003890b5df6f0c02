//! Checks one complete frame from the broker against the MQTT 3.1.1 / 5.0 rules that rumqttc's
//! decoder does not enforce (reserved flags, exact lengths, property rules, topic names), so that a
//! misbehaving broker is disconnected with the right reason code instead of being half-understood.

use crate::mqtt::options::ProtocolVersion;
use std::fmt;

/// Why a frame from the broker is refused.
///
/// `reason` is the MQTT 5.0 DISCONNECT reason code to close the connection with; on 3.1.1, which
/// has no DISCONNECT reason codes, it only classifies the fault. `detail` names the packet type,
/// the frame size and the rule, never the packet's contents (at most a short topic excerpt).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub reason: u8,
    pub detail: String,
}

pub(crate) const MALFORMED_PACKET: u8 = 0x81;
pub(crate) const PROTOCOL_ERROR: u8 = 0x82;
pub(crate) const TOPIC_ALIAS_INVALID: u8 = 0x94;

/// Checks one whole frame (fixed header byte, remaining-length varint, body) the broker sent.
///
/// Reads the fixed header and the variable header only: a PUBLISH payload is never looked at.
/// Allocates only to describe a violation.
pub fn check_incoming_frame(version: ProtocolVersion, frame: &[u8]) -> Result<(), Violation> {
    let Some((&first, after_first)) = frame.split_first() else {
        return Err(Violation {
            reason: MALFORMED_PACKET,
            detail: "empty frame: no fixed header".to_string(),
        });
    };
    let packet = PacketType::from_header(first);
    let frame = Frame {
        packet,
        size: frame.len(),
        version,
        flags: first & 0x0F,
    };
    if !packet.sent_by_broker(version) {
        return Err(frame.never_sent_by_broker());
    }
    frame.check_flags()?;

    let mut body = Reader::new(after_first);
    let remaining = frame.varint(&mut body, "remaining length")?;
    if body.len() != remaining as usize {
        return Err(frame.malformed(format_args!(
            "remaining length is {remaining} but {} bytes follow the fixed header",
            body.len()
        )));
    }

    let v5 = version == ProtocolVersion::V5;
    match packet {
        PacketType::ConnAck if v5 => frame.connack_v5(body),
        PacketType::ConnAck => frame.connack_v311(body),
        PacketType::Publish => frame.publish(body),
        PacketType::PubAck | PacketType::PubRec | PacketType::PubRel | PacketType::PubComp => {
            frame.publish_ack(body)
        }
        PacketType::SubAck => frame.suback(body),
        PacketType::UnsubAck if v5 => frame.unsuback_v5(body),
        PacketType::UnsubAck => frame.unsuback_v311(body),
        PacketType::PingResp => frame.exact_length(&body, 0),
        PacketType::Disconnect => frame.disconnect(body),
        PacketType::Auth => frame.auth(body),
        PacketType::Reserved
        | PacketType::Connect
        | PacketType::Subscribe
        | PacketType::Unsubscribe
        | PacketType::PingReq => Err(frame.never_sent_by_broker()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PacketType {
    Reserved,
    Connect,
    ConnAck,
    Publish,
    PubAck,
    PubRec,
    PubRel,
    PubComp,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    PingReq,
    PingResp,
    Disconnect,
    Auth,
}

impl PacketType {
    fn from_header(first: u8) -> PacketType {
        match first >> 4 {
            1 => PacketType::Connect,
            2 => PacketType::ConnAck,
            3 => PacketType::Publish,
            4 => PacketType::PubAck,
            5 => PacketType::PubRec,
            6 => PacketType::PubRel,
            7 => PacketType::PubComp,
            8 => PacketType::Subscribe,
            9 => PacketType::SubAck,
            10 => PacketType::Unsubscribe,
            11 => PacketType::UnsubAck,
            12 => PacketType::PingReq,
            13 => PacketType::PingResp,
            14 => PacketType::Disconnect,
            15 => PacketType::Auth,
            _ => PacketType::Reserved,
        }
    }

    fn name(self) -> &'static str {
        match self {
            PacketType::Reserved => "reserved packet type 0",
            PacketType::Connect => "CONNECT",
            PacketType::ConnAck => "CONNACK",
            PacketType::Publish => "PUBLISH",
            PacketType::PubAck => "PUBACK",
            PacketType::PubRec => "PUBREC",
            PacketType::PubRel => "PUBREL",
            PacketType::PubComp => "PUBCOMP",
            PacketType::Subscribe => "SUBSCRIBE",
            PacketType::SubAck => "SUBACK",
            PacketType::Unsubscribe => "UNSUBSCRIBE",
            PacketType::UnsubAck => "UNSUBACK",
            PacketType::PingReq => "PINGREQ",
            PacketType::PingResp => "PINGRESP",
            PacketType::Disconnect => "DISCONNECT",
            PacketType::Auth => "AUTH",
        }
    }

    fn sent_by_broker(self, version: ProtocolVersion) -> bool {
        match self {
            PacketType::ConnAck
            | PacketType::Publish
            | PacketType::PubAck
            | PacketType::PubRec
            | PacketType::PubRel
            | PacketType::PubComp
            | PacketType::SubAck
            | PacketType::UnsubAck
            | PacketType::PingResp => true,
            PacketType::Disconnect | PacketType::Auth => version == ProtocolVersion::V5,
            PacketType::Reserved
            | PacketType::Connect
            | PacketType::Subscribe
            | PacketType::Unsubscribe
            | PacketType::PingReq => false,
        }
    }

    /// The v5 reason codes this packet may carry from a broker.
    fn reason_code_known(self, code: u8) -> bool {
        match self {
            PacketType::ConnAck => matches!(
                code,
                0x00 | 0x80..=0x8A | 0x8C | 0x90 | 0x95 | 0x97 | 0x99..=0x9D | 0x9F
            ),
            PacketType::PubAck | PacketType::PubRec => matches!(
                code,
                0x00 | 0x10 | 0x80 | 0x83 | 0x87 | 0x90 | 0x91 | 0x97 | 0x99
            ),
            PacketType::PubRel | PacketType::PubComp => matches!(code, 0x00 | 0x92),
            PacketType::SubAck => matches!(
                code,
                0x00..=0x02 | 0x80 | 0x83 | 0x87 | 0x8F | 0x91 | 0x97 | 0x9E | 0xA1 | 0xA2
            ),
            PacketType::UnsubAck => {
                matches!(code, 0x00 | 0x11 | 0x80 | 0x83 | 0x87 | 0x8F | 0x91)
            }
            // 0x04 (Disconnect with Will Message) is a client's code and is refused separately.
            PacketType::Disconnect => matches!(
                code,
                0x00 | 0x04
                    | 0x80..=0x83
                    | 0x87
                    | 0x89
                    | 0x8B
                    | 0x8D..=0x90
                    | 0x93..=0xA2
            ),
            PacketType::Auth => matches!(code, 0x00 | 0x18 | 0x19),
            _ => false,
        }
    }

    /// The v5 properties this packet may carry from a broker, as a set of property-id bits.
    fn allowed_properties(self) -> u64 {
        const ACK: u64 = bit(REASON_STRING) | bit(USER_PROPERTY);
        match self {
            PacketType::ConnAck => {
                bit(SESSION_EXPIRY_INTERVAL)
                    | bit(RECEIVE_MAXIMUM)
                    | bit(MAXIMUM_QOS)
                    | bit(RETAIN_AVAILABLE)
                    | bit(MAXIMUM_PACKET_SIZE)
                    | bit(ASSIGNED_CLIENT_IDENTIFIER)
                    | bit(TOPIC_ALIAS_MAXIMUM)
                    | bit(REASON_STRING)
                    | bit(USER_PROPERTY)
                    | bit(WILDCARD_SUBSCRIPTION_AVAILABLE)
                    | bit(SUBSCRIPTION_IDENTIFIER_AVAILABLE)
                    | bit(SHARED_SUBSCRIPTION_AVAILABLE)
                    | bit(SERVER_KEEP_ALIVE)
                    | bit(RESPONSE_INFORMATION)
                    | bit(SERVER_REFERENCE)
                    | bit(AUTHENTICATION_METHOD)
                    | bit(AUTHENTICATION_DATA)
            }
            PacketType::Publish => {
                bit(PAYLOAD_FORMAT_INDICATOR)
                    | bit(MESSAGE_EXPIRY_INTERVAL)
                    | bit(TOPIC_ALIAS)
                    | bit(RESPONSE_TOPIC)
                    | bit(CORRELATION_DATA)
                    | bit(USER_PROPERTY)
                    | bit(SUBSCRIPTION_IDENTIFIER)
                    | bit(CONTENT_TYPE)
            }
            PacketType::PubAck
            | PacketType::PubRec
            | PacketType::PubRel
            | PacketType::PubComp
            | PacketType::SubAck
            | PacketType::UnsubAck => ACK,
            // A server must not send Session Expiry Interval in DISCONNECT [MQTT-3.14.2-2].
            PacketType::Disconnect => ACK | bit(SERVER_REFERENCE),
            PacketType::Auth => ACK | bit(AUTHENTICATION_METHOD) | bit(AUTHENTICATION_DATA),
            _ => 0,
        }
    }

    /// Properties that may appear more than once: User Property everywhere, and Subscription
    /// Identifier in a PUBLISH that matched several subscriptions.
    fn repeatable_properties(self) -> u64 {
        match self {
            PacketType::Publish => bit(USER_PROPERTY) | bit(SUBSCRIPTION_IDENTIFIER),
            _ => bit(USER_PROPERTY),
        }
    }
}

const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
const CONTENT_TYPE: u8 = 0x03;
const RESPONSE_TOPIC: u8 = 0x08;
const CORRELATION_DATA: u8 = 0x09;
const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
const SERVER_KEEP_ALIVE: u8 = 0x13;
const AUTHENTICATION_METHOD: u8 = 0x15;
const AUTHENTICATION_DATA: u8 = 0x16;
const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
const WILL_DELAY_INTERVAL: u8 = 0x18;
const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
const RESPONSE_INFORMATION: u8 = 0x1A;
const SERVER_REFERENCE: u8 = 0x1C;
const REASON_STRING: u8 = 0x1F;
const RECEIVE_MAXIMUM: u8 = 0x21;
const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
const TOPIC_ALIAS: u8 = 0x23;
const MAXIMUM_QOS: u8 = 0x24;
const RETAIN_AVAILABLE: u8 = 0x25;
const USER_PROPERTY: u8 = 0x26;
const MAXIMUM_PACKET_SIZE: u8 = 0x27;
const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;

/// Property ids are below 64, so a set of them fits in one `u64`.
const fn bit(id: u8) -> u64 {
    1 << (id & 63)
}

#[derive(Clone, Copy)]
enum ValueType {
    Byte,
    TwoByte,
    FourByte,
    Varint,
    Utf8,
    Binary,
    Utf8Pair,
}

/// Name and value type of every property MQTT 5.0 defines; `None` for an unknown id.
fn property_info(id: u8) -> Option<(&'static str, ValueType)> {
    use ValueType::*;
    Some(match id {
        PAYLOAD_FORMAT_INDICATOR => ("Payload Format Indicator", Byte),
        MESSAGE_EXPIRY_INTERVAL => ("Message Expiry Interval", FourByte),
        CONTENT_TYPE => ("Content Type", Utf8),
        RESPONSE_TOPIC => ("Response Topic", Utf8),
        CORRELATION_DATA => ("Correlation Data", Binary),
        SUBSCRIPTION_IDENTIFIER => ("Subscription Identifier", Varint),
        SESSION_EXPIRY_INTERVAL => ("Session Expiry Interval", FourByte),
        ASSIGNED_CLIENT_IDENTIFIER => ("Assigned Client Identifier", Utf8),
        SERVER_KEEP_ALIVE => ("Server Keep Alive", TwoByte),
        AUTHENTICATION_METHOD => ("Authentication Method", Utf8),
        AUTHENTICATION_DATA => ("Authentication Data", Binary),
        REQUEST_PROBLEM_INFORMATION => ("Request Problem Information", Byte),
        WILL_DELAY_INTERVAL => ("Will Delay Interval", FourByte),
        REQUEST_RESPONSE_INFORMATION => ("Request Response Information", Byte),
        RESPONSE_INFORMATION => ("Response Information", Utf8),
        SERVER_REFERENCE => ("Server Reference", Utf8),
        REASON_STRING => ("Reason String", Utf8),
        RECEIVE_MAXIMUM => ("Receive Maximum", TwoByte),
        TOPIC_ALIAS_MAXIMUM => ("Topic Alias Maximum", TwoByte),
        TOPIC_ALIAS => ("Topic Alias", TwoByte),
        MAXIMUM_QOS => ("Maximum QoS", Byte),
        RETAIN_AVAILABLE => ("Retain Available", Byte),
        USER_PROPERTY => ("User Property", Utf8Pair),
        MAXIMUM_PACKET_SIZE => ("Maximum Packet Size", FourByte),
        WILDCARD_SUBSCRIPTION_AVAILABLE => ("Wildcard Subscription Available", Byte),
        SUBSCRIPTION_IDENTIFIER_AVAILABLE => ("Subscription Identifier Available", Byte),
        SHARED_SUBSCRIPTION_AVAILABLE => ("Shared Subscription Available", Byte),
        _ => return None,
    })
}

/// A bounds-checked cursor: every read returns `None` instead of running past the end.
struct Reader<'a> {
    rest: &'a [u8],
}

enum VarintFault {
    Truncated,
    TooLong,
    NotMinimal,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { rest: bytes }
    }

    fn len(&self) -> usize {
        self.rest.len()
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.rest.split_at_checked(n)?;
        self.rest = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        let (&byte, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(byte)
    }

    fn u16(&mut self) -> Option<u16> {
        let bytes = self.take(2)?;
        Some(u16::from_be_bytes(bytes.try_into().ok()?))
    }

    fn u32(&mut self) -> Option<u32> {
        let bytes = self.take(4)?;
        Some(u32::from_be_bytes(bytes.try_into().ok()?))
    }

    /// A Variable Byte Integer: at most 4 bytes. `minimal` refuses an encoding longer than it
    /// needs to be, which ends in a zero byte (`0x80 0x00` for 0).
    fn varint(&mut self, minimal: bool) -> Result<u32, VarintFault> {
        let mut value = 0u32;
        for shift in [0, 7, 14, 21] {
            let byte = self.u8().ok_or(VarintFault::Truncated)?;
            value |= u32::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                if minimal && shift > 0 && byte == 0 {
                    return Err(VarintFault::NotMinimal);
                }
                return Ok(value);
            }
        }
        Err(VarintFault::TooLong)
    }

    /// A length-prefixed string or binary value.
    fn prefixed(&mut self) -> Option<&'a [u8]> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }
}

/// What `check_incoming_frame` knows about the frame while it reads the body.
struct Frame {
    packet: PacketType,
    size: usize,
    version: ProtocolVersion,
    flags: u8,
}

impl Frame {
    fn fail(&self, reason: u8, rule: impl fmt::Display) -> Violation {
        Violation {
            reason,
            detail: format!("{} ({} bytes): {rule}", self.packet.name(), self.size),
        }
    }

    fn malformed(&self, rule: impl fmt::Display) -> Violation {
        self.fail(MALFORMED_PACKET, rule)
    }

    fn protocol_error(&self, rule: impl fmt::Display) -> Violation {
        self.fail(PROTOCOL_ERROR, rule)
    }

    fn is_v5(&self) -> bool {
        self.version == ProtocolVersion::V5
    }

    /// A Variable Byte Integer; 5.0 requires the shortest encoding [MQTT-1.5.5-1], 3.1.1 does
    /// not (and rumqttc accepts longer ones).
    fn varint(&self, reader: &mut Reader, what: &str) -> Result<u32, Violation> {
        reader.varint(self.is_v5()).map_err(|fault| {
            let fault = match fault {
                VarintFault::Truncated => "is truncated",
                VarintFault::TooLong => "is longer than 4 bytes",
                VarintFault::NotMinimal => "does not use the shortest encoding",
            };
            self.malformed(format_args!("{what} {fault}"))
        })
    }

    fn never_sent_by_broker(&self) -> Violation {
        let version = match self.version {
            ProtocolVersion::V311 => "an MQTT 3.1.1",
            ProtocolVersion::V5 => "an MQTT 5.0",
        };
        self.protocol_error(format_args!(
            "{version} broker never sends this packet type"
        ))
    }

    /// Reserved fixed-header flags [MQTT-2.1.3-1], and the PUBLISH QoS / DUP bits.
    fn check_flags(&self) -> Result<(), Violation> {
        let expected = match self.packet {
            PacketType::Publish => {
                let qos = (self.flags >> 1) & 0b11;
                if qos == 3 {
                    return Err(self.malformed("both QoS bits set (QoS 3)"));
                }
                if qos == 0 && self.flags & 0b1000 != 0 {
                    return Err(self.malformed("DUP flag set on a QoS 0 message"));
                }
                return Ok(());
            }
            PacketType::PubRel | PacketType::Subscribe | PacketType::Unsubscribe => 0b0010,
            _ => 0,
        };
        if self.flags != expected {
            return Err(self.malformed(format_args!(
                "reserved fixed-header flags are {:#06b}, must be {expected:#06b}",
                self.flags
            )));
        }
        Ok(())
    }

    fn exact_length(&self, body: &Reader, expected: usize) -> Result<(), Violation> {
        if body.len() != expected {
            return Err(self.malformed(format_args!(
                "remaining length must be {expected}, is {}",
                body.len()
            )));
        }
        Ok(())
    }

    /// A non-zero packet identifier [MQTT-2.2.1-3]; an ack for identifier 0 answers nothing the
    /// client sent.
    fn packet_id(&self, body: &mut Reader) -> Result<(), Violation> {
        match body.u16() {
            None => Err(self.malformed("too short for its packet identifier")),
            Some(0) => Err(self.protocol_error("packet identifier 0")),
            Some(_) => Ok(()),
        }
    }

    fn reason_code(&self, code: u8) -> Result<(), Violation> {
        if !self.packet.reason_code_known(code) {
            return Err(self.malformed(format_args!("unknown reason code {code:#04x}")));
        }
        Ok(())
    }

    /// What follows the properties of a packet without payload must be nothing.
    fn nothing_after_properties(&self, body: &Reader) -> Result<(), Violation> {
        if !body.is_empty() {
            return Err(self.malformed(format_args!(
                "{} bytes left after the properties",
                body.len()
            )));
        }
        Ok(())
    }

    fn connack_v311(&self, mut body: Reader) -> Result<(), Violation> {
        self.exact_length(&body, 2)?;
        let (Some(flags), Some(code)) = (body.u8(), body.u8()) else {
            return Err(self.malformed("too short"));
        };
        self.connack_flags(flags, code)?;
        if code > 5 {
            return Err(self.malformed(format_args!("unknown return code {code}")));
        }
        Ok(())
    }

    fn connack_v5(&self, mut body: Reader) -> Result<(), Violation> {
        let (Some(flags), Some(code)) = (body.u8(), body.u8()) else {
            return Err(self.malformed("shorter than its flags, reason code and properties"));
        };
        self.connack_flags(flags, code)?;
        self.reason_code(code)?;
        if body.is_empty() {
            return Err(self.malformed("no property length"));
        }
        self.properties(&mut body)?;
        self.nothing_after_properties(&body)
    }

    /// Bits 7-1 of the acknowledge flags are reserved; a refusal has no session [MQTT-3.2.2-4,
    /// MQTT-3.2.2-6 in 5.0].
    fn connack_flags(&self, flags: u8, code: u8) -> Result<(), Violation> {
        if flags & 0xFE != 0 {
            return Err(self.malformed(format_args!(
                "reserved acknowledge flags set ({flags:#04x})"
            )));
        }
        if flags & 1 != 0 && code != 0 {
            return Err(self.protocol_error(format_args!(
                "session present with refusal code {code:#04x}"
            )));
        }
        Ok(())
    }

    fn publish(&self, mut body: Reader) -> Result<(), Violation> {
        let qos = (self.flags >> 1) & 0b11;
        let topic = body
            .prefixed()
            .ok_or_else(|| self.malformed("topic name runs past the end of the packet"))?;
        self.topic_name(topic)?;
        if qos > 0 {
            self.packet_id(&mut body)?;
        }
        let properties = if self.is_v5() {
            self.properties(&mut body)?
        } else {
            0
        };
        // What is left is the payload: never read.
        if topic.is_empty() {
            if !self.is_v5() {
                return Err(self.malformed("empty topic name"));
            }
            if properties & bit(TOPIC_ALIAS) == 0 {
                return Err(self.protocol_error("empty topic name without a Topic Alias"));
            }
        }
        Ok(())
    }

    /// A topic name is UTF-8 without U+0000 and without wildcards [MQTT-3.3.2-2].
    fn topic_name(&self, topic: &[u8]) -> Result<(), Violation> {
        if let Some(&byte) = topic.iter().find(|&&b| matches!(b, b'+' | b'#' | 0)) {
            let what = match byte {
                0 => "U+0000",
                b'+' => "the wildcard '+'",
                _ => "the wildcard '#'",
            };
            // A short, printable excerpt: enough to recognise the topic, never the whole of it.
            let mut excerpt: String = String::from_utf8_lossy(topic.get(..24).unwrap_or(topic))
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect();
            if topic.len() > 24 {
                excerpt.push_str("...");
            }
            return Err(self.malformed(format_args!("topic name \"{excerpt}\" contains {what}")));
        }
        if std::str::from_utf8(topic).is_err() {
            return Err(self.malformed("topic name is not valid UTF-8"));
        }
        Ok(())
    }

    /// PUBACK, PUBREC, PUBREL, PUBCOMP: the packet identifier, then on 5.0 an optional reason
    /// code and optional properties [MQTT 5.0 3.4.2.1].
    fn publish_ack(&self, mut body: Reader) -> Result<(), Violation> {
        if !self.is_v5() {
            self.exact_length(&body, 2)?;
        }
        self.packet_id(&mut body)?;
        let Some(code) = body.u8() else {
            return Ok(());
        };
        self.reason_code(code)?;
        if body.is_empty() {
            return Ok(());
        }
        self.properties(&mut body)?;
        self.nothing_after_properties(&body)
    }

    fn suback(&self, mut body: Reader) -> Result<(), Violation> {
        if body.len() < 3 {
            return Err(self.malformed(format_args!(
                "remaining length {} is shorter than a packet identifier and one return code",
                body.len()
            )));
        }
        self.packet_id(&mut body)?;
        if self.is_v5() {
            self.properties(&mut body)?;
            if body.is_empty() {
                return Err(self.malformed("no reason codes after the properties"));
            }
            for &code in body.rest {
                self.reason_code(code)?;
            }
        } else if let Some(&code) = body.rest.iter().find(|&&c| !matches!(c, 0..=2 | 0x80)) {
            return Err(self.malformed(format_args!("unknown return code {code:#04x}")));
        }
        Ok(())
    }

    fn unsuback_v311(&self, mut body: Reader) -> Result<(), Violation> {
        self.exact_length(&body, 2)?;
        self.packet_id(&mut body)
    }

    fn unsuback_v5(&self, mut body: Reader) -> Result<(), Violation> {
        self.packet_id(&mut body)?;
        if body.is_empty() {
            return Err(self.malformed("no property length"));
        }
        self.properties(&mut body)?;
        if body.is_empty() {
            return Err(self.malformed("no reason codes after the properties"));
        }
        for &code in body.rest {
            self.reason_code(code)?;
        }
        Ok(())
    }

    /// 5.0 only: empty (normal disconnection), a reason code, or a reason code and properties.
    fn disconnect(&self, mut body: Reader) -> Result<(), Violation> {
        let Some(code) = body.u8() else {
            return Ok(());
        };
        self.reason_code(code)?;
        if code == 0x04 {
            return Err(self.protocol_error("reason code 0x04 is only sent by clients"));
        }
        if body.is_empty() {
            return Ok(());
        }
        self.properties(&mut body)?;
        self.nothing_after_properties(&body)
    }

    /// 5.0 only: empty (success), or a reason code with properties that name the
    /// authentication method (MQTT-3.15.2.2.2: omitting it is a protocol error); only the
    /// structure is checked here, the authentication exchange belongs to the session.
    fn auth(&self, mut body: Reader) -> Result<(), Violation> {
        let Some(code) = body.u8() else {
            return Ok(());
        };
        self.reason_code(code)?;
        if body.is_empty() {
            return Err(self.malformed("reason code without a property length"));
        }
        let seen = self.properties(&mut body)?;
        self.nothing_after_properties(&body)?;
        if seen & bit(AUTHENTICATION_METHOD) == 0 {
            return Err(self.protocol_error("AUTH without an Authentication Method"));
        }
        Ok(())
    }

    /// Reads a property length and the properties it covers, checking each one: known, allowed
    /// in this packet, not repeated (unless it may be), value in range. Returns the set of
    /// property ids seen.
    fn properties(&self, body: &mut Reader) -> Result<u64, Violation> {
        let len = self.varint(body, "property length")?;
        let section = usize::try_from(len).ok().and_then(|len| body.take(len));
        let mut properties = Reader::new(section.ok_or_else(|| {
            self.malformed(format_args!(
                "property length {len} runs past the end of the packet"
            ))
        })?);
        let allowed = self.packet.allowed_properties();
        let repeatable = self.packet.repeatable_properties();
        let mut seen = 0u64;
        while let Some(id) = properties.u8() {
            let Some((name, value_type)) = property_info(id) else {
                return Err(self.malformed(format_args!("unknown property id {id:#04x}")));
            };
            if allowed & bit(id) == 0 {
                return Err(self.protocol_error(format_args!(
                    "property {name} is not allowed in this packet"
                )));
            }
            if seen & bit(id) != 0 && repeatable & bit(id) == 0 {
                return Err(self.protocol_error(format_args!("property {name} given twice")));
            }
            seen |= bit(id);
            self.property_value(&mut properties, id, name, value_type)?;
        }
        Ok(seen)
    }

    fn property_value(
        &self,
        properties: &mut Reader,
        id: u8,
        name: &str,
        value_type: ValueType,
    ) -> Result<(), Violation> {
        let overrun = || {
            self.malformed(format_args!(
                "property {name} runs past the end of the properties"
            ))
        };
        match value_type {
            ValueType::Byte => {
                let value = properties.u8().ok_or_else(overrun)?;
                if value > 1 {
                    // Payload Format Indicator is 0 or 1 by definition; the others say "It is a
                    // Protocol Error to ... use a value other than 0 or 1".
                    let reason = if id == PAYLOAD_FORMAT_INDICATOR {
                        MALFORMED_PACKET
                    } else {
                        PROTOCOL_ERROR
                    };
                    return Err(self.fail(
                        reason,
                        format_args!("property {name} is {value}, must be 0 or 1"),
                    ));
                }
            }
            ValueType::TwoByte => {
                let value = properties.u16().ok_or_else(overrun)?;
                if value == 0 && id == RECEIVE_MAXIMUM {
                    return Err(self.protocol_error("property Receive Maximum is 0"));
                }
                if value == 0 && id == TOPIC_ALIAS {
                    return Err(self.fail(TOPIC_ALIAS_INVALID, "property Topic Alias is 0"));
                }
            }
            ValueType::FourByte => {
                let value = properties.u32().ok_or_else(overrun)?;
                if value == 0 && id == MAXIMUM_PACKET_SIZE {
                    return Err(self.protocol_error("property Maximum Packet Size is 0"));
                }
            }
            ValueType::Varint => {
                let value = self.varint(properties, name)?;
                if value == 0 && id == SUBSCRIPTION_IDENTIFIER {
                    return Err(self.protocol_error("property Subscription Identifier is 0"));
                }
            }
            ValueType::Binary => {
                properties.prefixed().ok_or_else(overrun)?;
            }
            ValueType::Utf8 => {
                let text = properties.prefixed().ok_or_else(overrun)?;
                self.utf8(text, name)?;
            }
            ValueType::Utf8Pair => {
                let key = properties.prefixed().ok_or_else(overrun)?;
                self.utf8(key, "User Property name")?;
                let value = properties.prefixed().ok_or_else(overrun)?;
                self.utf8(value, "User Property value")?;
            }
        }
        Ok(())
    }

    /// A UTF-8 Encoded String: well-formed and without U+0000 [MQTT-1.5.4-1, MQTT-1.5.4-2].
    fn utf8(&self, text: &[u8], what: &str) -> Result<(), Violation> {
        if text.contains(&0) {
            return Err(self.malformed(format_args!("{what} contains U+0000")));
        }
        if std::str::from_utf8(text).is_err() {
            return Err(self.malformed(format_args!("{what} is not valid UTF-8")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use rumqttc::mqttbytes::v4;
    use rumqttc::v5::mqttbytes::v5;
    use ProtocolVersion::{V311, V5};

    fn varint(mut n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let byte = (n % 128) as u8;
            n /= 128;
            out.push(if n > 0 { byte | 0x80 } else { byte });
            if n == 0 {
                return out;
            }
        }
    }

    /// A frame: the first byte, the remaining length of `body`, then `body`.
    fn frame(first: u8, body: &[u8]) -> Vec<u8> {
        [&[first][..], &varint(body.len()), body].concat()
    }

    /// A v5 frame: variable header start, property length and properties, then the rest.
    fn frame5(first: u8, head: &[u8], properties: &[u8], rest: &[u8]) -> Vec<u8> {
        frame(
            first,
            &[head, &varint(properties.len()), properties, rest].concat(),
        )
    }

    /// A length-prefixed string or binary value.
    fn s(bytes: &[u8]) -> Vec<u8> {
        [&(bytes.len() as u16).to_be_bytes()[..], bytes].concat()
    }

    /// A property: id, then value bytes.
    fn prop(id: u8, value: &[u8]) -> Vec<u8> {
        [&[id][..], value].concat()
    }

    #[track_caller]
    fn refused(version: ProtocolVersion, bytes: &[u8], reason: u8, packet: &str) -> Violation {
        let Err(v) = check_incoming_frame(version, bytes) else {
            panic!("{version:?} {bytes:02x?} was accepted")
        };
        assert_eq!(v.reason, reason, "{version:?} {bytes:02x?}: {}", v.detail);
        assert!(
            v.detail.starts_with(packet),
            "{version:?} {bytes:02x?}: detail {:?} does not name {packet}",
            v.detail
        );
        v
    }

    #[track_caller]
    fn accepted(version: ProtocolVersion, bytes: &[u8]) {
        if let Err(v) = check_incoming_frame(version, bytes) {
            panic!("{version:?} {bytes:02x?} was refused: {}", v.detail)
        }
    }

    // --- fixed header -------------------------------------------------------------------------

    #[test]
    fn reserved_fixed_header_flags_are_malformed() {
        for version in [V311, V5] {
            refused(version, &[0x21, 0x02, 0x00, 0x00], 0x81, "CONNACK");
            refused(version, &[0x48, 0x02, 0x00, 0x09], 0x81, "PUBACK");
            refused(version, &[0x51, 0x02, 0x00, 0x09], 0x81, "PUBREC");
            refused(version, &[0x60, 0x02, 0x00, 0x09], 0x81, "PUBREL");
            refused(version, &[0x63, 0x02, 0x00, 0x09], 0x81, "PUBREL");
            refused(version, &[0x72, 0x02, 0x00, 0x09], 0x81, "PUBCOMP");
            refused(version, &[0x92, 0x03, 0x00, 0x01, 0x00], 0x81, "SUBACK");
            refused(version, &[0xB2, 0x02, 0x00, 0x01], 0x81, "UNSUBACK");
            refused(version, &[0xD1, 0x00], 0x81, "PINGRESP");
        }
        refused(V5, &[0xE1, 0x00], 0x81, "DISCONNECT");
        refused(V5, &[0xF4, 0x00], 0x81, "AUTH");
    }

    #[test]
    fn publish_with_both_qos_bits_set_is_malformed() {
        refused(V311, &frame(0x36, b"\x00\x01a\x00\x01"), 0x81, "PUBLISH");
        refused(V5, &frame(0x36, b"\x00\x01a\x00\x01\x00"), 0x81, "PUBLISH");
    }

    #[test]
    fn publish_dup_on_qos_0_is_malformed() {
        refused(V311, &frame(0x38, b"\x00\x01a"), 0x81, "PUBLISH");
        refused(V5, &frame(0x39, b"\x00\x01a\x00"), 0x81, "PUBLISH");
    }

    #[test]
    fn packets_a_broker_never_sends_are_protocol_errors() {
        for version in [V311, V5] {
            refused(version, &[0x00, 0x00], 0x82, "reserved packet type 0");
            refused(
                version,
                &frame(0x10, b"\x00\x04MQTT\x04\x02\x00\x3c\x00\x00"),
                0x82,
                "CONNECT",
            );
            refused(
                version,
                &frame(0x82, b"\x00\x01\x00\x01a\x00"),
                0x82,
                "SUBSCRIBE",
            );
            refused(
                version,
                &frame(0xA2, b"\x00\x01\x00\x01a"),
                0x82,
                "UNSUBSCRIBE",
            );
            refused(version, &[0xC0, 0x00], 0x82, "PINGREQ");
        }
        refused(V311, &[0xE0, 0x00], 0x82, "DISCONNECT");
        refused(V311, &[0xF0, 0x00], 0x82, "AUTH");
    }

    #[test]
    fn auth_from_a_v5_broker_is_checked_for_structure() {
        accepted(V5, &[0xF0, 0x00]);
        let method = prop(0x15, &s(b"SCRAM-SHA-1"));
        let data = prop(0x16, &s(b"\x01\x02\x03"));
        accepted(
            V5,
            &frame5(0xF0, &[0x18], &[method.clone(), data].concat(), &[]),
        );
        refused(V5, &[0xF0, 0x01, 0x18], 0x81, "AUTH");
        let data_only = prop(0x16, &s(b"\x01"));
        refused(V5, &frame5(0xF0, &[0x18], &data_only, &[]), 0x82, "AUTH");
        refused(V5, &[0xF0, 0x02, 0x00, 0x00], 0x82, "AUTH");
        refused(V5, &frame5(0xF0, &[0x42], &method, &[]), 0x81, "AUTH");
        refused(V5, &frame5(0xF0, &[0x18], &method, &[0x00]), 0x81, "AUTH");
    }

    // --- lengths ------------------------------------------------------------------------------

    #[test]
    fn remaining_length_longer_than_4_bytes_is_malformed() {
        for version in [V311, V5] {
            refused(
                version,
                &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],
                0x81,
                "PUBLISH",
            );
            refused(
                version,
                &[0x30, 0x80, 0x80, 0x80, 0x80, 0x00],
                0x81,
                "PUBLISH",
            );
            refused(version, &[0xD0, 0x80], 0x81, "PINGRESP");
            refused(version, &[0xD0], 0x81, "PINGRESP");
        }
    }

    #[test]
    fn v5_varints_use_the_shortest_encoding() {
        refused(V5, &[0xE0, 0x80, 0x00], 0x81, "DISCONNECT");
        refused(V5, &[0x40, 0x82, 0x00, 0x00, 0x09], 0x81, "PUBACK");
        refused(V5, &frame(0x30, b"\x00\x01a\x80\x00"), 0x81, "PUBLISH");
        refused(
            V5,
            &frame5(0x30, &s(b"a"), &[0x0B, 0x81, 0x00], &[]),
            0x81,
            "PUBLISH",
        );
        accepted(V5, &frame5(0x30, &s(b"a"), &[0x0B, 0x80, 0x01], &[]));
        // 3.1.1 has no such rule, and rumqttc reads these.
        accepted(V311, &[0xD0, 0x80, 0x00]);
        accepted(V311, &[0x40, 0x82, 0x00, 0x00, 0x09]);
    }

    #[test]
    fn remaining_length_must_match_the_frame() {
        for version in [V311, V5] {
            refused(version, &[0x40, 0x03, 0x00, 0x09], 0x81, "PUBACK");
            refused(version, &[0x40, 0x02, 0x00, 0x09, 0x00], 0x81, "PUBACK");
        }
    }

    #[test]
    fn v311_acks_connack_and_unsuback_are_exactly_two_bytes() {
        for first in [0x40, 0x50, 0x62, 0x70, 0xB0, 0x20] {
            let name = PacketType::from_header(first).name();
            refused(V311, &[first, 0x01, 0x00], 0x81, name);
            refused(V311, &[first, 0x03, 0x00, 0x00, 0x00], 0x81, name);
            refused(V311, &[first, 0x00], 0x81, name);
        }
    }

    #[test]
    fn pingresp_is_empty() {
        for version in [V311, V5] {
            refused(version, &[0xD0, 0x01, 0x00], 0x81, "PINGRESP");
        }
    }

    #[test]
    fn v5_acks_are_2_or_3_bytes_or_carry_properties_that_fill_the_rest() {
        for first in [0x40u8, 0x50, 0x62, 0x70] {
            let name = PacketType::from_header(first).name();
            accepted(V5, &[first, 0x02, 0x00, 0x09]);
            accepted(V5, &[first, 0x03, 0x00, 0x09, 0x00]);
            accepted(V5, &[first, 0x04, 0x00, 0x09, 0x00, 0x00]);
            refused(V5, &[first, 0x01, 0x00], 0x81, name);
            refused(V5, &[first, 0x00], 0x81, name);
            // Property length 3, but only 2 bytes follow.
            refused(
                V5,
                &[first, 0x06, 0x00, 0x09, 0x00, 0x03, 0x26, 0x00],
                0x81,
                name,
            );
            // Properties end before the packet does.
            refused(V5, &[first, 0x05, 0x00, 0x09, 0x00, 0x00, 0x00], 0x81, name);
        }
    }

    #[test]
    fn v5_connack_carries_a_property_length_and_properties_that_fill_the_rest() {
        refused(V5, &[0x20, 0x02, 0x00, 0x00], 0x81, "CONNACK");
        refused(V5, &[0x20, 0x01, 0x00], 0x81, "CONNACK");
        refused(V5, &[0x20, 0x04, 0x00, 0x00, 0x00, 0x00], 0x81, "CONNACK");
        refused(V5, &[0x20, 0x04, 0x00, 0x00, 0x02, 0x24], 0x81, "CONNACK");
    }

    #[test]
    fn suback_has_a_packet_id_and_at_least_one_code() {
        refused(V311, &[0x90, 0x02, 0x00, 0x01], 0x81, "SUBACK");
        refused(V5, &[0x90, 0x02, 0x00, 0x01], 0x81, "SUBACK");
        refused(V5, &[0x90, 0x03, 0x00, 0x01, 0x00], 0x81, "SUBACK");
        // v5 properties are consumed exactly: length 4 leaves no reason code, length 9 overruns.
        let reason = prop(0x1F, b"\x00\x01x");
        refused(
            V5,
            &frame5(0x90, &[0x00, 0x01], &reason, &[]),
            0x81,
            "SUBACK",
        );
        refused(
            V5,
            &frame(0x90, &[&[0x00, 0x01, 0x09][..], &reason, &[0x00]].concat()),
            0x81,
            "SUBACK",
        );
    }

    #[test]
    fn v5_unsuback_has_properties_and_at_least_one_code() {
        refused(V5, &[0xB0, 0x02, 0x00, 0x01], 0x81, "UNSUBACK");
        refused(V5, &[0xB0, 0x03, 0x00, 0x01, 0x00], 0x81, "UNSUBACK");
        refused(V5, &[0xB0, 0x04, 0x00, 0x01, 0x05, 0x00], 0x81, "UNSUBACK");
    }

    #[test]
    fn publish_fields_stay_inside_the_body() {
        for version in [V311, V5] {
            refused(version, &[0x30, 0x01, 0x00], 0x81, "PUBLISH");
            refused(version, &frame(0x30, b"\x00\x05a/b"), 0x81, "PUBLISH");
            refused(version, &frame(0x32, b"\x00\x03a/b\x00"), 0x81, "PUBLISH");
            refused(version, &frame(0x34, b"\x00\x03a/b"), 0x81, "PUBLISH");
        }
        // v5: no property length, or one past the end of the body.
        refused(V5, &frame(0x30, b"\x00\x03a/b"), 0x81, "PUBLISH");
        refused(
            V5,
            &frame(0x30, b"\x00\x03a/b\x05\x01\x01"),
            0x81,
            "PUBLISH",
        );
        refused(V5, &frame(0x30, b"\x00\x03a/b\x80"), 0x81, "PUBLISH");
        // 3.1.1 has no properties: the same bytes are topic + payload.
        accepted(V311, &frame(0x30, b"\x00\x03a/b\x05\x01\x01"));
    }

    #[test]
    fn property_values_cannot_overrun_the_property_section() {
        // Message Expiry Interval needs 4 bytes, the section holds 2 after the id.
        refused(
            V5,
            &frame5(0x30, &s(b"a"), &[0x02, 0x00, 0x00], b"payload"),
            0x81,
            "PUBLISH",
        );
        refused(
            V5,
            &frame5(0x40, &[0x00, 0x09, 0x00], &[0x1F, 0x00, 0x05, b'x'], &[]),
            0x81,
            "PUBACK",
        );
        refused(
            V5,
            &frame5(0x30, &s(b"a"), &[0x0B, 0x80], &[]),
            0x81,
            "PUBLISH",
        );
        refused(
            V5,
            &frame5(0x30, &s(b"a"), &[0x0B, 0x80, 0x80, 0x80, 0x80, 0x01], &[]),
            0x81,
            "PUBLISH",
        );
    }

    // --- CONNACK --------------------------------------------------------------------------------

    #[test]
    fn connack_reserved_acknowledge_flags_are_malformed() {
        refused(V311, &[0x20, 0x02, 0x02, 0x00], 0x81, "CONNACK");
        refused(V311, &[0x20, 0x02, 0x80, 0x00], 0x81, "CONNACK");
        refused(V5, &[0x20, 0x03, 0x04, 0x00, 0x00], 0x81, "CONNACK");
    }

    #[test]
    fn v311_connack_return_code_is_0_to_5() {
        accepted(V311, &[0x20, 0x02, 0x00, 0x05]);
        refused(V311, &[0x20, 0x02, 0x00, 0x06], 0x81, "CONNACK");
        refused(V311, &[0x20, 0x02, 0x00, 0x80], 0x81, "CONNACK");
    }

    #[test]
    fn connack_refusal_has_no_session() {
        refused(V311, &[0x20, 0x02, 0x01, 0x04], 0x82, "CONNACK");
        refused(V5, &[0x20, 0x03, 0x01, 0x87, 0x00], 0x82, "CONNACK");
    }

    #[test]
    fn v5_connack_property_values_are_checked() {
        let connack = |properties: &[u8]| frame5(0x20, &[0x00, 0x00], properties, &[]);
        refused(V5, &connack(&[0x21, 0x00, 0x00]), 0x82, "CONNACK");
        refused(V5, &connack(&[0x24, 0x02]), 0x82, "CONNACK");
        refused(
            V5,
            &connack(&[0x27, 0x00, 0x00, 0x00, 0x00]),
            0x82,
            "CONNACK",
        );
        for boolean in [0x25, 0x28, 0x29, 0x2A] {
            accepted(V5, &connack(&[boolean, 0x00]));
            accepted(V5, &connack(&[boolean, 0x01]));
            refused(V5, &connack(&[boolean, 0x02]), 0x82, "CONNACK");
        }
        accepted(V5, &connack(&[0x24, 0x00]));
        accepted(V5, &connack(&[0x24, 0x01]));
        // Given twice, unknown id, not allowed in CONNACK.
        refused(
            V5,
            &connack(&[0x21, 0x00, 0x0A, 0x21, 0x00, 0x0A]),
            0x82,
            "CONNACK",
        );
        refused(V5, &connack(&[0x30, 0x00]), 0x81, "CONNACK");
        refused(V5, &connack(&[0x00]), 0x81, "CONNACK");
        refused(V5, &connack(&[0x23, 0x00, 0x01]), 0x82, "CONNACK");
        refused(V5, &connack(&[0x01, 0x00]), 0x82, "CONNACK");
        refused(V5, &connack(&[0x17, 0x01]), 0x82, "CONNACK");
    }

    // --- packet identifiers -----------------------------------------------------------------------

    #[test]
    fn packet_identifier_0_is_refused() {
        for version in [V311, V5] {
            for first in [0x40u8, 0x50, 0x62, 0x70] {
                let name = PacketType::from_header(first).name();
                refused(version, &[first, 0x02, 0x00, 0x00], 0x82, name);
            }
            refused(version, &[0x90, 0x03, 0x00, 0x00, 0x00], 0x82, "SUBACK");
            refused(
                version,
                &[0x32, 0x05, 0x00, 0x01, b'a', 0x00, 0x00],
                0x82,
                "PUBLISH",
            );
        }
        refused(V311, &[0xB0, 0x02, 0x00, 0x00], 0x82, "UNSUBACK");
        refused(V5, &[0xB0, 0x04, 0x00, 0x00, 0x00, 0x00], 0x82, "UNSUBACK");
        refused(V5, &[0x90, 0x04, 0x00, 0x00, 0x00, 0x00], 0x82, "SUBACK");
        refused(
            V5,
            &[0x34, 0x06, 0x00, 0x01, b'a', 0x00, 0x00, 0x00],
            0x82,
            "PUBLISH",
        );
    }

    // --- v5 properties in every packet ------------------------------------------------------------

    fn v5_packets_with(properties: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
        vec![
            (
                "PUBLISH",
                frame5(
                    0x32,
                    &[&s(b"a/b")[..], &[0x00, 0x07]].concat(),
                    properties,
                    b"hi",
                ),
            ),
            ("PUBACK", frame5(0x40, &[0x00, 0x07, 0x00], properties, &[])),
            ("PUBREC", frame5(0x50, &[0x00, 0x07, 0x10], properties, &[])),
            ("PUBREL", frame5(0x62, &[0x00, 0x07, 0x00], properties, &[])),
            (
                "PUBCOMP",
                frame5(0x70, &[0x00, 0x07, 0x92], properties, &[]),
            ),
            ("SUBACK", frame5(0x90, &[0x00, 0x07], properties, &[0x01])),
            ("UNSUBACK", frame5(0xB0, &[0x00, 0x07], properties, &[0x00])),
            ("DISCONNECT", frame5(0xE0, &[0x8B], properties, &[])),
            // AUTH must name its method: it goes first, the properties under test after it.
            (
                "AUTH",
                frame5(
                    0xF0,
                    &[0x18],
                    &[&prop(0x15, &s(b"M"))[..], properties].concat(),
                    &[],
                ),
            ),
            ("CONNACK", frame5(0x20, &[0x00, 0x00], properties, &[])),
        ]
    }

    #[test]
    fn properties_given_twice_are_protocol_errors_in_every_packet() {
        let reason = prop(0x1F, &s(b"why"));
        for (name, bytes) in v5_packets_with(&[reason.clone(), reason.clone()].concat()) {
            if name == "PUBLISH" {
                continue; // Reason String is not a PUBLISH property: see below.
            }
            refused(V5, &bytes, 0x82, name);
        }
        let expiry = prop(0x02, &[0, 0, 0, 60]);
        refused(
            V5,
            &v5_packets_with(&[expiry.clone(), expiry].concat())[0].1,
            0x82,
            "PUBLISH",
        );
        let content = prop(0x03, &s(b"text/plain"));
        refused(
            V5,
            &v5_packets_with(&[content.clone(), content].concat())[0].1,
            0x82,
            "PUBLISH",
        );
    }

    #[test]
    fn properties_not_allowed_in_the_packet_are_protocol_errors() {
        // Session Expiry Interval is a CONNACK property, and a server never sends it in DISCONNECT.
        let session_expiry = prop(0x11, &[0, 0, 0, 10]);
        for (name, bytes) in v5_packets_with(&session_expiry) {
            if name == "CONNACK" {
                accepted(V5, &bytes);
            } else {
                refused(V5, &bytes, 0x82, name);
            }
        }
        let topic_alias = prop(0x23, &[0x00, 0x01]);
        for (name, bytes) in v5_packets_with(&topic_alias) {
            if name == "PUBLISH" {
                accepted(V5, &bytes);
            } else {
                refused(V5, &bytes, 0x82, name);
            }
        }
    }

    #[test]
    fn unknown_property_ids_are_malformed_in_every_packet() {
        for id in [0x00, 0x04, 0x2B, 0x7F, 0xFF] {
            for (name, bytes) in v5_packets_with(&[id, 0x00]) {
                refused(V5, &bytes, 0x81, name);
            }
        }
    }

    #[test]
    fn user_property_may_repeat_in_every_packet() {
        let user = prop(0x26, &[s(b"k"), s(b"v")].concat());
        for (_, bytes) in v5_packets_with(&[user.clone(), user.clone(), user].concat()) {
            accepted(V5, &bytes);
        }
    }

    #[test]
    fn publish_may_carry_several_subscription_identifiers_but_not_0() {
        let ids = [prop(0x0B, &[0x01]), prop(0x0B, &[0xC8, 0x01])].concat();
        accepted(V5, &v5_packets_with(&ids)[0].1);
        refused(
            V5,
            &v5_packets_with(&prop(0x0B, &[0x00]))[0].1,
            0x82,
            "PUBLISH",
        );
    }

    #[test]
    fn payload_format_indicator_is_0_or_1() {
        accepted(V5, &v5_packets_with(&[0x01, 0x00])[0].1);
        accepted(V5, &v5_packets_with(&[0x01, 0x01])[0].1);
        refused(V5, &v5_packets_with(&[0x01, 0x02])[0].1, 0x81, "PUBLISH");
    }

    #[test]
    fn topic_alias_0_is_invalid() {
        refused(
            V5,
            &v5_packets_with(&[0x23, 0x00, 0x00])[0].1,
            0x94,
            "PUBLISH",
        );
        refused(
            V5,
            &frame5(0x30, &s(b""), &[0x23, 0x00, 0x00], b"x"),
            0x94,
            "PUBLISH",
        );
    }

    #[test]
    fn strings_in_properties_are_utf8_without_nul() {
        for bad in [&b"a\x00b"[..], b"\xC3\x28", b"\xED\xA0\x80", b"\xFF"] {
            for id in [0x03, 0x08] {
                refused(
                    V5,
                    &v5_packets_with(&prop(id, &s(bad)))[0].1,
                    0x81,
                    "PUBLISH",
                );
            }
            refused(
                V5,
                &v5_packets_with(&prop(0x1F, &s(bad)))[1].1,
                0x81,
                "PUBACK",
            );
            refused(
                V5,
                &v5_packets_with(&prop(0x12, &s(bad)))[9].1,
                0x81,
                "CONNACK",
            );
            refused(
                V5,
                &v5_packets_with(&prop(0x1C, &s(bad)))[7].1,
                0x81,
                "DISCONNECT",
            );
            for (name, bytes) in v5_packets_with(&prop(0x26, &[s(bad), s(b"v")].concat())) {
                refused(V5, &bytes, 0x81, name);
            }
            for (name, bytes) in v5_packets_with(&prop(0x26, &[s(b"k"), s(bad)].concat())) {
                refused(V5, &bytes, 0x81, name);
            }
        }
        // Binary data is not text: any bytes will do.
        accepted(V5, &v5_packets_with(&prop(0x09, &s(b"\x00\xFF")))[0].1);
    }

    // --- topic names ------------------------------------------------------------------------------

    #[test]
    fn publish_topic_is_utf8_without_wildcards_or_nul() {
        for version in [V311, V5] {
            let props: &[u8] = if version == V5 { &[0x00] } else { &[] };
            for topic in [
                &b"a/+/b"[..],
                b"a/#",
                b"#",
                b"+",
                b"a\x00b",
                b"\xC3\x28",
                b"\xF0\x9F\x98",
            ] {
                let bytes = frame(0x30, &[&s(topic)[..], props, b"payload"].concat());
                refused(version, &bytes, 0x81, "PUBLISH");
            }
            accepted(
                version,
                &frame(
                    0x30,
                    &[&s("caf\u{e9}/\u{1F600}".as_bytes())[..], props].concat(),
                ),
            );
        }
    }

    #[test]
    fn empty_topic_needs_a_v5_topic_alias() {
        refused(V311, &frame(0x30, b"\x00\x00payload"), 0x81, "PUBLISH");
        refused(V5, &frame5(0x30, &s(b""), &[], b"payload"), 0x82, "PUBLISH");
        refused(
            V5,
            &frame5(0x30, &s(b""), &[0x02, 0, 0, 0, 1], b"payload"),
            0x82,
            "PUBLISH",
        );
        accepted(V5, &frame5(0x30, &s(b""), &[0x23, 0x00, 0x01], b"payload"));
    }

    // --- v5 reason codes --------------------------------------------------------------------------

    #[test]
    fn unknown_v5_reason_codes_are_malformed() {
        refused(V5, &[0x40, 0x03, 0x00, 0x09, 0x01], 0x81, "PUBACK");
        refused(V5, &[0x40, 0x03, 0x00, 0x09, 0x92], 0x81, "PUBACK");
        refused(V5, &[0x50, 0x03, 0x00, 0x09, 0x11], 0x81, "PUBREC");
        refused(V5, &[0x62, 0x03, 0x00, 0x09, 0x10], 0x81, "PUBREL");
        refused(V5, &[0x70, 0x04, 0x00, 0x09, 0x80, 0x00], 0x81, "PUBCOMP");
        refused(
            V5,
            &[0x90, 0x05, 0x00, 0x09, 0x00, 0x00, 0x03],
            0x81,
            "SUBACK",
        );
        refused(
            V5,
            &[0x90, 0x05, 0x00, 0x09, 0x00, 0x80, 0x92],
            0x81,
            "SUBACK",
        );
        refused(V5, &[0xB0, 0x04, 0x00, 0x09, 0x00, 0x01], 0x81, "UNSUBACK");
        refused(V5, &[0xE0, 0x01, 0x01], 0x81, "DISCONNECT");
        refused(V5, &[0xE0, 0x01, 0x8A], 0x81, "DISCONNECT");
        refused(V5, &[0x20, 0x03, 0x00, 0x01, 0x00], 0x81, "CONNACK");
        // A known code, but only clients send it.
        refused(V5, &[0xE0, 0x01, 0x04], 0x82, "DISCONNECT");
    }

    // --- what the detail says ---------------------------------------------------------------------

    #[test]
    fn detail_names_type_and_size_never_the_contents() {
        let topic = format!("{}+{}", "t".repeat(500), "SECRET");
        let bytes = frame(
            0x30,
            &[&s(topic.as_bytes())[..], b"SECRET PAYLOAD"].concat(),
        );
        let v = refused(V311, &bytes, 0x81, "PUBLISH");
        assert!(
            v.detail.contains(&format!("({} bytes)", bytes.len())),
            "{}",
            v.detail
        );
        assert!(!v.detail.contains("SECRET"), "{}", v.detail);
        assert!(v.detail.len() < 120, "{}", v.detail);
        let controls = [&[0x01u8; 40][..], b"#"].concat();
        let v = refused(V311, &frame(0x30, &s(&controls)), 0x81, "PUBLISH");
        assert!(v.detail.len() < 120, "{}", v.detail);
        let reason = prop(0x1F, &s(b"SECRET\xFF"));
        let v = refused(
            V5,
            &frame5(0x40, &[0x00, 0x01, 0x80], &reason, &[]),
            0x81,
            "PUBACK",
        );
        assert!(!v.detail.contains("SECRET"), "{}", v.detail);
    }

    // --- valid packets ----------------------------------------------------------------------------

    fn valid_v311() -> Vec<Vec<u8>> {
        vec![
            vec![0x20, 0x02, 0x00, 0x00],
            vec![0x20, 0x02, 0x01, 0x00],
            vec![0x20, 0x02, 0x00, 0x05],
            frame(0x30, b"\x00\x03a/b"),
            frame(0x31, b"\x00\x0bsensors/t/1{\"t\":21.5}"),
            frame(0x32, b"\x00\x03a/b\x00\x01hello"),
            frame(0x3D, b"\x00\x03a/b\x00\x07hello"),
            frame(
                0x34,
                &[
                    &s("caf\u{e9}/\u{1F600}".as_bytes())[..],
                    b"\xFF\xFE",
                    &[0x42; 300],
                ]
                .concat(),
            ),
            vec![0x40, 0x02, 0x00, 0x09],
            vec![0x50, 0x02, 0x00, 0x09],
            vec![0x62, 0x02, 0x00, 0x09],
            vec![0x70, 0x02, 0xFF, 0xFF],
            vec![0x90, 0x03, 0x00, 0x01, 0x01],
            vec![0x90, 0x06, 0x12, 0x34, 0x00, 0x01, 0x02, 0x80],
            vec![0xB0, 0x02, 0x00, 0x01],
            vec![0xD0, 0x00],
        ]
    }

    fn valid_v5() -> Vec<Vec<u8>> {
        let user = prop(0x26, &[s(b"node"), s(b"emqx@10.0.0.1")].concat());
        vec![
            vec![0x20, 0x03, 0x00, 0x00, 0x00],
            vec![0x20, 0x03, 0x01, 0x00, 0x00],
            // mosquitto 2.x: Topic Alias Maximum 10, Receive Maximum 20.
            vec![
                0x20, 0x09, 0x00, 0x00, 0x06, 0x22, 0x00, 0x0A, 0x21, 0x00, 0x14,
            ],
            // mosquitto with an assigned client id and Retain Available.
            frame5(
                0x20,
                &[0x00, 0x00],
                &[
                    prop(0x12, &s(b"auto-5F2C1D3E-0C7A")),
                    vec![0x22, 0x00, 0x0A, 0x21, 0x00, 0x14, 0x25, 0x01],
                ]
                .concat(),
                &[],
            ),
            // EMQX-style: every limit and feature flag, a reason string and a user property.
            frame5(
                0x20,
                &[0x01, 0x00],
                &[
                    vec![
                        0x27, 0x00, 0x10, 0x00, 0x00, 0x13, 0x00, 0x3C, 0x11, 0x00, 0x00, 0x1C,
                        0x20,
                    ],
                    vec![0x21, 0x00, 0x20, 0x22, 0xFF, 0xFF, 0x24, 0x01, 0x25, 0x01],
                    vec![0x28, 0x01, 0x29, 0x00, 0x2A, 0x01],
                    prop(0x1A, &s(b"reply/")),
                    prop(0x1F, &s(b"welcome")),
                    user.clone(),
                    user.clone(),
                ]
                .concat(),
                &[],
            ),
            frame5(0x20, &[0x00, 0x87], &prop(0x1F, &s(b"not authorized")), &[]),
            frame5(
                0x20,
                &[0x00, 0x9C],
                &prop(0x1C, &s(b"other.example:1883")),
                &[],
            ),
            frame5(
                0x20,
                &[0x00, 0x00],
                &[prop(0x15, &s(b"SCRAM-SHA-1")), prop(0x16, &s(b"\x00\x01"))].concat(),
                &[],
            ),
            frame(0x30, b"\x00\x03a/b\x00"),
            frame(0x30, b"\x00\x03a/b\x00hello"),
            frame(0x3D, b"\x00\x03a/b\x00\x07\x00hello"),
            frame5(
                0x33,
                &[&s(b"devices/42/cmd")[..], &[0x01, 0x2C]].concat(),
                &[
                    vec![0x01, 0x01, 0x02, 0x00, 0x00, 0x0E, 0x10],
                    prop(0x03, &s(b"application/json")),
                    prop(0x08, &s(b"devices/42/reply")),
                    prop(0x09, &s(b"\x8F\x00\x01")),
                    user.clone(),
                    user.clone(),
                    vec![0x0B, 0x05, 0x0B, 0xFF, 0xFF, 0xFF, 0x7F],
                ]
                .concat(),
                b"{\"on\":true}",
            ),
            frame5(0x30, &s(b""), &[0x23, 0x00, 0x03], b"aliased"),
            frame5(0x30, &s(b"a/b"), &[0x23, 0x00, 0x03], b"alias set"),
            vec![0x40, 0x02, 0x00, 0x09],
            vec![0x40, 0x03, 0x00, 0x09, 0x10],
            vec![0x40, 0x04, 0x00, 0x09, 0x00, 0x00],
            frame5(
                0x40,
                &[0x00, 0x09, 0x87],
                &[prop(0x1F, &s(b"denied")), user.clone()].concat(),
                &[],
            ),
            vec![0x50, 0x03, 0x00, 0x09, 0x80],
            vec![0x62, 0x02, 0x00, 0x09],
            vec![0x62, 0x03, 0x00, 0x09, 0x92],
            vec![0x70, 0x02, 0x00, 0x09],
            vec![0x70, 0x04, 0x00, 0x09, 0x92, 0x00],
            vec![0x90, 0x04, 0x00, 0x01, 0x00, 0x80],
            vec![
                0x90, 0x09, 0x00, 0x01, 0x00, 0x00, 0x01, 0x02, 0x80, 0x87, 0xA2,
            ],
            frame5(
                0x90,
                &[0x00, 0x02],
                &prop(0x1F, &s(b"quota")),
                &[0x97, 0x01],
            ),
            vec![0xB0, 0x04, 0x00, 0x01, 0x00, 0x00],
            vec![0xB0, 0x06, 0x00, 0x01, 0x00, 0x00, 0x11, 0x87],
            vec![0xD0, 0x00],
            vec![0xE0, 0x00],
            vec![0xE0, 0x01, 0x8E],
            vec![0xE0, 0x02, 0x8B, 0x00],
            frame5(
                0xE0,
                &[0x9C],
                &[
                    prop(0x1F, &s(b"moved")),
                    prop(0x1C, &s(b"b2.example")),
                    user,
                ]
                .concat(),
                &[],
            ),
            vec![0xF0, 0x00],
            frame5(0xF0, &[0x18], &prop(0x15, &s(b"SCRAM-SHA-1")), &[]),
        ]
    }

    #[test]
    fn valid_packets_of_every_kind_a_broker_sends_pass() {
        for bytes in valid_v311() {
            accepted(V311, &bytes);
        }
        for bytes in valid_v5() {
            accepted(V5, &bytes);
        }
    }

    /// Frames wire.rs does not hand to rumqttc: a v5 DISCONNECT of 0 or 1 bytes (decoded by
    /// `short_v5_disconnect`, rumqttc wants a property length) and AUTH (rumqttc 0.25.1 has no
    /// AUTH reader).
    fn rumqttc_reads(version: ProtocolVersion, bytes: &[u8]) -> bool {
        match version {
            ProtocolVersion::V311 => true,
            ProtocolVersion::V5 => match bytes {
                [0xE0, len, ..] => *len > 1,
                [first, ..] => first >> 4 != 15,
                [] => true,
            },
        }
    }

    #[track_caller]
    fn rumqttc_decodes(version: ProtocolVersion, bytes: &[u8]) {
        let mut buf = BytesMut::from(bytes);
        let result = match version {
            ProtocolVersion::V311 => v4::Packet::read(&mut buf, 1 << 28)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            ProtocolVersion::V5 => v5::Packet::read(&mut buf, None)
                .map(|_| ())
                .map_err(|e| e.to_string()),
        };
        assert!(
            result.is_ok(),
            "{version:?} {bytes:02x?} passes the checker, rumqttc says {result:?}"
        );
        assert!(
            buf.is_empty(),
            "{version:?} {bytes:02x?}: rumqttc left {} bytes",
            buf.len()
        );
    }

    #[test]
    fn every_accepted_valid_packet_decodes_with_rumqttc() {
        for (version, corpus) in [(V311, valid_v311()), (V5, valid_v5())] {
            for bytes in corpus {
                if check_incoming_frame(version, &bytes).is_ok() && rumqttc_reads(version, &bytes) {
                    rumqttc_decodes(version, &bytes);
                }
            }
        }
    }

    /// The seeds of wire.rs's fuzz module (`valid_packets`), byte for byte as `Codec` encodes
    /// them, with whether each is valid for the version (some are only valid for the other one).
    fn wire_fuzz_seeds() -> Vec<(Vec<u8>, bool, bool)> {
        vec![
            // (bytes, valid on 3.1.1, valid on 5.0)
            (b"\x3d\x0c\x00\x03a/b\x00\x07hello".to_vec(), true, false),
            // On 3.1.1 the 5.0 property length reads as the payload's first byte.
            (b"\x3d\x0d\x00\x03a/b\x00\x07\x00hello".to_vec(), true, true),
            (vec![0x40, 0x02, 0x00, 0x09], true, true),
            (vec![0x50, 0x02, 0x00, 0x09], true, true),
            (vec![0x62, 0x02, 0x00, 0x09], true, true),
            (vec![0x70, 0x02, 0x00, 0x09], true, true),
            // 5.0 CONNACK needs a property length.
            (vec![0x20, 0x02, 0x00, 0x00], true, false),
            (vec![0x20, 0x03, 0x01, 0x00, 0x00], false, true),
            // On 5.0 the 0x01 is a property length with no property after it.
            (vec![0x90, 0x03, 0x00, 0x01, 0x01], true, false),
            (vec![0x90, 0x04, 0x00, 0x01, 0x00, 0x80], true, true),
            // 5.0 UNSUBACK needs a property length and a reason code.
            (vec![0xB0, 0x02, 0x00, 0x01], true, false),
            (vec![0xD0, 0x00], true, true),
            (vec![0xE0, 0x02, 0x8B, 0x00], false, true),
        ]
    }

    #[test]
    fn wire_fuzz_seeds_pass_when_valid() {
        for (bytes, v311, v5) in wire_fuzz_seeds() {
            for (version, valid) in [(V311, v311), (V5, v5)] {
                let result = check_incoming_frame(version, &bytes);
                assert_eq!(
                    result.is_ok(),
                    valid,
                    "{version:?} {bytes:02x?}: {result:?}"
                );
                if valid && rumqttc_reads(version, &bytes) {
                    rumqttc_decodes(version, &bytes);
                }
            }
        }
    }

    use crate::mqtt::fuzz_support::Rng;

    /// Random and mutated frames never make the checker panic; whatever it accepts, rumqttc
    /// decodes; a refusal's detail stays short.
    #[test]
    fn random_and_mutated_frames_never_panic() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for (version, seeds) in [(V311, valid_v311()), (V5, valid_v5())] {
            let mut accepted_mutants = 0;
            for _ in 0..100_000 {
                let mut bytes = rng.mutant(&seeds, 4);
                // Half the time, repair the remaining length so the body rules get exercised.
                if rng.below(2) == 0 && bytes.len() >= 2 {
                    let skip = bytes[1..]
                        .iter()
                        .take(4)
                        .take_while(|&&b| b & 0x80 != 0)
                        .count()
                        + 1;
                    let body = bytes.get(1 + skip..).unwrap_or(&[]).to_vec();
                    bytes = frame(bytes[0], &body);
                }
                match check_incoming_frame(version, &bytes) {
                    Ok(()) => {
                        accepted_mutants += 1;
                        if rumqttc_reads(version, &bytes) {
                            rumqttc_decodes(version, &bytes);
                        }
                    }
                    Err(v) => assert!(v.detail.len() < 200, "{}", v.detail),
                }
            }
            assert!(
                accepted_mutants > 1_000,
                "{version:?}: {accepted_mutants} accepted"
            );
        }
    }
}
