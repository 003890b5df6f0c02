//! Session-engine tests against a SCRIPTED SOCKET standing in for a broker. These tests send
//! bytes no real broker would send (acks for ids never used, garbage, lying lengths, a PUBREL
//! out of nowhere, a CONNACK claiming a session that never existed, silence instead of
//! PINGRESP), so by the project's rule they do not use a real broker: a `TcpListener` on
//! 127.0.0.1 reads the client's packets frame by frame and writes exact bytes back.
//!
//! Everything is bounded in time: every socket read has a deadline, every script thread is
//! joined with a deadline, and every client call is given a timeout.

mod scripted;

use eq1::mqtt::subscriptions::MessageHandler;
use eq1::mqtt::{Client, ConnectionState, Message, Qos};
use eq1::Error;
use scripted::*;
use std::collections::HashSet;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SCRIPT_WAIT: Duration = Duration::from_secs(20);

fn connect(client: &Client) {
    client
        .connect(Duration::from_secs(5))
        .expect("connect to the scripted socket");
}

/// A subscription handler that forwards (topic, payload) of every message.
fn forwarding_handler() -> (MessageHandler, mpsc::Receiver<(String, Vec<u8>)>) {
    let (tx, rx) = mpsc::channel();
    let handler = Arc::new(move |m: &Message| {
        let _ = tx.send((m.topic.clone(), m.payload.to_vec()));
    });
    (handler, rx)
}

fn assert_stays_connected(client: &Client, events: &Events) {
    assert!(client.is_connected(), "the client dropped the connection");
    if let Ok((_, event)) = events.try_recv() {
        panic!("unexpected connection event {event:?}");
    }
}

#[test]
fn unknown_pubrel_is_answered_with_pubcomp() {
    let (listener, port) = listen();
    let (go, go_gate) = gate();
    let (step, step_gate) = gate();
    let script = run(move || {
        let mut peer = Peer::accept(&listener, false, PACKET_WAIT);
        peer.handshake(false);
        go_gate.wait("connected");
        peer.send(&pubrel(77));
        let answer = peer.expect(PUBCOMP);
        assert_eq!(answer.header, 0x70, "PUBCOMP flags must be 0");
        assert_eq!(answer.leading_pkid(), 77);
        assert_eq!(answer.body.len(), 2, "v3.1.1 PUBCOMP is two bytes");
        peer.expect_silence(Duration::from_millis(200), "after PUBCOMP");
        step.open();
        go_gate.hold();
    });
    let client = Client::new(options(port, 4)).expect("client");
    let events = watch_connection(&client);
    connect(&client);
    wait_for(&events, ConnectionState::Connected, CLIENT_WAIT);
    go.open();
    step_gate.wait("the script saw PUBCOMP");
    assert_stays_connected(&client, &events);
    go.open();
    script.finish(SCRIPT_WAIT);
}

#[test]
fn unexpected_acks_are_ignored_and_connection_stays_up() {
    let (listener, port) = listen();
    let (ready_tx, ready) = mpsc::channel();
    let (go, go_gate) = gate();
    let script = run(move || {
        let mut peer = Peer::accept(&listener, false, PACKET_WAIT);
        peer.handshake(false);
        go_gate.wait("connected");
        peer.send(&puback(5));
        peer.send(&pubrec(6));
        peer.send(&pubcomp(7));
        // The client handles packets in order: once it answered this PUBREL, it has seen the
        // three stray acks before it.
        peer.send(&pubrel(99));
        let answer = peer.expect(PUBCOMP);
        assert_eq!(answer.leading_pkid(), 99);
        ready_tx.send(()).expect("tell the test to publish");
        let publish = peer.expect_publish();
        assert_eq!(publish.qos, 1);
        assert_eq!(publish.topic, "after/strays");
        assert!(!publish.dup);
        peer.send(&puback(publish.pkid));
        peer.expect_silence(Duration::from_millis(200), "after the PUBACK");
        go_gate.hold();
    });
    let client = Client::new(options(port, 4)).expect("client");
    let events = watch_connection(&client);
    connect(&client);
    wait_for(&events, ConnectionState::Connected, CLIENT_WAIT);
    go.open();
    ready
        .recv_timeout(CLIENT_WAIT)
        .expect("the script got past the stray acks");
    assert_stays_connected(&client, &events);
    let token = client
        .publish("after/strays", b"still here", Qos::AtLeastOnce, false)
        .expect("publish");
    assert_eq!(client.wait(token, CLIENT_WAIT), Ok(()));
    assert_stays_connected(&client, &events);
    go.open();
    script.finish(SCRIPT_WAIT);
    let stats = client.stats();
    assert_eq!(stats.delivered, 1, "{stats:?}");
    assert_eq!(stats.failed, 0, "{stats:?}");
}

#[test]
fn malformed_packet_reports_protocol_error() {
    let cases: [(&str, &[u8]); 3] = [
        ("reserved packet type 0", &[0x00, 0x00]),
        (
            "PUBLISH whose topic length runs past its remaining length",
            &[0x30, 0x02, 0x00, 0x05],
        ),
        (
            "remaining length longer than four bytes",
            &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],
        ),
    ];
    for (what, bytes) in cases {
        let (listener, port) = listen();
        let garbage = bytes.to_vec();
        let (go, go_gate) = gate();
        let script = run(move || {
            let mut peer = Peer::accept(&listener, false, PACKET_WAIT);
            peer.handshake(false);
            go_gate.wait("connected");
            peer.send(&garbage);
            // The client must give up on the connection by itself.
            assert!(
                peer.drain_until_closed(Duration::from_secs(5)),
                "the client kept the connection open after a malformed packet"
            );
        });
        let client = Client::new(options(port, 4)).expect("client");
        let events = watch_connection(&client);
        connect(&client);
        wait_for(&events, ConnectionState::Connected, CLIENT_WAIT);
        go.open();
        let (_, lost) = wait_for(&events, ConnectionState::ConnectionLost, CLIENT_WAIT);
        assert!(
            matches!(lost.reason, Some(Error::Protocol(_))),
            "{what}: expected a protocol error, got {:?}",
            lost.reason
        );
        script.finish(SCRIPT_WAIT);
        assert!(!client.is_connected(), "{what}");
    }
}

