//! The bridge between the session engine and rumqttc's packet codec: one version-neutral view of
//! the packets the engine sends and receives, encoded and decoded as MQTT 3.1.1 (`v4`) or 5.0.

use crate::core::error::{Error, Result};
pub use crate::core::tokens::AckDetail;
use crate::mqtt::frame_check::{check_incoming_frame, MALFORMED_PACKET};
use crate::mqtt::options::{Options, ProtocolVersion, Will};
use crate::mqtt::properties::PublishProperties;
use crate::mqtt::subscribe::{AckProperties, FilterRequest, RetainHandling};
pub use crate::mqtt::topic_alias::AliasUse;
use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::{self as m4, v4};
use rumqttc::v5::mqttbytes::{self as m5, v5};
use std::sync::Arc;

/// A PUBLISH the engine sends.
#[derive(Debug, Clone, PartialEq)]
pub struct OutPublish {
    pub topic: String,
    pub payload: Bytes,
    pub qos: u8,
    pub retain: bool,
    /// MQTT 5.0 only; the handle refuses them on 3.1.1.
    pub properties: Option<Arc<PublishProperties>>,
}

/// A PUBLISH received from the broker, topic alias already resolved.
#[derive(Debug, Clone)]
pub struct InPublish {
    pub topic: String,
    pub payload: Bytes,
    pub qos: u8,
    pub retain: bool,
    pub dup: bool,
    pub pkid: u16,
    pub properties: Option<Arc<PublishProperties>>,
    /// v5: the identifiers of the subscriptions it matched (empty when none were assigned).
    pub subscription_ids: Vec<u32>,
}

/// How the broker answered CONNECT.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnAck {
    pub session_present: bool,
    /// `None` when accepted, otherwise the error naming the refusal.
    pub refusal: Option<Error>,
    /// v5: what the broker announced about itself.
    pub limits: BrokerLimits,
    pub assigned_client_id: Option<String>,
    pub server_keep_alive: Option<u16>,
    /// v5: the Response Information the broker gave (when asked), a basis for response topics.
    pub response_information: Option<String>,
    /// v5 enhanced authentication: the method and the broker's final data, if any.
    pub auth_method: Option<String>,
    pub auth_data: Option<Bytes>,
    /// v5: what else the broker said (reason code and string, user properties, server
    /// reference, session expiry).
    pub details: ConnAckDetails,
}

/// An MQTT 5.0 AUTH packet (either direction). rumqttc 0.25.1's `Auth` miscounts its property
/// lengths (string and binary prefixes) and cannot read the two-byte form, so AUTH is encoded
/// and decoded here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthPacket {
    /// 0x00 success, 0x18 continue authentication, 0x19 re-authenticate.
    pub reason: u8,
    pub method: Option<String>,
    pub data: Option<Bytes>,
    pub reason_string: Option<String>,
}

/// AUTH reason codes (MQTT 5.0 3.15.2.1).
pub mod auth_reason {
    pub(crate) const SUCCESS: u8 = 0x00;
    pub(crate) const CONTINUE: u8 = 0x18;
    pub(crate) const REAUTHENTICATE: u8 = 0x19;
}

/// What a v5 CONNACK says beyond the limits: for the application (`ConnAckInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnAckDetails {
    pub reason_code: u8,
    pub reason_string: Option<String>,
    pub user_properties: Vec<(String, String)>,
    pub server_reference: Option<String>,
    /// The session expiry the broker will use, when it differs from what we asked for.
    pub session_expiry: Option<u32>,
}

/// What a v5 broker's DISCONNECT says (3.1.1 brokers send none).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerDisconnect {
    pub reason_code: u8,
    pub reason_string: Option<String>,
    pub user_properties: Vec<(String, String)>,
    pub server_reference: Option<String>,
}

impl ServerDisconnect {
    /// "broker sent DISCONNECT: <name> (0x..)[ (reason string)][, server reference ...]".
    pub fn describe(&self) -> String {
        let mut text = format!(
            "broker sent DISCONNECT: {} (0x{:02X})",
            reason_name(self.reason_code),
            self.reason_code
        );
        if let Some(reason) = &self.reason_string {
            text += &format!(" ({reason})");
        }
        if let Some(reference) = &self.server_reference {
            text += &format!(", server reference '{reference}'");
        }
        text
    }
}

/// The name of an MQTT 5.0 reason code, for messages.
pub fn reason_name(code: u8) -> &'static str {
    match code {
        0x00 => "success",
        0x01 => "granted QoS 1",
        0x02 => "granted QoS 2",
        0x04 => "disconnect with will message",
        0x10 => "no matching subscribers",
        0x11 => "no subscription existed",
        0x80 => "unspecified error",
        0x81 => "malformed packet",
        0x82 => "protocol error",
        0x83 => "implementation specific error",
        0x87 => "not authorized",
        0x89 => "server busy",
        0x8B => "server shutting down",
        0x8D => "keep alive timeout",
        0x8E => "session taken over",
        0x8F => "topic filter invalid",
        0x90 => "topic name invalid",
        0x91 => "packet identifier in use",
        0x92 => "packet identifier not found",
        0x93 => "receive maximum exceeded",
        0x94 => "topic alias invalid",
        0x95 => "packet too large",
        0x96 => "message rate too high",
        0x97 => "quota exceeded",
        0x98 => "administrative action",
        0x99 => "payload format invalid",
        0x9A => "retain not supported",
        0x9B => "QoS not supported",
        0x9C => "use another server",
        0x9D => "server moved",
        0x9E => "shared subscriptions not supported",
        0x9F => "connection rate exceeded",
        0xA0 => "maximum connect time",
        0xA1 => "subscription identifiers not supported",
        0xA2 => "wildcard subscriptions not supported",
        _ => "unknown reason",
    }
}

/// What a v5 broker announced in CONNACK (all absent on 3.1.1, where nothing is announced).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BrokerLimits {
    pub receive_maximum: Option<u16>,
    pub maximum_packet_size: Option<u32>,
    /// 0 or 1 when announced; absent means 2.
    pub maximum_qos: Option<u8>,
    pub retain_available: Option<bool>,
    pub wildcard_available: Option<bool>,
    pub shared_available: Option<bool>,
    pub subscription_ids_available: Option<bool>,
    pub topic_alias_maximum: Option<u16>,
}

/// Everything a broker may send, in one shape for both protocol versions.
#[derive(Debug, Clone)]
pub enum Incoming {
    ConnAck(ConnAck),
    Publish(InPublish, Option<u16>),
    /// Acknowledgements with what a v5 broker said (code 0 and nothing else on 3.1.1).
    PubAck(u16, AckDetail),
    PubRec(u16, AckDetail),
    PubRel(u16, AckDetail),
    PubComp(u16, AckDetail),
    /// Per filter the reason code (0..2: the granted QoS), and the v5 properties.
    SubAck(u16, Vec<u8>, AckProperties),
    /// Per filter the v5 reason code (none on 3.1.1), and the v5 properties.
    UnsubAck(u16, Vec<u8>, AckProperties),
    PingResp,
    Disconnect(ServerDisconnect),
    /// v5 enhanced authentication.
    Auth(AuthPacket),
    /// A packet only a client may send (CONNECT, SUBSCRIBE, PINGREQ, AUTH...).
    Unexpected(&'static str),
}

impl Incoming {
    /// The packet type's name, for messages that must not embed a packet's contents.
    pub fn kind(&self) -> &'static str {
        match self {
            Incoming::ConnAck(_) => "CONNACK",
            Incoming::Publish(..) => "PUBLISH",
            Incoming::PubAck(..) => "PUBACK",
            Incoming::PubRec(..) => "PUBREC",
            Incoming::PubRel(..) => "PUBREL",
            Incoming::PubComp(..) => "PUBCOMP",
            Incoming::SubAck(..) => "SUBACK",
            Incoming::UnsubAck(..) => "UNSUBACK",
            Incoming::PingResp => "PINGRESP",
            Incoming::Disconnect(_) => "DISCONNECT",
            Incoming::Auth(_) => "AUTH",
            Incoming::Unexpected(name) => name,
        }
    }
}

/// Encodes and decodes for one protocol version and one maximum incoming packet size.
#[derive(Debug, Clone, Copy)]
pub struct Codec {
    pub version: ProtocolVersion,
    pub max_incoming: u32,
}

fn qos4(q: u8) -> m4::QoS {
    match q {
        0 => m4::QoS::AtMostOnce,
        1 => m4::QoS::AtLeastOnce,
        _ => m4::QoS::ExactlyOnce,
    }
}

