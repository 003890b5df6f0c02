//! One Modbus TCP connection with requests pipelined by transaction id: each request is written
//! whole (MBAP header + PDU) under the writer's lock with a transaction id of its own, and one
//! reader task reads response frames strictly (`mbap`) and completes the waiter with that id.
//!
//! A request whose caller gave up (timeout) keeps its transaction id as "abandoned": its late
//! response is recognized and discarded (`late_responses` in the stats). A response with a
//! transaction id no request has, a bad header, or a function / unit id that does not answer
//! its request is a protocol violation: the connection closes with the reason logged, and every
//! waiter fails with it. End of stream or an I/O error fails every waiter with
//! `ConnectionLost`. A closed connection stays closed; the client opens a new one.

use crate::core::connection_events::EventSender;
use crate::core::error::{Error, Result};
use crate::core::log::{log, Level};
use crate::core::transport::Stream;
use crate::modbus::client::{bump, Counters};
use crate::modbus::mbap::{self, Answer, Refused, HEADER_LEN};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, ReadHalf, WriteHalf};
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Abandoned transaction ids kept for recognizing late responses; a server that leaves this
/// many requests unanswered is treated as broken (the connection is closed).
const MAX_ABANDONED: usize = 1024;
/// Timeouts in a row with nothing at all received meanwhile: the peer is gone without a word
/// (cable pulled, half-open connection); close so that the next call connects again.
const SILENT_TIMEOUTS_BEFORE_CLOSING: u32 = 2;

type Reply = oneshot::Sender<Result<Answer>>;

enum Slot {
    Waiting {
        unit: u8,
        function: u8,
        reply: Reply,
    },
    /// The caller timed out; a response with this id is late and discarded.
    Abandoned,
}

#[derive(Default)]
struct Table {
    next_transaction_id: u16,
    slots: HashMap<u16, Slot>,
    abandoned: usize,
    /// Response frames read so far (to tell a silent peer from a slow answer).
    frames: u64,
    silent_timeouts: u32,
    /// Why the connection closed, once it has.
    closed: Option<Error>,
}

pub struct Connection {
    name: String,
    counters: Arc<Counters>,
    writer: tokio::sync::Mutex<WriteHalf<Stream>>,
    table: Mutex<Table>,
    reader: Mutex<Option<tokio::task::AbortHandle>>,
    /// Hears the close that the caller did not ask for (`close`, not `retire`).
    events: EventSender,
}

/// A request registered in the table, not yet answered.
struct Sent {
    transaction_id: u16,
    frames_before: u64,
    answer: oneshot::Receiver<Result<Answer>>,
}

impl Connection {
    /// Starts the reader task on the current runtime.
    pub fn start(
        stream: Stream,
        name: String,
        counters: Arc<Counters>,
        events: EventSender,
    ) -> Arc<Connection> {
        let (read, write) = tokio::io::split(stream);
        let connection = Arc::new(Connection {
            name,
            counters,
            writer: tokio::sync::Mutex::new(write),
            table: Mutex::new(Table::default()),
            reader: Mutex::new(None),
            events,
        });
        let task = tokio::spawn(read_responses(Arc::clone(&connection), read));
        *lock(&connection.reader) = Some(task.abort_handle());
        connection
    }

    pub fn is_open(&self) -> bool {
        self.table().closed.is_none()
    }

