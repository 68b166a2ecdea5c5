//! A zero-copy view of `mvccpb.KeyValue`: the scanner reads keys and values
//! straight from the map and copies only what it must decode. The prost type
//! [`super::KeyValue`] is the owned equivalent; tests hold the two together.

use prost::encoding::{decode_key, decode_varint, WireType};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyValueRef<'a> {
    pub key: &'a [u8],
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub value: &'a [u8],
    pub lease: i64,
}

impl<'a> KeyValueRef<'a> {
    pub fn decode(mut buf: &'a [u8]) -> Result<Self, prost::DecodeError> {
        let mut kv = KeyValueRef::default();
        while !buf.is_empty() {
            let (tag, wire) = decode_key(&mut buf)?;
            match (tag, wire) {
                (1 | 5, WireType::LengthDelimited) => {
                    let len = decode_varint(&mut buf)?;
                    if len > buf.len() as u64 {
                        return Err(prost::DecodeError::new("buffer underflow"));
                    }
                    let (field, rest) = buf.split_at(len as usize);
                    buf = rest;
                    if tag == 1 {
                        kv.key = field
                    } else {
                        kv.value = field
                    }
                }
                (2..=4 | 6, WireType::Varint) => {
                    let v = decode_varint(&mut buf)? as i64;
                    match tag {
                        2 => kv.create_revision = v,
                        3 => kv.mod_revision = v,
                        4 => kv.version = v,
                        _ => kv.lease = v,
                    }
                }
                (_, wire) => prost::encoding::skip_field(wire, tag, &mut buf, Default::default())?,
            }
        }
        Ok(kv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etcd::KeyValue;
    use prost::Message;

    #[test]
    fn matches_prost_and_the_upstream_fixture_bytes() {
        // etcd-bbolt.md §5: key foo, revision 2, version 1, value bar.
        let raw = hex::decode("0a03666f6f1002180220012a03626172").unwrap();
        let view = KeyValueRef::decode(&raw).unwrap();
        let owned = KeyValue::decode(raw.as_slice()).unwrap();
        assert_eq!((view.key, view.value), (&b"foo"[..], &b"bar"[..]));
        assert_eq!((view.create_revision, view.mod_revision, view.version), (2, 2, 1));
        assert_eq!(owned.key, view.key);
        assert_eq!(owned.mod_revision, view.mod_revision);
        let big = KeyValue { key: b"/k".to_vec(), value: vec![7; 300], lease: 99, ..Default::default() };
        let bytes = big.encode_to_vec();
        let view = KeyValueRef::decode(&bytes).unwrap();
        assert_eq!((view.value.len(), view.lease), (300, 99));
        assert!(KeyValueRef::decode(&bytes[..bytes.len() - 1]).is_err());
    }
}