#[test]
fn inbound_qos2_is_delivered_once_until_pubrel() {
    let (listener, port) = listen();
    let script = run(move || {
        let mut peer = Peer::accept(&listener, false, PACKET_WAIT);
        peer.handshake(false);
        let subscribe = peer.expect(SUBSCRIBE);
        peer.send(&suback_v4(subscribe.leading_pkid(), 2));

        peer.send(&publish("in/x", 9, 2, false, None, b"once"));
        assert_eq!(peer.expect(PUBREC).leading_pkid(), 9);
        // The same message again, as a broker retransmits it before PUBREL.
        peer.send(&publish("in/x", 9, 2, true, None, b"once"));
        let second = peer.expect(PUBREC);
        assert_eq!(
            second.leading_pkid(),
            9,
            "the retransmission is acknowledged"
        );
        assert_eq!(second.header, 0x50);
        peer.send(&pubrel(9));
        assert_eq!(peer.expect(PUBCOMP).leading_pkid(), 9);

        // After PUBREL the id is free again: the same id is a new message.
        peer.send(&publish("in/x", 9, 2, false, None, b"second"));
        assert_eq!(peer.expect(PUBREC).leading_pkid(), 9);
        peer.send(&pubrel(9));
        assert_eq!(peer.expect(PUBCOMP).leading_pkid(), 9);

        // Handlers run in order: when this one arrives, every earlier delivery has happened.
        peer.send(&publish("in/end", 0, 0, false, None, b""));
        peer.expect_silence(Duration::from_millis(200), "after the exchange");
    });
    let client = Client::new(options(port, 4)).expect("client");
    connect(&client);
    let (handler, messages) = forwarding_handler();
    let granted = client
        .subscribe("in/#", Qos::ExactlyOnce, handler, CLIENT_WAIT)
        .expect("subscribe");
    assert_eq!(granted, Qos::ExactlyOnce);
    let mut seen = Vec::new();
    loop {
        let (topic, payload) = messages
            .recv_timeout(CLIENT_WAIT)
            .expect("messages up to the end marker");
        if topic == "in/end" {
            break;
        }
        seen.push((topic, payload));
    }
    script.finish(SCRIPT_WAIT);
    assert_eq!(
        seen,
        vec![
            ("in/x".to_string(), b"once".to_vec()),
            ("in/x".to_string(), b"second".to_vec()),
        ],
        "a QoS 2 message is delivered once, however often it is retransmitted before PUBREL"
    );
}

/// Publishes one message, lets the script drop the connection before acknowledging it and
/// answer the reconnect with `session_present`; returns what the script saw.
fn resend_after_reconnect(session_present: bool) -> (Publish, Publish) {
    let (listener, port) = listen();
    let script = run(move || {
        let mut first = Peer::accept(&listener, false, PACKET_WAIT);
        first.handshake(false);
        let original = first.expect_publish();
        drop(first);
        let mut second = Peer::accept(&listener, false, PACKET_WAIT);
        let connect = second.handshake(session_present);
        // CONNECT flags: bit 1 is clean session, which this client turned off.
        assert_eq!(
            connect.body[7] & 0x02,
            0,
            "the reconnect asks to resume the session"
        );
        let resent = second.expect_publish();
        second.send(&puback(resent.pkid));
        second.expect_silence(Duration::from_millis(200), "after the PUBACK");
        (original, resent)
    });
    let mut opts = options(port, 4);
    opts.clean_session = false;
    opts.set_client_id("scripted-resend").expect("client id");
    opts.set_reconnect(true, 50, 200).expect("reconnect");
    let client = Client::new(opts).expect("client");
    let events = watch_connection(&client);
    connect(&client);
    let token = client
        .publish("resend/me", b"payload", Qos::AtLeastOnce, false)
        .expect("publish");
    wait_for(&events, ConnectionState::ConnectionLost, CLIENT_WAIT);
    let (_, reconnected) = wait_for(&events, ConnectionState::Connected, CLIENT_WAIT);
    assert_eq!(reconnected.session_present, session_present);
    assert_eq!(client.wait(token, CLIENT_WAIT), Ok(()));
    let seen = script.finish(SCRIPT_WAIT);
    assert_eq!(client.stats().reconnects, 1);
    seen
}

#[test]
fn retransmitted_publish_carries_dup_after_session_resume() {
    let (original, resent) = resend_after_reconnect(true);
    assert!(!original.dup, "the first transmission is not a duplicate");
    assert!(resent.dup, "the retransmission must carry DUP: {resent:?}");
    assert_eq!(
        resent.pkid, original.pkid,
        "same packet id in the resumed session"
    );
    assert_eq!(resent.qos, 1);
    assert_eq!(resent.topic, original.topic);
    assert_eq!(resent.payload, original.payload);
}

#[test]
fn unacked_publish_is_resent_as_new_when_session_lost() {
    let (original, resent) = resend_after_reconnect(false);
    assert!(
        !resent.dup,
        "a message sent in a new session is not a duplicate: {resent:?}"
    );
    assert_ne!(resent.pkid, 0);
    assert_eq!(resent.qos, 1);
    assert_eq!(resent.topic, original.topic);
    assert_eq!(resent.payload, original.payload);
}

#[test]
fn qos2_resumes_at_pubrel_after_reconnect() {
    let (listener, port) = listen();
    let (at_pubcomp_tx, at_pubcomp) = mpsc::channel();
    let (go_tx, go) = mpsc::channel::<()>();
    let script = run(move || {
        let mut first = Peer::accept(&listener, false, PACKET_WAIT);
        first.handshake(false);
        let publish = first.expect_publish();
        assert_eq!(publish.qos, 2);
        first.send(&pubrec(publish.pkid));
        let release = first.expect(PUBREL);
        assert_eq!(release.header, 0x62, "PUBREL flags must be 0b0010");
        assert_eq!(release.leading_pkid(), publish.pkid);
        drop(first);

        let mut second = Peer::accept(&listener, false, PACKET_WAIT);
        second.handshake(true);
        let resumed = second.read("the resumed QoS 2 flow");
        assert_eq!(
            resumed.kind(),
            PUBREL,
            "after PUBREC the flow resumes with PUBREL, not {}: {resumed:02x?}",
            resumed.name()
        );
        assert_eq!(resumed.header, 0x62);
        assert_eq!(resumed.leading_pkid(), publish.pkid);
        at_pubcomp_tx.send(()).expect("tell the test");
        go.recv_timeout(CLIENT_WAIT)
            .expect("go ahead from the test");
        second.send(&pubcomp(publish.pkid));
        second.expect_silence(Duration::from_millis(200), "after PUBCOMP");
    });
    let mut opts = options(port, 4);
    opts.clean_session = false;
    opts.set_client_id("scripted-qos2").expect("client id");
    opts.set_reconnect(true, 50, 200).expect("reconnect");
    let client = Client::new(opts).expect("client");
    let events = watch_connection(&client);
    connect(&client);
    let token = client
        .publish("exactly/once", b"payload", Qos::ExactlyOnce, false)
        .expect("publish");
    wait_for(&events, ConnectionState::ConnectionLost, CLIENT_WAIT);
    let (_, reconnected) = wait_for(&events, ConnectionState::Connected, CLIENT_WAIT);
    assert!(reconnected.session_present);
    at_pubcomp
        .recv_timeout(CLIENT_WAIT)
        .expect("the script saw PUBREL");
    assert!(
        matches!(
            client.wait(token, Duration::from_millis(100)),
            Err(Error::Timeout(_))
        ),
        "the token must wait for PUBCOMP"
    );
    go_tx.send(()).expect("let the script send PUBCOMP");
    assert_eq!(client.wait(token, CLIENT_WAIT), Ok(()));
    script.finish(SCRIPT_WAIT);
}

