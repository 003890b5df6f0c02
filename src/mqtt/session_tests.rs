//! Unit tests of the session state machine: no socket, no runtime, a clock moved by hand.
//! Packets go in as `Incoming` values; what the session writes is decoded with rumqttc's own
//! decoder (it reads client packets too) into `Sent`, one view for both protocol versions.

use super::*;
use bytes::Bytes;
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5;

use ProtocolVersion::{V311, V5};

/// A packet the session wrote, as the broker would read it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sent {
    Connect {
        clean: bool,
        keep_alive: u16,
    },
    Publish {
        topic: String,
        qos: u8,
        pkid: u16,
        dup: bool,
        retain: bool,
    },
    PubAck(u16),
    PubRec(u16),
    PubRel(u16),
    PubComp(u16),
    Subscribe {
        pkid: u16,
        filters: Vec<(String, u8)>,
    },
    Unsubscribe {
        pkid: u16,
        filters: Vec<String>,
    },
    PingReq,
    /// The v5 reason code; `None` on 3.1.1, which has none.
    Disconnect(Option<u8>),
    Auth {
        reason: u8,
        method: Option<String>,
        data: Option<Bytes>,
    },
}

fn publish(topic: &str, qos: u8, pkid: u16, dup: bool) -> Sent {
    Sent::Publish {
        topic: topic.into(),
        qos,
        pkid,
        dup,
        retain: false,
    }
}

fn subscribe(pkid: u16, filters: &[(&str, u8)]) -> Sent {
    Sent::Subscribe {
        pkid,
        filters: filters.iter().map(|(f, q)| (f.to_string(), *q)).collect(),
    }
}

fn unsubscribe(pkid: u16, filters: &[&str]) -> Sent {
    Sent::Unsubscribe {
        pkid,
        filters: filters.iter().map(|f| f.to_string()).collect(),
    }
}

fn suback(pkid: u16, codes: &[u8]) -> Incoming {
    Incoming::SubAck(pkid, codes.to_vec(), AckProperties::default())
}

fn unsuback(pkid: u16) -> Incoming {
    Incoming::UnsubAck(pkid, Vec::new(), AckProperties::default())
}

const DECODE_MAX: usize = 1 << 24;

fn decode(version: ProtocolVersion, mut buf: BytesMut) -> Vec<Sent> {
    let mut sent = Vec::new();
    while !buf.is_empty() {
        // rumqttc's v5 decoder insists on a property length in DISCONNECT; the session writes
        // the short forms the spec allows (`E0 00`, `E0 01 <reason>`).
        if version == V5 && buf[0] == 0xE0 && buf.len() >= 2 && buf[1] <= 1 {
            let code = if buf[1] == 1 { buf[2] } else { 0 };
            let _ = buf.split_to(2 + buf[1] as usize);
            sent.push(Sent::Disconnect(Some(code)));
            continue;
        }
        // rumqttc's AUTH codec miscounts property lengths: read it with ours.
        if version == V5 && buf[0] == 0xF0 {
            let codec = Codec {
                version: V5,
                max_incoming: DECODE_MAX as u32,
            };
            match codec.decode(&mut buf) {
                Ok(Some(Incoming::Auth(a))) => sent.push(Sent::Auth {
                    reason: a.reason,
                    method: a.method,
                    data: a.data,
                }),
                other => panic!("undecodable AUTH: {other:?}"),
            }
            continue;
        }
        let before = buf.to_vec();
        sent.push(match version {
            V311 => match v4::Packet::read(&mut buf, DECODE_MAX) {
                Ok(packet) => from_v4(packet),
                Err(e) => panic!("undecodable 3.1.1 bytes {before:02x?}: {e:?}"),
            },
            V5 => match v5::Packet::read(&mut buf, Some(DECODE_MAX as u32)) {
                Ok(packet) => from_v5(packet),
                Err(e) => panic!("undecodable 5.0 bytes {before:02x?}: {e:?}"),
            },
        });
    }
    sent
}

fn from_v4(packet: v4::Packet) -> Sent {
    match packet {
        v4::Packet::Connect(c) => Sent::Connect {
            clean: c.clean_session,
            keep_alive: c.keep_alive,
        },
        v4::Packet::Publish(p) => Sent::Publish {
            topic: p.topic,
            qos: p.qos as u8,
            pkid: p.pkid,
            dup: p.dup,
            retain: p.retain,
        },
        v4::Packet::PubAck(a) => Sent::PubAck(a.pkid),
        v4::Packet::PubRec(a) => Sent::PubRec(a.pkid),
        v4::Packet::PubRel(a) => Sent::PubRel(a.pkid),
        v4::Packet::PubComp(a) => Sent::PubComp(a.pkid),
        v4::Packet::Subscribe(s) => Sent::Subscribe {
            pkid: s.pkid,
            filters: s
                .filters
                .into_iter()
                .map(|f| (f.path, f.qos as u8))
                .collect(),
        },
        v4::Packet::Unsubscribe(u) => Sent::Unsubscribe {
            pkid: u.pkid,
            filters: u.topics,
        },
        v4::Packet::PingReq => Sent::PingReq,
        v4::Packet::Disconnect => Sent::Disconnect(None),
        other => panic!("a client does not send {other:?}"),
    }
}

fn from_v5(packet: v5::Packet) -> Sent {
    match packet {
        v5::Packet::Connect(c, _, _) => Sent::Connect {
            clean: c.clean_start,
            keep_alive: c.keep_alive,
        },
        v5::Packet::Publish(p) => Sent::Publish {
            topic: String::from_utf8(p.topic.to_vec()).expect("UTF-8 topic"),
            qos: p.qos as u8,
            pkid: p.pkid,
            dup: p.dup,
            retain: p.retain,
        },
        v5::Packet::PubAck(a) => Sent::PubAck(a.pkid),
        v5::Packet::PubRec(a) => Sent::PubRec(a.pkid),
        v5::Packet::PubRel(a) => Sent::PubRel(a.pkid),
        v5::Packet::PubComp(a) => Sent::PubComp(a.pkid),
        v5::Packet::Subscribe(s) => Sent::Subscribe {
            pkid: s.pkid,
            filters: s
                .filters
                .into_iter()
                .map(|f| (f.path, f.qos as u8))
                .collect(),
        },
        v5::Packet::Unsubscribe(u) => Sent::Unsubscribe {
            pkid: u.pkid,
            filters: u.filters,
        },
        v5::Packet::PingReq(_) => Sent::PingReq,
        v5::Packet::Disconnect(d) => Sent::Disconnect(Some(d.reason_code as u8)),
        other => panic!("a client does not send {other:?}"),
    }
}

/// A session, its clock and the tokens it was given.
struct Harness {
    session: Session<u32>,
    now: Instant,
    next_token: Token,
}

impl Harness {
    fn new(options: Options) -> Harness {
        let now = Instant::now();
        Harness {
            session: Session::new(Arc::new(options), "unit".into(), now),
            now,
            next_token: 0,
        }
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    /// Everything the session has to write now, decoded.
    fn written(&mut self) -> Vec<Sent> {
        let mut sent = Vec::new();
        while let Some(transmit) = self.session.transmit(self.now) {
            sent.extend(decode(self.session.version(), transmit.bytes.concat()));
        }
        sent
    }

    fn events(&mut self) -> Vec<Event<u32>> {
        std::iter::from_fn(|| self.session.poll_event()).collect()
    }

    fn receive(&mut self, packet: Incoming) -> Result<()> {
        self.session.handle_packet(packet, self.now)
    }

    fn timeout(&mut self) -> Result<()> {
        self.session.handle_timeout(self.now)
    }

    /// Opens a connection: the session writes CONNECT.
    fn open(&mut self) {
        self.session.connection_opened(self.now).expect("CONNECT");
        let sent = self.written();
        assert!(matches!(sent[..], [Sent::Connect { .. }]), "{sent:?}");
    }

    /// Loses the connection and connects again; returns what the session writes after CONNACK.
    fn reconnect(&mut self, session_present: bool) -> Vec<Sent> {
        self.session
            .connection_closed(&Error::ConnectionLost("the test dropped it".into()));
        self.open();
        self.receive(Incoming::ConnAck(ConnAck {
            session_present,
            ..ConnAck::default()
        }))
        .expect("CONNACK accepted");
        let events = self.events();
        assert!(
            matches!(events[..], [Event::Connected { session_present: p }] if p == session_present),
            "{events:?}"
        );
        self.written()
    }

    fn send(&mut self, message: OutPublish) -> Token {
        self.next_token += 1;
        self.session.publish(Queued {
            token: self.next_token,
            message,
            accepted: self.now,
        });
        self.next_token
    }

    fn publish(&mut self, topic: &str, qos: u8) -> Token {
        self.send(message(topic, qos))
    }
}

fn ok() -> AckDetail {
    AckDetail::default()
}

fn ack(code: u8, text: Option<&str>) -> AckDetail {
    AckDetail {
        code,
        text: text.map(str::to_string),
        properties: Vec::new(),
    }
}

fn message(topic: &str, qos: u8) -> OutPublish {
    OutPublish {
        topic: topic.into(),
        payload: Bytes::from_static(b"payload"),
        qos,
        retain: false,
        properties: None,
    }
}

fn options(version: ProtocolVersion) -> Options {
    with(Options::default(), |o| o.version = version)
}

/// `options` changed by `change` (struct update syntax cannot name its private fields).
fn with(mut options: Options, change: impl FnOnce(&mut Options)) -> Options {
    change(&mut options);
    options
}

/// A persistent session (the broker may keep it).
fn persistent(version: ProtocolVersion) -> Options {
    with(options(version), |o| o.clean_session = false)
}

fn connected(version: ProtocolVersion, options: Options) -> Harness {
    connected_with(version, options, ConnAck::default())
}

fn connected_with(version: ProtocolVersion, options: Options, ack: ConnAck) -> Harness {
    let mut h = Harness::new(with(options, |o| o.version = version));
    h.session.begin(None);
    h.open();
    h.receive(Incoming::ConnAck(ack)).expect("CONNACK accepted");
    let events = h.events();
    assert!(
        matches!(events[..], [Event::Connected { .. }]),
        "{events:?}"
    );
    h
}

fn with_limits(limits: BrokerLimits) -> ConnAck {
    ConnAck {
        limits,
        ..ConnAck::default()
    }
}

fn inbound(topic: &str, qos: u8, pkid: u16, dup: bool) -> InPublish {
    InPublish {
        topic: topic.into(),
        payload: Bytes::from_static(b"in"),
        qos,
        retain: false,
        dup,
        pkid,
        properties: None,
        subscription_ids: Vec::new(),
    }
}

fn completed(events: &[Event<u32>]) -> Vec<(Token, Result<()>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Completed(token, result, _) => Some((*token, result.clone())),
            _ => None,
        })
        .collect()
}

/// The answer to a subscribe the broker granted with these QoS, without identifiers.
fn granted(qos: &[Qos]) -> Outcome {
    Outcome::Subscribed(SubscribeReport {
        filters: qos
            .iter()
            .map(|q| SubscribeResult {
                reason_code: *q as u8,
                granted: Ok(*q),
                subscription_id: None,
            })
            .collect(),
        ack: AckProperties::default(),
    })
}

fn unsubscribed(count: usize) -> Outcome {
    Outcome::Unsubscribed(UnsubscribeReport::all_done(count))
}

fn replies(events: &[Event<u32>]) -> Vec<(u32, Outcome)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Reply(waiter, outcome) => Some((*waiter, outcome.clone())),
            _ => None,
        })
        .collect()
}

fn messages(events: &[Event<u32>]) -> Vec<(String, Option<AckTicket>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m, ticket) => Some((m.topic.clone(), *ticket)),
            _ => None,
        })
        .collect()
}

/// The one message delivered by the last packet, and its ticket.
fn delivered(h: &mut Harness) -> (String, Option<AckTicket>) {
    let events = h.events();
    let mut messages = messages(&events);
    assert_eq!(messages.len(), 1, "{events:?}");
    messages.remove(0)
}

/// `result` is a protocol error and the session wrote DISCONNECT with `reason` (v5).
fn assert_violation(h: &mut Harness, result: Result<()>, reason: u8) {
    assert!(matches!(result, Err(Error::Protocol(_))), "{result:?}");
    assert_eq!(h.written(), [Sent::Disconnect(Some(reason))]);
}

fn v5_with_aliases(maximum: u16) -> Harness {
    let mut o = options(V5);
    o.v5_connect.topic_alias_maximum = maximum;
    connected(V5, o)
}

// ----- protocol violations by the broker -----

#[test]
fn connack_with_session_present_answering_a_clean_session_is_a_protocol_error() {
    let mut h = Harness::new(options(V5));
    h.session.begin(None);
    h.open();
    let result = h.receive(Incoming::ConnAck(ConnAck {
        session_present: true,
        ..ConnAck::default()
    }));
    assert_violation(&mut h, result, reason::PROTOCOL_ERROR);
    assert!(!h.session.is_connected());
}

#[test]
fn a_second_connack_is_a_protocol_error() {
    let mut h = connected(V5, options(V5));
    let result = h.receive(Incoming::ConnAck(ConnAck::default()));
    assert_violation(&mut h, result, reason::PROTOCOL_ERROR);
}

#[test]
fn a_packet_only_clients_send_is_a_protocol_error() {
    let mut h = connected(V5, options(V5));
    let result = h.receive(Incoming::Unexpected("SUBSCRIBE"));
    assert_violation(&mut h, result, reason::PROTOCOL_ERROR);
}

#[test]
fn anything_but_connack_first_is_a_protocol_error() {
    let mut h = Harness::new(options(V5));
    h.session.begin(None);
    h.open();
    let result = h.receive(Incoming::PingResp);
    assert_violation(&mut h, result, reason::PROTOCOL_ERROR);
}