fn qos5(q: u8) -> m5::QoS {
    match q {
        0 => m5::QoS::AtMostOnce,
        1 => m5::QoS::AtLeastOnce,
        _ => m5::QoS::ExactlyOnce,
    }
}

fn codec_error(e: impl std::fmt::Display) -> Error {
    Error::Protocol(format!("cannot encode packet: {e}"))
}

impl Codec {
    pub fn new(options: &Options) -> Codec {
        Codec {
            version: options.version,
            max_incoming: options.max_packet_size,
        }
    }

    pub fn with_version(self, version: ProtocolVersion) -> Codec {
        Codec { version, ..self }
    }

    /// Size of the PUBLISH packet for this message, to check against packet-size limits.
    pub fn publish_size(
        &self,
        topic_len: usize,
        payload_len: usize,
        qos: u8,
        properties: Option<&PublishProperties>,
    ) -> usize {
        self.publish_size_aliased(topic_len, payload_len, qos, properties, AliasUse::None)
    }

    /// `publish_size` as sent with `alias` (v5): the alias property adds 3 bytes, and an alias
    /// used alone leaves the topic out.
    pub fn publish_size_aliased(
        &self,
        topic_len: usize,
        payload_len: usize,
        qos: u8,
        properties: Option<&PublishProperties>,
        alias: AliasUse,
    ) -> usize {
        let (properties, topic_len) = match self.version {
            ProtocolVersion::V311 => (0, topic_len),
            ProtocolVersion::V5 => {
                let alias_len = if alias.alias().is_some() { 3 } else { 0 };
                let len = properties.map_or(0, PublishProperties::encoded_len) + alias_len;
                let topic_len = if alias.sends_topic() { topic_len } else { 0 };
                (remaining_length_size(len) + len, topic_len)
            }
        };
        let remaining = 2 + topic_len + if qos > 0 { 2 } else { 0 } + properties + payload_len;
        1 + remaining_length_size(remaining) + remaining
    }

    pub fn connect(
        &self,
        options: &Options,
        client_id: &str,
        will: Option<&Will>,
        buf: &mut BytesMut,
    ) -> Result<()> {
        let keep_alive = options.keep_alive.as_secs().min(65_535) as u16;
        let password = options
            .password
            .as_ref()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        match self.version {
            ProtocolVersion::V311 if options.mqtt31 => {
                connect_v31(options, keep_alive, client_id, will, buf);
            }
            ProtocolVersion::V311 => {
                let mut connect = v4::Connect::new(client_id);
                connect.keep_alive = keep_alive;
                connect.clean_session = options.clean_session;
                connect.last_will = will.map(|w| v4::LastWill {
                    topic: w.topic.clone(),
                    message: Bytes::copy_from_slice(&w.payload),
                    qos: qos4(w.qos),
                    retain: w.retain,
                });
                connect.login = options.username.as_ref().map(|u| v4::Login {
                    username: u.clone(),
                    password: password.unwrap_or_default(),
                });
                connect.write(buf).map_err(codec_error)?;
            }
            ProtocolVersion::V5 => {
                // Only what the user configured: a broker applies the defaults of the spec to
                // the rest, and a strict one rejects values it does not like.
                let v5 = &options.v5_connect;
                let properties = v5::ConnectProperties {
                    session_expiry_interval: (options.session_expiry > 0)
                        .then_some(options.session_expiry),
                    receive_maximum: v5.receive_maximum,
                    max_packet_size: v5
                        .announce_max_packet_size
                        .then_some(options.max_packet_size),
                    topic_alias_max: (v5.topic_alias_maximum > 0).then_some(v5.topic_alias_maximum),
                    request_response_info: v5.request_response_information.map(u8::from),
                    request_problem_info: v5.request_problem_information.map(u8::from),
                    user_properties: v5.user_properties.clone(),
                    authentication_method: options.auth.as_ref().map(|a| a.method.clone()),
                    authentication_data: options.auth.as_ref().and_then(|a| a.data.clone()),
                };
                let connect = v5::Connect {
                    keep_alive,
                    client_id: client_id.to_string(),
                    clean_start: options.clean_session,
                    properties: Some(properties),
                };
                let will = will.map(|w| v5::LastWill {
                    topic: Bytes::copy_from_slice(w.topic.as_bytes()),
                    message: Bytes::copy_from_slice(&w.payload),
                    qos: qos5(w.qos),
                    retain: w.retain,
                    properties: will_properties(w),
                });
                let login = options.username.as_ref().map(|u| v5::Login {
                    username: u.clone(),
                    password: password.unwrap_or_default(),
                });
                connect.write(&will, &login, buf).map_err(codec_error)?;
            }
        }
        Ok(())
    }

    pub fn publish(&self, p: &OutPublish, pkid: u16, dup: bool, buf: &mut BytesMut) -> Result<()> {
        self.publish_aliased(p, pkid, dup, AliasUse::None, buf)
    }

    /// `publish` with a topic alias (v5 only; `AliasUse::None` on 3.1.1).
    pub fn publish_aliased(
        &self,
        p: &OutPublish,
        pkid: u16,
        dup: bool,
        alias: AliasUse,
        buf: &mut BytesMut,
    ) -> Result<()> {
        self.publish_with(p, p.payload.clone(), pkid, dup, alias, buf)
    }

    /// `publish_aliased` up to the payload: the remaining length counts the payload, which
    /// the caller writes next (from its own buffer, without copying it into `buf`).
    pub fn publish_head_aliased(
        &self,
        p: &OutPublish,
        pkid: u16,
        dup: bool,
        alias: AliasUse,
        buf: &mut BytesMut,
    ) -> Result<()> {
        let start = buf.len();
        self.publish_with(p, Bytes::new(), pkid, dup, alias, buf)?;
        let (remaining, used) = read_varint(&buf[start + 1..])
            .ok_or_else(|| Error::Internal("PUBLISH encoded without a remaining length".into()))?;
        let mut length = Vec::with_capacity(4);
        write_varint(&mut length, remaining + p.payload.len() as u32);
        let body = start + 1 + used;
        let end = buf.len();
        // The longer length moves the (short) rest of the header along.
        buf.resize(end + length.len() - used, 0);
        buf.copy_within(body..end, start + 1 + length.len());
        buf[start + 1..start + 1 + length.len()].copy_from_slice(&length);
        Ok(())
    }

    fn publish_with(
        &self,
        p: &OutPublish,
        payload: Bytes,
        pkid: u16,
        dup: bool,
        alias: AliasUse,
        buf: &mut BytesMut,
    ) -> Result<()> {
        match self.version {
            ProtocolVersion::V311 => v4::Publish {
                dup,
                qos: qos4(p.qos),
                retain: p.retain,
                topic: p.topic.clone(),
                pkid,
                payload,
            }
            .write(buf)
            .map_err(codec_error)?,
            ProtocolVersion::V5 => {
                let mut properties = p.properties.as_deref().map(to_v5_properties);
                if let Some(a) = alias.alias() {
                    properties
                        .get_or_insert_with(empty_v5_properties)
                        .topic_alias = Some(a);
                }
                let topic = if alias.sends_topic() {
                    Bytes::copy_from_slice(p.topic.as_bytes())
                } else {
                    Bytes::new()
                };
                v5::Publish {
                    dup,
                    qos: qos5(p.qos),
                    retain: p.retain,
                    topic,
                    pkid,
                    payload,
                    properties,
                }
                .write(buf)
                .map_err(codec_error)?
            }
        };
        Ok(())
    }

    pub fn puback(&self, pkid: u16, buf: &mut BytesMut) -> Result<()> {
        match self.version {
            ProtocolVersion::V311 => v4::PubAck::new(pkid).write(buf).map_err(codec_error),
            ProtocolVersion::V5 => v5::PubAck::new(pkid, None).write(buf).map_err(codec_error),
        }
        .map(drop)
    }

    pub fn pubrec(&self, pkid: u16, buf: &mut BytesMut) -> Result<()> {
        match self.version {
            ProtocolVersion::V311 => v4::PubRec::new(pkid).write(buf).map_err(codec_error),
            ProtocolVersion::V5 => v5::PubRec::new(pkid, None).write(buf).map_err(codec_error),
        }
        .map(drop)
    }

    pub fn pubrel(&self, pkid: u16, buf: &mut BytesMut) -> Result<()> {
        self.pubrel_with(pkid, false, buf)
    }

