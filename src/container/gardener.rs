//! Gardener etcd-backup-restore delta snapshots (`Incr-…`): a JSON array of
//! `{"etcdEvent": mvccpb.Event, "time": …}` written by Go's encoding/json,
//! followed by the raw SHA-256 of those JSON bytes (etcd-bbolt.md §8).

use base64::Engine;
use std::borrow::Cow;

use serde::de::{DeserializeSeed, Error as _, IgnoredAny, SeqAccess, Visitor};
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
struct Wrapper<'a> {
    #[serde(rename = "etcdEvent", borrow)]
    etcd_event: Option<Event<'a>>,
}

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(rename = "type", default)]
    kind: i32,
    #[serde(borrow)]
    kv: Option<Kv<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Kv<'a> {
    #[serde(borrow)]
    key: Cow<'a, str>,
    #[serde(borrow)]
    value: Cow<'a, str>,
    create_revision: i64,
    mod_revision: i64,
    version: i64,
}

/// Decodes the events one at a time as the array is read: memory holds the
/// decoded keys and values (counted against `limit`), never the JSON's
/// base64 strings as well.
struct Events {
    limit: u64,
    decoded: u64,
    events: Vec<DeltaEvent>,
}

impl<'de> DeserializeSeed<'de> for &mut Events {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for &mut Events {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of etcd events")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let b64 = |s: &str| {
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| A::Error::custom(format!("base64: {e}")))
        };
        while let Some(wrapper) = seq.next_element::<Wrapper>()? {
            let Some(event) = wrapper.etcd_event else { continue };
            let kv = event.kv.unwrap_or_default();
            let (key, value) = (b64(&kv.key)?, b64(&kv.value)?);
            self.decoded += (key.len() + value.len()) as u64;
            if self.decoded > self.limit {
                return Err(A::Error::custom(TOO_LARGE));
            }
            self.events.push(DeltaEvent {
                delete: event.kind == 1,
                key,
                value,
                create_revision: kv.create_revision,
                mod_revision: kv.mod_revision,
                version: kv.version,
            });
        }
        Ok(())
    }
}

const TOO_LARGE: &str = "decoded events exceed the unpack limit";

/// Parses a delta snapshot whose decoded keys and values may take at most
/// `limit` bytes (`--max-unpacked-bytes`).
pub fn parse(bytes: &[u8], limit: u64) -> Result<Delta, ContainerError> {
    let layer = "gardener-delta";
    let corrupt =
        |e: serde_json::Error| ContainerError::Corrupt { layer, reason: format!("events JSON: {e}") };
    // Where the JSON ends (a pass that allocates nothing), then the events.
    let mut skim = serde_json::Deserializer::from_slice(bytes).into_iter::<IgnoredAny>();
    match skim.next() {
        Some(Ok(_)) => {}
        Some(Err(e)) => return Err(corrupt(e)),
        None => return Err(ContainerError::Corrupt { layer, reason: "empty".into() }),
    }
    let json = &bytes[..skim.byte_offset()];
    let mut events = Events { limit, decoded: 0, events: Vec::new() };
    match (&mut events).deserialize(&mut serde_json::Deserializer::from_slice(json)) {
        Ok(()) => {}
        Err(e) if e.to_string().starts_with(TOO_LARGE) => {
            return Err(ContainerError::TooLarge { layer, limit })
        }
        Err(e) => return Err(corrupt(e)),
    }
    let hash = match &bytes[json.len()..] {
        [] => Trailer::Absent,
        sum if sum.len() == 32 && Sha256::digest(json).as_slice() == sum => Trailer::Valid,
        _ => Trailer::Mismatch,
    };
    Ok(Delta { events: events.events, hash })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_and_hash() {
        let json = br#"[{"etcdEvent":{"kv":{"key":"L3JlZ2lzdHJ5L3NlY3JldHMvYS9i","create_revision":5,"mod_revision":7,"version":2,"value":"azhzAA=="}},"time":"2026-01-01T00:00:00Z"},{"etcdEvent":{"type":1,"kv":{"key":"L3JlZ2lzdHJ5L3NlY3JldHMvYS9i","mod_revision":8}},"time":"2026-01-01T00:00:01Z"}]"#;
        assert!(looks_like_delta(json));
        let with_sum = [json.as_slice(), Sha256::digest(json).as_slice()].concat();
        let d = parse(&with_sum, 1 << 20).unwrap();
        assert_eq!(d.hash, Trailer::Valid);
        assert_eq!(d.events.len(), 2);
        assert_eq!(
            (d.events[0].key.as_slice(), d.events[0].mod_revision),
            (&b"/registry/secrets/a/b"[..], 7)
        );
        assert!(d.events[1].delete && !d.events[0].delete);
        let mut bad = with_sum.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(parse(&bad, 1 << 20).unwrap().hash, Trailer::Mismatch);
        assert_eq!(parse(json, 1 << 20).unwrap().hash, Trailer::Absent);
        // 21 + 4 decoded bytes in the first event, 21 in the second.
        assert!(parse(json, 46).is_ok());
        assert!(matches!(parse(json, 45), Err(ContainerError::TooLarge { .. })));
        // Nesting a hostile file could use to exhaust the stack ends at serde_json's limit.
        let deep = format!(
            r#"[{{"etcdEvent":{{"kv":{{"key":{}1{}}}}}}}]"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(matches!(parse(deep.as_bytes(), 1 << 20), Err(ContainerError::Corrupt { .. })));
    }
}