#[test]
fn topic_alias_zero_or_above_the_announced_maximum_is_invalid() {
    for alias in [0, 6] {
        let mut h = v5_with_aliases(5);
        let result = h.receive(Incoming::Publish(inbound("a/b", 0, 0, false), Some(alias)));
        assert_violation(&mut h, result, reason::TOPIC_ALIAS_INVALID);
        assert!(h.events().is_empty(), "alias {alias}: nothing delivered");
    }
}

#[test]
fn any_topic_alias_is_invalid_when_we_announced_none() {
    let mut h = v5_with_aliases(0);
    let result = h.receive(Incoming::Publish(inbound("a/b", 0, 0, false), Some(1)));
    assert_violation(&mut h, result, reason::TOPIC_ALIAS_INVALID);
}

#[test]
fn topic_alias_is_resolved_once_defined() {
    let mut h = v5_with_aliases(5);
    h.receive(Incoming::Publish(inbound("a/b", 0, 0, false), Some(5)))
        .unwrap();
    assert_eq!(delivered(&mut h).0, "a/b");
    h.receive(Incoming::Publish(inbound("", 0, 0, false), Some(5)))
        .unwrap();
    assert_eq!(delivered(&mut h).0, "a/b");
    assert!(h.written().is_empty());
}

#[test]
fn topic_alias_used_before_being_defined_is_a_protocol_error() {
    let mut h = v5_with_aliases(5);
    let result = h.receive(Incoming::Publish(inbound("", 0, 0, false), Some(3)));
    assert_violation(&mut h, result, reason::PROTOCOL_ERROR);
}

#[test]
fn topic_aliases_do_not_outlive_their_connection() {
    let mut o = persistent(V5);
    o.v5_connect.topic_alias_maximum = 5;
    let mut h = connected(V5, o);
    h.receive(Incoming::Publish(inbound("a/b", 0, 0, false), Some(1)))
        .unwrap();
    h.events();
    h.reconnect(true);
    let result = h.receive(Incoming::Publish(inbound("", 0, 0, false), Some(1)));
    assert_violation(&mut h, result, reason::PROTOCOL_ERROR);
}

#[test]
fn empty_topic_without_alias_is_a_protocol_error() {
    let mut h = v5_with_aliases(5);
    let result = h.receive(Incoming::Publish(inbound("", 1, 1, false), None));
    assert_violation(&mut h, result, reason::PROTOCOL_ERROR);
}

fn v5_with_receive_maximum(maximum: u16) -> Harness {
    let mut o = options(V5);
    o.v5_connect.receive_maximum = Some(maximum);
    connected(V5, o)
}

#[test]
fn more_unacknowledged_qos1_and_qos2_messages_than_the_receive_maximum_is_a_violation() {
    let mut h = v5_with_receive_maximum(2);
    h.receive(Incoming::Publish(inbound("t", 1, 1, false), None))
        .unwrap();
    h.receive(Incoming::Publish(inbound("t", 2, 2, false), None))
        .unwrap();
    // A retransmission of a message still unacknowledged takes no second place.
    h.receive(Incoming::Publish(inbound("t", 1, 1, true), None))
        .unwrap();
    let result = h.receive(Incoming::Publish(inbound("t", 1, 3, false), None));
    assert_violation(&mut h, result, reason::RECEIVE_MAXIMUM_EXCEEDED);
}

#[test]
fn qos2_held_from_an_earlier_connection_takes_no_place_in_the_receive_maximum() {
    let mut o = options(V5);
    o.v5_connect.receive_maximum = Some(2);
    o.clean_session = false;
    let mut h = connected(V5, o);
    h.receive(Incoming::Publish(inbound("t", 2, 1, false), None))
        .unwrap();
    h.receive(Incoming::Publish(inbound("t", 2, 2, false), None))
        .unwrap();
    h.events();
    // The broker kept the session: ids 1 and 2 still await PUBREL, but the Receive Maximum
    // is per network connection.
    h.reconnect(true);
    h.receive(Incoming::Publish(inbound("t", 1, 3, false), None))
        .unwrap();
    h.receive(Incoming::Publish(inbound("t", 2, 4, false), None))
        .unwrap();
    assert!(h.session.is_connected());
    let result = h.receive(Incoming::Publish(inbound("t", 1, 5, false), None));
    assert_violation(&mut h, result, reason::RECEIVE_MAXIMUM_EXCEEDED);
}

#[test]
fn acknowledged_messages_free_their_place_in_the_receive_maximum() {
    let mut h = v5_with_receive_maximum(2);
    for round in 0..3u16 {
        let (q1, q2) = (round * 2 + 1, round * 2 + 2);
        h.receive(Incoming::Publish(inbound("t", 1, q1, false), None))
            .unwrap();
        h.receive(Incoming::Publish(inbound("t", 2, q2, false), None))
            .unwrap();
        for (_, ticket) in messages(&h.events()) {
            h.session.acknowledge(ticket.expect("QoS 1/2 has a ticket"));
        }
        // QoS 2 holds its place until PUBREL, not just until our PUBREC.
        h.receive(Incoming::PubRel(q2, ok())).unwrap();
        assert_eq!(
            h.written(),
            [Sent::PubAck(q1), Sent::PubRec(q2), Sent::PubComp(q2)]
        );
    }
    // QoS 0 takes no place at all.
    for _ in 0..5 {
        h.receive(Incoming::Publish(inbound("t", 0, 0, false), None))
            .unwrap();
    }
    assert!(h.session.is_connected());
}

#[test]
fn suback_with_a_different_number_of_return_codes_than_filters_is_a_protocol_error() {
    let mut h = connected(V5, options(V5));
    h.session.subscribe(
        vec![
            ("a".into(), Qos::AtLeastOnce),
            ("b".into(), Qos::AtLeastOnce),
        ],
        1,
    );
    assert_eq!(h.written(), [subscribe(1, &[("a", 1), ("b", 1)])]);
    let result = h.receive(suback(1, &[1]));
    assert_violation(&mut h, result, reason::PROTOCOL_ERROR);
    let events = h.events();
    assert!(
        matches!(
            replies(&events)[..],
            [(1, Outcome::Failed(Error::Protocol(_)))]
        ),
        "the waiter hears why: {events:?}"
    );
    // Failed for the caller, so not restored behind its back on the next connection.
    assert!(h.reconnect(false).is_empty());
}

#[test]
fn a_restore_answered_by_a_bad_suback_is_restored_again_on_the_next_connection() {
    let mut h = connected(V311, options(V311));
    h.session.subscribe(vec![("a".into(), Qos::AtMostOnce)], 1);
    h.receive(suback(1, &[0])).unwrap();
    h.events();
    assert_eq!(h.reconnect(false), [subscribe(1, &[("a", 0)])]);
    let result = h.receive(suback(1, &[0, 0]));
    assert!(matches!(result, Err(Error::Protocol(_))), "{result:?}");
    assert!(h.events().is_empty(), "nobody waits for a restore");
    assert_eq!(h.reconnect(false), [subscribe(1, &[("a", 0)])]);
}

#[test]
fn violations_on_v311_close_without_disconnect() {
    // 3.1.1 has no reason codes: the connection just closes.
    let mut h = connected(V311, options(V311));
    let result = h.receive(Incoming::ConnAck(ConnAck::default()));
    assert!(matches!(result, Err(Error::Protocol(_))), "{result:?}");
    assert!(h.written().is_empty());
    let error = h.session.malformed(
        crate::mqtt::frame_check::MALFORMED_PACKET,
        Error::Protocol("bad".into()),
    );
    assert!(matches!(error, Error::Protocol(_)));
    assert!(h.written().is_empty());
}

#[test]
fn a_malformed_packet_closes_a_v5_connection_with_reason_0x81() {
    let mut h = connected(V5, options(V5));
    let error = h.session.malformed(
        crate::mqtt::frame_check::MALFORMED_PACKET,
        Error::Protocol("bad".into()),
    );
    assert!(matches!(error, Error::Protocol(_)));
    assert_eq!(h.written(), [Sent::Disconnect(Some(0x81))]);
}

#[test]
fn broker_disconnect_is_a_lost_connection() {
    let mut h = connected(V5, options(V5));
    let result = h.receive(Incoming::Disconnect(crate::mqtt::wire::ServerDisconnect {
        reason_code: 0x8B,
        ..Default::default()
    }));
    assert!(
        matches!(result, Err(Error::ConnectionLost(_))),
        "{result:?}"
    );
    assert!(h.written().is_empty(), "no DISCONNECT answers a DISCONNECT");
}

// ----- what the broker announced in CONNACK -----

fn v5_with(limits: BrokerLimits) -> Harness {
    connected_with(V5, options(V5), with_limits(limits))
}

#[test]
fn publish_above_the_broker_maximum_qos_fails_and_is_never_written() {
    let mut h = v5_with(BrokerLimits {
        maximum_qos: Some(1),
        ..BrokerLimits::default()
    });
    let refused = h.publish("high", 2);
    let allowed = h.publish("low", 1);
    assert_eq!(h.written(), [publish("low", 1, 1, false)]);
    let events = h.events();
    assert!(
        matches!(completed(&events)[..], [(t, Err(Error::QosNotSupported(_)))] if t == refused),
        "{events:?}"
    );
    // Its outbox place goes back to the handle.
    assert_eq!(
        h.session.take_queue_delta(),
        (-1, -(("high".len() + 7) as i64))
    );
    h.receive(Incoming::PubAck(1, ok())).unwrap();
    assert!(matches!(completed(&h.events())[..], [(t, Ok(()))] if t == allowed));
}

#[test]
fn retained_publish_fails_when_the_broker_has_no_retain() {
    let mut h = v5_with(BrokerLimits {
        retain_available: Some(false),
        ..BrokerLimits::default()
    });
    let refused = h.send(OutPublish {
        retain: true,
        ..message("kept", 0)
    });
    h.publish("plain", 0);
    assert_eq!(h.written(), [publish("plain", 0, 0, false)]);
    let events = h.events();
    assert!(
        matches!(completed(&events)[..], [(t, Err(Error::FeatureNotSupported(_)))] if t == refused),
        "{events:?}"
    );
}

#[test]
fn packets_larger_than_the_broker_maximum_packet_size_are_refused_and_never_written() {
    let mut h = v5_with(BrokerLimits {
        maximum_packet_size: Some(64),
        ..BrokerLimits::default()
    });
    let long = "x".repeat(100);
    let refused = h.send(OutPublish {
        payload: Bytes::from(vec![0u8; 100]),
        ..message("big", 1)
    });
    h.session
        .subscribe(vec![(long.clone(), Qos::AtMostOnce)], 1);
    h.session.unsubscribe(vec![long.clone()], 2);
    assert!(h.written().is_empty());
    let events = h.events();
    assert!(
        matches!(completed(&events)[..], [(t, Err(Error::PayloadTooLarge(_)))] if t == refused),
        "{events:?}"
    );
    assert!(
        matches!(
            replies(&events)[..],
            [
                (1, Outcome::Failed(Error::PayloadTooLarge(_))),
                (2, Outcome::Failed(Error::PayloadTooLarge(_)))
            ]
        ),
        "{events:?}"
    );
    assert_eq!(h.session.ids.in_use(), 0, "their packet ids went back");
    h.publish("small", 1);
    assert!(matches!(h.written()[..], [Sent::Publish { .. }]));
}

#[test]
fn wildcard_and_shared_filters_fail_when_the_broker_lacks_them() {
    let mut h = v5_with(BrokerLimits {
        wildcard_available: Some(false),
        shared_available: Some(false),
        ..BrokerLimits::default()
    });
    h.session
        .subscribe(vec![("a/+".into(), Qos::AtMostOnce)], 1);
    h.session
        .subscribe(vec![("a/#".into(), Qos::AtMostOnce)], 2);
    h.session
        .subscribe(vec![("$share/g/t".into(), Qos::AtMostOnce)], 3);
    h.session
        .subscribe(vec![("a/b".into(), Qos::AtMostOnce)], 4);
    assert_eq!(h.written(), [subscribe(1, &[("a/b", 0)])]);
    let replies = replies(&h.events());
    assert_eq!(replies.len(), 3, "{replies:?}");
    for (waiter, (got, outcome)) in (1..=3).zip(replies) {
        assert_eq!(got, waiter);
        assert!(
            matches!(outcome, Outcome::Failed(Error::FeatureNotSupported(_))),
            "{outcome:?}"
        );
    }
}

fn qos1_in_flight(h: &mut Harness, count: usize) -> Vec<Sent> {
    for i in 0..count {
        h.publish(&format!("m{i}"), 1);
    }
    h.written()
}

#[test]
fn inflight_window_is_the_smaller_of_configured_and_broker_receive_maximum() {
    let broker_smaller = connected_with(
        V5,
        with(options(V5), |o| o.inflight_window = 5),
        with_limits(BrokerLimits {
            receive_maximum: Some(2),
            ..BrokerLimits::default()
        }),
    );
    let configured_smaller = connected_with(
        V5,
        with(options(V5), |o| o.inflight_window = 2),
        with_limits(BrokerLimits {
            receive_maximum: Some(10),
            ..BrokerLimits::default()
        }),
    );
    for mut h in [broker_smaller, configured_smaller] {
        assert_eq!(qos1_in_flight(&mut h, 4).len(), 2);
        assert_eq!(h.session.inflight_len(), 2);
        assert_eq!(h.session.outbox_len(), 2);
    }
}

#[test]
fn a_full_receive_maximum_holds_only_publishes_not_subscribe_unsubscribe_or_pingreq() {
    let mut h = connected_with(
        V5,
        keep_alive(10),
        with_limits(BrokerLimits {
            receive_maximum: Some(2),
            ..BrokerLimits::default()
        }),
    );
    assert_eq!(qos1_in_flight(&mut h, 4).len(), 2, "the window is full");
    h.session
        .subscribe(vec![("s".to_string(), Qos::AtLeastOnce)], 7);
    h.session.unsubscribe(vec!["u".to_string()], 8);
    let sent = h.written();
    assert!(
        matches!(
            &sent[..],
            [Sent::Subscribe { filters, .. }, Sent::Unsubscribe { filters: gone, .. }]
                if filters[0].0 == "s" && gone[..] == ["u".to_string()]
        ),
        "{sent:?}"
    );
    h.advance(Duration::from_secs(10));
    h.timeout().unwrap();
    assert_eq!(h.written(), [Sent::PingReq]);
    assert_eq!(
        (h.session.inflight_len(), h.session.outbox_len()),
        (2, 2),
        "only the publishes wait for the window"
    );
}