    /// Sends one request PDU to `unit` and waits until `deadline` for its answer.
    pub async fn request(&self, unit: u8, pdu: &[u8], deadline: Instant) -> Result<Answer> {
        let function = pdu.first().copied().unwrap_or_default();
        let mut sent = self.register(unit, function)?;
        let frame = mbap::frame(sent.transaction_id, unit, pdu);
        let Ok(mut writer) = tokio::time::timeout_at(deadline, self.writer.lock()).await else {
            self.forget(sent.transaction_id);
            return Err(Error::Timeout(
                "no turn to write the request before the deadline".into(),
            ));
        };
        match tokio::time::timeout_at(deadline, write_frame(&mut writer, &frame)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let error = Error::ConnectionLost(format!("writing the request failed: {e}"));
                self.close(error.clone());
                return Err(error);
            }
            Err(_) => {
                // Part of a frame may be on the wire: nothing after it would be understood.
                self.close(Error::ConnectionLost(
                    "a request could not be written before its deadline (the server reads \
                     nothing); the connection is closed"
                        .into(),
                ));
                return Err(Error::Timeout(
                    "the request could not be written before the deadline".into(),
                ));
            }
        }
        drop(writer);
        match tokio::time::timeout_at(deadline, &mut sent.answer).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(self.closed_reason()),
            Err(_) => self.abandon(sent),
        }
    }

    /// Closes the connection for `reason`, which every waiter receives and the connection
    /// callback hears as lost. Idempotent.
    pub fn close(&self, reason: Error) {
        if self.finish(&reason) {
            self.events.lost(&reason);
        }
    }

    /// Closes the connection because the caller asked (disconnect, free): no event.
    pub fn retire(&self, reason: Error) {
        self.finish(&reason);
    }

    /// True when this call closed it.
    fn finish(&self, reason: &Error) -> bool {
        let slots = {
            let mut table = self.table();
            if table.closed.is_some() {
                return false;
            }
            table.closed = Some(reason.clone());
            table.abandoned = 0;
            std::mem::take(&mut table.slots)
        };
        for slot in slots.into_values() {
            if let Slot::Waiting { reply, .. } = slot {
                // The waiter may have given up meanwhile: nobody to tell.
                let _ = reply.send(Err(reason.clone()));
            }
        }
        if let Some(reader) = lock(&self.reader).take() {
            reader.abort();
        }
        true
    }

    /// Sends a FIN after the last frame (best effort: the peer may be gone).
    pub async fn shutdown(&self, deadline: Instant) {
        if let Ok(mut writer) = tokio::time::timeout_at(deadline, self.writer.lock()).await {
            let _ = tokio::time::timeout_at(deadline, writer.shutdown()).await;
        }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        lock(&self.table)
    }

    fn closed_reason(&self) -> Error {
        self.table().closed.clone().unwrap_or_else(|| {
            Error::ConnectionLost("the connection closed without a reason".into())
        })
    }

    fn register(&self, unit: u8, function: u8) -> Result<Sent> {
        let mut table = self.table();
        if let Some(reason) = &table.closed {
            return Err(reason.clone());
        }
        // At most max_in_flight + MAX_ABANDONED ids are taken, far fewer than 65536.
        let mut transaction_id = table.next_transaction_id;
        while table.slots.contains_key(&transaction_id) {
            transaction_id = transaction_id.wrapping_add(1);
        }
        table.next_transaction_id = transaction_id.wrapping_add(1);
        let (reply, answer) = oneshot::channel();
        table.slots.insert(
            transaction_id,
            Slot::Waiting {
                unit,
                function,
                reply,
            },
        );
        Ok(Sent {
            transaction_id,
            frames_before: table.frames,
            answer,
        })
    }

    /// The request never went out: its id is free again.
    fn forget(&self, transaction_id: u16) {
        self.table().slots.remove(&transaction_id);
    }

    /// The caller's deadline passed: keep the id so that the late response is recognized.
    fn abandon(&self, mut sent: Sent) -> Result<Answer> {
        let mut table = self.table();
        if let Ok(answer) = sent.answer.try_recv() {
            // Answered between the deadline and taking the lock.
            return answer;
        }
        if let Some(reason) = &table.closed {
            return Err(reason.clone());
        }
        let silent = table.frames == sent.frames_before;
        if let Some(slot) = table.slots.get_mut(&sent.transaction_id) {
            *slot = Slot::Abandoned;
            table.abandoned += 1;
        }
        table.silent_timeouts = if silent { table.silent_timeouts + 1 } else { 0 };
        let reason = if table.silent_timeouts >= SILENT_TIMEOUTS_BEFORE_CLOSING {
            Some(format!(
                "{} requests in a row timed out with nothing received: the connection looks \
                 dead and is closed",
                table.silent_timeouts
            ))
        } else if table.abandoned >= MAX_ABANDONED {
            Some(format!(
                "{MAX_ABANDONED} requests were left unanswered: the connection is closed"
            ))
        } else {
            None
        };
        drop(table);
        if let Some(reason) = reason {
            log!(Level::Warn, "modbus: {}: {reason}", self.name);
            self.close(Error::ConnectionLost(reason));
        }
        Err(Error::Timeout("no response".into()))
    }

    /// Hands one response frame to its waiter. An error is a protocol violation that closes
    /// the connection.
    fn deliver(&self, header: mbap::Header, pdu: &[u8]) -> Result<()> {
        let slot = {
            let mut table = self.table();
            table.frames += 1;
            table.silent_timeouts = 0;
            let slot = table.slots.remove(&header.transaction_id);
            if matches!(slot, Some(Slot::Abandoned)) {
                table.abandoned -= 1;
            }
            slot
        };
        let (unit, function, reply) = match slot {
            None => {
                return Err(Error::ModbusBadFrame(format!(
                    "a response with transaction id {} that no request has (protocol violation)",
                    header.transaction_id
                )))
            }
            Some(Slot::Abandoned) => {
                bump(&self.counters.late_responses);
                log!(
                    Level::Debug,
                    "modbus: {}: late response to transaction {} discarded",
                    self.name,
                    header.transaction_id
                );
                return Ok(());
            }
            Some(Slot::Waiting {
                unit,
                function,
                reply,
            }) => (unit, function, reply),
        };
        let answer = if header.unit_id != unit {
            Err(Refused::WrongFunction(Error::ModbusBadFrame(format!(
                "the response to transaction {} is from unit {}, the request went to unit {unit}",
                header.transaction_id, header.unit_id
            ))))
        } else {
            mbap::decode_response(function, pdu)
        };
        let (result, violation) = match answer {
            Ok(answer) => (Ok(answer), None),
            Err(Refused::Malformed(error)) => (Err(error), None),
            Err(Refused::WrongFunction(error)) => (Err(error.clone()), Some(error)),
        };
        // The waiter may have given up meanwhile (its timeout raced this response).
        let _ = reply.send(result);
        violation.map_or(Ok(()), Err)
    }
}

