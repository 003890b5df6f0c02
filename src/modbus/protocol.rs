//! Modbus behind the protocol registry (`protocols::registry`): "modbus-tcp" and "modbus-rtu"
//! opened by name from key/value options. `request` takes a request PDU (function code + data,
//! as on the wire) and returns the response PDU; an exception response fails with its status.

use crate::core::error::{Error, Result};
use crate::modbus::limits::{
    check_range, MAX_READ_BITS, MAX_READ_REGISTERS, MAX_READ_WRITE_REGISTERS, MAX_WRITE_BITS,
    MAX_WRITE_REGISTERS,
};
use crate::modbus::{CallOptions, Client, Options, Parity, SerialSettings};
use crate::protocols::registry::{Protocol, ProtocolOptions};
use std::time::Duration;
use tokio_modbus::{Request, Response};

const COMMON: [&str; 3] = ["unit_id", "timeout_ms", "retries"];

struct ModbusProtocol {
    kind: &'static str,
    client: Client,
}

/// "modbus-tcp": options `host` (required), `port` (502), `unit_id` (1), `timeout_ms` (1000),
/// `retries` (1).
pub fn open_tcp_from_options(options: &ProtocolOptions) -> Result<Box<dyn Protocol>> {
    const KIND: &str = "modbus-tcp";
    let mut known = vec!["host", "port"];
    known.extend(COMMON);
    options.only(KIND, &known)?;
    let mut modbus = common(KIND, options)?;
    modbus.host = options.required(KIND, "host")?.to_owned();
    if let Some(port) = options.parse::<u16>(KIND, "port")? {
        modbus.port = port;
    }
    open(KIND, modbus)
}

/// "modbus-rtu": options `device` (required), `baud` (19200), `data_bits` (8), `parity`
/// (N, O or E; N), `stop_bits` (1), `unit_id`, `timeout_ms`, `retries`.
pub fn open_rtu_from_options(options: &ProtocolOptions) -> Result<Box<dyn Protocol>> {
    const KIND: &str = "modbus-rtu";
    let mut known = vec!["device", "baud", "data_bits", "parity", "stop_bits"];
    known.extend(COMMON);
    options.only(KIND, &known)?;
    let mut modbus = common(KIND, options)?;
    let parity = match options.get("parity").unwrap_or("N") {
        "N" | "n" | "none" => Parity::None,
        "O" | "o" | "odd" => Parity::Odd,
        "E" | "e" | "even" => Parity::Even,
        other => {
            return Err(Error::InvalidArgument(format!(
                "protocol '{KIND}': parity '{other}' is not N, O or E"
            )))
        }
    };
    let data_bits = options.parse::<u8>(KIND, "data_bits")?.unwrap_or(8);
    let stop_bits = options.parse::<u8>(KIND, "stop_bits")?.unwrap_or(1);
    if !(5..=8).contains(&data_bits) || !(1..=2).contains(&stop_bits) {
        return Err(Error::InvalidArgument(format!(
            "protocol '{KIND}': data_bits must be 5..8 and stop_bits 1 or 2"
        )));
    }
    modbus.serial = Some(SerialSettings {
        device: options.required(KIND, "device")?.to_owned(),
        baud: options
            .parse::<u32>(KIND, "baud")?
            .filter(|b| *b > 0)
            .unwrap_or(19200),
        data_bits,
        parity,
        stop_bits,
    });
    open(KIND, modbus)
}

fn common(kind: &str, options: &ProtocolOptions) -> Result<Options> {
    let mut modbus = Options::default();
    if let Some(unit) = options.parse::<u8>(kind, "unit_id")? {
        modbus.unit_id = unit;
    }
    if let Some(ms) = options.parse::<u64>(kind, "timeout_ms")? {
        if ms == 0 {
            return Err(Error::InvalidArgument(format!(
                "protocol '{kind}': timeout_ms must be positive"
            )));
        }
        modbus.timeout = Duration::from_millis(ms);
    }
    if let Some(retries) = options.parse::<u32>(kind, "retries")? {
        modbus.retries = retries.min(100);
    }
    Ok(modbus)
}

fn open(kind: &'static str, options: Options) -> Result<Box<dyn Protocol>> {
    Ok(Box::new(ModbusProtocol {
        kind,
        client: Client::new(options)?,
    }))
}

impl Protocol for ModbusProtocol {
    fn kind(&self) -> &str {
        self.kind
    }

    fn connect(&self, _timeout: Duration) -> Result<()> {
        self.client.connect()
    }

    fn disconnect(&self, _timeout: Duration) -> Result<()> {
        self.client.disconnect()
    }

    fn is_connected(&self) -> bool {
        self.client.is_connected()
    }

    fn request(&self, data: &[u8], max_len: usize, timeout: Duration) -> Result<Vec<u8>> {
        let request = decode_request(data)?;
        let call = CallOptions {
            timeout: (!timeout.is_zero()).then_some(timeout),
            ..CallOptions::default()
        };
        let response = encode_response(&self.client.call(request, call)?);
        if response.len() > max_len {
            return Err(Error::InvalidArgument(format!(
                "the response PDU of {} bytes does not fit the buffer of {max_len}",
                response.len()
            )));
        }
        Ok(response)
    }
}

