//! The byte layout of the store: the segment header and the checksummed record frame
//! (docs/persistence-format.md). Pure encoding and decoding, no I/O, so every torn or flipped
//! byte can be tried in unit tests.

/// First eight bytes of every segment file.
pub const MAGIC: [u8; 8] = *b"EQ1STORE";
/// The one format version this code reads and writes. A segment of another version is
/// refused (`StoreError::Corrupt`), never guessed at.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes of the segment header: magic, version, reserved, segment number, header CRC, reserved.
pub const HEADER_LEN: usize = 32;
/// Bytes of a record frame before its body: body length, body CRC, frame-head CRC.
pub const FRAME_HEAD_LEN: usize = 12;
/// Bytes of a body before the value: kind and key.
pub const BODY_HEAD_LEN: usize = 9;
/// A value larger than this is refused (it could not be an MQTT packet: those end at 256 MiB).
pub const MAX_VALUE_LEN: usize = 256 << 20;

const KIND_PUT: u8 = 1;
const KIND_REMOVE: u8 = 2;

/// What one record says about its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op<'a> {
    Put(&'a [u8]),
    Remove,
}

/// Bytes a record with a value of `value_len` bytes takes on disk (frame included).
pub const fn record_len(value_len: usize) -> u64 {
    (FRAME_HEAD_LEN + BODY_HEAD_LEN + value_len) as u64
}

/// The segment header of segment number `sequence`.
pub fn encode_header(sequence: u64) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[0..8].copy_from_slice(&MAGIC);
    header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header[16..24].copy_from_slice(&sequence.to_le_bytes());
    let crc = crc32fast::hash(&header[0..24]);
    header[24..28].copy_from_slice(&crc.to_le_bytes());
    header
}

/// Why a segment header is not usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// Shorter than a header, wrong magic or failing its checksum: never completely written
    /// (or damaged).
    Unreadable,
    /// A complete, checksummed header of a format version this code does not know.
    UnknownVersion(u32),
    /// A good header naming another segment number than the file name does.
    WrongSequence(u64),
}

/// Checks the header at the start of `bytes` for segment number `sequence`.
pub fn decode_header(bytes: &[u8], sequence: u64) -> Result<(), HeaderError> {
    let header = bytes.get(..HEADER_LEN).ok_or(HeaderError::Unreadable)?;
    if header[0..8] != MAGIC || u32_at(header, 24) != crc32fast::hash(&header[0..24]) {
        return Err(HeaderError::Unreadable);
    }
    let version = u32_at(header, 8);
    if version != FORMAT_VERSION {
        return Err(HeaderError::UnknownVersion(version));
    }
    let named = u64::from_le_bytes(array_at(header, 16));
    if named != sequence {
        return Err(HeaderError::WrongSequence(named));
    }
    Ok(())
}

/// Appends the frame of one record to `out` (one `write(2)` then puts it on disk whole).
pub fn encode_record(out: &mut Vec<u8>, key: u64, op: Op<'_>) {
    let value: &[u8] = match op {
        Op::Put(value) => value,
        Op::Remove => &[],
    };
    let body_len = (BODY_HEAD_LEN + value.len()) as u32;
    let start = out.len();
    out.extend_from_slice(&body_len.to_le_bytes());
    out.extend_from_slice(&[0; 8]); // body CRC and head CRC, filled in below
    let body_start = out.len();
    out.push(match op {
        Op::Put(_) => KIND_PUT,
        Op::Remove => KIND_REMOVE,
    });
    out.extend_from_slice(&key.to_le_bytes());
    out.extend_from_slice(value);
    let body_crc = crc32fast::hash(&out[body_start..]);
    out[start + 4..start + 8].copy_from_slice(&body_crc.to_le_bytes());
    let head_crc = crc32fast::hash(&out[start..start + 8]);
    out[start + 8..start + 12].copy_from_slice(&head_crc.to_le_bytes());
}

/// What was found at one offset of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A complete record with good checksums, `len` bytes long.
    Record { key: u64, op: Op<'a>, len: usize },
    /// The frame head checks out (so its length can be trusted) but the body does not: a
    /// damaged record of `len` bytes that can be stepped over.
    BadBody { len: usize },
    /// The bytes end before the frame does (a write cut short), or the frame head fails its
    /// checksum: nothing after this offset can be located.
    Unreadable,
}