#[test]
fn keepalive_sends_pingreq_and_detects_dead_broker() {
    let (listener, port) = listen();
    let script = run(move || {
        let mut peer = Peer::accept(&listener, false, PACKET_WAIT);
        peer.handshake(false);
        let silent_since = Instant::now();
        let ping = peer.expect(PINGREQ);
        let after = silent_since.elapsed();
        assert_eq!(ping.body.len(), 0);
        // Never answer: the client must notice and close.
        let closed = peer.drain_until_closed(Duration::from_secs(4));
        (after, closed)
    });
    let mut opts = options(port, 4);
    opts.set_keep_alive(1).expect("keep-alive");
    let client = Client::new(opts).expect("client");
    let events = watch_connection(&client);
    connect(&client);
    let (connected_at, _) = wait_for(&events, ConnectionState::Connected, CLIENT_WAIT);
    let (lost_at, lost) = wait_for(&events, ConnectionState::ConnectionLost, CLIENT_WAIT);
    let (ping_after, closed) = script.finish(SCRIPT_WAIT);
    assert!(
        ping_after >= Duration::from_millis(900) && ping_after < Duration::from_millis(1_800),
        "PINGREQ after {ping_after:?} of silence; expected about 1 s"
    );
    let dead_after = lost_at.duration_since(connected_at);
    assert!(
        dead_after >= Duration::from_millis(1_200) && dead_after < Duration::from_secs(3),
        "connection declared lost {dead_after:?} after the last packet; expected about 1.5 s"
    );
    assert!(
        matches!(lost.reason, Some(Error::ConnectionLost(_))),
        "{:?}",
        lost.reason
    );
    assert!(closed, "the client closed the dead connection");
}

#[test]
fn packet_ids_do_not_collide_across_publish_and_subscribe() {
    let (listener, port) = listen();
    let script = run(move || {
        let mut peer = Peer::accept(&listener, false, PACKET_WAIT);
        peer.handshake(false);
        let mut publishes = Vec::new();
        let mut subscribe = None;
        while publishes.len() < 10 || subscribe.is_none() {
            let frame = peer.read("10 PUBLISH and a SUBSCRIBE");
            match frame.kind() {
                PUBLISH => publishes.push(frame.publish(false).pkid),
                SUBSCRIBE => {
                    assert!(subscribe.is_none(), "one SUBSCRIBE only");
                    subscribe = Some(frame.leading_pkid());
                }
                _ => panic!("unexpected {}: {frame:02x?}", frame.name()),
            }
        }
        peer.expect_silence(Duration::from_millis(200), "with everything in flight");
        let subscribe = subscribe.expect("SUBSCRIBE seen");
        let mut all: Vec<u16> = publishes.clone();
        all.push(subscribe);
        let distinct: HashSet<u16> = all.iter().copied().collect();
        assert_eq!(distinct.len(), 11, "packet ids collide: {all:?}");
        assert!(!distinct.contains(&0), "packet id 0 used: {all:?}");
        peer.send(&suback_v4(subscribe, 1));
        for pkid in &publishes {
            peer.send(&puback(*pkid));
        }
        peer.expect_silence(Duration::from_millis(200), "after the acks");
        all
    });
    let mut opts = options(port, 4);
    opts.set_inflight_window(10).expect("window");
    let client = Client::new(opts).expect("client");
    connect(&client);
    let (handler, _messages) = forwarding_handler();
    let (granted, tokens) = std::thread::scope(|s| {
        let subscriber = s
            .spawn(|| client.subscribe("ids/#", Qos::AtLeastOnce, handler, Duration::from_secs(8)));
        let tokens: Vec<_> = (0..10)
            .map(|i| {
                client
                    .publish(
                        "ids/pub",
                        format!("{i}").as_bytes(),
                        Qos::AtLeastOnce,
                        false,
                    )
                    .expect("publish")
            })
            .collect();
        let granted = subscriber.join().expect("subscriber thread");
        (granted, tokens)
    });
    assert_eq!(granted, Ok(Qos::AtLeastOnce));
    for token in tokens {
        assert_eq!(client.wait(token, CLIENT_WAIT), Ok(()));
    }
    script.finish(SCRIPT_WAIT);
}

#[test]
fn inflight_window_is_respected() {
    let (listener, port) = listen();
    let script = run(move || {
        let mut peer = Peer::accept(&listener, false, PACKET_WAIT);
        peer.handshake(false);
        let mut inflight = std::collections::VecDeque::new();
        let mut order = Vec::new();
        for _ in 0..3 {
            let p = peer.expect_publish();
            order.push(p.payload.clone());
            inflight.push_back(p.pkid);
        }
        peer.expect_silence(
            Duration::from_millis(300),
            "a 4th PUBLISH with a window of 3",
        );
        for _ in 3..10 {
            let oldest = inflight.pop_front().expect("something in flight");
            peer.send(&puback(oldest));
            let p = peer.expect_publish();
            order.push(p.payload.clone());
            inflight.push_back(p.pkid);
            peer.expect_silence(
                Duration::from_millis(150),
                "a second PUBLISH after one PUBACK",
            );
        }
        while let Some(pkid) = inflight.pop_front() {
            peer.send(&puback(pkid));
        }
        peer.expect_silence(Duration::from_millis(200), "after the last PUBACK");
        order
    });
    let mut opts = options(port, 4);
    opts.set_inflight_window(3).expect("window");
    let client = Client::new(opts).expect("client");
    connect(&client);
    let tokens: Vec<_> = (0..10)
        .map(|i| {
            client
                .publish(
                    "window/t",
                    format!("{i}").as_bytes(),
                    Qos::AtLeastOnce,
                    false,
                )
                .expect("publish")
        })
        .collect();
    for token in tokens {
        assert_eq!(client.wait(token, Duration::from_secs(10)), Ok(()));
    }
    let order = script.finish(SCRIPT_WAIT);
    let expected: Vec<Vec<u8>> = (0..10).map(|i| format!("{i}").into_bytes()).collect();
    assert_eq!(
        order, expected,
        "publishes leave in the order they were made"
    );
}

#[test]
fn v5_topic_alias_is_resolved() {
    let (listener, port) = listen();
    let (done, done_gate) = gate();
    let script = run(move || {
        let mut peer = Peer::accept(&listener, true, PACKET_WAIT);
        peer.handshake(false);
        let subscribe = peer.expect(SUBSCRIBE);
        peer.send(&suback_v5(subscribe.leading_pkid(), 0));
        // Topic Alias property: identifier 0x23, two-byte value.
        let alias = [0x23, 0x00, 0x01];
        peer.send(&publish("a/b", 0, 0, false, Some(&alias), b"first"));
        peer.send(&publish("", 0, 0, false, Some(&alias), b"second"));
        peer.expect_silence(Duration::from_millis(200), "after the aliased publishes");
        done_gate.hold();
    });
    let mut options = options(port, 5);
    options.set_topic_alias_maximum(4).expect("alias maximum");
    let client = Client::new(options).expect("client");
    let events = watch_connection(&client);
    connect(&client);
    let (handler, messages) = forwarding_handler();
    client
        .subscribe("a/#", Qos::AtMostOnce, handler, CLIENT_WAIT)
        .expect("subscribe");
    let first = messages.recv_timeout(CLIENT_WAIT).expect("first message");
    let second = messages.recv_timeout(CLIENT_WAIT).expect("second message");
    assert_eq!(first, ("a/b".to_string(), b"first".to_vec()));
    assert_eq!(second, ("a/b".to_string(), b"second".to_vec()));
    wait_for(&events, ConnectionState::Connected, CLIENT_WAIT);
    assert_stays_connected(&client, &events);
    done.open();
    script.finish(SCRIPT_WAIT);
}

