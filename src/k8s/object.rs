//! Identity encodings of a stored object, decoded only as far as an audit
//! needs: kind, apiVersion, metadata name/namespace, for Secrets the type,
//! and for Secrets and ConfigMaps the data key names. Values are never
//! decoded or copied.

use std::collections::BTreeMap;

use prost::Message;
use serde::{de::IgnoredAny, Deserialize, Serialize};

use super::pb;

const PROTOBUF_MAGIC: &[u8] = b"k8s\x00";
const CBOR_SELF_DESCRIBE: &[u8] = &[0xd9, 0xd9, 0xf7];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Protobuf,
    Json,
    Cbor,
    Unrecognized,
}

/// What a stored object says about itself. `None` fields were absent or the
/// bytes did not decode.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectInfo {
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub secret_type: Option<String>,
    /// The names of `data` (and a ConfigMap's `binaryData`) entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_keys: Vec<String>,
    /// `metadata.uid` (the cluster's identity when read from kube-system).
    #[serde(skip)]
    pub uid: Option<String>,
}

/// Recognises the encoding and decodes the object head. An object that does
/// not decode returns its encoding with `None` info.
pub fn decode_object(bytes: &[u8]) -> (Encoding, Option<ObjectInfo>) {
    if let Some(rest) = bytes.strip_prefix(PROTOBUF_MAGIC) {
        (Encoding::Protobuf, decode_protobuf(rest))
    } else if bytes.starts_with(CBOR_SELF_DESCRIBE) {
        (Encoding::Cbor, decode_cbor(bytes))
    } else if bytes.trim_ascii_start().starts_with(b"{") {
        (Encoding::Json, decode_json(bytes))
    } else {
        (Encoding::Unrecognized, None)
    }
}

/// `runtime.Unknown` read in place: its TypeMeta, and `raw` borrowed from
/// `bytes` (decoding the message would copy the whole object). Accepts and
/// rejects exactly what `pb::Unknown::decode` does.
fn unknown(mut buf: &[u8]) -> Option<(pb::TypeMeta, &[u8])> {
    use prost::encoding::{decode_key, decode_varint, skip_field, DecodeContext, WireType};
    let (mut type_meta, mut raw) = (pb::TypeMeta::default(), &[][..]);
    while !buf.is_empty() {
        let (tag, wire) = decode_key(&mut buf).ok()?;
        if !(1..=4).contains(&tag) {
            skip_field(wire, tag, &mut buf, DecodeContext::default()).ok()?;
            continue;
        }
        if wire != WireType::LengthDelimited {
            return None;
        }
        let len = usize::try_from(decode_varint(&mut buf).ok()?).ok()?;
        let (field, rest) = buf.split_at_checked(len)?;
        buf = rest;
        match tag {
            1 => type_meta.merge(field).ok()?,
            2 => raw = field,
            _ => drop(std::str::from_utf8(field).ok()?),
        }
    }
    Some((type_meta, raw))
}

fn decode_protobuf(bytes: &[u8]) -> Option<ObjectInfo> {
    let (type_meta, raw) = unknown(bytes)?;
    let mut info = ObjectInfo {
        api_version: non_empty(type_meta.api_version),
        kind: non_empty(type_meta.kind),
        ..ObjectInfo::default()
    };
    let metadata = if info.kind.as_deref() == Some("Secret") {
        let secret = pb::SecretHead::decode(raw).ok()?;
        info.secret_type = non_empty(secret.r#type);
        info.data_keys = secret.data.into_iter().map(|d| d.key).collect();
        secret.metadata
    } else if info.kind.as_deref() == Some("ConfigMap") {
        let map = pb::ConfigMapHead::decode(raw).ok()?;
        info.data_keys = map.data.into_iter().chain(map.binary_data).map(|d| d.key).collect();
        map.metadata
    } else {
        pb::ObjectHead::decode(raw).ok()?.metadata
    };
    let metadata = metadata?;
    info.name = non_empty(metadata.name);
    info.namespace = non_empty(metadata.namespace);
    info.uid = non_empty(metadata.uid);
    Some(info)
}

/// The head of a JSON or CBOR object; `data` values are never read.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Head {
    api_version: Option<String>,
    kind: Option<String>,
    metadata: Option<Meta>,
    #[serde(rename = "type")]
    secret_type: Option<String>,
    data: Option<BTreeMap<String, IgnoredAny>>,
    binary_data: Option<BTreeMap<String, IgnoredAny>>,
}

#[derive(Deserialize)]
struct Meta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
}

impl Head {
    fn info(self) -> ObjectInfo {
        let (name, namespace, uid) =
            self.metadata.map_or((None, None, None), |m| (m.name, m.namespace, m.uid));
        let is_secret = self.kind.as_deref() == Some("Secret");
        let has_data = is_secret || self.kind.as_deref() == Some("ConfigMap");
        let names = |m: Option<BTreeMap<String, IgnoredAny>>| m.into_iter().flat_map(BTreeMap::into_keys);
        ObjectInfo {
            api_version: self.api_version,
            kind: self.kind,
            name,
            namespace,
            secret_type: self.secret_type.filter(|_| is_secret),
            data_keys: match has_data {
                true => names(self.data).chain(names(self.binary_data)).collect(),
                false => vec![],
            },
            uid,
        }
    }
}

fn decode_json(bytes: &[u8]) -> Option<ObjectInfo> {
    serde_json::from_slice::<Head>(bytes).ok().map(Head::info)
}

/// CBOR (with or without the self-describe tag) through the same typed head
/// as JSON: Secret values are skipped, never copied.
fn decode_cbor(bytes: &[u8]) -> Option<ObjectInfo> {
    ciborium::from_reader::<Head, _>(bytes).ok().map(Head::info)
}

