//! Modbus TCP's bytes, without sockets: a request PDU for the function codes the client
//! supports, the MBAP header around it (Modbus Messaging on TCP/IP V1.0b, 3.1.3), and the strict
//! reading of a response: header fields, length bounds, function code against the request's.

use crate::core::error::{Error, Result};
use tokio_modbus::bytes::Bytes;
use tokio_modbus::{ExceptionCode, Request, Response};

/// Transaction id, protocol id, length, unit id.
pub const HEADER_LEN: usize = 7;
/// The largest PDU of the application protocol (function code + data).
pub const MAX_PDU_LEN: usize = 253;
/// The MBAP length field counts the unit id and the PDU.
const MAX_LENGTH_FIELD: u16 = MAX_PDU_LEN as u16 + 1;

/// A response to one request: the server's answer, or the exception it gave.
pub type Answer = std::result::Result<Response, ExceptionCode>;

/// An MBAP header that passed the checks: protocol id 0, a length of 2..=254.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub transaction_id: u16,
    pub unit_id: u8,
    /// Bytes of PDU following the header (the length field minus the unit id).
    pub pdu_len: usize,
}

/// Checks a received MBAP header; a violation names the field.
pub fn parse_header(bytes: &[u8; HEADER_LEN]) -> Result<Header> {
    let transaction_id = u16::from_be_bytes([bytes[0], bytes[1]]);
    let protocol_id = u16::from_be_bytes([bytes[2], bytes[3]]);
    let length = u16::from_be_bytes([bytes[4], bytes[5]]);
    if protocol_id != 0 {
        return Err(Error::ModbusBadFrame(format!(
            "a response (transaction id {transaction_id}) has protocol id {protocol_id}, not 0 \
             (Modbus)"
        )));
    }
    if !(2..=MAX_LENGTH_FIELD).contains(&length) {
        return Err(Error::ModbusBadFrame(format!(
            "a response (transaction id {transaction_id}) has MBAP length {length}, outside \
             2..{MAX_LENGTH_FIELD}"
        )));
    }
    Ok(Header {
        transaction_id,
        unit_id: bytes[6],
        pdu_len: usize::from(length) - 1,
    })
}

/// The request's PDU (function code + data) for the function codes the client supports
/// (0x01-0x06, 0x0F, 0x10, 0x17); quantities were checked against `limits` before.
pub fn request_pdu(request: &Request<'_>) -> Result<Vec<u8>> {
    let mut pdu = Vec::with_capacity(16);
    let put = |pdu: &mut Vec<u8>, word: u16| pdu.extend_from_slice(&word.to_be_bytes());
    let count = |n: usize| {
        u16::try_from(n)
            .map_err(|_| Error::InvalidArgument(format!("{n} values do not fit one request")))
    };
    pdu.push(request.function_code().value());
    match request {
        Request::ReadCoils(address, quantity)
        | Request::ReadDiscreteInputs(address, quantity)
        | Request::ReadHoldingRegisters(address, quantity)
        | Request::ReadInputRegisters(address, quantity) => {
            put(&mut pdu, *address);
            put(&mut pdu, *quantity);
        }
        Request::WriteSingleCoil(address, on) => {
            put(&mut pdu, *address);
            put(&mut pdu, if *on { 0xFF00 } else { 0x0000 });
        }
        Request::WriteSingleRegister(address, value) => {
            put(&mut pdu, *address);
            put(&mut pdu, *value);
        }
        Request::WriteMultipleCoils(address, bits) => {
            put(&mut pdu, *address);
            put(&mut pdu, count(bits.len())?);
            let packed = pack_bits(bits);
            pdu.push(byte_count(packed.len())?);
            pdu.extend_from_slice(&packed);
        }
        Request::WriteMultipleRegisters(address, words) => {
            put(&mut pdu, *address);
            put(&mut pdu, count(words.len())?);
            pdu.push(byte_count(words.len() * 2)?);
            words.iter().for_each(|w| put(&mut pdu, *w));
        }
        Request::ReadWriteMultipleRegisters(read_address, quantity, write_address, words) => {
            put(&mut pdu, *read_address);
            put(&mut pdu, *quantity);
            put(&mut pdu, *write_address);
            put(&mut pdu, count(words.len())?);
            pdu.push(byte_count(words.len() * 2)?);
            words.iter().for_each(|w| put(&mut pdu, *w));
        }
        other => {
            return Err(Error::InvalidArgument(format!(
                "function code {} is not supported over Modbus TCP",
                other.function_code()
            )))
        }
    }
    if pdu.len() > MAX_PDU_LEN {
        return Err(Error::InvalidArgument(format!(
            "the request PDU is {} bytes, more than {MAX_PDU_LEN}",
            pdu.len()
        )));
    }
    Ok(pdu)
}

