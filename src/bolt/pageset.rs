use super::Pgid;

/// A bitset of page ids below a fixed bound (the high-water mark or the file's
/// page count), so memory is one bit per page of the file at most.
#[derive(Clone, Debug)]
pub struct PageSet {
    bits: Vec<u64>,
    len: Pgid,
}

impl PageSet {
    pub fn new(len: Pgid) -> Self {
        PageSet { bits: vec![0; len.div_ceil(64) as usize], len }
    }

    pub fn contains(&self, id: Pgid) -> bool {
        id < self.len && self.bits[(id / 64) as usize] & (1 << (id % 64)) != 0
    }

    /// Sets `id`; returns false when it was already set. Ids past the bound are ignored.
    pub fn insert(&mut self, id: Pgid) -> bool {
        if id >= self.len {
            return true;
        }
        let (word, bit) = ((id / 64) as usize, 1u64 << (id % 64));
        let fresh = self.bits[word] & bit == 0;
        self.bits[word] |= bit;
        fresh
    }
}
