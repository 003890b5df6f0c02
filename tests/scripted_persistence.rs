//! Store and forward against a scripted socket, through the real store on disk: a client
//! that stops with QoS 2 flows half done (one past PUBREC, one awaiting PUBREC) and a QoS 1
//! unacknowledged is replaced by a new client on the same directory, which resumes each flow
//! where it stood when the broker kept the session.
//!
//! A scripted socket stands in for mosquitto here because the test must hold a QoS 2 flow
//! between PUBREL and PUBCOMP, and a QoS 2 PUBLISH before PUBREC, at a moment it chooses;
//! mosquitto answers at once. The crash tests with mosquitto and SIGKILL are in
//! tests/test_persistence.py.

mod scripted;

use eq1::mqtt::options::PersistenceMode;
use eq1::mqtt::{Client, Qos};
use scripted::*;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

fn store_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!("eq1-{name}-{}-{nanos}", std::process::id()))
}

fn persistent_options(port: u16, dir: &std::path::Path) -> eq1::mqtt::Options {
    let mut options = options(port, 4);
    options
        .set_client_id("eq1-scripted-store")
        .expect("client id");
    options.clean_session = false;
    options
        .set_persistence(
            dir.to_str().expect("UTF-8 temp dir"),
            Some(PersistenceMode::Batched),
        )
        .expect("persistence");
    options
}

#[test]
fn a_new_client_on_the_store_resumes_qos2_flows_where_they_stood() {
    let dir = store_dir("resume");
    let (listener, port) = listen();
    let (ready_tx, ready) = mpsc::channel::<(u16, u16)>();
    let script = run(move || {
        // First run: A (QoS 2) gets PUBREC, so the client sends PUBREL; B (QoS 2) and C
        // (QoS 1) get nothing.
        let mut first = Peer::accept(&listener, false, CLIENT_WAIT);
        first.handshake(false);
        let a = first.expect_publish();
        let b = first.expect_publish();
        let c = first.expect_publish();
        assert_eq!((a.topic.as_str(), a.qos), ("store/a", 2));
        assert_eq!((b.topic.as_str(), b.qos), ("store/b", 2));
        assert_eq!((c.topic.as_str(), c.qos), ("store/c", 1));
        first.send(&pubrec(a.pkid));
        assert_eq!(first.expect(PUBREL).leading_pkid(), a.pkid);
        ready_tx.send((a.pkid, b.pkid)).expect("tell the test");
        assert!(
            first.drain_until_closed(Duration::from_secs(10)),
            "the first client went away"
        );
        // Second run, the broker kept the session: PUBREL for A, B again with DUP under its
        // id, then C as a new publish.
        let mut second = Peer::accept(&listener, false, Duration::from_secs(10));
        second.handshake(true);
        assert_eq!(
            second.expect(PUBREL).leading_pkid(),
            a.pkid,
            "A resumes at PUBREL"
        );
        let b_again = second.expect_publish();
        assert_eq!(
            (b_again.topic.as_str(), b_again.pkid, b_again.dup),
            ("store/b", b.pkid, true),
            "B is resent with DUP under its stored packet id"
        );
        let c_again = second.expect_publish();
        assert_eq!((c_again.topic.as_str(), c_again.qos), ("store/c", 1));
        second.send(&pubcomp(a.pkid));
        second.send(&pubrec(b.pkid));
        assert_eq!(second.expect(PUBREL).leading_pkid(), b.pkid);
        second.send(&pubcomp(b.pkid));
        second.send(&puback(c_again.pkid));
        second.drain_until_closed(Duration::from_secs(10));
    });

    let first = Client::new(persistent_options(port, &dir)).expect("first client");
    assert!(first.restored().is_empty(), "a fresh store holds nothing");
    first.connect(CLIENT_WAIT).expect("first connect");
    let tokens = [
        first
            .publish("store/a", b"a", Qos::ExactlyOnce, false)
            .expect("A"),
        first
            .publish("store/b", b"b", Qos::ExactlyOnce, false)
            .expect("B"),
        first
            .publish("store/c", b"c", Qos::AtLeastOnce, false)
            .expect("C"),
    ];
    ready
        .recv_timeout(CLIENT_WAIT)
        .expect("the script saw PUBREL for A");
    // The process "dies": the client goes with its memory, the store stays.
    drop(first);

    let second = Client::new(persistent_options(port, &dir)).expect("second client");
    let restored: Vec<(u64, String, u8)> = second
        .restored()
        .iter()
        .map(|r| (r.token, r.topic.clone(), r.qos))
        .collect();
    assert_eq!(
        restored,
        vec![
            (tokens[0], "store/a".to_string(), 2),
            (tokens[1], "store/b".to_string(), 2),
            (tokens[2], "store/c".to_string(), 1),
        ],
        "each restored message keeps its token, in acceptance order"
    );
    second.connect(CLIENT_WAIT).expect("second connect");
    for token in tokens {
        second
            .wait(token, CLIENT_WAIT)
            .unwrap_or_else(|e| panic!("restored token {token}: {e}"));
    }
    let fresh = second
        .publish("store/d", b"d", Qos::AtMostOnce, false)
        .expect("D");
    assert!(
        fresh > tokens[2],
        "new tokens are issued above the restored ones"
    );
    drop(second);
    script.finish(Duration::from_secs(20));

    let third = Client::new(persistent_options(port, &dir)).expect("third client");
    assert!(
        third.restored().is_empty(),
        "completed flows left the store: {:?}",
        third.restored()
    );
    drop(third);
    let _ = std::fs::remove_dir_all(&dir);
}