    /// PUBREL; on v5 with reason 0x92 (packet identifier not found) when `not_found`.
    pub fn pubrel_with(&self, pkid: u16, not_found: bool, buf: &mut BytesMut) -> Result<()> {
        match self.version {
            ProtocolVersion::V311 => v4::PubRel::new(pkid).write(buf).map_err(codec_error),
            ProtocolVersion::V5 => v5::PubRel {
                pkid,
                reason: if not_found {
                    v5::PubRelReason::PacketIdentifierNotFound
                } else {
                    v5::PubRelReason::Success
                },
                properties: None,
            }
            .write(buf)
            .map_err(codec_error),
        }
        .map(drop)
    }

    pub fn pubcomp(&self, pkid: u16, buf: &mut BytesMut) -> Result<()> {
        self.pubcomp_with(pkid, false, buf)
    }

    /// PUBCOMP; on v5 with reason 0x92 (packet identifier not found) when `not_found`.
    pub fn pubcomp_with(&self, pkid: u16, not_found: bool, buf: &mut BytesMut) -> Result<()> {
        match self.version {
            ProtocolVersion::V311 => v4::PubComp::new(pkid).write(buf).map_err(codec_error),
            ProtocolVersion::V5 => v5::PubComp {
                pkid,
                reason: if not_found {
                    v5::PubCompReason::PacketIdentifierNotFound
                } else {
                    v5::PubCompReason::Success
                },
                properties: None,
            }
            .write(buf)
            .map_err(codec_error),
        }
        .map(drop)
    }

    /// SUBSCRIBE; on v5 with the filters' options, the subscription identifier `id` (at most
    /// one per packet) and user properties. 3.1.1 carries only filter and QoS.
    pub fn subscribe(
        &self,
        pkid: u16,
        filters: &[FilterRequest],
        id: Option<u32>,
        user_properties: &[(String, String)],
        buf: &mut BytesMut,
    ) -> Result<()> {
        match self.version {
            ProtocolVersion::V311 => v4::Subscribe {
                pkid,
                filters: filters
                    .iter()
                    .map(|f| v4::SubscribeFilter::new(f.filter.clone(), qos4(f.options.qos as u8)))
                    .collect(),
            }
            .write(buf)
            .map_err(codec_error),
            ProtocolVersion::V5 => v5::Subscribe {
                pkid,
                filters: filters
                    .iter()
                    .map(|f| v5::Filter {
                        path: f.filter.clone(),
                        qos: qos5(f.options.qos as u8),
                        nolocal: f.options.no_local,
                        preserve_retain: f.options.retain_as_published,
                        retain_forward_rule: match f.options.retain_handling {
                            RetainHandling::SendAtSubscribe => {
                                v5::RetainForwardRule::OnEverySubscribe
                            }
                            RetainHandling::SendIfNew => v5::RetainForwardRule::OnNewSubscribe,
                            RetainHandling::DoNotSend => v5::RetainForwardRule::Never,
                        },
                    })
                    .collect(),
                properties: (id.is_some() || !user_properties.is_empty()).then(|| {
                    v5::SubscribeProperties {
                        id: id.map(|id| id as usize),
                        user_properties: user_properties.to_vec(),
                    }
                }),
            }
            .write(buf)
            .map_err(codec_error),
        }
        .map(drop)
    }

    pub fn unsubscribe(
        &self,
        pkid: u16,
        filters: &[String],
        user_properties: &[(String, String)],
        buf: &mut BytesMut,
    ) -> Result<()> {
        match self.version {
            ProtocolVersion::V311 => v4::Unsubscribe {
                pkid,
                topics: filters.to_vec(),
            }
            .write(buf)
            .map_err(codec_error),
            ProtocolVersion::V5 => v5::Unsubscribe {
                pkid,
                filters: filters.to_vec(),
                properties: (!user_properties.is_empty()).then(|| v5::UnsubscribeProperties {
                    user_properties: user_properties.to_vec(),
                }),
            }
            .write(buf)
            .map_err(codec_error),
        }
        .map(drop)
    }

    pub fn pingreq(&self, buf: &mut BytesMut) {
        // Two fixed bytes in both versions.
        buf.extend_from_slice(&[0xC0, 0x00]);
    }

    /// DISCONNECT; on v5 with `reason` (0x00 normal, 0x81 malformed packet, 0x82 protocol
    /// error, 0x93 receive maximum exceeded, ...). 3.1.1 has no reason: the connection closes.
    pub fn disconnect(&self, reason: u8, buf: &mut BytesMut) {
        self.disconnect_with(reason, None, &[], buf);
    }

    /// DISCONNECT with MQTT 5.0 properties: a new session expiry interval (0x11) and user
    /// properties (0x26). 3.1.1 ignores reason and properties (the client refuses them
    /// earlier). The caller bounds every string to 65,535 bytes.
    pub fn disconnect_with(
        &self,
        reason: u8,
        session_expiry: Option<u32>,
        user_properties: &[(String, String)],
        buf: &mut BytesMut,
    ) {
        if self.version == ProtocolVersion::V311 {
            buf.extend_from_slice(&[0xE0, 0x00]);
            return;
        }
        let mut props = Vec::new();
        if let Some(expiry) = session_expiry {
            props.push(0x11);
            props.extend_from_slice(&expiry.to_be_bytes());
        }
        for (name, value) in user_properties {
            props.push(0x26);
            for text in [name, value] {
                let len = u16::try_from(text.len()).unwrap_or(u16::MAX);
                props.extend_from_slice(&len.to_be_bytes());
                props.extend_from_slice(&text.as_bytes()[..usize::from(len)]);
            }
        }
        if props.is_empty() {
            // The reason code and property length may be omitted (0x00, no properties).
            if reason == 0 {
                buf.extend_from_slice(&[0xE0, 0x00]);
            } else {
                buf.extend_from_slice(&[0xE0, 0x01, reason]);
            }
            return;
        }
        let mut body = vec![reason];
        write_varint(&mut body, props.len() as u32);
        body.extend_from_slice(&props);
        let mut header = vec![0xE0];
        write_varint(&mut header, body.len() as u32);
        buf.extend_from_slice(&header);
        buf.extend_from_slice(&body);
    }

    /// v5 AUTH: reason code, then the method, the data (if any) and nothing else.
    pub fn auth(&self, reason: u8, method: &str, data: Option<&[u8]>, buf: &mut BytesMut) {
        let mut properties = Vec::with_capacity(3 + method.len() + data.map_or(0, |d| 3 + d.len()));
        properties.push(0x15);
        put_prefixed(&mut properties, method.as_bytes());
        if let Some(data) = data {
            properties.push(0x16);
            put_prefixed(&mut properties, data);
        }
        let mut body = Vec::with_capacity(properties.len() + 5);
        body.push(reason);
        write_varint(&mut body, properties.len() as u32);
        body.extend_from_slice(&properties);
        buf.extend_from_slice(&[0xF0]);
        let mut length = Vec::with_capacity(4);
        write_varint(&mut length, body.len() as u32);
        buf.extend_from_slice(&length);
        buf.extend_from_slice(&body);
    }

    /// Decodes the next whole packet from `buf`; `Ok(None)` when more bytes are needed.
    /// Every frame is checked strictly (`frame_check`) before rumqttc's decoder sees it; a
    /// malformed one is an error carrying the v5 reason code to disconnect with. The codec is
    /// never allowed to panic into us.
    pub fn decode(&self, buf: &mut BytesMut) -> std::result::Result<Option<Incoming>, Malformed> {
        let Some(frame_len) = frame_length(buf, self.max_incoming)? else {
            return Ok(None);
        };
        if self.version == ProtocolVersion::V5 {
            if let Some(refusal) = v311_connack_to_v5(buf) {
                return Ok(Some(refusal));
            }
        }
        if let Err(violation) = check_incoming_frame(self.version, &buf[..frame_len]) {
            return Err(Malformed {
                reason: violation.reason,
                error: Error::Protocol(format!(
                    "malformed packet from the broker: {}",
                    violation.detail
                )),
            });
        }
        let version = self.version;
        let max = self.max_incoming;
        let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match version {
            ProtocolVersion::V311 => decode_v4(buf, max as usize),
            ProtocolVersion::V5 => decode_v5(buf, max),
        }));
        match decoded {
            Ok(Ok(packet)) => Ok(packet),
            Ok(Err(error)) => Err(Malformed {
                reason: MALFORMED_PACKET,
                error,
            }),
            Err(_) => Err(Malformed {
                reason: MALFORMED_PACKET,
                error: Error::Protocol(
                    "malformed packet from the broker (decoder rejected it)".into(),
                ),
            }),
        }
    }
}