/// The `spec.renewTime` of a protobuf Lease, in Unix seconds (Leases are
/// stored as protobuf; a JSON one yields `None`).
pub fn lease_renew_seconds(bytes: &[u8]) -> Option<i64> {
    let (_, raw) = unknown(bytes.strip_prefix(PROTOBUF_MAGIC)?)?;
    let lease = pb::LeaseHead::decode(raw).ok()?;
    lease.spec?.renew_time.map(|t| t.seconds).filter(|s| *s > 0)
}

/// The newest time a protobuf Event carries (lastTimestamp, eventTime or
/// its creationTimestamp), in Unix seconds.
pub fn event_seconds(bytes: &[u8]) -> Option<i64> {
    let (_, raw) = unknown(bytes.strip_prefix(PROTOBUF_MAGIC)?)?;
    let event = pb::EventHead::decode(raw).ok()?;
    let created = event.metadata.and_then(|m| m.creation_timestamp);
    [event.last_timestamp, event.event_time, created]
        .into_iter()
        .flatten()
        .map(|t| t.seconds)
        .max()
        .filter(|s| *s > 0)
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_maps_give_data_and_binary_data_names_other_kinds_none() {
        let (_, info) = decode_object(
            br#"{"kind":"ConfigMap","metadata":{"name":"a"},"data":{"DB_PASSWORD":"x"},"binaryData":{"k.bin":"AA=="},"type":"t"}"#,
        );
        let info = info.unwrap();
        assert_eq!(
            (info.data_keys, info.secret_type),
            (vec!["DB_PASSWORD".to_string(), "k.bin".to_string()], None)
        );
        let (_, pod) = decode_object(br#"{"kind":"Pod","metadata":{"name":"a"},"data":{"x":"y"}}"#);
        assert!(pod.unwrap().data_keys.is_empty());
    }

    #[test]
    fn json_secret_head_without_values() {
        let (enc, info) = decode_object(
            br#"{"kind":"Secret","apiVersion":"v1","metadata":{"name":"a","namespace":"b"},"data":{"pw":"c2VjcmV0"},"type":"Opaque"}"#,
        );
        let info = info.unwrap();
        assert_eq!(enc, Encoding::Json);
        assert_eq!((info.name.as_deref(), info.namespace.as_deref()), (Some("a"), Some("b")));
        assert_eq!(info.data_keys, vec!["pw".to_string()]);
        assert_eq!(info.secret_type.as_deref(), Some("Opaque"));
    }

    /// The in-place `runtime.Unknown` reader agrees with the generated
    /// decoder on crafted wire forms and on every input of the `object`
    /// fuzzing corpus.
    #[test]
    fn unknown_in_place_agrees_with_prost() {
        let prost = |b: &[u8]| pb::Unknown::decode(b).ok().map(|u| (u.type_meta.unwrap_or_default(), u.raw));
        let ours = |b: &[u8]| unknown(b).map(|(t, raw)| (t, raw.to_vec()));
        let crafted: [&[u8]; 10] = [
            b"",
            b"\x0a\x04\x0a\x02v1\x12\x03abc\x1a\x00\x22\x00",
            b"\x12\x01a\x12\x02bc\x0a\x02\x12\x01S\x0a\x02\x0a\x01x",
            b"\x08\x01",
            b"\x10\x01",
            b"\x1a\x01\xff",
            b"\x28\x05\x12\x01z\x35\x01\x02\x03\x04",
            b"\x12\x05ab",
            b"\x12\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
            b"\x00\x01",
        ];
        for b in crafted {
            assert_eq!(ours(b), prost(b), "{b:?}");
        }
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/object");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            let b = bytes.strip_prefix(PROTOBUF_MAGIC).unwrap_or(&bytes);
            assert_eq!(ours(b), prost(b), "{b:?}");
            seen += 1;
        }
        assert!(seen > 100, "the object corpus has {seen} inputs");
    }

    #[test]
    fn unrecognized_and_broken() {
        assert_eq!(decode_object(b"\x00\x01garbage"), (Encoding::Unrecognized, None));
        assert_eq!(decode_object(b"k8s\x00\xff\xff\xff").0, Encoding::Protobuf);
        assert_eq!(decode_object(b"k8s\x00\xff\xff\xff").1, None);
        assert_eq!(decode_object(b"{not json").1, None);
    }

    #[test]
    fn cbor_head() {
        let mut buf = vec![0xd9, 0xd9, 0xf7];
        let doc = ciborium::Value::Map(vec![
            ("kind".into(), "Panda".into()),
            ("metadata".into(), ciborium::Value::Map(vec![("name".into(), "p1".into())])),
        ]);
        ciborium::into_writer(&doc, &mut buf).unwrap();
        let (enc, info) = decode_object(&buf);
        assert_eq!(enc, Encoding::Cbor);
        assert_eq!(info.unwrap().name.as_deref(), Some("p1"));
        // A Secret: type and data key names, values skipped.
        let mut buf = vec![0xd9, 0xd9, 0xf7];
        let doc = ciborium::Value::Map(vec![
            ("kind".into(), "Secret".into()),
            ("type".into(), "Opaque".into()),
            ("metadata".into(), ciborium::Value::Map(vec![("name".into(), "s".into())])),
            (
                "data".into(),
                ciborium::Value::Map(vec![("pw".into(), ciborium::Value::Bytes(b"hunter2".to_vec()))]),
            ),
        ]);
        ciborium::into_writer(&doc, &mut buf).unwrap();
        let info = decode_object(&buf).1.unwrap();
        assert_eq!((info.secret_type.as_deref(), info.data_keys), (Some("Opaque"), vec!["pw".to_string()]));
    }
}