/// The whole frame on the wire: MBAP header (protocol id 0) then the PDU.
pub fn frame(transaction_id: u16, unit_id: u8, pdu: &[u8]) -> Vec<u8> {
    // request_pdu bounds the PDU to 253 bytes, so the length fits.
    let length = (pdu.len() + 1) as u16;
    let mut frame = Vec::with_capacity(HEADER_LEN + pdu.len());
    frame.extend_from_slice(&transaction_id.to_be_bytes());
    frame.extend_from_slice(&[0, 0]);
    frame.extend_from_slice(&length.to_be_bytes());
    frame.push(unit_id);
    frame.extend_from_slice(pdu);
    frame
}

/// Why a response PDU was refused. A wrong function code means the server paired the
/// transaction id with another request: the connection cannot be trusted any more. A PDU
/// that does not decode is wrong on its own, framing intact: only that request fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    WrongFunction(Error),
    Malformed(Error),
}

/// Reads the response PDU to a request with function code `function`: the same function
/// code, or its exception form (`function | 0x80` and one exception code byte).
pub fn decode_response(function: u8, pdu: &[u8]) -> std::result::Result<Answer, Refused> {
    let Some(&code) = pdu.first() else {
        return Err(Refused::Malformed(Error::ModbusBadFrame(
            "an empty response PDU".into(),
        )));
    };
    if code == function | 0x80 {
        return match pdu {
            [_, exception] => Ok(Err(ExceptionCode::new(*exception))),
            _ => Err(Refused::Malformed(Error::ModbusBadFrame(format!(
                "an exception response of {} bytes, not 2",
                pdu.len()
            )))),
        };
    }
    if code != function {
        return Err(Refused::WrongFunction(Error::ModbusBadFrame(format!(
            "the response has function code 0x{code:02X}, the request 0x{function:02X}"
        ))));
    }
    Response::try_from(Bytes::copy_from_slice(pdu))
        .map(Ok)
        .map_err(|e| {
            Refused::Malformed(Error::ModbusBadFrame(format!(
                "malformed response PDU (function code 0x{code:02X}): {e}"
            )))
        })
}

fn pack_bits(bits: &[bool]) -> Vec<u8> {
    bits.chunks(8)
        .map(|chunk| {
            chunk
                .iter()
                .enumerate()
                .fold(0u8, |byte, (i, on)| byte | (u8::from(*on) << i))
        })
        .collect()
}