#[test]
fn v5_puback_failure_reason_fails_the_token() {
    let (listener, port) = listen();
    let (done, done_gate) = gate();
    let script = run(move || {
        let mut peer = Peer::accept(&listener, true, PACKET_WAIT);
        peer.handshake(false);
        let refused = peer.expect_publish();
        let id = refused.pkid.to_be_bytes();
        // PUBACK with reason 0x87 (Not authorized), no properties.
        peer.send(&[0x40, 0x03, id[0], id[1], 0x87]);
        let accepted = peer.expect_publish();
        peer.send(&puback(accepted.pkid));
        peer.expect_silence(Duration::from_millis(200), "after the acks");
        done_gate.hold();
    });
    let client = Client::new(options(port, 5)).expect("client");
    let events = watch_connection(&client);
    connect(&client);
    let refused = client
        .publish("v5/refused", b"x", Qos::AtLeastOnce, false)
        .expect("publish");
    let outcome = client.wait(refused, CLIENT_WAIT);
    assert!(
        matches!(outcome, Err(Error::PublishRefused(_))),
        "{outcome:?}"
    );
    let accepted = client
        .publish("v5/accepted", b"y", Qos::AtLeastOnce, false)
        .expect("publish");
    assert_eq!(client.wait(accepted, CLIENT_WAIT), Ok(()));
    wait_for(&events, ConnectionState::Connected, CLIENT_WAIT);
    assert_stays_connected(&client, &events);
    done.open();
    script.finish(SCRIPT_WAIT);
}

#[test]
fn v5_ack_reason_strings_and_user_properties_reach_the_caller() {
    // mosquitto never sends 0x97 (quota exceeded) nor reason strings or user properties on
    // acknowledgements: scripted, with exact bytes.
    fn ack_with(header: u8, pkid: u16, code: u8, text: &str, property: (&str, &str)) -> Vec<u8> {
        let mut properties = vec![0x1F];
        properties.extend_from_slice(&(text.len() as u16).to_be_bytes());
        properties.extend_from_slice(text.as_bytes());
        properties.push(0x26);
        for s in [property.0, property.1] {
            properties.extend_from_slice(&(s.len() as u16).to_be_bytes());
            properties.extend_from_slice(s.as_bytes());
        }
        let mut body = pkid.to_be_bytes().to_vec();
        body.push(code);
        body.push(properties.len() as u8);
        body.extend_from_slice(&properties);
        packet(header, &body)
    }
    let (listener, port) = listen();
    let (done, done_gate) = gate();
    let script = run(move || {
        let mut peer = Peer::accept(&listener, true, PACKET_WAIT);
        peer.handshake(false);
        let quota = peer.expect_publish();
        peer.send(&ack_with(
            0x40,
            quota.pkid,
            0x97,
            "slow down",
            ("limit", "10/s"),
        ));
        let nobody = peer.expect_publish();
        peer.send(&ack_with(
            0x40,
            nobody.pkid,
            0x10,
            "no subscribers",
            ("k", "v"),
        ));
        let exactly = peer.expect_publish();
        peer.send(&ack_with(0x50, exactly.pkid, 0x97, "full", ("q", "2")));
        peer.expect_silence(
            Duration::from_millis(200),
            "no PUBREL after a failed PUBREC",
        );
        done_gate.hold();
    });
    let client = Client::new(options(port, 5)).expect("client");
    let reports = Arc::new(std::sync::Mutex::new(Vec::new()));
    {
        let reports = reports.clone();
        client.set_delivery_handler(Some(Arc::new(move |token, result, detail| {
            reports
                .lock()
                .unwrap()
                .push((token, result.clone(), detail.cloned()));
        })));
    }
    connect(&client);
    let quota = client
        .publish("v5/quota", b"x", Qos::AtLeastOnce, false)
        .expect("publish");
    let (result, detail) = client.wait_report(quota, CLIENT_WAIT);
    let Err(Error::PublishRefused(text)) = &result else {
        panic!("{result:?}");
    };
    assert!(text.contains("quota exceeded (0x97): slow down"), "{text}");
    let detail = detail.expect("detail");
    assert_eq!(detail.code, 0x97);
    assert_eq!(detail.text.as_deref(), Some("slow down"));
    assert_eq!(
        detail.properties,
        [("limit".to_string(), "10/s".to_string())]
    );
    let nobody = client
        .publish("v5/nobody", b"y", Qos::AtLeastOnce, false)
        .expect("publish");
    let (result, detail) = client.wait_report(nobody, CLIENT_WAIT);
    assert_eq!(result, Ok(()), "0x10 is a success");
    let detail = detail.expect("detail");
    assert_eq!(detail.code, 0x10);
    assert_eq!(detail.text.as_deref(), Some("no subscribers"));
    let exactly = client
        .publish("v5/exactly", b"z", Qos::ExactlyOnce, false)
        .expect("publish");
    let (result, detail) = client.wait_report(exactly, CLIENT_WAIT);
    assert!(
        matches!(result, Err(Error::PublishRefused(_))),
        "{result:?}"
    );
    assert_eq!(detail.map(|d| d.code), Some(0x97));
    // The delivery handler saw the same three, in order.
    let deadline = Instant::now() + CLIENT_WAIT;
    while reports.lock().unwrap().len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let seen: Vec<(u64, bool, Option<u8>)> = reports
        .lock()
        .unwrap()
        .iter()
        .map(|(t, r, d)| (*t, r.is_ok(), d.as_ref().map(|d| d.code)))
        .collect();
    assert_eq!(
        seen,
        [
            (quota, false, Some(0x97)),
            (nobody, true, Some(0x10)),
            (exactly, false, Some(0x97))
        ]
    );
    done.open();
    script.finish(SCRIPT_WAIT);
}

#[test]
fn v5_suback_failure_is_subscribe_refused() {
    let (listener, port) = listen();
    let (done, done_gate) = gate();
    let script = run(move || {
        let mut peer = Peer::accept(&listener, true, PACKET_WAIT);
        peer.handshake(false);
        let subscribe = peer.expect(SUBSCRIBE);
        peer.send(&suback_v5(subscribe.leading_pkid(), 0x87));
        peer.expect_silence(Duration::from_millis(200), "after the SUBACK");
        done_gate.hold();
    });
    let client = Client::new(options(port, 5)).expect("client");
    connect(&client);
    let (handler, _messages) = forwarding_handler();
    let outcome = client.subscribe("v5/forbidden", Qos::AtLeastOnce, handler, CLIENT_WAIT);
    assert!(
        matches!(outcome, Err(Error::SubscribeRefused(_))),
        "{outcome:?}"
    );
    assert!(client.is_connected());
    done.open();
    script.finish(SCRIPT_WAIT);
}