async fn write_frame(writer: &mut WriteHalf<Stream>, frame: &[u8]) -> std::io::Result<()> {
    writer.write_all(frame).await?;
    writer.flush().await
}

/// The reader task: frames until end of stream, an I/O error or a protocol violation.
async fn read_responses(connection: Arc<Connection>, read: ReadHalf<Stream>) {
    let mut reader = BufReader::new(read);
    let mut pdu = [0u8; mbap::MAX_PDU_LEN];
    let reason = loop {
        let header = match read_header(&mut reader).await {
            Ok(header) => header,
            Err(reason) => break reason,
        };
        let body = &mut pdu[..header.pdu_len];
        if let Err(e) = reader.read_exact(body).await {
            break Error::ConnectionLost(format!("the connection broke inside a response: {e}"));
        }
        if let Err(violation) = connection.deliver(header, body) {
            break violation;
        }
    };
    log!(
        Level::Warn,
        "modbus: connection to {} closed: {}",
        connection.name,
        reason.message()
    );
    connection.close(reason);
}

async fn read_header(reader: &mut BufReader<ReadHalf<Stream>>) -> Result<mbap::Header> {
    let mut bytes = [0u8; HEADER_LEN];
    match reader.read_exact(&mut bytes).await {
        Ok(_) => mbap::parse_header(&bytes),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(Error::ConnectionLost(
            "the server closed the connection".into(),
        )),
        Err(e) => Err(Error::ConnectionLost(format!("reading failed: {e}"))),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; a poisoned one still holds consistent data.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    //! Against a peer that answers out of order or breaks the protocol on purpose: bytes no
    //! real server sends (pymodbus answers in order), written by the test over a duplex pipe.

    use super::*;
    use std::sync::atomic::Ordering;
    use std::time::Duration;
    use tokio::io::DuplexStream;
    use tokio_modbus::Response;

    const READ_1_AT_0: [u8; 5] = [0x03, 0, 0, 0, 1];

    fn open() -> (Arc<Connection>, DuplexStream, Arc<Counters>) {
        let (ours, theirs) = tokio::io::duplex(4096);
        let counters = Arc::new(Counters::default());
        let connection = Connection::start(
            Box::new(ours),
            "test".into(),
            Arc::clone(&counters),
            crate::core::connection_events::ConnectionEvents::new("test")
                .sender()
                .clone(),
        );
        (connection, theirs, counters)
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    fn spawn_request(
        connection: &Arc<Connection>,
        pdu: &'static [u8],
    ) -> tokio::task::JoinHandle<Result<Answer>> {
        let connection = Arc::clone(connection);
        tokio::spawn(async move { connection.request(1, pdu, soon()).await })
    }

    /// The next request's transaction id and PDU.
    async fn read_request(peer: &mut DuplexStream) -> (u16, Vec<u8>) {
        let mut header = [0u8; HEADER_LEN];
        peer.read_exact(&mut header)
            .await
            .expect("a request header");
        let length = usize::from(u16::from_be_bytes([header[4], header[5]]));
        let mut pdu = vec![0; length - 1];
        peer.read_exact(&mut pdu).await.expect("a request PDU");
        (u16::from_be_bytes([header[0], header[1]]), pdu)
    }

    async fn answer(peer: &mut DuplexStream, transaction_id: u16, pdu: &[u8]) {
        let frame = mbap::frame(transaction_id, 1, pdu);
        peer.write_all(&frame).await.expect("the answer is written");
    }

    fn registers(words: &[u16]) -> Result<Answer> {
        Ok(Ok(Response::ReadHoldingRegisters(words.to_vec())))
    }

    #[tokio::test]
    async fn responses_out_of_order_complete_the_request_with_their_transaction_id() {
        let (connection, mut peer, _) = open();
        let first = spawn_request(&connection, &READ_1_AT_0);
        let (first_id, first_pdu) = read_request(&mut peer).await;
        let second = spawn_request(&connection, &[0x03, 0, 10, 0, 1]);
        let (second_id, second_pdu) = read_request(&mut peer).await;
        assert_ne!(first_id, second_id);
        assert_eq!(first_pdu, READ_1_AT_0);
        assert_eq!(second_pdu, [0x03, 0, 10, 0, 1]);
        answer(&mut peer, second_id, &[0x03, 2, 0, 20]).await;
        answer(&mut peer, first_id, &[0x03, 2, 0, 10]).await;
        assert_eq!(second.await.expect("joined"), registers(&[20]));
        assert_eq!(first.await.expect("joined"), registers(&[10]));
    }

    #[tokio::test]
    async fn a_late_response_is_discarded_and_the_connection_stays() {
        let (connection, mut peer, counters) = open();
        let short = Instant::now() + Duration::from_millis(50);
        let timed_out = connection.request(1, &READ_1_AT_0, short).await;
        assert!(matches!(timed_out, Err(Error::Timeout(_))), "{timed_out:?}");
        let (late_id, _) = read_request(&mut peer).await;
        let next = spawn_request(&connection, &[0x03, 0, 10, 0, 1]);
        let (next_id, _) = read_request(&mut peer).await;
        answer(&mut peer, late_id, &[0x03, 2, 0, 1]).await;
        answer(&mut peer, next_id, &[0x03, 2, 0, 2]).await;
        assert_eq!(next.await.expect("joined"), registers(&[2]));
        assert_eq!(counters.late_responses.load(Ordering::Relaxed), 1);
        assert!(connection.is_open());
    }

    #[tokio::test]
    async fn an_unknown_transaction_id_closes_the_connection_for_every_waiter() {
        let (connection, mut peer, _) = open();
        let first = spawn_request(&connection, &READ_1_AT_0);
        let (first_id, _) = read_request(&mut peer).await;
        let second = spawn_request(&connection, &READ_1_AT_0);
        read_request(&mut peer).await;
        answer(&mut peer, first_id.wrapping_add(1000), &[0x03, 2, 0, 1]).await;
        for waiter in [first, second] {
            match waiter.await.expect("joined") {
                Err(Error::ModbusBadFrame(m)) => assert!(m.contains("no request has"), "{m}"),
                other => panic!("{other:?}"),
            }
        }
        assert!(!connection.is_open());
        let after = connection.request(1, &READ_1_AT_0, soon()).await;
        assert!(matches!(after, Err(Error::ModbusBadFrame(_))), "{after:?}");
    }

    #[tokio::test]
    async fn a_wrong_function_code_closes_the_connection_and_a_malformed_pdu_does_not() {
        let (connection, mut peer, _) = open();
        let malformed = spawn_request(&connection, &READ_1_AT_0);
        let (id, _) = read_request(&mut peer).await;
        answer(&mut peer, id, &[0x03, 2, 0]).await;
        let result = malformed.await.expect("joined");
        assert!(
            matches!(result, Err(Error::ModbusBadFrame(_))),
            "{result:?}"
        );
        assert!(connection.is_open());

        let exception = spawn_request(&connection, &READ_1_AT_0);
        let (id, _) = read_request(&mut peer).await;
        answer(&mut peer, id, &[0x83, 0x02]).await;
        let result = exception.await.expect("joined");
        assert_eq!(
            result,
            Ok(Err(tokio_modbus::ExceptionCode::IllegalDataAddress))
        );

        let wrong = spawn_request(&connection, &READ_1_AT_0);
        let (id, _) = read_request(&mut peer).await;
        answer(&mut peer, id, &[0x04, 2, 0, 1]).await;
        match wrong.await.expect("joined") {
            Err(Error::ModbusBadFrame(m)) => assert!(m.contains("function code 0x04"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(!connection.is_open());
    }

    #[tokio::test]
    async fn end_of_stream_fails_waiters_with_connection_lost() {
        let (connection, mut peer, _) = open();
        let waiting = spawn_request(&connection, &READ_1_AT_0);
        read_request(&mut peer).await;
        drop(peer);
        let result = waiting.await.expect("joined");
        assert!(
            matches!(result, Err(Error::ConnectionLost(_))),
            "{result:?}"
        );
        assert!(!connection.is_open());
    }

    #[tokio::test]
    async fn two_timeouts_in_a_row_with_nothing_received_close_the_connection() {
        let (connection, _peer, _) = open();
        for _ in 0..SILENT_TIMEOUTS_BEFORE_CLOSING {
            assert!(connection.is_open());
            let deadline = Instant::now() + Duration::from_millis(20);
            let result = connection.request(1, &READ_1_AT_0, deadline).await;
            assert!(matches!(result, Err(Error::Timeout(_))), "{result:?}");
        }
        assert!(!connection.is_open());
    }
}