/// Decodes the frame at the start of `bytes` (the rest of a segment from some offset).
pub fn decode_frame(bytes: &[u8]) -> Frame<'_> {
    let Some(head) = bytes.get(..FRAME_HEAD_LEN) else {
        return Frame::Unreadable;
    };
    if u32_at(head, 8) != crc32fast::hash(&head[0..8]) {
        return Frame::Unreadable;
    }
    let body_len = u32_at(head, 0) as usize;
    if !(BODY_HEAD_LEN..=BODY_HEAD_LEN + MAX_VALUE_LEN).contains(&body_len) {
        return Frame::Unreadable;
    }
    let len = FRAME_HEAD_LEN + body_len;
    let Some(body) = bytes.get(FRAME_HEAD_LEN..len) else {
        return Frame::Unreadable;
    };
    if u32_at(head, 4) != crc32fast::hash(body) {
        return Frame::BadBody { len };
    }
    let key = u64::from_le_bytes(array_at(body, 1));
    let op = match body[0] {
        KIND_PUT => Op::Put(&body[BODY_HEAD_LEN..]),
        KIND_REMOVE if body_len == BODY_HEAD_LEN => Op::Remove,
        // A checksummed body of a kind this version does not write: treat it as damaged
        // rather than guess what it meant.
        _ => return Frame::BadBody { len },
    };
    Frame::Record { key, op, len }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(array_at(bytes, at))
}

fn array_at<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(key: u64, op: Op<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        encode_record(&mut out, key, op);
        out
    }

    #[test]
    fn a_record_decodes_to_what_was_encoded() {
        let bytes = encoded(7, Op::Put(b"topic/a\0payload"));
        assert_eq!(bytes.len() as u64, record_len(15));
        assert_eq!(
            decode_frame(&bytes),
            Frame::Record {
                key: 7,
                op: Op::Put(b"topic/a\0payload"),
                len: bytes.len()
            }
        );
        let tomb = encoded(u64::MAX, Op::Remove);
        assert_eq!(tomb.len() as u64, record_len(0));
        assert_eq!(
            decode_frame(&tomb),
            Frame::Record {
                key: u64::MAX,
                op: Op::Remove,
                len: tomb.len()
            }
        );
    }

    #[test]
    fn every_cut_of_a_record_is_unreadable() {
        let bytes = encoded(1, Op::Put(&[0xAB; 40]));
        for cut in 0..bytes.len() {
            assert_eq!(
                decode_frame(&bytes[..cut]),
                Frame::Unreadable,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn every_flipped_bit_is_caught() {
        let bytes = encoded(42, Op::Put(b"value"));
        for at in 0..bytes.len() {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[at] ^= 1 << bit;
                let frame = decode_frame(&damaged);
                assert!(
                    !matches!(frame, Frame::Record { .. }),
                    "flip at byte {at} bit {bit} gave {frame:?}"
                );
                if at >= FRAME_HEAD_LEN {
                    assert_eq!(frame, Frame::BadBody { len: bytes.len() });
                }
            }
        }
    }

    #[test]
    fn zeroes_are_not_a_record() {
        assert_eq!(decode_frame(&[0u8; 64]), Frame::Unreadable);
    }

    #[test]
    fn the_header_names_its_version_and_segment() {
        let header = encode_header(9);
        assert_eq!(decode_header(&header, 9), Ok(()));
        assert_eq!(
            decode_header(&header, 8),
            Err(HeaderError::WrongSequence(9))
        );
        assert_eq!(
            decode_header(&header[..HEADER_LEN - 1], 9),
            Err(HeaderError::Unreadable)
        );
        let mut newer = header;
        newer[8..12].copy_from_slice(&2u32.to_le_bytes());
        let crc = crc32fast::hash(&newer[0..24]);
        newer[24..28].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            decode_header(&newer, 9),
            Err(HeaderError::UnknownVersion(2))
        );
        let mut flipped = header;
        flipped[17] ^= 4;
        assert_eq!(decode_header(&flipped, 9), Err(HeaderError::Unreadable));
    }
}