/// The script sends `disconnect` and keeps the socket open: the loss must come from the
/// DISCONNECT itself, not from the socket closing.
fn broker_disconnect(disconnect: &'static [u8]) -> eq1::mqtt::ConnectionEvent {
    let (listener, port) = listen();
    let (go, go_gate) = gate();
    let script = run(move || {
        let mut peer = Peer::accept(&listener, true, PACKET_WAIT);
        peer.handshake(false);
        go_gate.wait("connected");
        peer.send(disconnect);
        peer.drain_until_closed(Duration::from_secs(4))
    });
    let client = Client::new(options(port, 5)).expect("client");
    let events = watch_connection(&client);
    connect(&client);
    wait_for(&events, ConnectionState::Connected, CLIENT_WAIT);
    go.open();
    let (_, lost) = wait_for(
        &events,
        ConnectionState::ConnectionLost,
        Duration::from_secs(3),
    );
    assert!(
        script.finish(SCRIPT_WAIT),
        "the client closed the socket after DISCONNECT"
    );
    lost
}

#[test]
fn v5_broker_disconnect_is_reported() {
    // DISCONNECT, reason 0x8B (Server shutting down), property length 0.
    let lost = broker_disconnect(&[0xE0, 0x02, 0x8B, 0x00]);
    let Some(Error::ConnectionLost(reason)) = &lost.reason else {
        panic!("expected ConnectionLost, got {:?}", lost.reason);
    };
    assert!(reason.contains("DISCONNECT"), "{reason}");
    assert!(reason.contains("server shutting down (0x8B)"), "{reason}");
    let disconnect = lost
        .server_disconnect
        .as_deref()
        .expect("the DISCONNECT's contents");
    assert_eq!(disconnect.reason_code, 0x8B);
}

#[test]
fn v5_broker_disconnect_reason_string_and_server_reference_reach_the_connection_event() {
    // A real mosquitto never sends a server reference: scripted. DISCONNECT 0x9D (server
    // moved), properties: Reason String 0x1F "moving", Server Reference 0x1C "other:1884".
    let mut body = vec![0x9D];
    let mut properties = vec![0x1F, 0x00, 0x06];
    properties.extend_from_slice(b"moving");
    properties.extend_from_slice(&[0x1C, 0x00, 0x0A]);
    properties.extend_from_slice(b"other:1884");
    body.push(properties.len() as u8);
    body.extend_from_slice(&properties);
    let bytes: &'static [u8] = Box::leak(packet(0xE0, &body).into_boxed_slice());
    let lost = broker_disconnect(bytes);
    let disconnect = lost
        .server_disconnect
        .as_deref()
        .expect("the DISCONNECT's contents");
    assert_eq!(disconnect.reason_code, 0x9D);
    assert_eq!(disconnect.reason_string.as_deref(), Some("moving"));
    assert_eq!(disconnect.server_reference.as_deref(), Some("other:1884"));
    let Some(Error::ConnectionLost(reason)) = &lost.reason else {
        panic!("expected ConnectionLost, got {:?}", lost.reason);
    };
    assert!(reason.contains("server moved (0x9D) (moving)"), "{reason}");
    assert!(reason.contains("other:1884"), "{reason}");
}

#[test]

fn v5_broker_disconnect_without_properties_is_reported() {
    // MQTT 5 §3.14.2.2.1: a Remaining Length below 2 means property length 0.
    let lost = broker_disconnect(&[0xE0, 0x01, 0x8B]);
    let Some(Error::ConnectionLost(reason)) = &lost.reason else {
        panic!("expected ConnectionLost, got {:?}", lost.reason);
    };
    assert!(reason.contains("server shutting down"), "{reason}");
}

#[test]

fn v5_broker_normal_disconnect_is_not_a_protocol_error() {
    let lost = broker_disconnect(&[0xE0, 0x00]);
    assert!(
        matches!(lost.reason, Some(Error::ConnectionLost(_))),
        "{:?}",
        lost.reason
    );
}

#[test]

fn v5_publish_without_property_length_is_a_protocol_error() {
    let (listener, port) = listen();
    let (go, go_gate) = gate();
    let script = run(move || {
        let mut peer = Peer::accept(&listener, true, PACKET_WAIT);
        peer.handshake(false);
        go_gate.wait("connected");
        // A QoS 1 PUBLISH that ends after its packet id: the v5 property length is missing.
        peer.send(&publish("a/b", 3, 1, false, None, b""));
        peer.drain_until_closed(Duration::from_secs(4))
    });
    let client = Client::new(options(port, 5)).expect("client");
    let events = watch_connection(&client);
    connect(&client);
    wait_for(&events, ConnectionState::Connected, CLIENT_WAIT);
    go.open();
    let (_, lost) = wait_for(
        &events,
        ConnectionState::ConnectionLost,
        Duration::from_secs(3),
    );
    assert!(
        matches!(lost.reason, Some(Error::Protocol(_))),
        "{:?}",
        lost.reason
    );
    assert!(script.finish(SCRIPT_WAIT));
}

#[test]

fn packet_in_the_same_segment_as_connack_is_processed() {
    let (listener, port) = listen();
    let script = run(move || {
        let mut peer = Peer::accept(&listener, false, PACKET_WAIT);
        peer.expect(CONNECT);
        // One write: brokers do this when they deliver a stored session's messages at once.
        let mut bytes = connack_v4(false, 0);
        bytes.extend_from_slice(&pubrel(77));
        peer.send(&bytes);
        let answer = peer.try_read(Duration::from_secs(2));
        let answered =
            matches!(&answer, Ok(frame) if frame.kind() == PUBCOMP && frame.leading_pkid() == 77);
        assert!(answered, "no PUBCOMP 77 within 2 s: {answer:02x?}");
    });
    let client = Client::new(options(port, 4)).expect("client");
    connect(&client);
    script.finish(SCRIPT_WAIT);
}