// ----- publishing -----

#[test]
fn puback_completes_a_qos1_publish() {
    let mut h = connected(V311, options(V311));
    let token = h.publish("a", 1);
    assert_eq!(h.written(), [publish("a", 1, 1, false)]);
    assert!(h.events().is_empty());
    h.receive(Incoming::PubAck(1, ok())).unwrap();
    assert!(matches!(completed(&h.events())[..], [(t, Ok(()))] if t == token));
    assert_eq!(h.session.inflight_len(), 0);
}

#[test]
fn qos2_publish_writes_pubrel_on_pubrec_and_completes_on_pubcomp() {
    let mut h = connected(V311, options(V311));
    let token = h.publish("a", 2);
    assert_eq!(h.written(), [publish("a", 2, 1, false)]);
    h.receive(Incoming::PubRec(1, ok())).unwrap();
    assert_eq!(h.written(), [Sent::PubRel(1)]);
    assert!(h.events().is_empty(), "not complete before PUBCOMP");
    h.receive(Incoming::PubComp(1, ok())).unwrap();
    assert!(matches!(completed(&h.events())[..], [(t, Ok(()))] if t == token));
}

#[test]
fn v5_ack_with_a_failure_reason_fails_the_token() {
    let mut h = connected(V5, options(V5));
    let q1 = h.publish("a", 1);
    let q2 = h.publish("b", 2);
    h.written();
    h.receive(Incoming::PubAck(1, ack(0x87, Some("not authorized"))))
        .unwrap();
    h.receive(Incoming::PubRec(2, ack(0x97, None))).unwrap();
    assert!(h.written().is_empty(), "no PUBREL after a failed PUBREC");
    let events = h.events();
    assert!(
        matches!(
            completed(&events)[..],
            [(a, Err(Error::PublishRefused(_))), (b, Err(Error::PublishRefused(_)))]
                if a == q1 && b == q2
        ),
        "{events:?}"
    );
}

#[test]
fn unknown_pubrel_is_answered_with_pubcomp() {
    let mut h = connected(V311, options(V311));
    h.receive(Incoming::PubRel(42, ok())).unwrap();
    assert_eq!(h.written(), [Sent::PubComp(42)]);
}

#[test]
fn unexpected_acks_are_ignored() {
    let mut h = connected(V311, options(V311));
    let q1 = h.publish("one", 1);
    let q2 = h.publish("two", 2);
    h.written();
    for packet in [
        Incoming::PubAck(9, ok()),
        Incoming::PubRec(9, ok()),
        Incoming::PubComp(9, ok()),
        suback(9, &[0]),
        unsuback(9),
        // Acks of the wrong kind for what is in flight.
        Incoming::PubRec(1, ok()),
        Incoming::PubAck(2, ok()),
        Incoming::PubComp(2, ok()),
        Incoming::PingResp,
    ] {
        h.receive(packet).unwrap();
    }
    assert!(h.written().is_empty());
    assert!(h.events().is_empty());
    assert_eq!(h.session.inflight_len(), 2);
    h.receive(Incoming::PubAck(1, ok())).unwrap();
    h.receive(Incoming::PubRec(2, ok())).unwrap();
    h.receive(Incoming::PubComp(2, ok())).unwrap();
    assert_eq!(h.written(), [Sent::PubRel(2)]);
    let done: Vec<Token> = completed(&h.events()).into_iter().map(|(t, _)| t).collect();
    assert_eq!(done, [q1, q2]);
}

