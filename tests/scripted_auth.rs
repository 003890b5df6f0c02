//! MQTT 5.0 enhanced authentication against a SCRIPTED SOCKET standing in for a broker:
//! mosquitto 2.0.11 as installed here has no enhanced-authentication plugin (it answers an
//! authentication method with CONNACK 0x8C), so by the project's rule the broker's side of the
//! AUTH exchange is scripted: a `TcpListener` on 127.0.0.1 reads the client's packets and
//! plays a toy SCRAM server.
//!
//! The toy SCRAM follows RFC 5802's message flow (client-first, server-first with nonce and
//! salt, client-final with a proof, server-final with the server's signature) with HMAC-SHA-256
//! from `ring`, but derives the salted password with one HMAC instead of PBKDF2: the point is
//! the multi-step exchange through the authentication callback, not the key stretching.

mod scripted;

use bytes::Bytes;
use eq1::mqtt::{AuthAnswer, AuthChallenge};
use eq1::mqtt::{Client, ConnectionState, Options, Qos};
use eq1::Error;
use ring::{digest, hmac};
use scripted::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SCRIPT_WAIT: Duration = Duration::from_secs(30);
const METHOD: &str = "SCRAM-TOY-SHA-256";
const USER: &str = "alice";
const PASSWORD: &[u8] = b"correct horse";
const AUTH: u8 = 15;

// ---- the toy SCRAM ----------------------------------------------------------------------

fn mac(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
        .as_ref()
        .to_vec()
}

fn sha256(data: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA256, data).as_ref().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