#[test]
fn connack_refusal_codes_map_to_errors() {
    fn refused_with(code: u8) -> Result<(), Error> {
        let (listener, port) = listen();
        let script = run(move || {
            let mut peer = Peer::accept(&listener, false, PACKET_WAIT);
            peer.expect(CONNECT);
            peer.send(&connack_v4(false, code));
            peer.drain_until_closed(Duration::from_secs(3))
        });
        let client = Client::new(options(port, 4)).expect("client");
        let outcome = client.connect(Duration::from_secs(5)).map(drop);
        assert!(!client.is_connected());
        assert!(script.finish(SCRIPT_WAIT), "the client closed the socket");
        outcome
    }
    let bad_credentials = refused_with(4);
    assert!(
        matches!(bad_credentials, Err(Error::BadCredentials(_))),
        "{bad_credentials:?}"
    );
    let not_authorized = refused_with(5);
    assert!(
        matches!(not_authorized, Err(Error::NotAuthorized(_))),
        "{not_authorized:?}"
    );
    let bad_version = refused_with(1);
    assert!(
        matches!(bad_version, Err(Error::UnsupportedProtocolVersion(_))),
        "{bad_version:?}"
    );

    // Accepts the TCP connection and closes it at once.
    let (listener, port) = listen();
    let script = run(move || drop(Peer::accept(&listener, false, PACKET_WAIT)));
    let client = Client::new(options(port, 4)).expect("client");
    let closed = client.connect(Duration::from_secs(5)).map(drop);
    script.finish(SCRIPT_WAIT);
    assert!(
        matches!(closed, Err(Error::ConnectionLost(_) | Error::Network(_))),
        "{closed:?}"
    );

    // Accepts, reads CONNECT, never answers.
    let (listener, port) = listen();
    let script = run(move || {
        let mut peer = Peer::accept(&listener, false, PACKET_WAIT);
        peer.expect(CONNECT);
        peer.drain_until_closed(Duration::from_secs(4))
    });
    let client = Client::new(options(port, 4)).expect("client");
    let timeout = Duration::from_millis(700);
    let started = Instant::now();
    let silent = client.connect(timeout).map(drop);
    let took = started.elapsed();
    assert!(matches!(silent, Err(Error::Timeout(_))), "{silent:?}");
    assert!(
        took >= Duration::from_millis(600) && took < timeout + Duration::from_millis(600),
        "connect gave up after {took:?} with a {timeout:?} timeout"
    );
    assert!(
        script.finish(SCRIPT_WAIT),
        "the client closed the socket after the timeout"
    );
}

#[test]
fn connection_lost_during_a_disconnect_completes_it_without_reconnecting() {
    let (listener, port) = listen();
    let (published_tx, published) = mpsc::channel::<()>();
    let script = run(move || {
        let mut peer = Peer::accept(&listener, false, PACKET_WAIT);
        peer.handshake(false);
        peer.expect_publish();
        published_tx.send(()).expect("tell the test");
        // Never acknowledged: the disconnect waits for it, then the socket goes away.
        std::thread::sleep(Duration::from_millis(300));
        drop(peer);
        // A client that treated this as an ordinary loss would come back.
        listener
            .set_nonblocking(true)
            .expect("make the listener non-blocking");
        std::thread::sleep(Duration::from_millis(800));
        assert!(
            listener.accept().is_err(),
            "the client reconnected after the user's disconnect"
        );
    });
    let mut opts = options(port, 4);
    opts.set_reconnect(true, 50, 200).expect("reconnect");
    let client = Client::new(opts).expect("client");
    let events = watch_connection(&client);
    connect(&client);
    let token = client
        .publish("bye", b"x", Qos::AtLeastOnce, false)
        .expect("publish");
    published
        .recv_timeout(CLIENT_WAIT)
        .expect("the script saw the PUBLISH");
    assert_eq!(client.disconnect(Duration::from_secs(10)), Ok(()));
    wait_for(&events, ConnectionState::Disconnected, CLIENT_WAIT);
    assert!(!client.is_connected());
    assert!(matches!(
        client.wait(token, CLIENT_WAIT),
        Err(eq1::Error::Disconnected(_))
    ));
    script.finish(SCRIPT_WAIT);
}

#[test]
fn freeing_a_client_drops_the_callbacks_still_queued() {
    let (listener, port) = listen();
    let script = run(move || {
        let mut peer = Peer::accept(&listener, false, PACKET_WAIT);
        peer.handshake(false);
        let subscribe = peer.expect(SUBSCRIBE);
        peer.send(&suback_v4(subscribe.leading_pkid(), 0));
        let mut burst = Vec::new();
        for i in 0..200u32 {
            burst.extend(publish("slow/x", 0, 0, false, None, &i.to_be_bytes()));
        }
        peer.send(&burst);
        // Keep the socket open until the client goes away.
        std::thread::sleep(Duration::from_millis(500));
    });
    let client = Client::new(options(port, 4)).expect("client");
    connect(&client);
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (started_tx, started) = mpsc::channel::<()>();
    let handler: MessageHandler = {
        let calls = calls.clone();
        let started_tx = std::sync::Mutex::new(started_tx);
        Arc::new(move |_| {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = started_tx.lock().map(|tx| tx.send(()));
            std::thread::sleep(Duration::from_millis(20));
        })
    };
    client
        .subscribe("slow/#", Qos::AtMostOnce, handler, CLIENT_WAIT)
        .expect("subscribe");
    started
        .recv_timeout(CLIENT_WAIT)
        .expect("the first callback ran");
    drop(client);
    let after_free = calls.load(std::sync::atomic::Ordering::SeqCst);
    // 200 queued x 20 ms would be 4 s of callbacks; the free skips them.
    assert!(
        after_free < 20,
        "{after_free} callbacks ran before free returned"
    );
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        after_free,
        "no callback after free"
    );
    script.finish(SCRIPT_WAIT);
}

// ---- The session core: bounds and broker limits (issue: nothing unbounded, nothing accepted
// that the broker broke) -----------------------------------------------------------------

#[test]
fn broker_exceeding_the_announced_receive_maximum_gets_disconnect_0x93() {
    let (listener, port) = listen();
    let script = run(move || {
        let mut peer = Peer::accept(&listener, true, PACKET_WAIT);
        peer.handshake(false);
        let subscribe = peer.expect(SUBSCRIBE);
        peer.send(&suback_v5(subscribe.leading_pkid(), 1));
        // The client announced a Receive Maximum of 2; a third unacknowledged QoS 1 message
        // breaks it (the handler below holds the first ones unacknowledged).
        for pkid in 1..=3u16 {
            peer.send(&publish("rm/t", pkid, 1, false, Some(&[]), b"x"));
        }
        loop {
            let frame = peer.read("the client's DISCONNECT");
            if frame.kind() == DISCONNECT {
                return frame.body;
            }
        }
    });
    let mut options = options(port, 5);
    options.set_receive_maximum(2).expect("receive maximum");
    let client = Client::new(options).expect("client");
    connect(&client);
    let (release, held) = mpsc::channel::<()>();
    let held = std::sync::Mutex::new(held);
    let handler: MessageHandler = Arc::new(move |_m: &Message| {
        let _ = held.lock().map(|h| h.recv_timeout(Duration::from_secs(5)));
    });
    client
        .subscribe("rm/#", Qos::AtLeastOnce, handler, CLIENT_WAIT)
        .expect("subscribe");
    let body = script.finish(SCRIPT_WAIT);
    assert_eq!(body.first(), Some(&0x93), "DISCONNECT reason: {body:02x?}");
    drop(release);
}