fn byte_count(n: usize) -> Result<u8> {
    u8::try_from(n).map_err(|_| Error::InvalidArgument(format!("{n} data bytes exceed 255")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn every_request() -> Vec<Request<'static>> {
        vec![
            Request::ReadCoils(1, 2000),
            Request::ReadDiscreteInputs(65_535, 1),
            Request::ReadHoldingRegisters(10, 125),
            Request::ReadInputRegisters(0, 3),
            Request::WriteSingleCoil(7, true),
            Request::WriteSingleCoil(8, false),
            Request::WriteSingleRegister(9, 0xBEEF),
            Request::WriteMultipleCoils(
                20,
                Cow::Owned(vec![
                    true, false, true, true, false, false, true, true, true,
                ]),
            ),
            Request::WriteMultipleCoils(0, Cow::Owned(vec![true; 1968])),
            Request::WriteMultipleRegisters(30, Cow::Owned(vec![1, 0xFFFF, 3])),
            Request::WriteMultipleRegisters(0, Cow::Owned(vec![0x1234; 123])),
            Request::ReadWriteMultipleRegisters(49, 5, 50, Cow::Owned(vec![11, 22, 33])),
            Request::ReadWriteMultipleRegisters(0, 125, 0, Cow::Owned(vec![9; 121])),
        ]
    }

    #[test]
    fn every_supported_request_encodes_to_what_tokio_modbus_decodes() {
        for request in every_request() {
            let pdu = request_pdu(&request).expect("supported");
            let decoded = Request::try_from(Bytes::from(pdu)).expect("decodes");
            assert_eq!(decoded, request);
        }
    }

    #[test]
    fn request_pdus_are_the_bytes_of_the_specification() {
        assert_eq!(
            request_pdu(&Request::ReadHoldingRegisters(0x006B, 3)),
            Ok(vec![0x03, 0x00, 0x6B, 0x00, 0x03])
        );
        assert_eq!(
            request_pdu(&Request::WriteSingleCoil(0x00AC, true)),
            Ok(vec![0x05, 0x00, 0xAC, 0xFF, 0x00])
        );
        // The specification's example: coils 20..29 = CD 01.
        let bits = [1, 0, 1, 1, 0, 0, 1, 1, 1, 0].map(|b| b == 1).to_vec();
        assert_eq!(
            request_pdu(&Request::WriteMultipleCoils(0x0013, Cow::Owned(bits))),
            Ok(vec![0x0F, 0x00, 0x13, 0x00, 0x0A, 0x02, 0xCD, 0x01])
        );
        assert!(request_pdu(&Request::ReportServerId).is_err());
    }

    #[test]
    fn frames_carry_their_transaction_id_protocol_0_and_length() {
        assert_eq!(
            frame(0x1234, 17, &[0x03, 0, 0, 0, 2]),
            vec![0x12, 0x34, 0, 0, 0, 6, 17, 0x03, 0, 0, 0, 2]
        );
    }

    #[test]
    fn headers_are_read_strictly() {
        assert_eq!(
            parse_header(&[0xAB, 0xCD, 0, 0, 0, 6, 1]),
            Ok(Header {
                transaction_id: 0xABCD,
                unit_id: 1,
                pdu_len: 5
            })
        );
        assert_eq!(
            parse_header(&[0, 1, 0, 0, 0, 254, 1]).map(|h| h.pdu_len),
            Ok(253)
        );
        let refused = |bytes: [u8; 7], says: &str| match parse_header(&bytes) {
            Err(Error::ModbusBadFrame(message)) => assert!(message.contains(says), "{message}"),
            other => panic!("{bytes:?} gave {other:?}"),
        };
        refused([0, 1, 0, 1, 0, 6, 1], "protocol id 1");
        refused([0, 1, 0, 0, 0, 255, 1], "length 255");
        refused([0, 1, 0, 0, 0, 1, 1], "length 1");
        refused([0, 1, 0, 0, 0, 0, 1], "length 0");
    }

    #[test]
    fn responses_must_answer_their_request_function_code() {
        assert_eq!(
            decode_response(0x03, &[0x03, 4, 0x03, 0xE8, 0x03, 0xE9]),
            Ok(Ok(Response::ReadHoldingRegisters(vec![1000, 1001])))
        );
        assert_eq!(
            decode_response(0x03, &[0x83, 0x02]),
            Ok(Err(ExceptionCode::IllegalDataAddress))
        );
        assert!(matches!(
            decode_response(0x03, &[0x04, 2, 0, 1]),
            Err(Refused::WrongFunction(_))
        ));
        assert!(matches!(
            decode_response(0x03, &[0x84, 0x02]),
            Err(Refused::WrongFunction(_))
        ));
        assert!(matches!(
            decode_response(0x03, &[0x83, 0x02, 0x00]),
            Err(Refused::Malformed(_))
        ));
        assert!(matches!(
            decode_response(0x03, &[0x03, 4, 0x03]),
            Err(Refused::Malformed(_))
        ));
        assert!(matches!(
            decode_response(0x03, &[]),
            Err(Refused::Malformed(_))
        ));
        assert_eq!(
            decode_response(0x0F, &[0x0F, 0, 20, 0, 13]),
            Ok(Ok(Response::WriteMultipleCoils(20, 13)))
        );
    }
}
