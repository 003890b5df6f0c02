//! Test-only: the random packet generator the decoder and frame-check fuzz tests share (seeded,
//! so a failure repeats).

/// xorshift64: spread, not cryptographic quality.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// One in `random_one_in` times random bytes, otherwise a seed, then up to four
    /// mutations (byte replaced, bit flipped, cut short, byte inserted).
    pub fn mutant(&mut self, seeds: &[Vec<u8>], random_one_in: usize) -> Vec<u8> {
        let mut bytes: Vec<u8> = if self.below(random_one_in) == 0 {
            (0..self.below(40)).map(|_| self.next() as u8).collect()
        } else {
            seeds[self.below(seeds.len())].clone()
        };
        for _ in 0..=self.below(4) {
            if bytes.is_empty() {
                break;
            }
            let at = self.below(bytes.len());
            match self.below(4) {
                0 => bytes[at] = self.next() as u8,
                1 => bytes[at] ^= 1 << self.below(8),
                2 => bytes.truncate(at),
                _ => bytes.insert(at, self.next() as u8),
            }
        }
        bytes
    }
}
