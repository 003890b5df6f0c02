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
}

/// A request registered in the table, not yet answered.
struct Sent {
    transaction_id: u16,
    frames_before: u64,
    answer: oneshot::Receiver<Result<Answer>>,
}

impl Connection {
    /// Starts the reader task on the current runtime.
    pub fn start(stream: Stream, name: String, counters: Arc<Counters>) -> Arc<Connection> {
        let (read, write) = tokio::io::split(stream);
        let connection = Arc::new(Connection {
            name,
            counters,
            writer: tokio::sync::Mutex::new(write),
            table: Mutex::new(Table::default()),
            reader: Mutex::new(None),
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

    /// Closes the connection for `reason`, which every waiter receives. Idempotent.
    pub fn close(&self, reason: Error) {
        let slots = {
            let mut table = self.table();
            if table.closed.is_some() {
                return;
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
