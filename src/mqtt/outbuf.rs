//! What the session hands the driver to write: encoded packets in order, with large payloads
//! kept as the caller's own `Bytes` rather than copied behind their headers. The driver writes
//! it with `write_vectored`, so a publish's payload is copied once, from the caller into the
//! queued message, and from there straight to the socket.

use bytes::{Buf, Bytes, BytesMut};
use std::collections::VecDeque;
use std::io::IoSlice;

/// Payloads at least this long travel as their own slice; shorter ones are copied behind their
/// header (one slice per small packet would cost more than the copy).
pub(crate) const OWN_SLICE_PAYLOAD: usize = 1024;

/// At most this many slices go to one `write_vectored` (below every system's IOV_MAX).
pub(crate) const MAX_SLICES: usize = 64;

#[derive(Debug, Default)]
pub struct OutBuf {
    /// Finished parts, in order, before `tail`.
    sealed: VecDeque<Bytes>,
    sealed_len: usize,
    /// Where the next packets are encoded.
    tail: BytesMut,
}

impl OutBuf {
    pub fn len(&self) -> usize {
        self.sealed_len + self.tail.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The buffer packets are encoded into, after everything already here.
    pub fn tail(&mut self) -> &mut BytesMut {
        &mut self.tail
    }

    /// Appends `payload` after what is encoded so far, sharing it when it is large.
    pub fn put_payload(&mut self, payload: &Bytes) {
        if payload.len() < OWN_SLICE_PAYLOAD {
            self.tail.extend_from_slice(payload);
            return;
        }
        self.seal();
        self.sealed_len += payload.len();
        self.sealed.push_back(payload.clone());
    }

    /// Takes back what was encoded after `len` (a packet that turned out too large); `len`
    /// is a length this buffer had since its last payload.
    pub fn truncate(&mut self, len: usize) {
        self.tail.truncate(len.saturating_sub(self.sealed_len));
    }

    /// The next parts to write, at most `slices.len()`; returns how many it filled.
    pub fn io_slices<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        let parts = self
            .sealed
            .iter()
            .map(|b| &b[..])
            .chain(std::iter::once(&self.tail[..]))
            .filter(|part| !part.is_empty());
        let mut filled = 0;
        for (slot, part) in slices.iter_mut().zip(parts) {
            *slot = IoSlice::new(part);
            filled += 1;
        }
        filled
    }

    /// Drops the first `n` bytes (written).
    pub fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.sealed.front_mut() else {
                self.tail.advance(n.min(self.tail.len()));
                return;
            };
            let step = n.min(front.len());
            front.advance(step);
            self.sealed_len -= step;
            n -= step;
            if front.is_empty() {
                self.sealed.pop_front();
            }
        }
    }

    /// Everything in one buffer (tests, and writers without vectored output).
    pub fn concat(&self) -> BytesMut {
        let mut all = BytesMut::with_capacity(self.len());
        for part in &self.sealed {
            all.extend_from_slice(part);
        }
        all.extend_from_slice(&self.tail);
        all
    }

    fn seal(&mut self) {
        if !self.tail.is_empty() {
            let encoded = self.tail.split().freeze();
            self.sealed_len += encoded.len();
            self.sealed.push_back(encoded);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_payloads_are_shared_and_everything_stays_in_order() {
        let mut out = OutBuf::default();
        out.tail().extend_from_slice(b"h1");
        let big = Bytes::from(vec![7u8; OWN_SLICE_PAYLOAD]);
        out.put_payload(&big);
        out.tail().extend_from_slice(b"h2");
        out.put_payload(&Bytes::from_static(b"small"));
        assert_eq!(out.len(), 2 + OWN_SLICE_PAYLOAD + 2 + 5);
        let mut slices = [IoSlice::new(&[]); 8];
        let filled = out.io_slices(&mut slices);
        assert_eq!(filled, 3, "header, shared payload, the rest copied");
        assert_eq!(
            slices[1].as_ptr(),
            big.as_ptr(),
            "the payload is not copied"
        );
        let mut expected = b"h1".to_vec();
        expected.extend_from_slice(&big);
        expected.extend_from_slice(b"h2small");
        assert_eq!(&out.concat()[..], &expected[..]);
    }

    #[test]
    fn advance_across_parts_leaves_the_unwritten_rest() {
        let mut out = OutBuf::default();
        out.tail().extend_from_slice(b"abc");
        out.put_payload(&Bytes::from(vec![1u8; OWN_SLICE_PAYLOAD]));
        out.tail().extend_from_slice(b"xyz");
        out.advance(2);
        assert_eq!(out.len(), 1 + OWN_SLICE_PAYLOAD + 3);
        out.advance(1 + OWN_SLICE_PAYLOAD - 1);
        assert_eq!(&out.concat()[..], &[1, b'x', b'y', b'z']);
        out.advance(4);
        assert!(out.is_empty());
        let mut slices = [IoSlice::new(&[]); 2];
        assert_eq!(out.io_slices(&mut slices), 0);
    }

    #[test]
    fn truncate_takes_back_only_the_last_packet() {
        let mut out = OutBuf::default();
        out.tail().extend_from_slice(b"keep");
        out.put_payload(&Bytes::from(vec![2u8; OWN_SLICE_PAYLOAD]));
        let before = out.len();
        out.tail().extend_from_slice(b"too large");
        out.truncate(before);
        assert_eq!(out.len(), before);
        assert!(out.concat().ends_with(&[2]));
    }
}
