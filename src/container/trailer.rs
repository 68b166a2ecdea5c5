//! The SHA-256 trailer of `etcdctl snapshot save` files (etcd-bbolt.md §6).

use serde::Serialize;
use sha2::{Digest, Sha256};

const TRAILER_LEN: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trailer {
    /// `len % 512 == 32` and the SHA-256 of the rest matches the last 32 bytes.
    Valid,
    /// No trailer: a raw `member/snap/db` copy (a page-size multiple).
    Absent,
    /// A trailer is present but does not match: the file was altered or torn.
    Mismatch,
}

/// Splits an `etcdctl snapshot save` file into the bbolt bytes and its
/// SHA-256 trailer (etcd client/v3/snapshot, etcdutl `copyAndVerifyDB`).
/// Returns the bbolt bytes and whether a trailer is present; verify it with
/// [`verify_trailer`], which hashes the whole file and so is worth running
/// beside other work.
pub fn split_trailer(bytes: &[u8]) -> (&[u8], bool) {
    if bytes.len() % 512 == TRAILER_LEN {
        (&bytes[..bytes.len() - TRAILER_LEN], true)
    } else {
        (bytes, false)
    }
}

pub fn verify_trailer(bytes: &[u8]) -> Trailer {
    let (db, present) = split_trailer(bytes);
    if !present {
        return Trailer::Absent;
    }
    if Sha256::digest(db).as_slice() == &bytes[db.len()..] {
        Trailer::Valid
    } else {
        Trailer::Mismatch
    }
}