/// A request PDU the client supports, with the limits the C functions check.
fn decode_request(data: &[u8]) -> Result<Request<'static>> {
    let request = Request::try_from(tokio_modbus::bytes::Bytes::copy_from_slice(data))
        .map_err(|e| Error::InvalidArgument(format!("not a Modbus request PDU: {e}")))?;
    let checked = |what: &str, address: u16, quantity: usize, max: u16| {
        check_range(what, address, quantity, max).map(drop)
    };
    match &request {
        Request::ReadCoils(a, q) | Request::ReadDiscreteInputs(a, q) => {
            checked("read bits", *a, usize::from(*q), MAX_READ_BITS)?
        }
        Request::ReadHoldingRegisters(a, q) | Request::ReadInputRegisters(a, q) => {
            checked("read registers", *a, usize::from(*q), MAX_READ_REGISTERS)?
        }
        Request::WriteSingleCoil(..) | Request::WriteSingleRegister(..) => {}
        Request::WriteMultipleCoils(a, v) => checked("write coils", *a, v.len(), MAX_WRITE_BITS)?,
        Request::WriteMultipleRegisters(a, v) => {
            checked("write registers", *a, v.len(), MAX_WRITE_REGISTERS)?
        }
        Request::ReadWriteMultipleRegisters(ra, rq, wa, v) => {
            checked("read/write", *ra, usize::from(*rq), MAX_READ_REGISTERS)?;
            checked("read/write", *wa, v.len(), MAX_READ_WRITE_REGISTERS)?
        }
        other => {
            return Err(Error::InvalidArgument(format!(
                "function code {} is not supported",
                other.function_code()
            )))
        }
    }
    Ok(request)
}

fn encode_response(response: &Response) -> Vec<u8> {
    let mut out = Vec::new();
    let bits = |out: &mut Vec<u8>, code: u8, bits: &[bool]| {
        let mut packed = vec![0u8; bits.len().div_ceil(8)];
        for (i, bit) in bits.iter().enumerate() {
            if *bit {
                packed[i / 8] |= 1 << (i % 8);
            }
        }
        out.push(code);
        out.push(packed.len() as u8);
        out.extend(packed);
    };
    let words = |out: &mut Vec<u8>, code: u8, words: &[u16]| {
        out.push(code);
        out.push((words.len() * 2) as u8);
        for w in words {
            out.extend(w.to_be_bytes());
        }
    };
    let pair = |out: &mut Vec<u8>, code: u8, a: u16, b: u16| {
        out.push(code);
        out.extend(a.to_be_bytes());
        out.extend(b.to_be_bytes());
    };
    match response {
        Response::ReadCoils(b) => bits(&mut out, 0x01, b),
        Response::ReadDiscreteInputs(b) => bits(&mut out, 0x02, b),
        Response::ReadHoldingRegisters(w) => words(&mut out, 0x03, w),
        Response::ReadInputRegisters(w) => words(&mut out, 0x04, w),
        Response::WriteSingleCoil(a, on) => pair(&mut out, 0x05, *a, if *on { 0xFF00 } else { 0 }),
        Response::WriteSingleRegister(a, v) => pair(&mut out, 0x06, *a, *v),
        Response::WriteMultipleCoils(a, q) => pair(&mut out, 0x0F, *a, *q),
        Response::WriteMultipleRegisters(a, q) => pair(&mut out, 0x10, *a, *q),
        Response::ReadWriteMultipleRegisters(w) => words(&mut out, 0x17, w),
        // Only answers to the requests `decode_request` lets through reach here.
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_pdus_decode_within_the_limits_and_responses_encode_as_on_the_wire() {
        assert_eq!(
            decode_request(&[0x03, 0, 10, 0, 2]).ok(),
            Some(Request::ReadHoldingRegisters(10, 2))
        );
        assert!(decode_request(&[0x03, 0, 0, 0, 126]).is_err());
        assert!(decode_request(&[0x01, 0xFF, 0xFF, 0, 2]).is_err());
        assert!(decode_request(&[0x2B, 0x0E, 1, 0]).is_err());
        assert_eq!(
            encode_response(&Response::ReadHoldingRegisters(vec![1000, 1001])),
            vec![0x03, 4, 0x03, 0xE8, 0x03, 0xE9]
        );
        assert_eq!(
            encode_response(&Response::ReadCoils(vec![true, false, true])),
            vec![0x01, 1, 0b101]
        );
    }

    #[test]
    fn options_are_checked() {
        let mut options = ProtocolOptions::new();
        assert!(open_tcp_from_options(&options).is_err());
        options.set("host", "127.0.0.1");
        options.set("colour", "red");
        assert!(open_tcp_from_options(&options).is_err());
    }
}