/// rumqttc leaves the payload bytes of an absent (`None`) property uninitialised on its stack.
/// Reading them is fine for Rust, but the optimiser may blend them into branch-free
/// arithmetic, which valgrind then reports as a jump on uninitialised data. Branching on the
/// discriminant alone (behind `black_box`, so it cannot be blended back) and rebuilding the
/// value gives every later use fully initialised bytes.
fn defined<T: Copy + Default>(value: Option<T>) -> Option<T> {
    if std::hint::black_box(value.is_some()) {
        Some(value.unwrap_or_default())
    } else {
        None
    }
}

/// A packet the broker should not have sent: the error, and the v5 reason code to disconnect
/// with.
#[derive(Debug, Clone, PartialEq)]
pub struct Malformed {
    pub reason: u8,
    pub error: Error,
}

/// The length of the whole frame at the head of `buf` once it is all there; an error when it
/// announces more than we accept (MQTT 5.0 reason 0x95) or its length field is broken.
fn frame_length(buf: &[u8], max: u32) -> std::result::Result<Option<usize>, Malformed> {
    let mut remaining: usize = 0;
    for i in 0..4 {
        let Some(&byte) = buf.get(1 + i) else {
            return Ok(None);
        };
        remaining |= ((byte & 0x7F) as usize) << (7 * i);
        if byte & 0x80 == 0 {
            let total = 1 + (i + 1) + remaining;
            if total > max as usize {
                return Err(Malformed {
                    reason: PACKET_TOO_LARGE,
                    error: Error::Protocol(format!(
                        "the broker sent a packet of {total} bytes; our maximum packet size is {max}"
                    )),
                });
            }
            return Ok((buf.len() >= total).then_some(total));
        }
    }
    Err(Malformed {
        reason: MALFORMED_PACKET,
        error: Error::Protocol(
            "malformed packet from the broker: remaining length longer than 4 bytes".into(),
        ),
    })
}

/// MQTT 5.0 reason code: the packet exceeds the maximum packet size we announced.
const PACKET_TOO_LARGE: u8 = 0x95;

fn empty_v5_properties() -> v5::PublishProperties {
    to_v5_properties(&PublishProperties::default())
}

/// A will's v5 properties; `None` when it has none (the codec then writes an empty list).
fn will_properties(will: &Will) -> Option<v5::LastWillProperties> {
    if will.delay.is_none() && will.properties.is_none() {
        return None;
    }
    let p = will.properties.as_deref().cloned().unwrap_or_default();
    Some(v5::LastWillProperties {
        delay_interval: will.delay,
        payload_format_indicator: p.payload_is_utf8.map(u8::from),
        message_expiry_interval: p.message_expiry,
        content_type: p.content_type,
        response_topic: p.response_topic,
        correlation_data: p.correlation_data,
        user_properties: p.user_properties,
    })
}

fn to_v5_properties(p: &PublishProperties) -> v5::PublishProperties {
    v5::PublishProperties {
        payload_format_indicator: p.payload_is_utf8.map(u8::from),
        message_expiry_interval: p.message_expiry,
        topic_alias: None,
        response_topic: p.response_topic.clone(),
        correlation_data: p.correlation_data.clone(),
        user_properties: p.user_properties.clone(),
        subscription_identifiers: Vec::new(),
        content_type: p.content_type.clone(),
    }
}

fn from_v5_properties(p: v5::PublishProperties) -> PublishProperties {
    PublishProperties {
        payload_is_utf8: p.payload_format_indicator.map(|f| f == 1),
        message_expiry: p.message_expiry_interval,
        content_type: p.content_type,
        response_topic: p.response_topic,
        correlation_data: p.correlation_data,
        user_properties: p.user_properties,
    }
}

