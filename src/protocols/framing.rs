//! Message framing over a byte stream, sans I/O: encoding a message into its frame, and cutting
//! frames out of the bytes received so far. Every mode is bounded by a maximum frame size, so a
//! peer cannot make the receiver buffer without limit (a length above it, or no delimiter
//! within it, is `Error::FrameTooLarge`).

use crate::core::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framing {
    /// No framing: the design's `send(data)` / `receive(buffer_size)` on the raw stream.
    Raw,
    /// Each message is preceded by its length as a big-endian u16.
    LengthU16,
    /// Each message is preceded by its length as a big-endian u32.
    LengthU32,
    /// Each message ends with this (non-empty) byte sequence, e.g. `\n` or `\r\n`.
    Delimiter(Vec<u8>),
}

impl Framing {
    /// `raw`, `u16`, `u32`, or `delimiter` (with the delimiter given apart).
    pub fn from_name(name: &str, delimiter: Option<&[u8]>) -> Result<Framing> {
        match name {
            "raw" => Ok(Framing::Raw),
            "u16" | "length-u16" => Ok(Framing::LengthU16),
            "u32" | "length-u32" => Ok(Framing::LengthU32),
            "delimiter" => match delimiter {
                Some(d) if !d.is_empty() => Ok(Framing::Delimiter(d.to_vec())),
                _ => Err(Error::InvalidArgument(
                    "delimiter framing needs a non-empty delimiter".into(),
                )),
            },
            other => Err(Error::InvalidArgument(format!(
                "unknown framing '{other}' (raw, u16, u32 or delimiter)"
            ))),
        }
    }

    /// The bytes that carry `message` on the wire.
    pub fn encode(&self, message: &[u8], max_frame: usize) -> Result<Vec<u8>> {
        if !matches!(self, Framing::Raw) && message.len() > max_frame {
            return Err(Error::PayloadTooLarge(format!(
                "message of {} bytes is above the maximum frame size {max_frame}",
                message.len()
            )));
        }
        let mut frame = Vec::with_capacity(message.len() + 4);
        match self {
            Framing::Raw => {}
            Framing::LengthU16 => {
                let len = u16::try_from(message.len()).map_err(|_| {
                    Error::PayloadTooLarge(format!(
                        "message of {} bytes does not fit a u16 length prefix",
                        message.len()
                    ))
                })?;
                frame.extend_from_slice(&len.to_be_bytes());
            }
            Framing::LengthU32 => {
                let len = u32::try_from(message.len()).map_err(|_| {
                    Error::PayloadTooLarge(format!(
                        "message of {} bytes does not fit a u32 length prefix",
                        message.len()
                    ))
                })?;
                frame.extend_from_slice(&len.to_be_bytes());
            }
            Framing::Delimiter(delimiter) => {
                if find(message, delimiter).is_some() {
                    return Err(Error::InvalidArgument(
                        "the message contains the frame delimiter".into(),
                    ));
                }
            }
        }
        frame.extend_from_slice(message);
        if let Framing::Delimiter(delimiter) = self {
            frame.extend_from_slice(delimiter);
        }
        Ok(frame)
    }

    /// Cuts the next message out of `buffer` (removing its frame), `None` when more bytes are
    /// needed. Raw mode returns up to `max_frame` of what is buffered.
    pub fn decode(&self, buffer: &mut Vec<u8>, max_frame: usize) -> Result<Option<Vec<u8>>> {
        let (header, body_len) = match self {
            Framing::Raw => {
                if buffer.is_empty() {
                    return Ok(None);
                }
                let take = buffer.len().min(max_frame.max(1));
                return Ok(Some(buffer.drain(..take).collect()));
            }
            Framing::LengthU16 => match buffer.get(..2) {
                None => return Ok(None),
                Some(b) => (2, u16::from_be_bytes([b[0], b[1]]) as usize),
            },
            Framing::LengthU32 => match buffer.get(..4) {
                None => return Ok(None),
                Some(b) => (4, u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize),
            },
            Framing::Delimiter(delimiter) => {
                return match find(buffer, delimiter) {
                    Some(end) if end <= max_frame => {
                        let message = buffer[..end].to_vec();
                        buffer.drain(..end + delimiter.len());
                        Ok(Some(message))
                    }
                    Some(end) => Err(too_large(format!(
                        "a frame of {end} bytes is above the maximum frame size {max_frame}"
                    ))),
                    None if buffer.len() > max_frame + delimiter.len() => Err(too_large(format!(
                        "no delimiter within the maximum frame size {max_frame}"
                    ))),
                    None => Ok(None),
                };
            }
        };
        if body_len > max_frame {
            return Err(too_large(format!(
                "the peer announced a frame of {body_len} bytes, above the maximum frame size {max_frame}"
            )));
        }
        if buffer.len() < header + body_len {
            return Ok(None);
        }
        let message = buffer[header..header + body_len].to_vec();
        buffer.drain(..header + body_len);
        Ok(Some(message))
    }

    /// How many bytes may be buffered while a frame is incomplete (what `decode` accepts).
    pub fn buffer_limit(&self, max_frame: usize) -> usize {
        match self {
            Framing::Raw => max_frame,
            Framing::LengthU16 => max_frame + 2,
            Framing::LengthU32 => max_frame + 4,
            Framing::Delimiter(d) => max_frame + 2 * d.len(),
        }
    }
}

fn too_large(message: String) -> Error {
    Error::FrameTooLarge(message)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mode_round_trips_frames_split_anywhere() {
        let modes = [
            Framing::LengthU16,
            Framing::LengthU32,
            Framing::Delimiter(b"\r\n".to_vec()),
        ];
        for mode in modes {
            let mut wire = Vec::new();
            let messages: Vec<Vec<u8>> =
                (0..50u8).map(|n| vec![b'a' + n % 26; n as usize]).collect();
            for m in &messages {
                wire.extend(mode.encode(m, 1024).unwrap());
            }
            let mut buffer = Vec::new();
            let mut got = Vec::new();
            for chunk in wire.chunks(3) {
                buffer.extend_from_slice(chunk);
                while let Some(m) = mode.decode(&mut buffer, 1024).unwrap() {
                    got.push(m);
                }
            }
            assert_eq!(got, messages, "{mode:?}");
        }
    }

    #[test]
    fn a_peer_cannot_grow_the_buffer_beyond_the_maximum_frame() {
        let mut buffer = vec![0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            Framing::LengthU32.decode(&mut buffer, 1000),
            Err(Error::FrameTooLarge(_))
        ));
        let mut buffer = vec![b'x'; 1002];
        assert!(matches!(
            Framing::Delimiter(b"\n".to_vec()).decode(&mut buffer, 1000),
            Err(Error::FrameTooLarge(_))
        ));
        assert!(Framing::LengthU16.encode(&[0; 70_000], 100_000).is_err());
        assert!(Framing::Delimiter(b"\n".to_vec())
            .encode(b"a\nb", 10)
            .is_err());
    }
}
