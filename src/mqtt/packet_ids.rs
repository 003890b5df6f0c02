//! Packet identifiers shared by PUBLISH, SUBSCRIBE and UNSUBSCRIBE: never two in use at once.

/// Allocates ids 1..=65535, cycling, skipping ids still in use.
pub struct PacketIds {
    in_use: Vec<u64>,
    next: u16,
    used: usize,
}

impl Default for PacketIds {
    fn default() -> Self {
        PacketIds {
            in_use: vec![0; 1024],
            next: 1,
            used: 0,
        }
    }
}

impl PacketIds {
    pub fn allocate(&mut self) -> Option<u16> {
        if self.used >= 65_535 {
            return None;
        }
        loop {
            let id = self.next;
            self.next = if id == u16::MAX { 1 } else { id + 1 };
            if !self.is_used(id) {
                self.set(id, true);
                self.used += 1;
                return Some(id);
            }
        }
    }

    /// Marks an id restored from a store as in use; false when it already was (or is 0).
    pub fn mark(&mut self, id: u16) -> bool {
        if id == 0 || self.is_used(id) {
            return false;
        }
        self.set(id, true);
        self.used += 1;
        true
    }

    pub fn release(&mut self, id: u16) {
        if id != 0 && self.is_used(id) {
            self.set(id, false);
            self.used -= 1;
        }
    }

    #[cfg(test)]
    pub fn in_use(&self) -> usize {
        self.used
    }

    fn is_used(&self, id: u16) -> bool {
        self.in_use[id as usize / 64] & (1 << (id % 64)) != 0
    }

    fn set(&mut self, id: u16, on: bool) {
        let word = &mut self.in_use[id as usize / 64];
        if on {
            *word |= 1 << (id % 64);
        } else {
            *word &= !(1 << (id % 64));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_never_collide_and_wrap_around() {
        let mut ids = PacketIds::default();
        let first = ids.allocate();
        assert_eq!(first, Some(1));
        let mut all = vec![1u16];
        for _ in 1..65_535 {
            all.push(ids.allocate().expect("free id"));
        }
        assert_eq!(ids.allocate(), None);
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 65_535);
        ids.release(42);
        assert_eq!(ids.allocate(), Some(42));
        assert!(!all.contains(&0));
    }

    #[test]
    fn released_ids_are_counted() {
        let mut ids = PacketIds::default();
        let a = ids.allocate().unwrap();
        ids.allocate().unwrap();
        ids.release(a);
        ids.release(a);
        assert_eq!(ids.in_use(), 1);
    }
}
