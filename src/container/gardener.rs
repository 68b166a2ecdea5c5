//! Gardener etcd-backup-restore delta snapshots (`Incr-…`): a JSON array of
//! `{"etcdEvent": mvccpb.Event, "time": …}` written by Go's encoding/json,
//! followed by the raw SHA-256 of those JSON bytes (etcd-bbolt.md §8).

use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{ContainerError, Trailer};

/// One event, decoded. Keys and values are owned: they come out of base64.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeltaEvent {
    pub delete: bool,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
}

#[derive(Debug)]
pub struct Delta {
    pub events: Vec<DeltaEvent>,
    /// The SHA-256 after the JSON: valid, absent or mismatch.
    pub hash: Trailer,
}

/// `[{"etcdEvent"` after optional whitespace: how Gardener's writer starts.
pub fn looks_like_delta(bytes: &[u8]) -> bool {
    let rest = bytes.trim_ascii_start();
    rest.strip_prefix(b"[").is_some_and(|r| r.trim_ascii_start().starts_with(b"{\"etcdEvent\""))
}

#[derive(Deserialize)]
struct Wrapper {
    #[serde(rename = "etcdEvent")]
    etcd_event: Option<Event>,
}

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type", default)]
    kind: i32,
    kv: Option<Kv>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Kv {
    key: String,
    value: String,
    create_revision: i64,
    mod_revision: i64,
    version: i64,
}

pub fn parse(bytes: &[u8]) -> Result<Delta, ContainerError> {
    let corrupt = |reason: String| ContainerError::Corrupt { layer: "gardener-delta", reason };
    let mut stream = serde_json::Deserializer::from_slice(bytes).into_iter::<Vec<Wrapper>>();
    let wrappers = match stream.next() {
        Some(Ok(w)) => w,
        Some(Err(e)) => return Err(corrupt(format!("events JSON: {e}"))),
        None => return Err(corrupt("empty".into())),
    };
    let json = &bytes[..stream.byte_offset()];
    let hash = match &bytes[json.len()..] {
        [] => Trailer::Absent,
        sum if sum.len() == 32 && Sha256::digest(json).as_slice() == sum => Trailer::Valid,
        _ => Trailer::Mismatch,
    };
    let b64 = |s: &str| {
        base64::engine::general_purpose::STANDARD.decode(s).map_err(|e| corrupt(format!("base64: {e}")))
    };
    let mut events = Vec::with_capacity(wrappers.len());
    for event in wrappers.into_iter().filter_map(|w| w.etcd_event) {
        let kv = event.kv.unwrap_or_default();
        events.push(DeltaEvent {
            delete: event.kind == 1,
            key: b64(&kv.key)?,
            value: b64(&kv.value)?,
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
        });
    }
    Ok(Delta { events, hash })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_and_hash() {
        let json = br#"[{"etcdEvent":{"kv":{"key":"L3JlZ2lzdHJ5L3NlY3JldHMvYS9i","create_revision":5,"mod_revision":7,"version":2,"value":"azhzAA=="}},"time":"2026-01-01T00:00:00Z"},{"etcdEvent":{"type":1,"kv":{"key":"L3JlZ2lzdHJ5L3NlY3JldHMvYS9i","mod_revision":8}},"time":"2026-01-01T00:00:01Z"}]"#;
        assert!(looks_like_delta(json));
        let with_sum = [json.as_slice(), Sha256::digest(json).as_slice()].concat();
        let d = parse(&with_sum).unwrap();
        assert_eq!(d.hash, Trailer::Valid);
        assert_eq!(d.events.len(), 2);
        assert_eq!(
            (d.events[0].key.as_slice(), d.events[0].mod_revision),
            (&b"/registry/secrets/a/b"[..], 7)
        );
        assert!(d.events[1].delete && !d.events[0].delete);
        let mut bad = with_sum.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(parse(&bad).unwrap().hash, Trailer::Mismatch);
        assert_eq!(parse(json).unwrap().hash, Trailer::Absent);
    }
}