fn packet_ids(sent: &[Sent]) -> Vec<u16> {
    sent.iter()
        .map(|packet| match packet {
            Sent::Publish { pkid, .. }
            | Sent::Subscribe { pkid, .. }
            | Sent::Unsubscribe { pkid, .. } => *pkid,
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

#[test]
fn packet_ids_never_collide_across_publishes_and_subscribes() {
    let mut h = connected(V311, options(V311));
    h.publish("p1", 1);
    h.session
        .subscribe(vec![("s1".into(), Qos::AtLeastOnce)], 1);
    h.publish("p2", 2);
    h.session.unsubscribe(vec!["u1".into()], 2);
    h.publish("p3", 1);
    let first = packet_ids(&h.written());
    let distinct: HashSet<u16> = first.iter().copied().collect();
    assert_eq!(distinct.len(), 5, "{first:?}");
    assert!(!distinct.contains(&0));
    // SUBSCRIBE and UNSUBSCRIBE are encoded at once, publishes when pumped.
    assert_eq!(first, [1, 2, 3, 4, 5]);
    // Free two; the other three stay in use while more are allocated.
    h.receive(suback(1, &[1])).unwrap();
    h.receive(Incoming::PubAck(3, ok())).unwrap();
    h.events();
    for round in 0..3 {
        h.publish(&format!("again{round}"), 1);
        h.session
            .subscribe(vec![(format!("s/{round}"), Qos::AtMostOnce)], 10 + round);
        h.session
            .unsubscribe(vec![format!("u/{round}")], 20 + round);
    }
    let second = packet_ids(&h.written());
    let distinct: HashSet<u16> = second.iter().copied().collect();
    assert_eq!(distinct.len(), 9, "{second:?}");
    for still_in_use in [2, 4, 5] {
        assert!(
            !distinct.contains(&still_in_use),
            "{still_in_use} reused: {second:?}"
        );
    }
}

#[test]
fn only_the_inflight_window_is_in_flight_until_acks() {
    let mut h = connected(V311, with(options(V311), |o| o.inflight_window = 2));
    assert_eq!(
        qos1_in_flight(&mut h, 5),
        [publish("m0", 1, 1, false), publish("m1", 1, 2, false)]
    );
    // QoS 0 is not held by the window, and does not pass the QoS 1 messages before it.
    h.publish("zero", 0);
    assert!(h.written().is_empty());
    h.receive(Incoming::PubAck(1, ok())).unwrap();
    assert_eq!(h.written(), [publish("m2", 1, 3, false)]);
    h.receive(Incoming::PubAck(2, ok())).unwrap();
    h.receive(Incoming::PubAck(3, ok())).unwrap();
    assert_eq!(
        h.written(),
        [
            publish("m3", 1, 4, false),
            publish("m4", 1, 5, false),
            publish("zero", 0, 0, false)
        ]
    );
    assert_eq!(h.session.inflight_len(), 2);
    assert_eq!(h.session.outbox_len(), 0);
}

#[test]
fn qos0_publishes_encode_at_most_the_write_ahead_per_transmit() {
    let mut h = connected(V311, options(V311));
    let payload = Bytes::from(vec![7u8; 64 * 1024]);
    let one = h.session.codec().publish_size(1, payload.len(), 0, None);
    let tokens: Vec<Token> = (0..10)
        .map(|_| {
            h.send(OutPublish {
                payload: payload.clone(),
                ..message("t", 0)
            })
        })
        .collect();
    let per_transmit = WRITE_AHEAD.div_ceil(one);
    let mut written = Vec::new();
    let mut left = tokens.len();
    // The driver takes one transmit, writes it, and only then asks for the next.
    while let Some(transmit) = h.session.transmit(h.now) {
        let count = transmit.written_tokens.len();
        assert_eq!(count, per_transmit.min(left));
        assert!(transmit.bytes.len() < WRITE_AHEAD + one);
        assert_eq!(
            transmit.released,
            (count as u64, (count * (1 + payload.len())) as u64)
        );
        left -= count;
        assert_eq!(h.session.outbox_len(), left, "the rest waits in the outbox");
        written.extend(transmit.written_tokens);
    }
    assert_eq!(written, tokens, "all written, in order");
    assert!(
        h.events().is_empty(),
        "QoS 0 completes when the driver has written it"
    );
}

#[test]
fn publishes_not_yet_encoded_wait_in_the_outbox_across_a_reconnect() {
    let mut h = connected(V311, persistent(V311));
    let zero = h.publish("zero", 0);
    h.publish("one", 1);
    assert_eq!(h.session.outbox_len(), 2);
    assert_eq!(
        h.reconnect(true),
        [publish("zero", 0, 0, false), publish("one", 1, 1, false)]
    );
    let events = h.events();
    assert!(
        !completed(&events).iter().any(|(t, _)| *t == zero),
        "{events:?}"
    );
}

// ----- the offline queue -----

fn queue_options(policy: QueueFullPolicy, max_messages: usize, max_bytes: usize) -> Options {
    with(options(V311), |o| {
        o.queue_full_policy = policy;
        o.queue_max_messages = max_messages;
        o.queue_max_bytes = max_bytes;
        o.queue_before_connect = true;
    })
}

#[test]
fn drop_oldest_drops_the_oldest_queued_messages_beyond_the_message_limit() {
    let mut h = Harness::new(queue_options(QueueFullPolicy::DropOldest, 2, 1 << 20));
    let oldest = h.publish("a", 1);
    h.publish("b", 1);
    h.publish("c", 1);
    let events = h.events();
    assert!(
        matches!(completed(&events)[..], [(t, Err(Error::Dropped(_)))] if t == oldest),
        "{events:?}"
    );
    assert_eq!(h.session.outbox_len(), 2);
    assert_eq!(
        h.session.take_queue_delta(),
        (-1, -8),
        "its place goes back"
    );
    h.session.begin(None);
    h.open();
    h.receive(Incoming::ConnAck(ConnAck::default())).unwrap();
    assert_eq!(
        h.written(),
        [publish("b", 1, 1, false), publish("c", 1, 2, false)]
    );
}

#[test]
fn drop_oldest_keeps_the_queue_within_its_byte_limit_but_never_empties_it() {
    // Each message weighs 1 + 7 bytes (topic + payload).
    let mut h = Harness::new(queue_options(QueueFullPolicy::DropOldest, 100, 16));
    let first = h.publish("a", 0);
    h.publish("b", 0);
    assert!(h.events().is_empty(), "16 bytes fit");
    h.publish("c", 0);
    assert!(matches!(completed(&h.events())[..], [(t, Err(Error::Dropped(_)))] if t == first));
    assert_eq!(h.session.outbox_len(), 2);
    // One message above the byte limit alone is kept: the handle let it in.
    let big = h.send(OutPublish {
        payload: Bytes::from(vec![0u8; 40]),
        ..message("big", 0)
    });
    assert_eq!(completed(&h.events()).len(), 2);
    assert_eq!(h.session.outbox_len(), 1);
    h.publish("d", 0);
    assert!(matches!(completed(&h.events())[..], [(t, Err(Error::Dropped(_)))] if t == big));
    assert_eq!(h.session.outbox_len(), 1);
}

#[test]
fn reject_new_never_drops_in_the_session_the_handle_refuses_instead() {
    // The handle reserves an outbox place before it hands a publish over and refuses with
    // `QueueFull` when there is none: what reaches the session fits and is kept.
    let mut h = Harness::new(queue_options(QueueFullPolicy::RejectNew, 2, 16));
    for topic in ["a", "b", "c"] {
        h.publish(topic, 1);
    }
    assert!(h.events().is_empty());
    assert_eq!(h.session.outbox_len(), 3);
}

#[test]
fn publish_before_connect_fails_without_queue_before_connect() {
    let mut h = Harness::new(options(V311));
    let token = h.publish("a", 1);
    assert!(matches!(completed(&h.events())[..], [(t, Err(Error::NotConnected(_)))] if t == token));
    assert_eq!(h.session.take_queue_delta(), (-1, -8));
    assert_eq!(h.session.outbox_len(), 0);
}

// ----- receiving -----

#[test]
fn inbound_qos2_is_delivered_once_until_pubrel() {
    let mut h = connected(V311, options(V311));
    h.receive(Incoming::Publish(inbound("a", 2, 5, false), None))
        .unwrap();
    let (topic, ticket) = delivered(&mut h);
    assert_eq!(topic, "a");
    assert!(h.written().is_empty(), "PUBREC waits for the application");
    h.session.acknowledge(ticket.expect("ticket"));
    assert_eq!(h.written(), [Sent::PubRec(5)]);
    // The broker did not see our PUBREC and sends it again, DUP set: acknowledged, not
    // delivered again.
    h.receive(Incoming::Publish(inbound("a", 2, 5, true), None))
        .unwrap();
    assert_eq!(h.written(), [Sent::PubRec(5)]);
    assert!(h.events().is_empty());
    h.receive(Incoming::PubRel(5, ok())).unwrap();
    assert_eq!(h.written(), [Sent::PubComp(5)]);
    // After PUBREL the id is free: a new message with it is delivered.
    h.receive(Incoming::Publish(inbound("b", 2, 5, false), None))
        .unwrap();
    assert_eq!(delivered(&mut h).0, "b");
}

#[test]
fn inbound_qos2_with_a_held_id_but_no_dup_is_a_new_message() {
    // A broker restored from a stale persistence file reuses ids (session.rs explains).
    let mut h = connected(V311, options(V311));
    h.receive(Incoming::Publish(inbound("first", 2, 6, false), None))
        .unwrap();
    assert_eq!(delivered(&mut h).0, "first");
    h.receive(Incoming::Publish(inbound("second", 2, 6, false), None))
        .unwrap();
    assert_eq!(delivered(&mut h).0, "second");
}

#[test]
fn inbound_qos0_and_qos1_are_delivered_and_qos1_acknowledged_by_ticket() {
    let mut h = connected(V311, options(V311));
    h.receive(Incoming::Publish(inbound("zero", 0, 0, false), None))
        .unwrap();
    assert_eq!(delivered(&mut h), ("zero".into(), None));
    h.receive(Incoming::Publish(inbound("one", 1, 3, false), None))
        .unwrap();
    let (_, ticket) = delivered(&mut h);
    assert!(h.written().is_empty(), "PUBACK waits for the application");
    h.session.acknowledge(ticket.expect("ticket"));
    assert_eq!(h.written(), [Sent::PubAck(3)]);
}

#[test]
fn acknowledgements_are_written_only_for_tickets_of_the_current_connection() {
    let mut h = connected(V311, persistent(V311));
    h.receive(Incoming::Publish(inbound("a", 1, 7, false), None))
        .unwrap();
    let (_, stale) = delivered(&mut h);
    let stale = stale.expect("ticket");
    h.session
        .connection_closed(&Error::ConnectionLost("gone".into()));
    h.session.acknowledge(stale);
    assert!(h.written().is_empty(), "no connection to acknowledge on");
    assert!(h.reconnect(true).is_empty());
    h.session.acknowledge(stale);
    assert!(
        h.written().is_empty(),
        "that PUBACK would name another connection's id"
    );
    // The broker resends it on the new connection; that ticket is acknowledged.
    h.receive(Incoming::Publish(inbound("a", 1, 7, true), None))
        .unwrap();
    let (_, fresh) = delivered(&mut h);
    h.session.acknowledge(fresh.expect("ticket"));
    assert_eq!(h.written(), [Sent::PubAck(7)]);
}

// ----- reconnecting -----

/// Moves the packet id allocator on until `next` is the next id it gives (they cycle through
/// 1..=65535), so that packet id order and send order differ.
fn next_packet_id_is(h: &mut Harness, next: u16) {
    loop {
        let id = h.session.ids.allocate().expect("a free packet id");
        h.session.ids.release(id);
        if id == next - 1 {
            return;
        }
    }
}

#[test]
fn resumed_session_resends_in_flight_publishes_with_dup_in_original_order() {
    let mut h = connected(V5, persistent(V5));
    h.session.subscribe(vec![("s".into(), Qos::AtLeastOnce)], 1);
    assert_eq!(h.written(), [subscribe(1, &[("s", 1)])]);
    h.receive(suback(1, &[1])).unwrap();
    h.events();
    next_packet_id_is(&mut h, 65_534);
    let a = h.publish("a", 1);
    let b = h.publish("b", 2);
    let c = h.publish("c", 1);
    assert_eq!(
        h.written(),
        [
            publish("a", 1, 65_534, false),
            publish("b", 2, 65_535, false),
            publish("c", 1, 1, false)
        ]
    );
    h.receive(Incoming::PubRec(65_535, ok())).unwrap();
    assert_eq!(h.written(), [Sent::PubRel(65_535)]);
    // In send order, not id order; QoS 2 past PUBREC resumes with PUBREL; the confirmed
    // subscription is not sent again.
    assert_eq!(
        h.reconnect(true),
        [
            publish("a", 1, 65_534, true),
            Sent::PubRel(65_535),
            publish("c", 1, 1, true)
        ]
    );
    h.receive(Incoming::PubComp(65_535, ok())).unwrap();
    h.receive(Incoming::PubAck(1, ok())).unwrap();
    h.receive(Incoming::PubAck(65_534, ok())).unwrap();
    let done: Vec<Token> = completed(&h.events()).into_iter().map(|(t, _)| t).collect();
    assert_eq!(done, [b, c, a]);
}

#[test]
fn lost_session_resends_in_flight_publishes_as_new_in_order_and_restores_subscriptions() {
    let mut h = connected(V311, with(options(V311), |o| o.inflight_window = 2));
    h.session
        .subscribe(vec![("s/#".into(), Qos::AtLeastOnce)], 1);
    assert_eq!(h.written(), [subscribe(1, &[("s/#", 1)])]);
    h.receive(suback(1, &[1])).unwrap();
    h.events();
    next_packet_id_is(&mut h, 65_535);
    let a = h.publish("a", 1);
    h.publish("b", 2);
    h.publish("c", 1);
    assert_eq!(
        h.written(),
        [publish("a", 1, 65_535, false), publish("b", 2, 1, false)]
    );
    h.receive(Incoming::PubRec(1, ok())).unwrap();
    assert_eq!(h.written(), [Sent::PubRel(1)]);
    h.events();
    h.session.take_queue_delta();
    // Even "b", past PUBREC: the broker that lost the session may have lost it too. Packet
    // ids start again; the restore goes first.
    assert_eq!(
        h.reconnect(false),
        [
            subscribe(1, &[("s/#", 1)]),
            publish("a", 1, 2, false),
            publish("b", 2, 3, false)
        ]
    );
    assert_eq!(h.session.outbox_len(), 1, "c still waits for the window");
    assert_eq!(
        h.session.take_queue_delta(),
        (2, 16),
        "a and b took outbox places again"
    );
    h.receive(suback(1, &[1])).unwrap();
    h.receive(Incoming::PubAck(2, ok())).unwrap();
    assert_eq!(h.written(), [publish("c", 1, 4, false)]);
    let events = h.events();
    assert!(replies(&events).is_empty(), "nobody waits for a restore");
    assert!(matches!(completed(&events)[..], [(t, Ok(()))] if t == a));
}

#[test]
fn subscribe_while_offline_is_sent_after_connack_and_answered_on_suback() {
    let mut h = Harness::new(options(V311));
    h.session.begin(None);
    h.session
        .subscribe(vec![("a/b".into(), Qos::AtLeastOnce)], 3);
    assert!(h.written().is_empty());
    h.open();
    h.session.subscribe(vec![("c".into(), Qos::ExactlyOnce)], 4);
    assert!(h.written().is_empty(), "nothing before CONNACK");
    h.receive(Incoming::ConnAck(ConnAck::default())).unwrap();
    assert_eq!(
        h.written(),
        [subscribe(1, &[("a/b", 1)]), subscribe(2, &[("c", 2)])]
    );
    h.receive(suback(1, &[1])).unwrap();
    h.receive(suback(2, &[0x80])).unwrap();
    let events = h.events();
    let replies = replies(&events);
    assert_eq!(replies[0], (3, granted(&[Qos::AtLeastOnce])));
    assert!(
        matches!(&replies[1], (4, Outcome::Subscribed(r)) if r.filters.len() == 1 && r.filters[0].reason_code == 0x80 && matches!(r.filters[0].granted, Err(Error::SubscribeRefused(_)))),
        "{replies:?}"
    );
    // The refused one is not restored; the granted one is, on a lost session.
    assert_eq!(h.reconnect(false), [subscribe(1, &[("a/b", 1)])]);
}

#[test]
fn subscribe_in_flight_when_the_connection_drops_is_sent_again_with_its_waiter() {
    let mut h = connected(V311, persistent(V311));
    h.session.subscribe(vec![("a".into(), Qos::AtMostOnce)], 5);
    assert_eq!(h.written(), [subscribe(1, &[("a", 0)])]);
    // Its packet id is released with the connection; the SUBSCRIBE goes again with a new one.
    assert_eq!(h.reconnect(true), [subscribe(2, &[("a", 0)])]);
    h.receive(suback(1, &[0])).unwrap();
    assert!(
        h.events().is_empty(),
        "a SUBACK for the old id answers nothing"
    );
    h.receive(suback(2, &[0])).unwrap();
    assert_eq!(replies(&h.events()), [(5, granted(&[Qos::AtMostOnce]))]);
}

// ----- unsubscribing -----

#[test]
fn unsubscribe_of_a_filter_never_subscribed_is_still_sent() {
    let mut h = connected(V311, options(V311));
    h.session
        .unsubscribe(vec!["from/an/earlier/process".into()], 7);
    assert_eq!(h.written(), [unsubscribe(1, &["from/an/earlier/process"])]);
    assert!(h.events().is_empty(), "answered on UNSUBACK");
    h.receive(unsuback(1)).unwrap();
    assert_eq!(replies(&h.events()), [(7, unsubscribed(1))]);
}

#[test]
fn several_filters_go_in_one_unsubscribe() {
    let mut h = connected(V5, options(V5));
    h.session.subscribe(
        vec![("a".into(), Qos::AtMostOnce), ("b".into(), Qos::AtMostOnce)],
        1,
    );
    h.receive(suback(1, &[0, 0])).unwrap();
    h.session
        .unsubscribe(vec!["a".into(), "b".into(), "c".into()], 2);
    assert_eq!(
        h.written(),
        [
            subscribe(1, &[("a", 0), ("b", 0)]),
            unsubscribe(2, &["a", "b", "c"])
        ]
    );
    h.receive(Incoming::UnsubAck(
        2,
        vec![0x00, 0x00, 0x11],
        AckProperties::default(),
    ))
    .unwrap();
    let events = h.events();
    let Some((2, Outcome::Unsubscribed(report))) = replies(&events).pop() else {
        panic!("answered: {events:?}")
    };
    let codes: Vec<u8> = report.filters.iter().map(|f| f.reason_code).collect();
    assert_eq!(codes, [0x00, 0x00, 0x11]);
    assert!(report.filters.iter().all(|f| f.result.is_ok()));
    assert!(h.reconnect(false).is_empty(), "nothing left to restore");
}

#[test]
fn unsubscribe_while_offline_is_answered_at_once_and_sent_if_the_broker_kept_the_session() {
    let mut h = connected(V311, persistent(V311));
    h.session.subscribe(vec![("a".into(), Qos::AtMostOnce)], 1);
    h.receive(suback(1, &[0])).unwrap();
    h.written();
    h.events();
    h.session
        .connection_closed(&Error::ConnectionLost("gone".into()));
    h.session.unsubscribe(vec!["a".into()], 2);
    assert_eq!(replies(&h.events()), [(2, unsubscribed(1))]);
    h.open();
    h.receive(Incoming::ConnAck(ConnAck {
        session_present: true,
        ..ConnAck::default()
    }))
    .unwrap();
    assert_eq!(h.written(), [unsubscribe(2, &["a"])]);
    h.events();
    h.receive(unsuback(2)).unwrap();
    assert!(h.events().is_empty(), "already answered");
}

// ----- keep-alive -----

fn keep_alive(seconds: u64) -> Options {
    with(options(V311), |o| {
        o.keep_alive = Duration::from_secs(seconds)
    })
}

#[test]
fn pingreq_after_a_keep_alive_of_silence_and_connection_lost_when_pingresp_is_half_late() {
    let mut h = connected(V311, keep_alive(10));
    let start = h.now;
    assert_eq!(
        h.session.next_deadline(),
        Some(start + Duration::from_secs(10))
    );
    h.advance(Duration::from_millis(9_999));
    h.timeout().unwrap();
    assert!(h.written().is_empty());
    h.advance(Duration::from_millis(1));
    h.timeout().unwrap();
    assert_eq!(h.written(), [Sent::PingReq]);
    assert_eq!(
        h.session.next_deadline(),
        Some(h.now + Duration::from_secs(5))
    );
    h.advance(Duration::from_millis(4_999));
    h.timeout().unwrap();
    assert!(h.written().is_empty(), "one PINGREQ at a time");
    h.advance(Duration::from_millis(1));
    let result = h.timeout();
    assert!(
        matches!(result, Err(Error::ConnectionLost(_))),
        "{result:?}"
    );
}

#[test]
fn pingresp_in_time_keeps_the_connection_and_the_next_ping_is_a_keep_alive_later() {
    let mut h = connected(V311, keep_alive(10));
    h.advance(Duration::from_secs(10));
    h.timeout().unwrap();
    assert_eq!(h.written(), [Sent::PingReq]);
    let pinged = h.now;
    h.advance(Duration::from_secs(4));
    h.receive(Incoming::PingResp).unwrap();
    h.advance(Duration::from_secs(2));
    h.timeout().unwrap();
    assert!(h.written().is_empty());
    assert_eq!(
        h.session.next_deadline(),
        Some(pinged + Duration::from_secs(10))
    );
    h.now = pinged + Duration::from_secs(10);
    h.timeout().unwrap();
    assert_eq!(h.written(), [Sent::PingReq]);
}

#[test]
fn server_keep_alive_replaces_the_configured_one() {
    let mut h = connected_with(
        V5,
        keep_alive(60),
        ConnAck {
            server_keep_alive: Some(2),
            ..ConnAck::default()
        },
    );
    assert_eq!(
        h.session.next_deadline(),
        Some(h.now + Duration::from_secs(2))
    );
    h.advance(Duration::from_secs(2));
    h.timeout().unwrap();
    assert_eq!(h.written(), [Sent::PingReq]);
}

#[test]
fn keep_alive_zero_sends_no_pings() {
    let mut h = connected(V311, keep_alive(0));
    assert_eq!(h.session.next_deadline(), None);
    h.advance(Duration::from_secs(3_600));
    h.timeout().unwrap();
    assert!(h.written().is_empty());
}

#[test]
fn while_reading_is_paused_no_timeout_is_declared_and_pings_go_on() {
    let mut h = connected(V311, keep_alive(10));
    h.advance(Duration::from_secs(10));
    h.timeout().unwrap();
    assert_eq!(h.written(), [Sent::PingReq]);
    // The application is behind: the PINGRESP may sit unread.
    h.session.set_read_paused(true, h.now);
    h.advance(Duration::from_secs(5));
    h.timeout().unwrap();
    assert!(h.written().is_empty());
    for _ in 0..3 {
        assert_eq!(
            h.session.next_deadline(),
            Some(h.now + Duration::from_secs(5))
        );
        h.advance(Duration::from_secs(5));
        h.timeout().unwrap();
        assert_eq!(
            h.written(),
            [Sent::PingReq],
            "the broker keeps hearing from us"
        );
        h.advance(Duration::from_secs(5));
        h.timeout().unwrap();
        assert!(h.written().is_empty());
    }
    // Reading resumes: the PINGRESP gets half a keep-alive from now.
    h.session.set_read_paused(false, h.now);
    let resumed = h.now;
    assert_eq!(
        h.session.next_deadline(),
        Some(resumed + Duration::from_secs(5))
    );
    h.advance(Duration::from_millis(4_999));
    h.timeout().unwrap();
    h.advance(Duration::from_millis(1));
    assert!(matches!(h.timeout(), Err(Error::ConnectionLost(_))));
}

#[test]
fn pingresp_read_after_resuming_keeps_the_connection() {
    let mut h = connected(V311, keep_alive(10));
    h.advance(Duration::from_secs(10));
    h.timeout().unwrap();
    h.written();
    h.session.set_read_paused(true, h.now);
    h.advance(Duration::from_secs(30));
    h.session.set_read_paused(false, h.now);
    h.receive(Incoming::PingResp).unwrap();
    h.advance(Duration::from_secs(6));
    h.timeout().unwrap();
    assert!(h.session.is_connected());
}

// ----- disconnecting -----

#[test]
fn every_disconnect_waiter_hears_disconnected_once_disconnect_is_written() {
    let mut h = connected(V5, options(V5));
    let deadline = h.now + Duration::from_secs(5);
    h.session.disconnect(deadline, 1);
    h.session.disconnect(deadline, 2);
    assert!(h.events().is_empty());
    assert!(h.session.disconnect_due(h.now));
    assert!(!h.session.disconnect_due(h.now), "due once");
    assert_eq!(h.written(), [Sent::Disconnect(Some(0))]);
    // A publish after DISCONNECT is refused.
    let late = h.publish("late", 0);
    h.session.finish_disconnect(Ok(()));
    let events = h.events();
    assert!(
        matches!(completed(&events)[..], [(t, Err(Error::NotConnected(_)))] if t == late),
        "{events:?}"
    );
    assert_eq!(
        replies(&events),
        [(1, Outcome::Disconnected), (2, Outcome::Disconnected)]
    );
    assert!(h.session.is_idle());
    // Disconnecting an idle client is done at once.
    h.session.disconnect(h.now, 3);
    assert_eq!(replies(&h.events()), [(3, Outcome::Disconnected)]);
}

#[test]
fn disconnect_on_v311_writes_a_plain_disconnect() {
    let mut h = connected(V311, options(V311));
    h.session.disconnect(h.now, 1);
    assert!(h.session.disconnect_due(h.now));
    assert_eq!(h.written(), [Sent::Disconnect(None)]);
}

#[test]
fn disconnect_that_could_not_be_written_fails_every_waiter() {
    let mut h = connected(V5, options(V5));
    let deadline = h.now + Duration::from_secs(5);
    h.session.disconnect(deadline, 1);
    h.session.disconnect(deadline, 2);
    assert!(h.session.disconnect_due(h.now));
    let timeout = Error::Timeout("the broker is not reading".into());
    h.session.finish_disconnect(Err(timeout.clone()));
    assert_eq!(
        replies(&h.events()),
        [
            (1, Outcome::Failed(timeout.clone())),
            (2, Outcome::Failed(timeout))
        ]
    );
}

#[test]
fn disconnect_waits_for_in_flight_publishes_until_they_complete() {
    let mut h = connected(V311, options(V311));
    let token = h.publish("a", 1);
    h.written();
    let deadline = h.now + Duration::from_secs(5);
    h.session.disconnect(deadline, 1);
    assert!(!h.session.disconnect_due(h.now));
    assert_eq!(h.session.next_deadline(), Some(deadline));
    h.advance(Duration::from_secs(1));
    assert!(!h.session.disconnect_due(h.now));
    h.receive(Incoming::PubAck(1, ok())).unwrap();
    assert!(h.session.disconnect_due(h.now));
    h.session.finish_disconnect(Ok(()));
    let events = h.events();
    assert!(matches!(completed(&events)[..], [(t, Ok(()))] if t == token));
    assert_eq!(replies(&events), [(1, Outcome::Disconnected)]);
}

#[test]
fn disconnect_waits_for_in_flight_publishes_only_until_its_deadline() {
    let mut h = connected(V311, options(V311));
    let token = h.publish("a", 1);
    h.written();
    let deadline = h.now + Duration::from_secs(5);
    h.session.disconnect(deadline, 1);
    h.now = deadline;
    assert!(h.session.disconnect_due(h.now));
    assert_eq!(h.written(), [Sent::Disconnect(None)]);
    h.session.finish_disconnect(Ok(()));
    let events = h.events();
    assert!(
        matches!(completed(&events)[..], [(t, Err(Error::Disconnected(_)))] if t == token),
        "{events:?}"
    );
    assert_eq!(replies(&events), [(1, Outcome::Disconnected)]);
}

// ----- protocol version -----

#[test]
fn falls_back_to_v311_only_when_the_options_allow_it() {
    let mut h = Harness::new(options(V5));
    h.session.begin(None);
    assert!(!h.session.fall_back_to_v311());
    assert_eq!(h.session.version(), V5);

    let mut h = Harness::new(with(options(V5), |o| o.protocol_fallback = true));
    h.session.begin(None);
    assert!(h.session.fall_back_to_v311());
    assert_eq!(h.session.version(), V311);
    assert!(!h.session.fall_back_to_v311(), "already on 3.1.1");
    // The decoder of `written` follows the session's version: this CONNECT is a 3.1.1 one.
    h.open();
    // A new connect starts from the configured version again.
    h.session.begin(None);
    assert_eq!(h.session.version(), V5);
}

// ----- enhanced authentication (MQTT 5.0 AUTH) -----

const METHOD: &str = "SCRAM-TOY";

fn auth_options() -> Options {
    with(options(V5), |o| {
        o.set_auth_method(Some((METHOD, Some(b"client-first"))))
            .expect("method")
    })
}

fn auth_packet(reason: u8, method: Option<&str>, data: Option<&'static [u8]>) -> Incoming {
    Incoming::Auth(AuthPacket {
        reason,
        method: method.map(str::to_string),
        data: data.map(Bytes::from_static),
        reason_string: None,
    })
}

fn sent_auth(reason: u8, data: Option<&'static [u8]>) -> Sent {
    Sent::Auth {
        reason,
        method: Some(METHOD.into()),
        data: data.map(Bytes::from_static),
    }
}

/// The one authentication step the last packet produced.
fn challenge(h: &mut Harness) -> AuthChallenge {
    let events = h.events();
    match &events[..] {
        [Event::AuthChallenge(c)] => c.clone(),
        other => panic!("expected one challenge, got {other:?}"),
    }
}

/// A v5 session with an authentication method, CONNECT written.
fn authenticating() -> Harness {
    let mut h = Harness::new(auth_options());
    h.session.begin(None);
    h.open();
    h
}

fn final_connack(data: &'static [u8]) -> Incoming {
    Incoming::ConnAck(ConnAck {
        auth_method: Some(METHOD.into()),
        auth_data: Some(Bytes::from_static(data)),
        ..ConnAck::default()
    })
}

/// Through a two-step exchange to CONNACK with final data verified.
fn authenticated() -> Harness {
    let mut h = authenticating();
    h.receive(auth_packet(0x18, Some(METHOD), Some(b"server-first")))
        .unwrap();
    let step = challenge(&mut h).step;
    h.session
        .auth_answer(
            step,
            AuthAnswer::Continue(Bytes::from_static(b"client-final")),
            h.now,
        )
        .unwrap();
    assert_eq!(h.written(), [sent_auth(0x18, Some(b"client-final"))]);
    h.receive(final_connack(b"server-final")).unwrap();
    let step = challenge(&mut h).step;
    h.session
        .auth_answer(step, AuthAnswer::Success, h.now)
        .unwrap();
    assert!(h.session.is_connected());
    h.events();
    h
}

#[test]
fn a_two_step_exchange_goes_through_the_callback_and_connack_waits_for_the_final_verification() {
    let mut h = authenticating();
    h.receive(auth_packet(0x18, Some(METHOD), Some(b"server-first")))
        .unwrap();
    let first = challenge(&mut h);
    assert_eq!(
        (
            first.method.as_str(),
            first.reason,
            &first.data[..],
            first.reauthenticating
        ),
        (METHOD, 0x18, &b"server-first"[..], false)
    );
    h.session
        .auth_answer(
            first.step,
            AuthAnswer::Continue(Bytes::from_static(b"proof")),
            h.now,
        )
        .unwrap();
    assert_eq!(h.written(), [sent_auth(0x18, Some(b"proof"))]);
    h.receive(final_connack(b"server-final")).unwrap();
    let last = challenge(&mut h);
    assert_eq!((last.reason, &last.data[..]), (0x00, &b"server-final"[..]));
    assert!(
        !h.session.is_connected(),
        "not connected before the final data verified"
    );
    h.session
        .auth_answer(last.step, AuthAnswer::Success, h.now)
        .unwrap();
    assert!(h.session.is_connected());
    assert!(matches!(h.events()[..], [Event::Connected { .. }]));
}

#[test]
fn server_final_data_that_does_not_verify_fails_with_disconnect() {
    let mut h = authenticating();
    h.receive(final_connack(b"forged")).unwrap();
    let step = challenge(&mut h).step;
    let result = h.session.auth_answer(
        step,
        AuthAnswer::Failure("signature mismatch".into()),
        h.now,
    );
    assert!(
        matches!(&result, Err(Error::AuthFailed(m)) if m.contains("signature mismatch")),
        "{result:?}"
    );
    assert_eq!(h.written(), [Sent::Disconnect(Some(0x80))]);
    assert!(!h.session.is_connected());
}

#[test]
fn the_wrong_answer_to_a_step_fails_the_exchange() {
    let mut h = authenticating();
    h.receive(auth_packet(0x18, Some(METHOD), None)).unwrap();
    let step = challenge(&mut h).step;
    let result = h.session.auth_answer(step, AuthAnswer::Success, h.now);
    assert!(matches!(result, Err(Error::AuthFailed(_))), "{result:?}");
    let mut h = authenticating();
    h.receive(final_connack(b"final")).unwrap();
    let step = challenge(&mut h).step;
    let result = h
        .session
        .auth_answer(step, AuthAnswer::Continue(Bytes::new()), h.now);
    assert!(matches!(result, Err(Error::AuthFailed(_))), "{result:?}");
}

#[test]
fn connack_without_final_data_connects_without_asking_the_callback() {
    let mut h = authenticating();
    h.receive(Incoming::ConnAck(ConnAck {
        auth_method: Some(METHOD.into()),
        ..ConnAck::default()
    }))
    .unwrap();
    assert!(h.session.is_connected());
    assert!(matches!(h.events()[..], [Event::Connected { .. }]));
}

#[test]
fn not_authorized_answering_an_authentication_method_is_an_authentication_failure() {
    let mut h = authenticating();
    let result = h.receive(Incoming::ConnAck(ConnAck {
        refusal: Some(Error::NotAuthorized(
            "broker refused the connection: not authorized".into(),
        )),
        ..ConnAck::default()
    }));
    assert!(
        matches!(&result, Err(Error::AuthFailed(m)) if m.contains(METHOD)),
        "{result:?}"
    );
}

#[test]
fn auth_when_we_sent_no_method_is_a_protocol_error() {
    let mut h = Harness::new(options(V5));
    h.session.begin(None);
    h.open();
    let result = h.receive(auth_packet(0x18, Some(METHOD), None));
    assert_violation(&mut h, result, 0x82);
    let mut h = connected(V5, options(V5));
    let result = h.receive(auth_packet(0x00, None, None));
    assert_violation(&mut h, result, 0x82);
}

#[test]
fn connack_naming_a_method_we_did_not_send_is_a_protocol_error() {
    let mut h = Harness::new(options(V5));
    h.session.begin(None);
    h.open();
    let result = h.receive(final_connack(b"x"));
    assert_violation(&mut h, result, 0x82);
}

#[test]
fn a_changed_method_is_a_protocol_error() {
    let mut h = authenticating();
    let result = h.receive(auth_packet(0x18, Some("OTHER"), None));
    assert_violation(&mut h, result, 0x82);
    let mut h = authenticating();
    let result = h.receive(Incoming::ConnAck(ConnAck {
        auth_method: Some("OTHER".into()),
        ..ConnAck::default()
    }));
    assert_violation(&mut h, result, 0x82);
    let mut h = authenticated();
    h.session
        .reauthenticate(None, h.now + Duration::from_secs(5), 1);
    assert_eq!(h.written(), [sent_auth(0x19, None)]);
    let result = h.receive(auth_packet(0x18, Some("OTHER"), None));
    assert_violation(&mut h, result, 0x82);
}

#[test]
fn auth_reason_codes_out_of_turn_are_protocol_errors() {
    // Only clients re-authenticate.
    let mut h = authenticating();
    let result = h.receive(auth_packet(0x19, Some(METHOD), None));
    assert_violation(&mut h, result, 0x82);
    // Success during CONNECT comes with CONNACK, not AUTH.
    let mut h = authenticating();
    let result = h.receive(auth_packet(0x00, Some(METHOD), None));
    assert_violation(&mut h, result, 0x82);
    // A second challenge before we answered the first.
    let mut h = authenticating();
    h.receive(auth_packet(0x18, Some(METHOD), None)).unwrap();
    h.events();
    let result = h.receive(auth_packet(0x18, Some(METHOD), None));
    assert_violation(&mut h, result, 0x82);
    // CONNACK while its challenge is unanswered.
    let mut h = authenticating();
    h.receive(auth_packet(0x18, Some(METHOD), None)).unwrap();
    h.events();
    let result = h.receive(final_connack(b"final"));
    assert_violation(&mut h, result, 0x82);
    // AUTH on a connection with no exchange under way.
    let mut h = authenticated();
    let result = h.receive(auth_packet(0x18, Some(METHOD), None));
    assert_violation(&mut h, result, 0x82);
}

#[test]
fn reauthentication_runs_alongside_publishing_and_completes_on_auth_success() {
    let mut h = authenticated();
    h.session.reauthenticate(
        Some(Bytes::from_static(b"again")),
        h.now + Duration::from_secs(5),
        7,
    );
    let first = h.publish("during/reauth", 1);
    assert_eq!(
        h.written(),
        [
            sent_auth(0x19, Some(b"again")),
            publish("during/reauth", 1, 1, false)
        ]
    );
    h.receive(auth_packet(0x18, Some(METHOD), Some(b"nonce")))
        .unwrap();
    let step = challenge(&mut h);
    assert!(step.reauthenticating);
    h.receive(Incoming::PubAck(1, ok())).unwrap();
    assert_eq!(completed(&h.events()), [(first, Ok(()))]);
    h.session
        .auth_answer(
            step.step,
            AuthAnswer::Continue(Bytes::from_static(b"proof")),
            h.now,
        )
        .unwrap();
    let second = h.publish("during/reauth", 1);
    assert_eq!(
        h.written(),
        [
            sent_auth(0x18, Some(b"proof")),
            publish("during/reauth", 1, 2, false)
        ]
    );
    h.receive(auth_packet(0x00, Some(METHOD), Some(b"server-final")))
        .unwrap();
    let last = challenge(&mut h);
    h.session
        .auth_answer(last.step, AuthAnswer::Success, h.now)
        .unwrap();
    assert_eq!(replies(&h.events()), [(7, Outcome::Reauthenticated)]);
    h.receive(Incoming::PubAck(2, ok())).unwrap();
    assert_eq!(completed(&h.events()), [(second, Ok(()))]);
    assert!(h.session.is_connected());
}

#[test]
fn reauthentication_needs_a_method_a_connection_and_no_exchange_under_way() {
    let mut h = connected(V5, options(V5));
    h.session
        .reauthenticate(None, h.now + Duration::from_secs(1), 1);
    assert!(matches!(
        &replies(&h.events())[..],
        [(1, Outcome::Failed(Error::AuthNotConfigured(_)))]
    ));
    let mut h = Harness::new(auth_options());
    h.session
        .reauthenticate(None, h.now + Duration::from_secs(1), 2);
    assert!(matches!(
        &replies(&h.events())[..],
        [(2, Outcome::Failed(Error::NotConnected(_)))]
    ));
    let mut h = authenticated();
    h.session
        .reauthenticate(None, h.now + Duration::from_secs(1), 3);
    h.session
        .reauthenticate(None, h.now + Duration::from_secs(1), 4);
    assert!(matches!(
        &replies(&h.events())[..],
        [(4, Outcome::Failed(Error::InvalidState(_)))]
    ));
    assert_eq!(h.written(), [sent_auth(0x19, None)]);
}

#[test]
fn reauthentication_past_its_deadline_fails_and_closes_the_connection() {
    let mut h = authenticated();
    h.session
        .reauthenticate(None, h.now + Duration::from_secs(2), 5);
    h.written();
    assert_eq!(
        h.session.next_deadline(),
        Some(h.now + Duration::from_secs(2))
    );
    h.advance(Duration::from_secs(2));
    let result = h.timeout();
    assert!(matches!(result, Err(Error::Timeout(_))), "{result:?}");
    assert!(matches!(
        &replies(&h.events())[..],
        [(5, Outcome::Failed(Error::Timeout(_)))]
    ));
    assert_eq!(h.written(), [Sent::Disconnect(Some(0x80))]);
}

#[test]
fn a_connection_lost_during_reauthentication_fails_it_and_late_answers_are_ignored() {
    let mut h = authenticated();
    h.session
        .reauthenticate(None, h.now + Duration::from_secs(5), 6);
    h.written();
    h.receive(auth_packet(0x18, Some(METHOD), None)).unwrap();
    let step = challenge(&mut h).step;
    h.session.connection_closed(&Error::ConnectionLost(
        "broker sent DISCONNECT: NotAuthorized".into(),
    ));
    assert!(matches!(
        &replies(&h.events())[..],
        [(6, Outcome::Failed(Error::AuthFailed(_)))]
    ));
    // The next connection authenticates from the start; the old step's answer is void.
    h.open();
    h.session
        .auth_answer(step, AuthAnswer::Continue(Bytes::new()), h.now)
        .unwrap();
    assert_eq!(h.written(), []);
}

#[test]
fn a_callback_refusing_reauthentication_fails_it_with_disconnect() {
    let mut h = authenticated();
    h.session
        .reauthenticate(None, h.now + Duration::from_secs(5), 8);
    h.written();
    h.receive(auth_packet(0x18, Some(METHOD), None)).unwrap();
    let step = challenge(&mut h).step;
    let result = h
        .session
        .auth_answer(step, AuthAnswer::Failure("no".into()), h.now);
    assert!(matches!(result, Err(Error::AuthFailed(_))), "{result:?}");
    assert!(matches!(
        &replies(&h.events())[..],
        [(8, Outcome::Failed(Error::AuthFailed(_)))]
    ));
    assert_eq!(h.written(), [Sent::Disconnect(Some(0x80))]);
}

#[test]
fn no_fallback_to_v311_with_an_authentication_method() {
    let mut h = Harness::new(with(auth_options(), |o| o.protocol_fallback = true));
    assert!(!h.session.fall_back_to_v311());
}

// ----- subscription options, identifiers, per-filter answers -----

/// The v5 SUBSCRIBEs the session writes now, as the broker reads them.
fn written_subscribes(h: &mut Harness) -> Vec<v5::Subscribe> {
    let mut out = Vec::new();
    while let Some(transmit) = h.session.transmit(h.now) {
        let mut buf = transmit.bytes.concat();
        while !buf.is_empty() {
            match v5::Packet::read(&mut buf, Some(DECODE_MAX as u32)) {
                Ok(v5::Packet::Subscribe(s)) => out.push(s),
                Ok(other) => panic!("not a SUBSCRIBE: {other:?}"),
                Err(e) => panic!("undecodable: {e:?}"),
            }
        }
    }
    out
}

fn request(filter: &str, qos: Qos, id: u32) -> FilterRequest {
    FilterRequest::new(filter, crate::mqtt::SubscribeOptions::qos(qos), Some(id))
}

fn report(events: &[Event<u32>]) -> SubscribeReport {
    match replies(events).pop() {
        Some((_, Outcome::Subscribed(report))) => report,
        other => panic!("not a subscribe answer: {other:?} in {events:?}"),
    }
}

#[test]
fn with_identifiers_each_filter_goes_in_its_own_subscribe_and_the_call_waits_for_all() {
    let mut h = connected(V5, options(V5));
    let mut options = crate::mqtt::SubscribeOptions::qos(Qos::AtLeastOnce);
    options.no_local = true;
    options.retain_as_published = true;
    options.retain_handling = crate::mqtt::RetainHandling::DoNotSend;
    h.session.subscribe_with(
        vec![
            FilterRequest::new("a/#", options, Some(7)),
            request("a/+/c", Qos::AtMostOnce, 8),
        ],
        vec![("k".into(), "v".into())],
        1,
    );
    let sent = written_subscribes(&mut h);
    assert_eq!(sent.len(), 2, "{sent:?}");
    let ids: Vec<Option<usize>> = sent
        .iter()
        .map(|s| s.properties.as_ref().and_then(|p| p.id))
        .collect();
    assert_eq!(ids, [Some(7), Some(8)]);
    let first = &sent[0].filters[0];
    assert!(first.nolocal && first.preserve_retain);
    assert_eq!(first.retain_forward_rule, v5::RetainForwardRule::Never);
    assert_eq!(
        sent[1]
            .properties
            .as_ref()
            .map(|p| p.user_properties.clone()),
        Some(vec![("k".to_string(), "v".to_string())])
    );
    // Answered only once both SUBACKs are in, per filter in the order given.
    h.receive(Incoming::SubAck(
        sent[1].pkid,
        vec![0x87],
        AckProperties {
            reason_string: Some("acl".into()),
            user_properties: vec![("why".into(), "acl".into())],
        },
    ))
    .unwrap();
    assert!(replies(&h.events()).is_empty());
    h.receive(suback(sent[0].pkid, &[1])).unwrap();
    let report = report(&h.events());
    assert_eq!(report.filters[0].reason_code, 1);
    assert_eq!(report.filters[0].granted, Ok(Qos::AtLeastOnce));
    assert_eq!(report.filters[0].subscription_id, Some(7));
    assert_eq!(report.filters[1].reason_code, 0x87);
    assert!(
        matches!(&report.filters[1].granted, Err(Error::SubscribeRefused(m)) if m.contains("not authorized") && m.contains("acl")),
        "{report:?}"
    );
    assert_eq!(report.ack.reason_string.as_deref(), Some("acl"));
    assert_eq!(report.ack.user_properties.len(), 1);
}

#[test]
fn without_identifiers_the_filters_share_one_subscribe() {
    for (version, limits) in [
        (V311, BrokerLimits::default()),
        (
            V5,
            BrokerLimits {
                subscription_ids_available: Some(false),
                ..BrokerLimits::default()
            },
        ),
    ] {
        let mut h = connected_with(version, options(version), with_limits(limits));
        h.session.subscribe_with(
            vec![
                request("a", Qos::AtMostOnce, 1),
                request("b", Qos::ExactlyOnce, 2),
            ],
            Vec::new(),
            1,
        );
        if version == V5 {
            let sent = written_subscribes(&mut h);
            assert_eq!(sent.len(), 1);
            assert!(sent[0].properties.is_none(), "no identifier: {sent:?}");
        } else {
            assert_eq!(h.written(), [subscribe(1, &[("a", 0), ("b", 2)])]);
        }
        h.receive(suback(1, &[0, 2])).unwrap();
        let report = report(&h.events());
        assert!(report.filters.iter().all(|f| f.subscription_id.is_none()));
        assert_eq!(report.filters[1].granted, Ok(Qos::ExactlyOnce));
    }
}

#[test]
fn restore_after_a_lost_session_resubscribes_with_the_same_identifiers_and_options() {
    let mut h = connected(V5, options(V5));
    let mut options = crate::mqtt::SubscribeOptions::qos(Qos::AtLeastOnce);
    options.no_local = true;
    h.session.subscribe_with(
        vec![
            FilterRequest::new("x/#", options, Some(41)),
            request("y", Qos::AtMostOnce, 42),
        ],
        Vec::new(),
        1,
    );
    let sent = written_subscribes(&mut h);
    for s in &sent {
        let code = s.filters[0].qos as u8;
        h.receive(suback(s.pkid, &[code])).unwrap();
    }
    h.events();
    h.session
        .connection_closed(&Error::ConnectionLost("gone".into()));
    h.open();
    h.receive(Incoming::ConnAck(ConnAck::default())).unwrap();
    h.events();
    let restored = written_subscribes(&mut h);
    let seen: Vec<(String, Option<usize>, bool)> = restored
        .iter()
        .map(|s| {
            (
                s.filters[0].path.clone(),
                s.properties.as_ref().and_then(|p| p.id),
                s.filters[0].nolocal,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("x/#".to_string(), Some(41), true),
            ("y".to_string(), Some(42), false)
        ]
    );
}

#[test]
fn restore_after_a_lost_session_resends_each_subscribes_user_properties() {
    let pair = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
    for ids in [true, false] {
        let ack = if ids {
            ConnAck::default()
        } else {
            with_limits(BrokerLimits {
                subscription_ids_available: Some(false),
                ..BrokerLimits::default()
            })
        };
        let mut h = connected_with(V5, options(V5), ack.clone());
        let mut retained = crate::mqtt::SubscribeOptions::qos(Qos::ExactlyOnce);
        retained.retain_as_published = true;
        h.session.subscribe_with(
            vec![
                FilterRequest::new("a/#", retained, Some(7)),
                request("b", Qos::AtMostOnce, 8),
            ],
            pair("origin", "first"),
            1,
        );
        h.session.subscribe_with(
            vec![request("c", Qos::AtLeastOnce, 9)],
            pair("origin", "second"),
            2,
        );
        h.session
            .subscribe_with(vec![request("d", Qos::AtMostOnce, 10)], Vec::new(), 3);
        for s in written_subscribes(&mut h) {
            let codes: Vec<u8> = s.filters.iter().map(|f| f.qos as u8).collect();
            h.receive(suback(s.pkid, &codes)).unwrap();
        }
        h.events();
        h.session
            .connection_closed(&Error::ConnectionLost("gone".into()));
        h.open();
        h.receive(Incoming::ConnAck(ack)).unwrap();
        h.events();
        // (filter, qos, retain-as-published, identifier, user properties) as re-sent.
        type Resent = (String, u8, bool, Option<usize>, Vec<(String, String)>);
        let mut seen: Vec<Resent> = Vec::new();
        for s in written_subscribes(&mut h) {
            let id = s.properties.as_ref().and_then(|p| p.id);
            let user = s
                .properties
                .as_ref()
                .map(|p| p.user_properties.clone())
                .unwrap_or_default();
            for f in &s.filters {
                seen.push((
                    f.path.clone(),
                    f.qos as u8,
                    f.preserve_retain,
                    id,
                    user.clone(),
                ));
            }
        }
        let id = |n: usize| ids.then_some(n);
        assert_eq!(
            seen,
            [
                ("a/#".to_string(), 2, true, id(7), pair("origin", "first")),
                ("b".to_string(), 0, false, id(8), pair("origin", "first")),
                ("c".to_string(), 1, false, id(9), pair("origin", "second")),
                ("d".to_string(), 0, false, id(10), Vec::new()),
            ],
            "identifiers usable: {ids}"
        );
    }
}

#[test]
fn a_call_cut_off_by_the_connection_is_sent_again_whole_and_answered_once() {
    let mut h = connected(V5, persistent(V5));
    h.session.subscribe_with(
        vec![
            request("a", Qos::AtMostOnce, 1),
            request("b", Qos::AtMostOnce, 2),
        ],
        Vec::new(),
        9,
    );
    let sent = written_subscribes(&mut h);
    h.receive(suback(sent[0].pkid, &[0])).unwrap();
    h.session
        .connection_closed(&Error::ConnectionLost("gone".into()));
    h.open();
    h.receive(Incoming::ConnAck(ConnAck {
        session_present: true,
        ..ConnAck::default()
    }))
    .unwrap();
    h.events();
    let again = written_subscribes(&mut h);
    assert_eq!(again.len(), 2, "both filters again: {again:?}");
    for s in &again {
        h.receive(suback(s.pkid, &[0])).unwrap();
    }
    let events = h.events();
    assert_eq!(replies(&events).len(), 1);
    assert_eq!(report(&events).filters.len(), 2);
}

#[test]
fn unsuback_failure_codes_are_refusals_and_no_subscription_existed_is_not() {
    let mut h = connected(V5, options(V5));
    h.session.unsubscribe_with(
        vec!["a".into(), "b".into()],
        vec![("k".into(), "v".into())],
        3,
    );
    let mut buf = h
        .session
        .transmit(h.now)
        .expect("UNSUBSCRIBE")
        .bytes
        .concat();
    let Ok(v5::Packet::Unsubscribe(u)) = v5::Packet::read(&mut buf, None) else {
        panic!("not an UNSUBSCRIBE")
    };
    assert_eq!(
        u.properties.map(|p| p.user_properties),
        Some(vec![("k".to_string(), "v".to_string())])
    );
    h.receive(Incoming::UnsubAck(
        1,
        vec![0x11, 0x87],
        AckProperties::default(),
    ))
    .unwrap();
    let events = h.events();
    let Some((3, Outcome::Unsubscribed(report))) = replies(&events).pop() else {
        panic!("{events:?}")
    };
    assert_eq!(report.filters[0].result, Ok(()));
    assert!(matches!(
        report.filters[1].result,
        Err(Error::UnsubscribeRefused(_))
    ));
}

#[test]
fn no_local_on_a_shared_subscription_is_refused_before_sending() {
    let mut h = connected(V5, options(V5));
    let mut options = crate::mqtt::SubscribeOptions::qos(Qos::AtMostOnce);
    options.no_local = true;
    h.session.subscribe_with(
        vec![FilterRequest::new("$share/g/a", options, Some(1))],
        Vec::new(),
        1,
    );
    assert!(matches!(
        replies(&h.events())[..],
        [(1, Outcome::Failed(Error::InvalidArgument(_)))]
    ));
    assert!(h.written().is_empty());
}

// ----- outbound topic aliases -----

/// Each PUBLISH the session wrote, as (topic on the wire, topic alias, DUP), decoded raw.
fn aliased_publishes(h: &mut Harness) -> Vec<(String, Option<u16>, bool)> {
    let mut out = Vec::new();
    while let Some(transmit) = h.session.transmit(h.now) {
        let mut buf = transmit.bytes.concat();
        while !buf.is_empty() {
            match v5::Packet::read(&mut buf, Some(DECODE_MAX as u32)) {
                Ok(v5::Packet::Publish(p)) => out.push((
                    String::from_utf8(p.topic.to_vec()).expect("UTF-8 topic"),
                    p.properties.and_then(|props| props.topic_alias),
                    p.dup,
                )),
                Ok(_) => {}
                Err(e) => panic!("undecodable 5.0 bytes: {e:?}"),
            }
        }
    }
    out
}

fn broker_allowing_aliases(maximum: u16) -> ConnAck {
    with_limits(BrokerLimits {
        topic_alias_maximum: Some(maximum),
        ..BrokerLimits::default()
    })
}

fn est(topic: &str, alias: u16) -> (String, Option<u16>, bool) {
    (topic.into(), Some(alias), false)
}

fn reuse(alias: u16) -> (String, Option<u16>, bool) {
    (String::new(), Some(alias), false)
}

#[test]
fn repeated_topics_get_aliases_within_the_broker_maximum_lru_replaced() {
    let mut h = connected_with(V5, options(V5), broker_allowing_aliases(2));
    for topic in [
        "t/aaa", "t/bbb", "t/aaa", "t/ccc", "t/aaa", "t/bbb", "t/ccc",
    ] {
        h.publish(topic, 0);
    }
    assert_eq!(
        aliased_publishes(&mut h),
        [
            est("t/aaa", 1),
            est("t/bbb", 2),
            reuse(1),
            // t/bbb is the least recently used: its alias goes to t/ccc.
            est("t/ccc", 2),
            reuse(1),
            // Now t/ccc is older than t/aaa.
            est("t/bbb", 2),
            est("t/ccc", 1),
        ]
    );
}

#[test]
fn no_aliases_when_the_broker_allows_none_the_options_turn_them_off_or_on_v311() {
    let plain = |topic: &str| (topic.to_string(), None, false);
    let mut h = connected_with(V5, options(V5), ConnAck::default());
    h.publish("t/aaa", 0);
    h.publish("t/aaa", 0);
    assert_eq!(aliased_publishes(&mut h), [plain("t/aaa"), plain("t/aaa")]);
    let off = with(options(V5), |o| o.set_topic_alias_auto(false));
    let mut h = connected_with(V5, off, broker_allowing_aliases(10));
    h.publish("t/aaa", 0);
    h.publish("t/aaa", 0);
    assert_eq!(aliased_publishes(&mut h), [plain("t/aaa"), plain("t/aaa")]);
    let mut h = connected_with(V311, options(V311), broker_allowing_aliases(10));
    h.publish("t/aaa", 0);
    h.publish("t/aaa", 0);
    assert_eq!(
        h.written(),
        [publish("t/aaa", 0, 0, false), publish("t/aaa", 0, 0, false)]
    );
}

#[test]
fn aliases_start_afresh_on_every_connection_and_retransmissions_carry_the_topic() {
    let mut h = connected_with(V5, persistent(V5), broker_allowing_aliases(5));
    h.publish("t/qos1", 1);
    h.publish("t/qos1", 1);
    assert_eq!(aliased_publishes(&mut h), [est("t/qos1", 1), reuse(1)]);
    // Both unacknowledged: the resumed session resends them with DUP, establishing the alias
    // again on the new connection, never with the stale alias alone first.
    h.session
        .connection_closed(&Error::ConnectionLost("the test dropped it".into()));
    h.open();
    h.receive(Incoming::ConnAck(ConnAck {
        session_present: true,
        ..broker_allowing_aliases(5)
    }))
    .expect("CONNACK accepted");
    h.events();
    assert_eq!(
        aliased_publishes(&mut h),
        [
            ("t/qos1".into(), Some(1), true),
            (String::new(), Some(1), true)
        ]
    );
    h.publish("t/qos1", 0);
    assert_eq!(aliased_publishes(&mut h), [reuse(1)]);
}

#[test]
fn an_alias_that_would_exceed_the_maximum_packet_size_is_not_used() {
    let topic = "t/exactly-at-the-limit";
    let size = Codec::new(&options(V5)).publish_size(topic.len(), 7, 0, None);
    let mut h = connected_with(
        V5,
        options(V5),
        with_limits(BrokerLimits {
            topic_alias_maximum: Some(5),
            maximum_packet_size: Some(size as u32),
            ..BrokerLimits::default()
        }),
    );
    h.publish(topic, 0);
    h.publish(topic, 0);
    assert_eq!(
        aliased_publishes(&mut h),
        [(topic.into(), None, false), (topic.into(), None, false)]
    );
    assert!(completed(&h.events()).is_empty(), "both sent, none failed");
}

// ----- MQTT 5.0 acknowledgement reasons and message expiry (issue 8) -----

fn details(events: &[Event<u32>]) -> Vec<(Token, Result<()>, Option<AckDetail>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Completed(token, result, detail) => {
                Some((*token, result.clone(), detail.as_deref().cloned()))
            }
            _ => None,
        })
        .collect()
}

fn expiring(topic: &str, qos: u8, seconds: u32) -> OutPublish {
    OutPublish {
        properties: Some(Arc::new(crate::mqtt::PublishProperties {
            message_expiry: Some(seconds),
            ..crate::mqtt::PublishProperties::default()
        })),
        ..message(topic, qos)
    }
}

/// The Message Expiry Interval of each PUBLISH in `bytes` (v5).
fn sent_expiries(mut buf: BytesMut) -> Vec<Option<u32>> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        match v5::Packet::read(&mut buf, Some(DECODE_MAX as u32)) {
            Ok(v5::Packet::Publish(p)) => {
                out.push(p.properties.and_then(|p| p.message_expiry_interval))
            }
            Ok(_) => {}
            Err(e) => panic!("undecodable: {e:?}"),
        }
    }
    out
}

