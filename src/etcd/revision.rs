/// A `key` bucket key: main revision, `_`, sub revision (big-endian), and a
/// trailing `t` for a tombstone (etcd server/storage/mvcc/revision.go).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision {
    pub main: i64,
    pub sub: i64,
    pub tombstone: bool,
}

impl Revision {
    pub fn parse(key: &[u8]) -> Option<Revision> {
        let tombstone = match key.len() {
            17 => false,
            18 if key[17] == b't' => true,
            _ => return None,
        };
        if key[8] != b'_' {
            return None;
        }
        Some(Revision {
            main: i64::from_be_bytes(key[0..8].try_into().ok()?),
            sub: i64::from_be_bytes(key[9..17].try_into().ok()?),
            tombstone,
        })
    }

    /// The main revision of a key even when it is too short to be a full
    /// revision key, as etcdutl's `bytesToRev` reads the first 8 bytes.
    pub fn main_of(key: &[u8]) -> Option<i64> {
        Some(i64::from_be_bytes(key.get(0..8)?.try_into().ok()?))
    }
}

impl std::fmt::Display for Revision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}_{}{}", self.main, self.sub, if self.tombstone { "t" } else { "" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_put_and_tombstone() {
        let mut key = [0u8; 18];
        key[7] = 2;
        key[8] = b'_';
        key[16] = 1;
        assert_eq!(Revision::parse(&key[..17]), Some(Revision { main: 2, sub: 1, tombstone: false }));
        key[17] = b't';
        assert_eq!(Revision::parse(&key), Some(Revision { main: 2, sub: 1, tombstone: true }));
        key[17] = b'x';
        assert_eq!(Revision::parse(&key), None);
        key[8] = b'-';
        assert_eq!(Revision::parse(&key[..17]), None);
    }
}