#[test]
fn broker_that_never_reads_makes_qos0_publishes_fail_with_queue_full_at_the_bound() {
    let (listener, port) = listen();
    let (done, done_gate) = gate();
    let script = run(move || {
        let mut peer = Peer::accept(&listener, false, PACKET_WAIT);
        peer.handshake(false);
        // From here on the script never reads: the socket buffers fill, then the client's.
        done_gate.hold_for(SCRIPT_WAIT);
    });
    let mut options = options(port, 4);
    options
        .set_offline_queue(
            1_000,
            64 * 1024 * 1024,
            eq1::mqtt::QueueFullPolicy::RejectNew,
            false,
        )
        .expect("queue limits");
    let client = Client::new(options).expect("client");
    connect(&client);
    let payload = vec![0u8; 1024];
    let mut accepted = 0u64;
    // Publish until the outbox is full, again and again, until nothing more leaves: then the
    // socket buffers are full too and the client holds exactly its bound.
    let mut written = u64::MAX;
    let outcome = loop {
        let refusal = loop {
            match client.publish("full/t", &payload, Qos::AtMostOnce, false) {
                Ok(_) => accepted += 1,
                Err(e) => break e,
            }
            assert!(accepted < 1_000_000, "a broker that never reads took 1 GB");
        };
        std::thread::sleep(Duration::from_millis(300));
        let now = client.stats().bytes_out;
        if now == written {
            break refusal;
        }
        written = now;
    };
    assert!(matches!(outcome, Error::QueueFull(_)), "{outcome:?}");
    let stats = client.stats();
    assert_eq!(
        stats.queued, 1_000,
        "the outbox holds exactly its bound: {stats:?}"
    );
    // Bounded: what was accepted is the outbox plus what the sockets and the write-ahead hold.
    assert!(accepted < 1_000 + 32_000, "accepted {accepted}");
    // DISCONNECT cannot be written either: disconnect says so instead of OK.
    let disconnected = client.disconnect(Duration::from_millis(100));
    assert!(
        matches!(disconnected, Err(Error::Timeout(_))),
        "{disconnected:?}"
    );
    done.open();
    script.finish(SCRIPT_WAIT);
}

#[test]
fn eight_threads_disconnecting_at_once_all_get_ok() {
    let (listener, port) = listen();
    let script = run(move || {
        let mut peer = Peer::accept(&listener, false, PACKET_WAIT);
        peer.handshake(false);
        peer.expect(DISCONNECT);
    });
    let client = Client::new(options(port, 4)).expect("client");
    connect(&client);
    let outcomes: Vec<Result<(), Error>> = std::thread::scope(|s| {
        let calls: Vec<_> = (0..8)
            .map(|_| s.spawn(|| client.disconnect(Duration::from_secs(2))))
            .collect();
        calls
            .into_iter()
            .map(|c| c.join().expect("thread"))
            .collect()
    });
    script.finish(SCRIPT_WAIT);
    for outcome in outcomes {
        // OK for every call that joined the disconnect; a call that came after it completed
        // is told the client is not connected (documented), never INTERNAL.
        assert!(
            matches!(outcome, Ok(()) | Err(Error::NotConnected(_))),
            "{outcome:?}"
        );
    }
}

#[test]
fn v5_connect_to_a_v311_only_broker_is_unsupported_protocol_version_and_can_fall_back() {
    fn attempt(fall_back: bool) -> (Result<(), Error>, Vec<u8>) {
        let (listener, port) = listen();
        let script = run(move || {
            let mut peer = Peer::accept(&listener, false, PACKET_WAIT);
            let connect = peer.expect(CONNECT);
            // A 3.1.1-only broker: 3.1.1 CONNACK, "unacceptable protocol version".
            peer.send(&connack_v4(false, 1));
            let mut levels = vec![connect.body[6]];
            if fall_back {
                let mut again = Peer::accept(&listener, false, PACKET_WAIT);
                let connect = again.expect(CONNECT);
                levels.push(connect.body[6]);
                again.send(&connack_v4(false, 0));
                again.expect(DISCONNECT);
            }
            levels
        });
        let mut options = options(port, 5);
        options.set_protocol_fallback(fall_back);
        let client = Client::new(options).expect("client");
        let outcome = client.connect(Duration::from_secs(5)).map(drop);
        if outcome.is_ok() {
            client
                .disconnect(Duration::from_secs(2))
                .expect("disconnect");
        }
        (outcome, script.finish(SCRIPT_WAIT))
    }
    let (refused, levels) = attempt(false);
    assert!(
        matches!(refused, Err(Error::UnsupportedProtocolVersion(_))),
        "{refused:?}"
    );
    assert_eq!(levels, vec![5]);
    let (connected, levels) = attempt(true);
    assert_eq!(connected, Ok(()));
    assert_eq!(levels, vec![5, 4], "protocol levels of the two CONNECTs");
}