fn remaining_length_size(len: usize) -> usize {
    match len {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

fn malformed(e: impl std::fmt::Display) -> Error {
    Error::Protocol(format!("malformed packet from the broker: {e}"))
}

fn decode_v4(buf: &mut BytesMut, max: usize) -> Result<Option<Incoming>> {
    let before = buf.len();
    let packet = match v4::Packet::read(buf, max) {
        Ok(p) => p,
        // The codec takes the whole frame out before parsing it: "insufficient bytes" after
        // that means the frame lied about its contents, not that more bytes are coming.
        Err(m4::Error::InsufficientBytes(_)) if buf.len() == before => return Ok(None),
        Err(e) => return Err(malformed(e)),
    };
    Ok(Some(match packet {
        v4::Packet::ConnAck(ack) => {
            use v4::ConnectReturnCode as C;
            let refusal = match ack.code {
                C::Success => None,
                C::BadUserNamePassword => Some(Error::BadCredentials(
                    "broker refused the connection: bad user name or password".into(),
                )),
                C::NotAuthorized => Some(Error::NotAuthorized(
                    "broker refused the connection: not authorized".into(),
                )),
                C::RefusedProtocolVersion => Some(Error::UnsupportedProtocolVersion(
                    "broker refused the connection: unacceptable protocol version (it does not speak MQTT 3.1.1)".into(),
                )),
                C::BadClientId => Some(Error::InvalidClientId(
                    "broker refused the connection: client identifier rejected".into(),
                )),
                C::ServiceUnavailable => Some(Error::BrokerRefused(
                    "broker refused the connection: server unavailable".into(),
                )),
            };
            Incoming::ConnAck(ConnAck {
                session_present: ack.session_present,
                refusal,
                ..ConnAck::default()
            })
        }
        v4::Packet::Publish(p) => Incoming::Publish(
            InPublish {
                topic: p.topic,
                payload: p.payload,
                qos: p.qos as u8,
                retain: p.retain,
                dup: p.dup,
                pkid: p.pkid,
                properties: None,
                subscription_ids: Vec::new(),
            },
            None,
        ),
        v4::Packet::PubAck(a) => Incoming::PubAck(a.pkid, AckDetail::default()),
        v4::Packet::PubRec(a) => Incoming::PubRec(a.pkid, AckDetail::default()),
        v4::Packet::PubRel(a) => Incoming::PubRel(a.pkid, AckDetail::default()),
        v4::Packet::PubComp(a) => Incoming::PubComp(a.pkid, AckDetail::default()),
        v4::Packet::SubAck(a) => Incoming::SubAck(
            a.pkid,
            a.return_codes
                .iter()
                .map(|c| match c {
                    v4::SubscribeReasonCode::Success(q) => *q as u8,
                    v4::SubscribeReasonCode::Failure => 0x80,
                })
                .collect(),
            AckProperties::default(),
        ),
        v4::Packet::UnsubAck(a) => Incoming::UnsubAck(a.pkid, Vec::new(), AckProperties::default()),
        v4::Packet::PingResp => Incoming::PingResp,
        v4::Packet::Disconnect => Incoming::Unexpected("DISCONNECT"),
        v4::Packet::Connect(_) => Incoming::Unexpected("CONNECT"),
        v4::Packet::Subscribe(_) => Incoming::Unexpected("SUBSCRIBE"),
        v4::Packet::Unsubscribe(_) => Incoming::Unexpected("UNSUBSCRIBE"),
        v4::Packet::PingReq => Incoming::Unexpected("PINGREQ"),
    }))
}

/// What a v5 acknowledgement's properties say. rumqttc has one properties type per packet
/// (PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK), each with `reason_string` and
/// `user_properties`, so this is a macro rather than a function over one type.
macro_rules! ack_properties {
    ($properties:expr) => {
        $properties
            .map(|p| AckProperties {
                reason_string: p.reason_string,
                user_properties: p.user_properties,
            })
            .unwrap_or_default()
    };
}

/// A publish acknowledgement's reason code with what its properties say.
macro_rules! ack_detail {
    ($code:expr, $properties:expr) => {{
        let AckProperties {
            reason_string,
            user_properties,
        } = ack_properties!($properties);
        AckDetail {
            code: $code,
            text: reason_string,
            properties: user_properties,
        }
    }};
}

fn decode_v5(buf: &mut BytesMut, max: u32) -> Result<Option<Incoming>> {
    if let Some(disconnect) = short_v5_disconnect(buf)? {
        return Ok(disconnect);
    }
    if buf.first() == Some(&0xF0) {
        return decode_auth(buf, max);
    }
    // rumqttc 0.25.1 miscounts Subscription Identifier properties (one byte too many each):
    // with several of them it stops early and the properties it skipped become the start of
    // the payload. We read them ourselves and hand it the PUBLISH without them.
    let mut subscription_ids = Vec::new();
    let packet = if let Some((frame_len, stripped, ids)) = split_subscription_ids(buf) {
        subscription_ids = ids;
        let mut one = BytesMut::from(&stripped[..]);
        let packet = v5::Packet::read(&mut one, Some(max)).map_err(malformed)?;
        let _ = buf.split_to(frame_len);
        packet
    } else {
        let before = buf.len();
        match v5::Packet::read(buf, Some(max)) {
            Ok(p) => p,
            // See decode_v4: only an untouched buffer means "wait for more bytes".
            Err(m5::Error::InsufficientBytes(_)) if buf.len() == before => return Ok(None),
            Err(e) => return Err(malformed(e)),
        }
    };
    Ok(Some(match packet {
        v5::Packet::ConnAck(ack) => {
            let refusal = v5_connack_refusal(ack.code, ack.properties.as_ref());
            let props = ack.properties;
            let flag = |f: Option<u8>| defined(f).map(|f| f != 0);
            Incoming::ConnAck(ConnAck {
                session_present: ack.session_present,
                refusal,
                limits: props
                    .as_ref()
                    .map(|p| BrokerLimits {
                        receive_maximum: defined(p.receive_max),
                        maximum_packet_size: defined(p.max_packet_size),
                        maximum_qos: defined(p.max_qos),
                        retain_available: flag(p.retain_available),
                        wildcard_available: flag(p.wildcard_subscription_available),
                        shared_available: flag(p.shared_subscription_available),
                        subscription_ids_available: flag(p.subscription_identifiers_available),
                        topic_alias_maximum: defined(p.topic_alias_max),
                    })
                    .unwrap_or_default(),
                assigned_client_id: props
                    .as_ref()
                    .and_then(|p| p.assigned_client_identifier.clone()),
                server_keep_alive: props.as_ref().and_then(|p| p.server_keep_alive),
                response_information: props.as_ref().and_then(|p| p.response_information.clone()),
                auth_method: props.as_ref().and_then(|p| p.authentication_method.clone()),
                auth_data: props.as_ref().and_then(|p| p.authentication_data.clone()),
                details: ConnAckDetails {
                    reason_code: connack_code(ack.code),
                    reason_string: props.as_ref().and_then(|p| p.reason_string.clone()),
                    user_properties: props
                        .as_ref()
                        .map(|p| p.user_properties.clone())
                        .unwrap_or_default(),
                    server_reference: props.as_ref().and_then(|p| p.server_reference.clone()),
                    session_expiry: props.as_ref().and_then(|p| p.session_expiry_interval),
                },
            })
        }
        v5::Packet::Publish(p) => {
            let topic = String::from_utf8(p.topic.to_vec())
                .map_err(|_| malformed("PUBLISH topic is not UTF-8"))?;
            let alias = p.properties.as_ref().and_then(|props| props.topic_alias);
            let properties = p
                .properties
                .map(from_v5_properties)
                .filter(|props| !props.is_empty())
                .map(Arc::new);
            Incoming::Publish(
                InPublish {
                    topic,
                    payload: p.payload,
                    qos: p.qos as u8,
                    retain: p.retain,
                    dup: p.dup,
                    pkid: p.pkid,
                    properties,
                    subscription_ids,
                },
                alias,
            )
        }
        v5::Packet::PubAck(a) => {
            Incoming::PubAck(a.pkid, ack_detail!(puback_code(a.reason), a.properties))
        }
        v5::Packet::PubRec(a) => {
            Incoming::PubRec(a.pkid, ack_detail!(pubrec_code(a.reason), a.properties))
        }
        v5::Packet::PubRel(a) => Incoming::PubRel(
            a.pkid,
            ack_detail!(
                match a.reason {
                    v5::PubRelReason::Success => 0,
                    v5::PubRelReason::PacketIdentifierNotFound => 0x92,
                },
                a.properties
            ),
        ),
        v5::Packet::PubComp(a) => Incoming::PubComp(
            a.pkid,
            ack_detail!(
                match a.reason {
                    v5::PubCompReason::Success => 0,
                    v5::PubCompReason::PacketIdentifierNotFound => 0x92,
                },
                a.properties
            ),
        ),
        v5::Packet::SubAck(a) => Incoming::SubAck(
            a.pkid,
            a.return_codes.iter().map(|c| suback_code(*c)).collect(),
            ack_properties!(a.properties),
        ),
        v5::Packet::UnsubAck(a) => Incoming::UnsubAck(
            a.pkid,
            a.reasons.iter().map(|r| unsuback_code(*r)).collect(),
            ack_properties!(a.properties),
        ),
        v5::Packet::PingResp(_) => Incoming::PingResp,
        v5::Packet::Disconnect(d) => {
            let properties = d.properties;
            Incoming::Disconnect(ServerDisconnect {
                reason_code: d.reason_code as u8,
                reason_string: properties.as_ref().and_then(|p| p.reason_string.clone()),
                user_properties: properties
                    .as_ref()
                    .map(|p| p.user_properties.clone())
                    .unwrap_or_default(),
                server_reference: properties.and_then(|p| p.server_reference),
            })
        }
        v5::Packet::Connect(..) => Incoming::Unexpected("CONNECT"),
        v5::Packet::Subscribe(_) => Incoming::Unexpected("SUBSCRIBE"),
        v5::Packet::Unsubscribe(_) => Incoming::Unexpected("UNSUBSCRIBE"),
        v5::Packet::PingReq(_) => Incoming::Unexpected("PINGREQ"),
        // Decoded by `decode_auth` before rumqttc sees it.
        v5::Packet::Auth(_) => return Err(malformed("AUTH reached the wrong decoder")),
    }))
}

/// MQTT 3.1 CONNECT: protocol name `MQIsdp`, level 3; otherwise laid out as 3.1.1's. rumqttc
/// writes only `MQTT`/4, so it is encoded here.
fn connect_v31(
    options: &Options,
    keep_alive: u16,
    client_id: &str,
    will: Option<&Will>,
    buf: &mut BytesMut,
) {
    let mut flags = 0u8;
    if options.clean_session {
        flags |= 0x02;
    }
    let mut payload = Vec::new();
    put_prefixed(&mut payload, client_id.as_bytes());
    if let Some(will) = will {
        flags |= 0x04 | (will.qos.min(2) << 3);
        if will.retain {
            flags |= 0x20;
        }
        put_prefixed(&mut payload, will.topic.as_bytes());
        put_prefixed(&mut payload, &will.payload);
    }
    if let Some(username) = &options.username {
        flags |= 0x80;
        put_prefixed(&mut payload, username.as_bytes());
        if let Some(password) = &options.password {
            flags |= 0x40;
            put_prefixed(&mut payload, password);
        }
    }
    let mut body = Vec::with_capacity(12 + payload.len());
    put_prefixed(&mut body, b"MQIsdp");
    body.push(3);
    body.push(flags);
    body.extend_from_slice(&keep_alive.to_be_bytes());
    body.extend_from_slice(&payload);
    buf.extend_from_slice(&[0x10]);
    let mut length = Vec::with_capacity(4);
    write_varint(&mut length, body.len() as u32);
    buf.extend_from_slice(&length);
    buf.extend_from_slice(&body);
}

/// A two-byte length, then the bytes (the caller keeps them within 65,535).
fn put_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = bytes.len().min(u16::MAX as usize);
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend_from_slice(&bytes[..len]);
}

/// A whole AUTH frame (already checked by `frame_check`): reason code, method, data, reason
/// string; user properties are read past. `Ok(None)` while the frame is incomplete.
fn decode_auth(buf: &mut BytesMut, max: u32) -> Result<Option<Incoming>> {
    let Ok(Some(total)) = frame_length(buf, max) else {
        return Ok(None);
    };
    let frame = buf.split_to(total).freeze();
    let mut at = 1;
    let (remaining, used) = read_varint(&frame[at..]).ok_or_else(|| malformed("AUTH length"))?;
    let remaining = remaining as usize;
    at += used;
    let body = frame.slice(at..(at + remaining).min(frame.len()));
    let mut auth = AuthPacket {
        reason: auth_reason::SUCCESS,
        method: None,
        data: None,
        reason_string: None,
    };
    let Some(&reason) = body.first() else {
        return Ok(Some(Incoming::Auth(auth)));
    };
    auth.reason = reason;
    let (len, used) = read_varint(&body[1..]).ok_or_else(|| malformed("AUTH property length"))?;
    let len = len as usize;
    let start = 1 + used;
    let properties = body
        .get(start..start + len)
        .ok_or_else(|| malformed("AUTH properties run past the packet"))?;
    let mut p = 0;
    let prefixed = |p: &mut usize| -> Result<Bytes> {
        let head = properties
            .get(*p..*p + 2)
            .ok_or_else(|| malformed("AUTH property"))?;
        let n = u16::from_be_bytes([head[0], head[1]]) as usize;
        let value = properties
            .get(*p + 2..*p + 2 + n)
            .ok_or_else(|| malformed("AUTH property value"))?;
        *p += 2 + n;
        Ok(Bytes::copy_from_slice(value))
    };
    let text = |bytes: Bytes| {
        String::from_utf8(bytes.to_vec()).map_err(|_| malformed("AUTH string is not UTF-8"))
    };
    while p < properties.len() {
        let id = properties[p];
        p += 1;
        match id {
            0x15 => auth.method = Some(text(prefixed(&mut p)?)?),
            0x16 => auth.data = Some(prefixed(&mut p)?),
            0x1F => auth.reason_string = Some(text(prefixed(&mut p)?)?),
            0x26 => {
                prefixed(&mut p)?;
                prefixed(&mut p)?;
            }
            other => return Err(malformed(format!("AUTH property {other:#04x}"))),
        }
    }
    Ok(Some(Incoming::Auth(auth)))
}

fn suback_code(code: v5::SubscribeReasonCode) -> u8 {
    use v5::SubscribeReasonCode as C;
    match code {
        C::Success(q) => q as u8,
        C::Failure | C::Unspecified => 0x80,
        C::ImplementationSpecific => 0x83,
        C::NotAuthorized => 0x87,
        C::TopicFilterInvalid => 0x8F,
        C::PkidInUse => 0x91,
        C::QuotaExceeded => 0x97,
        C::SharedSubscriptionsNotSupported => 0x9E,
        C::SubscriptionIdNotSupported => 0xA1,
        C::WildcardSubscriptionsNotSupported => 0xA2,
    }
}

fn unsuback_code(reason: v5::UnsubAckReason) -> u8 {
    use v5::UnsubAckReason as R;
    match reason {
        R::Success => 0x00,
        R::NoSubscriptionExisted => 0x11,
        R::UnspecifiedError => 0x80,
        R::ImplementationSpecificError => 0x83,
        R::NotAuthorized => 0x87,
        R::TopicFilterInvalid => 0x8F,
        R::PacketIdentifierInUse => 0x91,
    }
}

/// For a whole v5 PUBLISH at the head of `buf` that carries Subscription Identifiers: its
/// length, the same frame without them, and the identifiers. `None` for any other packet, an
/// incomplete one, or one that does not parse (the decoder then reports it).
fn split_subscription_ids(buf: &[u8]) -> Option<(usize, Vec<u8>, Vec<u32>)> {
    if buf.first()? >> 4 != 3 {
        return None;
    }
    let qos = (buf[0] >> 1) & 0b11;
    let (remaining, header_len) = read_varint(&buf[1..])?;
    let frame_len = 1 + header_len + remaining as usize;
    let frame = buf.get(..frame_len)?;
    let body = &frame[1 + header_len..];
    let topic_len = u16::from_be_bytes([*body.first()?, *body.get(1)?]) as usize;
    let head_len = 2 + topic_len + if qos > 0 { 2 } else { 0 };
    let (props_len, props_len_size) = read_varint(body.get(head_len..)?)?;
    let props_start = head_len + props_len_size;
    let props = body.get(props_start..props_start + props_len as usize)?;
    let payload = &body[props_start + props_len as usize..];
    let mut ids = Vec::new();
    let mut kept = Vec::with_capacity(props.len());
    let mut at = 0;
    while at < props.len() {
        let id = props[at];
        let value = &props[at + 1..];
        let value_len = match id {
            0x0B => {
                let (sub_id, len) = read_varint(value)?;
                ids.push(sub_id);
                at += 1 + len;
                continue;
            }
            0x01 => 1,
            0x23 => 2,
            0x02 => 4,
            0x03 | 0x08 | 0x09 => {
                2 + u16::from_be_bytes([*value.first()?, *value.get(1)?]) as usize
            }
            0x26 => {
                let name = 2 + u16::from_be_bytes([*value.first()?, *value.get(1)?]) as usize;
                let rest = value.get(name..)?;
                name + 2 + u16::from_be_bytes([*rest.first()?, *rest.get(1)?]) as usize
            }
            _ => return None,
        };
        kept.extend_from_slice(props.get(at..at + 1 + value_len)?);
        at += 1 + value_len;
    }
    if ids.is_empty() {
        return None;
    }
    let mut new_body = Vec::with_capacity(body.len());
    new_body.extend_from_slice(&body[..head_len]);
    write_varint(&mut new_body, kept.len() as u32);
    new_body.extend_from_slice(&kept);
    new_body.extend_from_slice(payload);
    let mut stripped = Vec::with_capacity(new_body.len() + 5);
    stripped.push(buf[0]);
    write_varint(&mut stripped, new_body.len() as u32);
    stripped.extend_from_slice(&new_body);
    Some((frame_len, stripped, ids))
}

/// An MQTT variable byte integer: its value and how many bytes it took.
fn read_varint(bytes: &[u8]) -> Option<(u32, usize)> {
    let mut value = 0u32;
    for (i, byte) in bytes.iter().take(4).enumerate() {
        value |= ((byte & 0x7F) as u32) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

fn write_varint(out: &mut Vec<u8>, mut value: u32) {
    loop {
        let mut byte = (value & 0x7F) as u8;
        value >>= 7;
        if value > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if value == 0 {
            return;
        }
    }
}

/// A v5 DISCONNECT without properties (`E0 00`, or `E0 01 <reason>`) is valid, but the codec
/// insists on a property length. `Ok(None)`: not such a packet; `Ok(Some(None))`: need more bytes.
fn short_v5_disconnect(buf: &mut BytesMut) -> Result<Option<Option<Incoming>>> {
    if buf.len() < 2 || buf[0] != 0xE0 || buf[1] > 1 {
        return Ok(None);
    }
    let len = 2 + buf[1] as usize;
    if buf.len() < len {
        return Ok(Some(None));
    }
    let code = if buf[1] == 1 { buf[2] } else { 0 };
    let _ = buf.split_to(len);
    let reason = v5::DisconnectReasonCode::try_from(code).map_err(malformed)?;
    Ok(Some(Some(Incoming::Disconnect(ServerDisconnect {
        reason_code: reason as u8,
        ..ServerDisconnect::default()
    }))))
}

/// A broker that speaks only 3.1.1 answers a v5 CONNECT with a 3.1.1 CONNACK refusing the
/// protocol version (`20 02 00 01`): a refusal to report as such, not a malformed packet.
fn v311_connack_to_v5(buf: &mut BytesMut) -> Option<Incoming> {
    if buf.len() < 4 || buf[..2] != [0x20, 0x02] || buf[3] != 0x01 || buf[2] != 0 {
        return None;
    }
    let _ = buf.split_to(4);
    Some(Incoming::ConnAck(ConnAck {
        refusal: Some(Error::UnsupportedProtocolVersion(
            "broker refused the connection: it does not speak MQTT 5.0 (it answered with an MQTT 3.1.1 CONNACK, unacceptable protocol version)".into(),
        )),
        ..ConnAck::default()
    }))
}

fn puback_code(reason: v5::PubAckReason) -> u8 {
    use v5::PubAckReason as R;
    match reason {
        R::Success => 0x00,
        R::NoMatchingSubscribers => 0x10,
        R::UnspecifiedError => 0x80,
        R::ImplementationSpecificError => 0x83,
        R::NotAuthorized => 0x87,
        R::TopicNameInvalid => 0x90,
        R::PacketIdentifierInUse => 0x91,
        R::QuotaExceeded => 0x97,
        R::PayloadFormatInvalid => 0x99,
    }
}

fn pubrec_code(reason: v5::PubRecReason) -> u8 {
    use v5::PubRecReason as R;
    match reason {
        R::Success => 0x00,
        R::NoMatchingSubscribers => 0x10,
        R::UnspecifiedError => 0x80,
        R::ImplementationSpecificError => 0x83,
        R::NotAuthorized => 0x87,
        R::TopicNameInvalid => 0x90,
        R::PacketIdentifierInUse => 0x91,
        R::QuotaExceeded => 0x97,
        R::PayloadFormatInvalid => 0x99,
    }
}

fn connack_code(code: v5::ConnectReturnCode) -> u8 {
    use v5::ConnectReturnCode as C;
    match code {
        C::Success => 0x00,
        C::RefusedProtocolVersion | C::UnsupportedProtocolVersion => 0x84,
        C::BadClientId | C::ClientIdentifierNotValid => 0x85,
        C::ServiceUnavailable | C::ServerUnavailable => 0x88,
        C::UnspecifiedError => 0x80,
        C::MalformedPacket => 0x81,
        C::ProtocolError => 0x82,
        C::ImplementationSpecificError => 0x83,
        C::BadUserNamePassword => 0x86,
        C::NotAuthorized => 0x87,
        C::ServerBusy => 0x89,
        C::Banned => 0x8A,
        C::BadAuthenticationMethod => 0x8C,
        C::TopicNameInvalid => 0x90,
        C::PacketTooLarge => 0x95,
        C::QuotaExceeded => 0x97,
        C::PayloadFormatInvalid => 0x99,
        C::RetainNotSupported => 0x9A,
        C::QoSNotSupported => 0x9B,
        C::UseAnotherServer => 0x9C,
        C::ServerMoved => 0x9D,
        C::ConnectionRateExceeded => 0x9F,
    }
}

fn v5_connack_refusal(
    code: v5::ConnectReturnCode,
    properties: Option<&v5::ConnAckProperties>,
) -> Option<Error> {
    use v5::ConnectReturnCode as C;
    let reason = properties
        .and_then(|p| p.reason_string.clone())
        .map(|s| format!(" ({s})"))
        .unwrap_or_default();
    let text = |what: &str| format!("broker refused the connection: {what}{reason}");
    match code {
        C::Success => None,
        C::BadUserNamePassword => Some(Error::BadCredentials(text("bad user name or password"))),
        C::NotAuthorized => Some(Error::NotAuthorized(text("not authorized"))),
        C::BadClientId | C::ClientIdentifierNotValid => {
            Some(Error::InvalidClientId(text("client identifier not valid")))
        }
        C::UnsupportedProtocolVersion => Some(Error::UnsupportedProtocolVersion(text(
            "unsupported protocol version",
        ))),
        C::BadAuthenticationMethod => {
            Some(Error::AuthFailed(text("bad authentication method (0x8C)")))
        }
        C::UseAnotherServer | C::ServerMoved => {
            let what = if code == C::UseAnotherServer {
                "use another server (0x9C)"
            } else {
                "server moved (0x9D)"
            };
            let reference = properties
                .and_then(|p| p.server_reference.as_deref())
                .map(|r| format!("; server reference: {r}"))
                .unwrap_or_else(|| "; no server reference".into());
            Some(Error::ServerMoved(format!("{}{reference}", text(what))))
        }
        other => Some(Error::BrokerRefused(text(&format!("{other:?}")))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec(version: ProtocolVersion) -> Codec {
        Codec {
            version,
            max_incoming: 1 << 20,
        }
    }

    #[test]
    fn publish_size_matches_the_encoded_packet() {
        for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
            for (payload, qos) in [(0usize, 0u8), (10, 1), (200, 2), (20_000, 1), (21, 2)] {
                let c = codec(version);
                let properties = (version == ProtocolVersion::V5 && payload % 2 == 0).then(|| {
                    Arc::new(PublishProperties {
                        payload_is_utf8: Some(true),
                        message_expiry: Some(60),
                        content_type: Some("text/plain".into()),
                        response_topic: Some("reply/here".into()),
                        correlation_data: Some(Bytes::from_static(b"\x01\x02")),
                        user_properties: vec![("k".into(), "v".into()), ("a".into(), "".into())],
                    })
                });
                let p = OutPublish {
                    topic: "a/b".into(),
                    payload: Bytes::from(vec![7u8; payload]),
                    qos,
                    retain: false,
                    properties: properties.clone(),
                };
                let mut buf = BytesMut::new();
                c.publish(&p, if qos > 0 { 9 } else { 0 }, false, &mut buf)
                    .unwrap();
                assert_eq!(
                    buf.len(),
                    c.publish_size(3, payload, qos, properties.as_deref()),
                    "{version:?} {payload} {qos}"
                );
                if let Some(expected) = properties {
                    let Ok(Some(Incoming::Publish(back, _))) = c.decode(&mut buf) else {
                        panic!("the encoded PUBLISH decodes")
                    };
                    assert_eq!(back.properties.as_deref(), Some(&*expected));
                }
            }
        }
    }

    #[test]
    fn publish_size_with_an_alias_matches_the_encoded_packet() {
        let c = codec(ProtocolVersion::V5);
        for with_properties in [false, true] {
            for alias in [AliasUse::None, AliasUse::Establish(7), AliasUse::Reuse(7)] {
                let properties = with_properties.then(|| {
                    Arc::new(PublishProperties {
                        content_type: Some("text/plain".into()),
                        ..PublishProperties::default()
                    })
                });
                let p = OutPublish {
                    topic: "telemetry/site-1/device-22/temperature".into(),
                    payload: Bytes::from_static(b"12345678"),
                    qos: 1,
                    retain: false,
                    properties: properties.clone(),
                };
                let mut buf = BytesMut::new();
                c.publish_aliased(&p, 3, false, alias, &mut buf).unwrap();
                assert_eq!(
                    buf.len(),
                    c.publish_size_aliased(p.topic.len(), 8, 1, properties.as_deref(), alias),
                    "{alias:?} {with_properties}"
                );
                match v5::Packet::read(&mut buf, None) {
                    Ok(v5::Packet::Publish(back)) => {
                        let props = back.properties.unwrap_or_else(empty_v5_properties);
                        assert_eq!(props.topic_alias, alias.alias());
                        assert_eq!(back.topic.is_empty(), !alias.sends_topic());
                        assert_eq!(props.content_type.is_some(), with_properties, "{alias:?}");
                    }
                    other => panic!("not a PUBLISH: {other:?}"),
                }
            }
        }
    }

    fn v5_connect_properties(options: &Options) -> Option<v5::ConnectProperties> {
        let c = codec(ProtocolVersion::V5);
        let mut buf = BytesMut::new();
        c.connect(options, "id", None, &mut buf).unwrap();
        match v5::Packet::read(&mut buf, None) {
            Ok(v5::Packet::Connect(connect, _, _)) => connect.properties,
            other => panic!("not a CONNECT: {other:?}"),
        }
    }

    #[test]
    fn v5_connect_carries_only_the_properties_the_user_set() {
        let properties = v5_connect_properties(&Options::default());
        assert!(
            properties.is_none() || properties == Some(v5::ConnectProperties::new()),
            "{properties:?}"
        );
        let mut options = Options::default();
        options.set_receive_maximum(10).unwrap();
        options.set_max_packet_size(4096).unwrap();
        options.set_topic_alias_maximum(5).unwrap();
        options.set_request_response_information(true);
        options.set_request_problem_information(false);
        options.add_connect_user_property("site", "a").unwrap();
        options.session_expiry = 60;
        let p = v5_connect_properties(&options).expect("properties");
        assert_eq!(p.receive_maximum, Some(10));
        assert_eq!(p.max_packet_size, Some(4096));
        assert_eq!(p.topic_alias_max, Some(5));
        assert_eq!(p.request_response_info, Some(1));
        assert_eq!(p.request_problem_info, Some(0));
        assert_eq!(
            p.user_properties,
            vec![("site".to_string(), "a".to_string())]
        );
        assert_eq!(p.session_expiry_interval, Some(60));
    }

    /// A hand-built v5 PUBLISH as mosquitto sends it to a client with overlapping
    /// subscriptions: three Subscription Identifiers (one two bytes long), then other
    /// properties. rumqttc 0.25.1 alone ends the property section early and the rest leaks
    /// into the payload.
    #[test]
    fn publish_with_several_subscription_ids_keeps_all_ids_and_its_payload() {
        let c = codec(ProtocolVersion::V5);
        let mut props = vec![0x0B, 0x01, 0x0B, 0x02, 0x0B, 0x80, 0x01];
        props.extend_from_slice(&[0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v']);
        props.extend_from_slice(&[0x01, 0x01]); // payload format: UTF-8
        let mut body = vec![0x00, 0x03, b'a', b'/', b'b', 0x00, 0x07];
        body.push(props.len() as u8);
        body.extend_from_slice(&props);
        body.extend_from_slice(b"payload");
        let mut frame = vec![0x32, body.len() as u8];
        frame.extend_from_slice(&body);
        // The unpatched decoder really is wrong on this frame (the reason for the fix).
        let mut raw = BytesMut::from(&frame[..]);
        if let Ok(v5::Packet::Publish(p)) = v5::Packet::read(&mut raw, None) {
            assert_ne!(
                &p.payload[..],
                b"payload",
                "rumqttc got fixed: the workaround may go"
            );
        }
        frame.extend_from_slice(&[0xD0, 0x00]); // a PINGRESP right behind it
        let mut buf = BytesMut::from(&frame[..]);
        let Ok(Some(Incoming::Publish(p, alias))) = c.decode(&mut buf) else {
            panic!("the PUBLISH decodes")
        };
        assert_eq!(p.subscription_ids, vec![1, 2, 128]);
        assert_eq!(&p.payload[..], b"payload");
        assert_eq!(p.pkid, 7);
        assert_eq!(alias, None);
        let props = p.properties.expect("properties");
        assert_eq!(props.payload_is_utf8, Some(true));
        assert_eq!(
            props.user_properties,
            vec![("k".to_string(), "v".to_string())]
        );
        assert!(matches!(c.decode(&mut buf), Ok(Some(Incoming::PingResp))));
        assert!(buf.is_empty());
    }

    #[test]
    fn suback_and_unsuback_carry_codes_and_properties() {
        let c = codec(ProtocolVersion::V5);
        // SUBACK pkid 1, reason string "no", codes 1, 0x87.
        let mut buf = BytesMut::from(
            &[
                0x90, 0x09, 0x00, 0x01, 0x05, 0x1F, 0x00, 0x02, b'n', b'o', 0x01, 0x87,
            ][..],
        );
        buf[1] = (buf.len() - 2) as u8;
        let Ok(Some(Incoming::SubAck(1, codes, ack))) = c.decode(&mut buf) else {
            panic!("SUBACK decodes")
        };
        assert_eq!(codes, vec![0x01, 0x87]);
        assert_eq!(ack.reason_string.as_deref(), Some("no"));
        let mut buf = BytesMut::from(&[0xB0, 0x05, 0x00, 0x02, 0x00, 0x00, 0x11][..]);
        let Ok(Some(Incoming::UnsubAck(2, codes, _))) = c.decode(&mut buf) else {
            panic!("UNSUBACK decodes")
        };
        assert_eq!(codes, vec![0x00, 0x11]);
    }

    #[test]
    fn mqtt31_connect_says_mqisdp_level_3_with_the_same_fields_as_311() {
        let mut options = Options::default();
        options.set_mqtt31();
        options.set_credentials("u", Some(b"p\xff")).unwrap();
        options.keep_alive = std::time::Duration::from_secs(30);
        let will = Will {
            topic: "w".into(),
            payload: b"bye".to_vec(),
            qos: 1,
            retain: true,
            properties: None,
            delay: None,
        };
        let mut buf = BytesMut::new();
        codec(ProtocolVersion::V311)
            .connect(&options, "id", Some(&will), &mut buf)
            .unwrap();
        let body: &[u8] = &[
            0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03, 0xEE, 0x00, 0x1E, // header
            0x00, 0x02, b'i', b'd', 0x00, 0x01, b'w', 0x00, 0x03, b'b', b'y',
            b'e', // id, will
            0x00, 0x01, b'u', 0x00, 0x02, b'p', 0xFF, // user name, password (raw bytes)
        ];
        assert_eq!(&buf[..2], &[0x10, body.len() as u8]);
        assert_eq!(&buf[2..], body);
    }

    #[test]
    fn auth_encodes_and_decodes_in_full_and_short_forms() {
        let c = codec(ProtocolVersion::V5);
        let mut buf = BytesMut::new();
        c.auth(0x19, "SCRAM-SHA-256", Some(b"n,,n=u,r=x"), &mut buf);
        let Ok(Some(Incoming::Auth(auth))) = c.decode(&mut buf) else {
            panic!("AUTH decodes")
        };
        assert_eq!(auth.reason, 0x19);
        assert_eq!(auth.method.as_deref(), Some("SCRAM-SHA-256"));
        assert_eq!(auth.data.as_deref(), Some(&b"n,,n=u,r=x"[..]));
        let mut short = BytesMut::from(&[0xF0u8, 0x00][..]);
        let Ok(Some(Incoming::Auth(auth))) = c.decode(&mut short) else {
            panic!("short AUTH decodes")
        };
        assert_eq!((auth.reason, auth.method), (0x00, None));
    }

    #[test]
    fn partial_packets_wait_for_more_bytes() {
        let c = codec(ProtocolVersion::V311);
        let mut buf = BytesMut::from(&[0x40u8, 0x02, 0x00][..]);
        assert!(matches!(c.decode(&mut buf), Ok(None)));
        buf.extend_from_slice(&[0x05]);
        assert!(matches!(
            c.decode(&mut buf),
            Ok(Some(Incoming::PubAck(5, _)))
        ));
    }

    #[test]
    fn garbage_is_a_protocol_error_not_a_panic() {
        for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
            let c = codec(version);
            for bytes in [
                &[0x00u8, 0x00][..],
                &[0x20, 0x01, 0x00],
                &[0x90, 0x03, 0x00, 0x01, 0x07],
                &[0x30, 0x02, 0x00, 0x05],
                &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
            ] {
                let mut buf = BytesMut::from(bytes);
                assert!(c.decode(&mut buf).is_err(), "{version:?} {bytes:?}");
            }
        }
    }
}

/// Random and mutated packets through the codec: whatever a broker sends, decoding returns a
/// packet, "need more bytes" or a protocol error, and never panics (a panic would print to
/// stderr from inside the library even though `Codec::decode` catches it).
#[cfg(test)]
mod fuzz {
    use super::*;

    use crate::mqtt::fuzz_support::Rng;

    fn valid_packets(version: ProtocolVersion) -> Vec<Vec<u8>> {
        let codec = Codec {
            version,
            max_incoming: 1 << 20,
        };
        let mut out = Vec::new();
        let message = OutPublish {
            topic: "a/b".into(),
            payload: Bytes::from_static(b"hello"),
            qos: 2,
            retain: true,
            properties: None,
        };
        let mut buf = BytesMut::new();
        codec.publish(&message, 7, true, &mut buf).unwrap();
        out.push(buf.to_vec());
        for encode in [Codec::puback, Codec::pubrec, Codec::pubrel, Codec::pubcomp] {
            let mut buf = BytesMut::new();
            encode(&codec, 9, &mut buf).unwrap();
            out.push(buf.to_vec());
        }
        out.push(vec![0x20, 0x02, 0x00, 0x00]); // CONNACK
        out.push(vec![0x20, 0x03, 0x01, 0x00, 0x00]); // v5 CONNACK, no properties
        out.push(vec![0x90, 0x03, 0x00, 0x01, 0x01]); // SUBACK
        out.push(vec![0x90, 0x04, 0x00, 0x01, 0x00, 0x80]); // v5 SUBACK
        out.push(vec![0xB0, 0x02, 0x00, 0x01]); // UNSUBACK
        out.push(vec![0xD0, 0x00]); // PINGRESP
        out.push(vec![0xE0, 0x02, 0x8B, 0x00]); // v5 DISCONNECT
        out
    }

    fn decode_everything(version: ProtocolVersion, bytes: &[u8]) {
        let mut buf = BytesMut::from(bytes);
        let max = 1 << 16;
        // Straight to the codec functions: no catch_unwind here, a panic fails the test.
        for _ in 0..64 {
            let result = match version {
                ProtocolVersion::V311 => decode_v4(&mut buf, max),
                ProtocolVersion::V5 => decode_v5(&mut buf, max as u32),
            };
            match result {
                Ok(Some(_)) if !buf.is_empty() => continue,
                _ => break,
            }
        }
    }

    #[test]
    fn random_and_mutated_packets_never_panic() {
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
            let seeds = valid_packets(version);
            for _ in 0..200_000 {
                let bytes = rng.mutant(&seeds, 3);
                decode_everything(version, &bytes);
            }
        }
    }
}