/// `key=value` from a comma-separated SCRAM message.
fn field(message: &str, key: &str) -> String {
    message
        .split(',')
        .find_map(|part| part.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in '{message}'"))
        .to_string()
}

struct Keys {
    client_key: Vec<u8>,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
}

fn keys(password: &[u8], salt: &[u8]) -> Keys {
    let salted = mac(password, salt);
    let client_key = mac(&salted, b"Client Key");
    Keys {
        stored_key: sha256(&client_key),
        client_key,
        server_key: mac(&salted, b"Server Key"),
    }
}

/// The client side, as the authentication callback runs it: one exchange at a time.
struct ScramClient {
    password: Vec<u8>,
    /// client-first-bare of the exchange under way.
    first_bare: String,
    /// The server signature the server-final must carry.
    expected_server_signature: Option<Vec<u8>>,
    /// What the callback was asked, for the test to look at.
    seen: Vec<(u8, bool)>,
}

impl ScramClient {
    fn new(password: &[u8]) -> Arc<Mutex<ScramClient>> {
        Arc::new(Mutex::new(ScramClient {
            password: password.to_vec(),
            first_bare: String::new(),
            expected_server_signature: None,
            seen: Vec::new(),
        }))
    }

    /// Starts an exchange: the client-first message (CONNECT's or AUTH 0x19's data).
    fn client_first(&mut self, nonce: &str) -> Vec<u8> {
        self.first_bare = format!("n={USER},r={nonce}");
        self.expected_server_signature = None;
        format!("n,,{}", self.first_bare).into_bytes()
    }

    fn answer(&mut self, challenge: &AuthChallenge) -> AuthAnswer {
        assert_eq!(challenge.method, METHOD);
        self.seen
            .push((challenge.reason, challenge.reauthenticating));
        let text = String::from_utf8(challenge.data.to_vec()).expect("UTF-8 SCRAM message");
        match challenge.reason {
            0x18 => {
                let server_first = text;
                let salt = unhex(&field(&server_first, "s"));
                let nonce = field(&server_first, "r");
                let without_proof = format!("c=biws,r={nonce}");
                let auth_message = format!("{},{server_first},{without_proof}", self.first_bare);
                let k = keys(&self.password, &salt);
                let signature = mac(&k.stored_key, auth_message.as_bytes());
                self.expected_server_signature = Some(mac(&k.server_key, auth_message.as_bytes()));
                let proof = xor(&k.client_key, &signature);
                AuthAnswer::Continue(Bytes::from(format!("{without_proof},p={}", hex(&proof))))
            }
            _ => {
                let verifier = unhex(&field(&text, "v"));
                if Some(verifier) == self.expected_server_signature {
                    AuthAnswer::Success
                } else {
                    AuthAnswer::Failure("the server's signature does not verify".into())
                }
            }
        }
    }
}

/// The scripted broker's side of one exchange.
struct ScramServer {
    password: Vec<u8>,
    salt: Vec<u8>,
    first_bare: String,
    server_first: String,
}

impl ScramServer {
    fn new(password: &[u8]) -> ScramServer {
        ScramServer {
            password: password.to_vec(),
            salt: b"NaCl-toy".to_vec(),
            first_bare: String::new(),
            server_first: String::new(),
        }
    }

    fn server_first(&mut self, client_first: &[u8]) -> Vec<u8> {
        let text = String::from_utf8(client_first.to_vec()).expect("UTF-8 client-first");
        let bare = text.strip_prefix("n,,").expect("gs2 header").to_string();
        assert_eq!(field(&bare, "n"), USER);
        let nonce = format!("{}srv", field(&bare, "r"));
        self.first_bare = bare;
        self.server_first = format!("r={nonce},s={},i=1", hex(&self.salt));
        self.server_first.clone().into_bytes()
    }

    /// Checks the client's proof; the server-final when it verifies.
    fn server_final(&self, client_final: &[u8]) -> Option<Vec<u8>> {
        let text = String::from_utf8(client_final.to_vec()).expect("UTF-8 client-final");
        let proof = unhex(&field(&text, "p"));
        let without_proof = text.rsplit_once(",p=").expect("proof").0;
        let auth_message = format!("{},{},{without_proof}", self.first_bare, self.server_first);
        let k = keys(&self.password, &self.salt);
        let signature = mac(&k.stored_key, auth_message.as_bytes());
        if sha256(&xor(&proof, &signature)) != k.stored_key {
            return None;
        }
        Some(format!("v={}", hex(&mac(&k.server_key, auth_message.as_bytes()))).into_bytes())
    }
}

// ---- AUTH and properties on the wire ------------------------------------------------------

/// Authentication method and data among v5 properties (other properties are read past).
fn auth_properties(properties: &[u8]) -> (Option<String>, Option<Vec<u8>>) {
    let (mut method, mut data) = (None, None);
    let mut at = 0;
    let prefixed = |at: usize| -> (Vec<u8>, usize) {
        let n = u16::from_be_bytes([properties[at], properties[at + 1]]) as usize;
        (properties[at + 2..at + 2 + n].to_vec(), 2 + n)
    };
    while at < properties.len() {
        let id = properties[at];
        at += 1;
        at += match id {
            0x15 => {
                let (value, used) = prefixed(at);
                method = Some(String::from_utf8(value).expect("UTF-8 method"));
                used
            }
            0x16 => {
                let (value, used) = prefixed(at);
                data = Some(value);
                used
            }
            0x11 | 0x27 => 4,
            0x21 | 0x22 => 2,
            0x17 | 0x19 => 1,
            0x26 => {
                let key = prefixed(at).1;
                key + prefixed(at + key).1
            }
            other => panic!("unexpected CONNECT/AUTH property {other:#04x}"),
        };
    }
    (method, data)
}

/// A v5 CONNECT's authentication method and data.
fn connect_auth(connect: &Frame) -> (Option<String>, Option<Vec<u8>>) {
    let body = &connect.body;
    assert_eq!(&body[..7], b"\x00\x04MQTT\x05", "a v5 CONNECT");
    let (len, used) = varint(&body[10..]).expect("property length");
    auth_properties(&body[10 + used..10 + used + len])
}

/// An AUTH from the client: (reason, method, data).
fn read_auth(frame: &Frame) -> (u8, Option<String>, Option<Vec<u8>>) {
    assert_eq!(frame.kind(), AUTH, "expected AUTH, got {frame:02x?}");
    assert_eq!(frame.header, 0xF0, "AUTH flags must be 0");
    let reason = frame.body[0];
    let (len, used) = varint(&frame.body[1..]).expect("AUTH property length");
    let (method, data) = auth_properties(&frame.body[1 + used..1 + used + len]);
    (reason, method, data)
}

fn method_and_data(data: &[u8]) -> Vec<u8> {
    let mut p = vec![0x15];
    p.extend_from_slice(&(METHOD.len() as u16).to_be_bytes());
    p.extend_from_slice(METHOD.as_bytes());
    p.push(0x16);
    p.extend_from_slice(&(data.len() as u16).to_be_bytes());
    p.extend_from_slice(data);
    p
}

fn auth(reason: u8, data: &[u8]) -> Vec<u8> {
    let properties = method_and_data(data);
    let mut body = vec![reason];
    encode_varint(properties.len(), &mut body);
    body.extend_from_slice(&properties);
    packet(0xF0, &body)
}

fn connack_with_auth(code: u8, data: Option<&[u8]>) -> Vec<u8> {
    let properties = data.map(method_and_data).unwrap_or_default();
    let mut body = vec![0x00, code];
    encode_varint(properties.len(), &mut body);
    body.extend_from_slice(&properties);
    packet(0x20, &body)
}

/// Plays the broker's side of the CONNECT exchange: server-first, then checks the proof.
/// Returns whether the proof verified (CONNACK 0x00 with server-final, else 0x87).
fn scram_handshake(peer: &mut Peer, server: &mut ScramServer, server_final_ok: bool) -> bool {
    let connect = peer.expect(CONNECT);
    let (method, client_first) = connect_auth(&connect);
    assert_eq!(method.as_deref(), Some(METHOD));
    let first = server.server_first(&client_first.expect("client-first in CONNECT"));
    peer.send(&auth(0x18, &first));
    let (reason, method, client_final) = read_auth(&peer.read("the client-final AUTH"));
    assert_eq!((reason, method.as_deref()), (0x18, Some(METHOD)));
    match server.server_final(&client_final.expect("client-final data")) {
        Some(final_message) => {
            let final_message = if server_final_ok {
                final_message
            } else {
                b"v=00112233".to_vec()
            };
            peer.send(&connack_with_auth(0x00, Some(&final_message)));
            true
        }
        None => {
            peer.send(&connack_with_auth(0x87, None));
            false
        }
    }
}

fn scram_options(port: u16, client_first: &[u8]) -> Options {
    let mut options = options(port, 5);
    options
        .set_auth_method(Some((METHOD, Some(client_first))))
        .expect("authentication method");
    options
}

fn scram_client(port: u16, password: &[u8]) -> (Client, Arc<Mutex<ScramClient>>) {
    let scram = ScramClient::new(password);
    let first = scram.lock().unwrap().client_first("c1");
    let client = Client::new(scram_options(port, &first)).expect("client");
    let callback = scram.clone();
    client.set_auth_handler(Some(Arc::new(move |challenge: &AuthChallenge| {
        callback.lock().unwrap().answer(challenge)
    })));
    (client, scram)
}

// ---- the tests ------------------------------------------------------------------------------

#[test]
fn scram_two_step_exchange_connects_and_verifies_the_server() {
    let (listener, port) = listen();
    let (done, done_gate) = gate();
    let script = run(move || {
        let mut peer = Peer::accept(&listener, true, PACKET_WAIT);
        let mut server = ScramServer::new(PASSWORD);
        assert!(
            scram_handshake(&mut peer, &mut server, true),
            "the proof verifies"
        );
        let publish = peer.expect_publish();
        peer.send(&[0x40, 0x02, 0x00, publish.pkid as u8]);
        done_gate.hold();
    });
    let (client, scram) = scram_client(port, PASSWORD);
    let events = watch_connection(&client);
    client
        .connect(Duration::from_secs(5))
        .expect("authenticated connect");
    wait_for(&events, ConnectionState::Connected, CLIENT_WAIT);
    assert_eq!(
        scram.lock().unwrap().seen,
        [(0x18, false), (0x00, false)],
        "the callback answered the challenge, then verified the server-final"
    );
    let token = client
        .publish("after/auth", b"x", Qos::AtLeastOnce, false)
        .expect("publish");
    assert_eq!(client.wait(token, CLIENT_WAIT), Ok(()));
    done.open();
    script.finish(SCRIPT_WAIT);
}

#[test]
fn a_wrong_password_fails_the_connect_with_auth_failed() {
    let (listener, port) = listen();
    let script = run(move || {
        let mut peer = Peer::accept(&listener, true, PACKET_WAIT);
        let mut server = ScramServer::new(PASSWORD);
        assert!(
            !scram_handshake(&mut peer, &mut server, true),
            "the proof must not verify"
        );
    });
    let (client, _) = scram_client(port, b"wrong password");
    let result = client.connect(Duration::from_secs(5));
    assert!(
        matches!(&result, Err(Error::AuthFailed(m)) if m.contains(METHOD)),
        "{:?}",
        result.err()
    );
    assert_eq!(
        eq1::core::status::Status::from(&result.err().unwrap()),
        eq1::core::status::Status::AuthFailed
    );
    script.finish(SCRIPT_WAIT);
}

#[test]
fn a_server_final_that_does_not_verify_fails_the_connect_and_the_client_disconnects() {
    let (listener, port) = listen();
    let script = run(move || {
        let mut peer = Peer::accept(&listener, true, PACKET_WAIT);
        // An impostor: it cannot know the server key, so its signature is wrong.
        let mut server = ScramServer::new(PASSWORD);
        assert!(scram_handshake(&mut peer, &mut server, false));
        let disconnect = peer.expect(DISCONNECT);
        assert_eq!(disconnect.body, [0x80], "DISCONNECT with unspecified error");
        assert!(peer.drain_until_closed(PACKET_WAIT), "the client closes");
    });
    let (client, _) = scram_client(port, PASSWORD);
    let result = client.connect(Duration::from_secs(5));
    assert!(
        matches!(&result, Err(Error::AuthFailed(m)) if m.contains("does not verify")),
        "{result:?}",
        result = result.as_ref().err()
    );
    assert!(!client.is_connected());
    script.finish(SCRIPT_WAIT);
}

#[test]
fn reauthentication_while_publishing_a_qos1_stream_loses_nothing() {
    const MESSAGES: usize = 300;
    const BEFORE: usize = 50;
    let (listener, port) = listen();
    let (start_reauth, reauth_gate) = gate();
    let (reauth_first_tx, reauth_first_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    // The peer keeps the connection open until the test has checked it is still up.
    let (checked_tx, checked_rx) = std::sync::mpsc::channel::<()>();
    let script = run(move || {
        let mut peer = Peer::accept(&listener, true, PACKET_WAIT);
        let mut server = ScramServer::new(PASSWORD);
        assert!(scram_handshake(&mut peer, &mut server, true));
        let mut payloads = Vec::new();
        let ack = |peer: &mut Peer, pkid: u16| {
            let id = pkid.to_be_bytes();
            peer.send(&[0x40, 0x02, id[0], id[1]]);
        };
        // Part of the stream, then acknowledgements stop until the client re-authenticates:
        // the rest of the stream has to flow during the exchange.
        let mut unacked = Vec::new();
        while payloads.len() < BEFORE {
            let publish = peer.expect_publish();
            payloads.push(publish.payload);
            ack(&mut peer, publish.pkid);
        }
        start_reauth.open();
        let mut during = 0;
        let mut reauth_started = false;
        let mut client_final = None;
        let mut finished = false;
        while payloads.len() < MESSAGES || !finished {
            let frame = peer.read("the stream or the re-authentication");
            match frame.kind() {
                PUBLISH => {
                    let publish = frame.publish(true);
                    payloads.push(publish.payload);
                    if !reauth_started {
                        unacked.push(publish.pkid);
                    } else {
                        ack(&mut peer, publish.pkid);
                        if !finished {
                            during += 1;
                        }
                    }
                }
                AUTH => match read_auth(&frame) {
                    (0x19, Some(method), Some(first)) => {
                        assert_eq!(method, METHOD, "the method must not change");
                        reauth_started = true;
                        reauth_first_tx.send(first.clone()).unwrap();
                        peer.send(&auth(0x18, &server.server_first(&first)));
                        for pkid in unacked.drain(..) {
                            ack(&mut peer, pkid);
                        }
                    }
                    (0x18, Some(_), Some(last)) => client_final = Some(last),
                    other => panic!("unexpected AUTH {other:?}"),
                },
                other => panic!("unexpected {}", type_name(other)),
            }
            // The exchange ends once a good part of the stream went through it.
            if let Some(last) = client_final.as_ref().filter(|_| !finished) {
                if during >= 40 || payloads.len() == MESSAGES {
                    let final_message = server.server_final(last).expect("the proof verifies");
                    peer.send(&auth(0x00, &final_message));
                    finished = true;
                }
            }
        }
        peer.expect_silence(Duration::from_millis(200), "after the stream");
        let _ = checked_rx.recv_timeout(SCRIPT_WAIT);
        (payloads, during)
    });
    let (client, scram) = scram_client(port, PASSWORD);
    client
        .connect(Duration::from_secs(5))
        .expect("authenticated connect");
    let tokens: Vec<_> = (0..MESSAGES)
        .map(|i| {
            client
                .publish("stream", format!("{i}").as_bytes(), Qos::AtLeastOnce, false)
                .expect("publish")
        })
        .collect();
    reauth_gate.wait("part of the stream went through");
    let first = scram.lock().unwrap().client_first("c2");
    client
        .reauthenticate(Some(&first), Duration::from_secs(10))
        .expect("re-authentication succeeds");
    assert_eq!(reauth_first_rx.recv().unwrap(), first);
    for token in tokens {
        assert_eq!(client.wait(token, CLIENT_WAIT), Ok(()));
    }
    assert!(
        client.is_connected(),
        "the connection outlives the re-authentication"
    );
    let _ = checked_tx.send(());
    let (payloads, during) = script.finish(SCRIPT_WAIT);
    let expected: Vec<Vec<u8>> = (0..MESSAGES).map(|i| format!("{i}").into_bytes()).collect();
    assert_eq!(payloads, expected, "every message, once, in order");
    assert!(
        during >= 40,
        "only {during} messages flowed during re-authentication"
    );
    assert_eq!(
        scram.lock().unwrap().seen,
        [(0x18, false), (0x00, false), (0x18, true), (0x00, true)]
    );
    let stats = client.stats();
    assert_eq!((stats.delivered, stats.failed), (MESSAGES as u64, 0));
}

#[test]
fn reauthentication_needs_a_configured_method() {
    let client = Client::new(options(1, 5)).expect("client");
    assert!(matches!(
        client.reauthenticate(None, Duration::from_secs(1)),
        Err(Error::AuthNotConfigured(_))
    ));
    let (client, _) = scram_client(1, PASSWORD);
    assert!(matches!(
        client.reauthenticate(None, Duration::from_secs(1)),
        Err(Error::NotConnected(_))
    ));
}

#[test]
fn a_blocked_reauthentication_callback_does_not_stall_keep_alive() {
    // The callback answering the re-authentication challenge blocks until the broker has
    // seen three PINGREQs (three keep-alive intervals of 1 s): keep-alive and the socket run
    // on the driver, not on the dispatcher thread that runs the callback. If they stalled,
    // no PINGREQ would come and the script (then the callback's wait) would fail.
    const PINGS: usize = 3;
    let (listener, port) = listen();
    let (pinged_tx, pinged_rx) = std::sync::mpsc::channel::<()>();
    let (checked_tx, checked_rx) = std::sync::mpsc::channel::<()>();
    let script = run(move || {
        let mut peer = Peer::accept(&listener, true, PACKET_WAIT);
        let mut server = ScramServer::new(PASSWORD);
        assert!(scram_handshake(&mut peer, &mut server, true));
        // Keep-alive is 1 s: answer PINGREQs wherever they fall.
        let next_but_pings = |peer: &mut Peer, what: &str| loop {
            let frame = peer.read(what);
            if frame.kind() != PINGREQ {
                break frame;
            }
            peer.send(&[0xD0, 0x00]);
        };
        let start = next_but_pings(&mut peer, "the re-authentication's AUTH 0x19");
        assert_eq!(start.kind(), AUTH, "{}", start.name());
        let (reason, _, first) = read_auth(&start);
        assert_eq!(reason, 0x19, "the client starts re-authentication");
        peer.send(&auth(
            0x18,
            &server.server_first(&first.expect("client-first")),
        ));
        let mut pings = 0;
        let client_final = loop {
            let frame = peer.read("PINGREQs while the callback blocks, then the client-final");
            match frame.kind() {
                PINGREQ => {
                    pings += 1;
                    peer.send(&[0xD0, 0x00]);
                    if pings == PINGS {
                        let _ = pinged_tx.send(());
                    }
                }
                AUTH => {
                    let (reason, _, data) = read_auth(&frame);
                    assert_eq!(reason, 0x18, "the client-final");
                    break data.expect("client-final data");
                }
                other => panic!("unexpected {}", type_name(other)),
            }
        };
        assert!(
            pings >= PINGS,
            "{pings} PINGREQs before the callback answered"
        );
        let final_message = server
            .server_final(&client_final)
            .expect("the proof verifies");
        peer.send(&auth(0x00, &final_message));
        let publish = next_but_pings(&mut peer, "the publish after re-authentication");
        assert_eq!(publish.kind(), PUBLISH, "{}", publish.name());
        peer.send(&puback(publish.publish(true).pkid));
        let _ = checked_rx.recv_timeout(SCRIPT_WAIT);
        pings
    });
    let scram = ScramClient::new(PASSWORD);
    let first = scram.lock().unwrap().client_first("c1");
    let mut options = scram_options(port, &first);
    options.set_keep_alive(1).expect("keep-alive 1 s");
    let client = Client::new(options).expect("client");
    let callback = scram.clone();
    let pinged = Mutex::new(pinged_rx);
    client.set_auth_handler(Some(Arc::new(move |challenge: &AuthChallenge| {
        if challenge.reauthenticating
            && challenge.reason == 0x18
            && pinged.lock().unwrap().recv_timeout(SCRIPT_WAIT).is_err()
        {
            panic!("the broker saw no {PINGS} PINGREQs while the callback blocked");
        }
        callback.lock().unwrap().answer(challenge)
    })));
    client
        .connect(Duration::from_secs(5))
        .expect("authenticated connect");
    let second = scram.lock().unwrap().client_first("c2");
    client
        .reauthenticate(Some(&second), SCRIPT_WAIT)
        .expect("re-authentication succeeds after the blocked callback");
    let token = client
        .publish("after/reauth", b"x", Qos::AtLeastOnce, false)
        .expect("publish");
    assert_eq!(client.wait(token, CLIENT_WAIT), Ok(()));
    assert!(client.is_connected(), "the connection survived");
    let _ = checked_tx.send(());
    let pings = script.finish(SCRIPT_WAIT);
    assert!(pings >= PINGS);
    assert_eq!(
        scram.lock().unwrap().seen,
        [(0x18, false), (0x00, false), (0x18, true), (0x00, true)]
    );
}