#[test]
fn unsubscribe_from_another_thread_keeps_its_timeout_while_a_callback_blocks() {
    let (listener, port) = listen();
    let (done, done_gate) = gate();
    let script = run(move || {
        let mut peer = Peer::accept(&listener, false, PACKET_WAIT);
        peer.handshake(false);
        let subscribe = peer.expect(SUBSCRIBE);
        peer.send(&suback_v4(subscribe.leading_pkid(), 0));
        peer.send(&publish("block/t", 0, 0, false, None, b"x"));
        let unsubscribe = peer.expect(UNSUBSCRIBE);
        peer.send(&ack(0xB0, unsubscribe.leading_pkid()));
        done_gate.hold();
    });
    let client = Client::new(options(port, 4)).expect("client");
    connect(&client);
    let (entered_tx, entered) = mpsc::channel::<()>();
    let (release_tx, release) = mpsc::channel::<()>();
    let callback_returned = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let returned = callback_returned.clone();
    let release = std::sync::Mutex::new(release);
    let handler: MessageHandler = Arc::new(move |_m: &Message| {
        let _ = entered_tx.send(());
        let _ = release
            .lock()
            .map(|r| r.recv_timeout(Duration::from_secs(10)));
        returned.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    client
        .subscribe("block/#", Qos::AtMostOnce, handler, CLIENT_WAIT)
        .expect("subscribe");
    entered
        .recv_timeout(CLIENT_WAIT)
        .expect("the callback runs");
    let outcome = client.unsubscribe("block/#", Duration::from_millis(200));
    // It returned while the callback still runs: the timeout was honoured.
    assert!(!callback_returned.load(std::sync::atomic::Ordering::SeqCst));
    assert!(matches!(outcome, Err(Error::Timeout(_))), "{outcome:?}");
    drop(release_tx);
    done.open();
    script.finish(SCRIPT_WAIT);
}

#[test]
fn an_unexpected_packet_before_connack_is_named_by_type_and_size_not_contents() {
    let (listener, port) = listen();
    let script = run(move || {
        let mut peer = Peer::accept(&listener, false, PACKET_WAIT);
        peer.expect(CONNECT);
        // A 1 MiB PUBLISH where CONNACK belongs.
        peer.send(&publish("big/t", 0, 0, false, None, &vec![b'x'; 1 << 20]));
        peer.drain_until_closed(Duration::from_secs(3))
    });
    let client = Client::new(options(port, 4)).expect("client");
    let outcome = client.connect(Duration::from_secs(5));
    let Err(Error::Protocol(detail)) = outcome.map(drop) else {
        panic!("expected a protocol error");
    };
    assert!(detail.contains("PUBLISH"), "{detail}");
    assert!(detail.len() < 300, "{} bytes of detail", detail.len());
    assert!(script.finish(SCRIPT_WAIT), "the client closed the socket");
}

/// The DISCONNECT bytes the user asked for: a scripted socket because the bytes themselves
/// are checked (mosquitto does not show them; the will case is tested against mosquitto).
#[test]
fn v5_user_disconnect_carries_reason_session_expiry_and_user_properties() {
    let (listener, port) = listen();
    let script = run(move || {
        let mut peer = Peer::accept(&listener, true, PACKET_WAIT);
        peer.handshake(false);
        let disconnect = peer.expect(DISCONNECT);
        assert_eq!(disconnect.header, 0xE0);
        disconnect.body
    });
    let mut opts = options(port, 5);
    opts.session_expiry = 60;
    let client = Client::new(opts).expect("client");
    connect(&client);
    client
        .disconnect_with(
            0x04,
            Some(30),
            vec![("why".into(), "test".into())],
            CLIENT_WAIT,
        )
        .expect("disconnect");
    let body = script.finish(SCRIPT_WAIT);
    let mut expected = vec![0x04, 5 + 1 + 2 + 3 + 2 + 4, 0x11, 0, 0, 0, 30, 0x26, 0, 3];
    expected.extend_from_slice(b"why");
    expected.extend_from_slice(&[0, 4]);
    expected.extend_from_slice(b"test");
    assert_eq!(body, expected, "DISCONNECT body");
}

#[test]
fn user_disconnect_options_are_checked_before_anything_is_sent() {
    let (listener, port) = listen();
    let script = run(move || {
        let mut peer = Peer::accept(&listener, true, PACKET_WAIT);
        peer.handshake(false);
        let disconnect = peer.expect(DISCONNECT);
        disconnect.body
    });
    // Session expiry 0 at CONNECT (the default).
    let client = Client::new(options(port, 5)).expect("client");
    connect(&client);
    let raised = client.disconnect_with(0, Some(10), Vec::new(), CLIENT_WAIT);
    assert!(
        matches!(&raised, Err(Error::InvalidArgument(m)) if m.contains("3.14.2.2.2")),
        "{raised:?}"
    );
    for server_only in [0x8B, 0x8E, 0x9C, 0x01] {
        let refused = client.disconnect_with(server_only, None, Vec::new(), CLIENT_WAIT);
        assert!(
            matches!(refused, Err(Error::InvalidArgument(_))),
            "0x{server_only:02X}: {refused:?}"
        );
    }
    assert!(client.is_connected());
    // Session expiry 0 stays allowed; reason 0x80 with no properties is three bytes.
    client
        .disconnect_with(0x80, Some(0), Vec::new(), CLIENT_WAIT)
        .expect("disconnect");
    assert_eq!(script.finish(SCRIPT_WAIT), vec![0x80, 5, 0x11, 0, 0, 0, 0]);
}

#[test]
fn v311_user_disconnect_refuses_v5_options_and_sends_the_bare_packet() {
    let (listener, port) = listen();
    let script = run(move || {
        let mut peer = Peer::accept(&listener, false, PACKET_WAIT);
        peer.handshake(false);
        peer.expect(DISCONNECT).body
    });
    let client = Client::new(options(port, 4)).expect("client");
    connect(&client);
    for (reason, expiry, props) in [
        (0x04, None, Vec::new()),
        (0, Some(0), Vec::new()),
        (0, None, vec![("a".to_string(), "b".to_string())]),
    ] {
        let refused = client.disconnect_with(reason, expiry, props, CLIENT_WAIT);
        assert!(
            matches!(refused, Err(Error::Mqtt5Required(_))),
            "{refused:?}"
        );
    }
    client
        .disconnect_with(0, None, Vec::new(), CLIENT_WAIT)
        .expect("disconnect");
    assert!(script.finish(SCRIPT_WAIT).is_empty());
}

/// A CONNACK refusing with 0x9C and a Server Reference: a scripted socket, because mosquitto
/// never sends the client to another server.
#[test]
fn v5_connack_use_another_server_fails_with_server_moved_naming_the_reference() {
    let (listener, port) = listen();
    let script = run(move || {
        let mut peer = Peer::accept(&listener, true, PACKET_WAIT);
        peer.read("CONNECT");
        let reference = b"127.0.0.1:1999";
        let mut props = vec![0x1C, 0, reference.len() as u8];
        props.extend_from_slice(reference);
        let mut body = vec![0x00, 0x9C];
        encode_varint(props.len(), &mut body);
        body.extend_from_slice(&props);
        peer.send(&packet(0x20, &body));
        peer.drain_until_closed(Duration::from_secs(4))
    });
    let client = Client::new(options(port, 5)).expect("client");
    let outcome = client.connect(Duration::from_secs(5)).map(drop);
    assert!(
        matches!(&outcome, Err(Error::ServerMoved(m)) if m.contains("127.0.0.1:1999") && m.contains("0x9C")),
        "{outcome:?}"
    );
    if let Err(e) = &outcome {
        assert_eq!(eq1::core::status::Status::from(e) as i32, 50);
    }
    script.finish(SCRIPT_WAIT);
}

/// A packet longer than the Maximum Packet Size the client announced: a scripted socket,
/// because mosquitto keeps to what the client announced (MQTT-3.1.2-24) and never sends one.
#[test]
fn a_packet_above_the_announced_maximum_packet_size_is_answered_with_disconnect_0x95() {
    let (listener, port) = listen();
    let script = run(move || {
        let mut peer = Peer::accept(&listener, true, PACKET_WAIT);
        let connect = peer.handshake(false);
        // Maximum Packet Size 256 (property 0x27) in the CONNECT.
        assert!(
            connect.body.windows(5).any(|w| w == [0x27, 0, 0, 1, 0]),
            "CONNECT announces 256: {:02x?}",
            connect.body
        );
        peer.send(&publish("big", 0, 0, false, Some(&[]), &[b'x'; 400]));
        let disconnect = peer.expect(DISCONNECT);
        assert!(peer.drain_until_closed(PACKET_WAIT), "the client closes");
        disconnect.body
    });
    let mut opts = options(port, 5);
    opts.set_max_packet_size(256).expect("max packet size");
    let client = Client::new(opts).expect("client");
    let events = watch_connection(&client);
    connect(&client);
    let (_, lost) = wait_for(&events, ConnectionState::ConnectionLost, CLIENT_WAIT);
    assert!(
        matches!(&lost.reason, Some(Error::Protocol(m)) if m.contains("maximum packet size is 256")),
        "{:?}",
        lost.reason
    );
    assert_eq!(
        script.finish(SCRIPT_WAIT)[0],
        0x95,
        "DISCONNECT reason 0x95"
    );
}