#[test]
fn ack_failure_reason_reaches_the_token_with_code_text_and_properties() {
    let mut h = connected(V5, options(V5));
    let token = h.publish("a", 1);
    h.written();
    let detail = AckDetail {
        code: 0x87,
        text: Some("acl says no".into()),
        properties: vec![("who".into(), "acl".into())],
    };
    h.receive(Incoming::PubAck(1, detail.clone())).unwrap();
    let events = h.events();
    let got = details(&events);
    assert_eq!(got.len(), 1, "{events:?}");
    assert_eq!(got[0].0, token);
    match &got[0].1 {
        Err(Error::PublishRefused(text)) => {
            assert!(text.contains("not authorized (0x87)"), "{text}");
            assert!(text.contains("acl says no"), "{text}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(got[0].2.as_ref(), Some(&detail));
}

#[test]
fn success_with_a_reason_is_success_with_its_code() {
    let mut h = connected(V5, options(V5));
    let q1 = h.publish("a", 1);
    let q2 = h.publish("b", 2);
    h.written();
    h.receive(Incoming::PubAck(1, ack(0x10, Some("nobody listens"))))
        .unwrap();
    h.receive(Incoming::PubRec(2, ack(0x10, None))).unwrap();
    assert_eq!(h.written(), [Sent::PubRel(2)]);
    h.receive(Incoming::PubComp(2, ok())).unwrap();
    let got = details(&h.events());
    assert_eq!(
        got,
        [
            (q1, Ok(()), Some(ack(0x10, Some("nobody listens")))),
            (q2, Ok(()), Some(ack(0x10, None))),
        ]
    );
}

#[test]
fn plain_success_carries_no_detail() {
    let mut h = connected(V5, options(V5));
    let token = h.publish("a", 1);
    h.written();
    h.receive(Incoming::PubAck(1, ok())).unwrap();
    assert_eq!(details(&h.events()), [(token, Ok(()), None)]);
}

#[test]
fn quota_exceeded_on_pubrec_ends_the_flow_without_pubrel() {
    let mut h = connected(V5, options(V5));
    let token = h.publish("a", 2);
    h.written();
    h.receive(Incoming::PubRec(1, ack(0x97, Some("slow down"))))
        .unwrap();
    assert!(h.written().is_empty());
    let got = details(&h.events());
    assert!(
        matches!(&got[..], [(t, Err(Error::PublishRefused(m)), Some(d))]
            if *t == token && d.code == 0x97 && m.contains("quota exceeded")),
        "{got:?}"
    );
    assert_eq!(h.session.inflight_len(), 0, "the flow is over");
}

#[test]
fn unknown_pubrec_and_pubrel_are_answered_with_packet_identifier_not_found() {
    let mut h = connected(V5, options(V5));
    h.receive(Incoming::PubRec(7, ok())).unwrap();
    h.receive(Incoming::PubRel(8, ok())).unwrap();
    let transmit = h.session.transmit(h.now).expect("answers");
    // PUBREL 7 and PUBCOMP 8, each with reason 0x92 and an empty property list.
    assert_eq!(
        &transmit.bytes.concat()[..],
        &[0x62, 0x04, 0x00, 0x07, 0x92, 0x00, 0x70, 0x04, 0x00, 0x08, 0x92, 0x00]
    );
}

#[test]
fn known_pubrel_is_answered_with_success() {
    let mut h = connected(V5, options(V5));
    h.receive(Incoming::Publish(inbound("t", 2, 3, false), None))
        .unwrap();
    let (_, ticket) = delivered(&mut h);
    h.session.acknowledge(ticket.expect("ticket"));
    assert_eq!(h.written(), [Sent::PubRec(3)]);
    h.receive(Incoming::PubRel(3, ok())).unwrap();
    let transmit = h.session.transmit(h.now).expect("PUBCOMP");
    assert_eq!(&transmit.bytes.concat()[..], &[0x70, 0x02, 0x00, 0x03]);
}

#[test]
fn offline_message_expires_and_is_reported_expired() {
    let mut h = Harness::new(with(options(V5), |o| o.queue_before_connect = true));
    h.session.begin(None);
    let short = h.send(expiring("a", 1, 2));
    let long = h.send(expiring("b", 1, 60));
    let plain = h.publish("c", 1);
    assert_eq!(
        h.session.next_expiry(),
        Some(h.now + Duration::from_secs(2))
    );
    h.advance(Duration::from_millis(1999));
    h.session.expire_outbox(h.now);
    assert!(completed(&h.events()).is_empty(), "not yet");
    h.advance(Duration::from_millis(1));
    h.session.expire_outbox(h.now);
    let events = h.events();
    assert!(
        matches!(&completed(&events)[..], [(t, Err(Error::Expired(_)))] if *t == short),
        "{events:?}"
    );
    assert_eq!(h.session.outbox_len(), 2);
    assert_eq!(
        h.session.next_expiry(),
        Some(h.now + Duration::from_secs(58))
    );
    // Connected 10 s after it was accepted: the 60 s message goes out with 50 s left.
    h.advance(Duration::from_secs(8));
    h.open();
    h.receive(Incoming::ConnAck(ConnAck::default())).unwrap();
    h.events();
    let transmit = h.session.transmit(h.now).expect("the queued publishes");
    assert_eq!(sent_expiries(transmit.bytes.concat()), [Some(50), None]);
    let _ = (long, plain);
}

#[test]
fn a_message_expiring_before_it_is_pumped_is_not_sent() {
    let mut h = connected(V5, with(options(V5), |o| o.inflight_window = 1));
    h.publish("first", 1);
    let late = h.send(expiring("late", 1, 1));
    assert_eq!(h.written(), [publish("first", 1, 1, false)]);
    h.advance(Duration::from_secs(3));
    h.receive(Incoming::PubAck(1, ok())).unwrap();
    assert!(h.written().is_empty(), "the expired message is not sent");
    let events = h.events();
    assert!(
        completed(&events)
            .iter()
            .any(|(t, r)| *t == late && matches!(r, Err(Error::Expired(_)))),
        "{events:?}"
    );
}

#[test]
fn retransmission_after_reconnect_carries_the_remaining_interval() {
    let mut h = connected(V5, persistent(V5));
    h.send(expiring("a", 1, 30));
    h.send(expiring("b", 1, 5));
    h.written();
    h.advance(Duration::from_secs(10));
    h.session
        .connection_closed(&Error::ConnectionLost("cut".into()));
    h.open();
    h.receive(Incoming::ConnAck(ConnAck {
        session_present: true,
        ..ConnAck::default()
    }))
    .unwrap();
    let events = h.events();
    // "b" (5 s) expired while offline: dropped; "a" goes again with 20 s left.
    assert!(
        completed(&events)
            .iter()
            .any(|(t, r)| *t == 2 && matches!(r, Err(Error::Expired(_)))),
        "{events:?}"
    );
    let transmit = h.session.transmit(h.now).expect("retransmission");
    assert_eq!(sent_expiries(transmit.bytes.concat()), [Some(20)]);
    assert_eq!(h.session.inflight_len(), 1);
}

#[test]
fn the_assigned_client_identifier_is_used_for_the_next_connect() {
    let mut h = Harness::new(with(persistent(V5), |o| o.session_expiry = 60));
    h.session = Session::new(h.session.options.clone(), String::new(), h.now);
    h.session.begin(None);
    h.open();
    h.receive(Incoming::ConnAck(ConnAck {
        assigned_client_id: Some("auto-1234".into()),
        ..ConnAck::default()
    }))
    .unwrap();
    assert_eq!(h.session.client_id(), "auto-1234");
    h.session
        .connection_closed(&Error::ConnectionLost("cut".into()));
    h.session.connection_opened(h.now).unwrap();
    let transmit = h.session.transmit(h.now).expect("CONNECT");
    let mut buf = transmit.bytes.concat();
    match v5::Packet::read(&mut buf, None) {
        Ok(v5::Packet::Connect(connect, _, _)) => assert_eq!(connect.client_id, "auto-1234"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_server_disconnect_is_kept_for_the_connection_event() {
    let mut h = connected(V5, options(V5));
    let result = h.receive(Incoming::Disconnect(crate::mqtt::wire::ServerDisconnect {
        reason_code: 0x9D,
        reason_string: Some("moving".into()),
        user_properties: Vec::new(),
        server_reference: Some("other:1884".into()),
    }));
    match result {
        Err(Error::ConnectionLost(text)) => {
            assert!(text.contains("server moved (0x9D)"), "{text}");
            assert!(text.contains("other:1884"), "{text}");
        }
        other => panic!("{other:?}"),
    }
    let kept = h.session.take_server_disconnect().expect("kept");
    assert_eq!(kept.reason_code, 0x9D);
    assert!(h.session.take_server_disconnect().is_none());
}

#[test]
fn a_sent_qos2_message_is_never_expired_by_the_sender() {
    // MQTT-4.3.3-7: once the PUBLISH is out, QoS 2 applies no expiry: retransmitted after a
    // reconnect that comes after its interval, and completed normally.
    let mut h = connected(V5, persistent(V5));
    let token = h.send(expiring("q2", 2, 1));
    h.written();
    h.advance(Duration::from_secs(5));
    h.session
        .connection_closed(&Error::ConnectionLost("cut".into()));
    h.session.expire_outbox(h.now);
    h.open();
    h.receive(Incoming::ConnAck(ConnAck {
        session_present: true,
        ..ConnAck::default()
    }))
    .unwrap();
    h.events();
    assert_eq!(h.written(), [publish("q2", 2, 1, true)]);
    h.receive(Incoming::PubRec(1, ok())).unwrap();
    assert_eq!(h.written(), [Sent::PubRel(1)]);
    h.receive(Incoming::PubComp(1, ok())).unwrap();
    assert_eq!(completed(&h.events()), [(token, Ok(()))]);
}

/// The raw bytes written until nothing is left.
fn written_bytes(h: &mut Harness) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(transmit) = h.session.transmit(h.now) {
        out.extend_from_slice(&transmit.bytes.concat());
    }
    out
}

#[test]
fn disconnect_user_properties_beyond_the_broker_maximum_packet_size_are_left_out() {
    let mut h = v5_with(BrokerLimits {
        maximum_packet_size: Some(32),
        ..BrokerLimits::default()
    });
    let request = crate::mqtt::session::DisconnectRequest {
        reason_code: 0x04,
        session_expiry: Some(7),
        user_properties: vec![("k".into(), "x".repeat(40))],
    };
    h.session.disconnect_with(h.now, request, 1);
    assert!(h.session.disconnect_due(h.now));
    // Reason 0x04 and the session expiry stay; no reason string is ever sent (MQTT-3.14.2-3).
    assert_eq!(
        written_bytes(&mut h),
        [0xE0, 0x07, 0x04, 0x05, 0x11, 0, 0, 0, 7]
    );
}

#[test]
fn disconnect_user_properties_within_the_maximum_packet_size_are_sent() {
    let mut h = v5_with(BrokerLimits {
        maximum_packet_size: Some(32),
        ..BrokerLimits::default()
    });
    let request = crate::mqtt::session::DisconnectRequest {
        reason_code: 0x00,
        session_expiry: None,
        user_properties: vec![("k".into(), "v".into())],
    };
    h.session.disconnect_with(h.now, request, 1);
    assert!(h.session.disconnect_due(h.now));
    assert_eq!(
        written_bytes(&mut h),
        [0xE0, 0x09, 0x00, 0x07, 0x26, 0, 1, b'k', 0, 1, b'v']
    );
}

// ----- store and forward (persistence.rs, with the in-memory log) -----

mod stored {
    use super::*;
    use crate::mqtt::persistence::{FullPolicy, MemoryLog, Persistence, Restored, STATE_BIT};
    use std::time::SystemTime;

    /// A session with a store; `log` is what a restart would read.
    fn attach(h: &mut Harness, log: &MemoryLog) -> (Arc<Persistence>, Restored) {
        let (p, restored) = Persistence::attach(
            Box::new(log.clone()),
            log.snapshot(),
            "unit",
            false,
            FullPolicy::RejectNew,
        )
        .expect("store opens");
        let p = Arc::new(p);
        h.session.restore(p.clone(), &restored, h.now);
        (p, restored)
    }

    /// What the handle does: record, then hand over.
    fn accept(h: &mut Harness, p: &Persistence, topic: &str, qos: u8) -> Token {
        let token = h.next_token + 1;
        p.accept(token, &message(topic, qos), SystemTime::now())
            .expect("stored");
        h.send(message(topic, qos))
    }

    fn keys(log: &MemoryLog) -> Vec<u64> {
        log.snapshot().into_iter().map(|(k, _)| k).collect()
    }

    /// A restarted process: a new session on the same store, connected with `present`.
    fn restart(log: &MemoryLog, present: bool) -> (Harness, Vec<Sent>) {
        let mut h = Harness::new(persistent(V311));
        attach(&mut h, log);
        h.session.begin(None);
        h.open();
        h.receive(Incoming::ConnAck(ConnAck {
            session_present: present,
            ..ConnAck::default()
        }))
        .expect("CONNACK");
        h.events();
        let sent = h.written();
        (h, sent)
    }

    #[test]
    fn a_qos2_packet_id_is_stored_before_its_publish_is_written() {
        let log = MemoryLog::default();
        let mut h = connected(V311, persistent(V311));
        let (p, _) = attach(&mut h, &log);
        let token = accept(&mut h, &p, "t", 2);
        assert_eq!(
            keys(&log),
            vec![0, token],
            "the message is stored at accept"
        );
        let sent = h.written();
        assert_eq!(sent, vec![publish("t", 2, 1, false)]);
        assert_eq!(keys(&log), vec![0, token, STATE_BIT | token]);
        h.receive(Incoming::PubRec(1, ok())).unwrap();
        assert_eq!(h.written(), vec![Sent::PubRel(1)]);
        h.receive(Incoming::PubComp(1, ok())).unwrap();
        assert_eq!(completed(&h.events()), vec![(token, Ok(()))]);
        assert_eq!(keys(&log), vec![0], "a finished flow leaves the store");
    }

    #[test]
    fn a_store_that_cannot_take_the_packet_id_holds_the_qos2_publish_back() {
        let log = MemoryLog::default();
        let mut h = connected(V311, persistent(V311));
        let (p, _) = attach(&mut h, &log);
        accept(&mut h, &p, "t", 2);
        *log.fail_with.lock().unwrap() = Some(Error::Internal("EIO".into()).into());
        assert_eq!(h.written(), vec![], "not sent without its stored id");
        *log.fail_with.lock().unwrap() = None;
        h.advance(Duration::from_secs(2));
        assert_eq!(
            h.written(),
            vec![publish("t", 2, 2, false)],
            "sent once stored"
        );
    }

    #[test]
    fn a_restart_resends_in_flight_messages_with_dup_or_pubrel_when_the_broker_kept_the_session() {
        let log = MemoryLog::default();
        let mut h = connected(V311, persistent(V311));
        let (p, _) = attach(&mut h, &log);
        let a = accept(&mut h, &p, "a", 2);
        let b = accept(&mut h, &p, "b", 2);
        let c = accept(&mut h, &p, "c", 1);
        assert_eq!(h.written().len(), 3);
        h.receive(Incoming::PubRec(1, ok())).unwrap();
        assert_eq!(h.written(), vec![Sent::PubRel(1)]);
        // Queued while offline: never sent.
        h.session
            .connection_closed(&Error::ConnectionLost("cut".into()));
        let d = accept(&mut h, &p, "d", 1);
        drop(h); // the process dies
        let (mut h, sent) = restart(&log, true);
        assert_eq!(
            sent,
            vec![
                Sent::PubRel(1),
                publish("b", 2, 2, true),
                // QoS 1 keeps no packet id: sent again as a new publish, then the queued one.
                publish("c", 1, 3, false),
                publish("d", 1, 4, false),
            ]
        );
        h.receive(Incoming::PubComp(1, ok())).unwrap();
        h.receive(Incoming::PubRec(2, ok())).unwrap();
        h.receive(Incoming::PubComp(2, ok())).unwrap();
        h.receive(Incoming::PubAck(3, ok())).unwrap();
        h.receive(Incoming::PubAck(4, ok())).unwrap();
        let done: Vec<Token> = completed(&h.events()).into_iter().map(|(t, _)| t).collect();
        assert_eq!(
            done,
            vec![a, b, c, d],
            "each restored message keeps its token"
        );
        assert_eq!(keys(&log), vec![0]);
    }

    #[test]
    fn a_restart_sends_everything_as_new_publishes_in_order_when_the_broker_lost_the_session() {
        let log = MemoryLog::default();
        let mut h = connected(V311, persistent(V311));
        let (p, _) = attach(&mut h, &log);
        accept(&mut h, &p, "a", 2);
        accept(&mut h, &p, "b", 1);
        assert_eq!(h.written().len(), 2);
        h.receive(Incoming::PubRec(1, ok())).unwrap();
        h.written();
        h.session
            .connection_closed(&Error::ConnectionLost("cut".into()));
        accept(&mut h, &p, "c", 2);
        drop(h);
        let (_, sent) = restart(&log, false);
        assert_eq!(
            sent,
            vec![
                publish("a", 2, 1, false),
                publish("b", 1, 2, false),
                publish("c", 2, 3, false)
            ]
        );
    }

    #[test]
    fn a_received_qos2_id_is_stored_before_pubrec_and_its_retransmission_after_a_restart_is_not_delivered(
    ) {
        let log = MemoryLog::default();
        let mut h = connected(V311, persistent(V311));
        attach(&mut h, &log);
        h.receive(Incoming::Publish(inbound("in", 2, 5, false), None))
            .unwrap();
        let (_, ticket) = delivered(&mut h);
        h.session.acknowledge(ticket.expect("ticket"));
        assert_eq!(h.written(), vec![Sent::PubRec(5)]);
        assert!(keys(&log).contains(&(crate::mqtt::persistence::INBOUND_BIT | 5)));
        drop(h);
        let (mut h, _) = restart(&log, true);
        h.receive(Incoming::Publish(inbound("in", 2, 5, true), None))
            .unwrap();
        assert!(messages(&h.events()).is_empty(), "not delivered twice");
        assert_eq!(h.written(), vec![Sent::PubRec(5)]);
        h.receive(Incoming::PubRel(5, ok())).unwrap();
        assert_eq!(h.written(), vec![Sent::PubComp(5)]);
        assert_eq!(keys(&log), vec![0]);
    }

    #[test]
    fn a_user_disconnect_keeps_stored_messages_for_the_next_connect() {
        let log = MemoryLog::default();
        let mut h = connected(V311, persistent(V311));
        let (p, _) = attach(&mut h, &log);
        let token = accept(&mut h, &p, "t", 1);
        h.written();
        h.session.end(&Error::Disconnected("bye".into()), false);
        assert!(completed(&h.events()).is_empty(), "not failed: it is kept");
        assert_eq!(keys(&log), vec![0, token]);
        h.session.begin(None);
        let sent = h.reconnect(true);
        assert_eq!(
            sent,
            vec![publish("t", 1, 1, true)],
            "in flight in this process: DUP"
        );
    }
}
