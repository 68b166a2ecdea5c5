//! Fuzz harnesses (feature `fuzzing`): one function per parser that reads
//! untrusted bytes. `fuzz/fuzz_targets/*` hand libFuzzer's input to these,
//! and the integration tests replay the committed corpora through the same
//! functions, so a crash found once stays fixed.
//!
//! Each harness only requires that parsing returns (no panic, no hang, no
//! unbounded allocation); results are dropped.

use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};

use crate::audit::{self, Backup, Input, Judge, ScanOptions, Scope};
use crate::container::{self, gardener, Content};
use crate::encryption::{EncryptionConfig, KmsV2Object};
use crate::etcd::wal;
use crate::source::Blob;

/// A harness: takes any bytes, must return.
pub type Harness = fn(&[u8]);

/// Every target, by the name of its `fuzz/fuzz_targets/<name>.rs`.
pub const TARGETS: &[(&str, Harness)] = &[
    ("bolt", bolt),
    ("bolt_struct", bolt_struct),
    ("scan", scan),
    ("wal", wal),
    ("wal_struct", wal_struct),
    ("gardener_delta", gardener_delta),
    ("container", container),
    ("config", config),
    ("envelope", envelope),
    ("object", object),
    ("kmsv2", kmsv2),
];

/// The fixture keyring (both configs of `testdata/scan`), built once, so
/// decryption and object decoding are reached.
fn judge() -> &'static (Judge, Scope) {
    static JUDGE: OnceLock<(Judge, Scope)> = OnceLock::new();
    JUDGE.get_or_init(|| {
        let configs: Vec<EncryptionConfig> = [
            ("config-current.yaml", &include_bytes!("../testdata/scan/config-current.yaml")[..]),
            ("config-old.yaml", &include_bytes!("../testdata/scan/config-old.yaml")[..]),
        ]
        .iter()
        .map(|(name, text)| EncryptionConfig::parse(name, text).expect("fixture configs are valid"))
        .collect();
        let scope = Scope::new(["*.*"], &configs);
        (Judge::new(configs, vec![]), scope)
    })
}

/// bbolt open, tree walk, check, inspect and carving of every unreachable page.
pub fn bolt(data: &[u8]) {
    let Ok(backup) = Backup::open(data) else { return };
    let _ = audit::inspect(&backup, vec![]);
    for page in backup.db.unreachable_pages(&backup.layout.reachable) {
        let _ = backup.db.carve_leaf(page);
    }
}

/// The whole scan of a byte slice, history and residue included; a file
/// that does not open is salvaged (`--salvage`).
pub fn scan(data: &[u8]) {
    let (judge, scope) = judge();
    let opts = ScanOptions { history: true, residue: true, ..ScanOptions::default() };
    let _ = match Backup::open(data) {
        Ok(backup) => audit::scan(Input::Bolt { backup: &backup, wal: None }, vec![], judge, scope, &opts),
        Err(e) => {
            audit::scan(Input::Salvage { bytes: data, why: e.to_string() }, vec![], judge, scope, &opts)
        }
    };
}

/// A real etcd 3.5 snapshot with values in every verdict class (under the
/// fixture keyring) that the structure-aware target mutates.
const SEED_DB: &[u8] = include_bytes!("../testdata/etcd35-scan.snapshot.db");
const PAGE: usize = 4096;

/// One structure-aware change to a bbolt file: a field of a page header, an
/// element header or a meta, or any word of a page. Metas are resealed
/// afterwards, so mutations get past their checksums.
#[derive(Arbitrary, Debug)]
pub enum BoltEdit {
    PageHeader { page: u16, field: PageField, value: u64 },
    Element { page: u16, index: u8, field: ElementField, value: u32 },
    Meta { meta: bool, field: MetaField, value: u64 },
    Word { page: u16, offset: u16, value: u64 },
    Truncate { pages: u16 },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum PageField {
    Id,
    Flags,
    Count,
    Overflow,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum ElementField {
    FlagsOrPos,
    Pos,
    KeySize,
    ValueSize,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum MetaField {
    PageSize,
    Flags,
    Root,
    Freelist,
    HighWater,
    Txid,
}

fn put(b: &mut [u8], at: usize, value: u64, width: usize) {
    if let Some(dst) = b.get_mut(at..at + width) {
        dst.copy_from_slice(&value.to_le_bytes()[..width]);
    }
}

/// bbolt's meta checksum: FNV-1a 64 over the 56 bytes before it.
fn reseal(b: &mut [u8], meta: usize) {
    let at = meta * PAGE + 16;
    let Some(body) = b.get(at..at + 56) else { return };
    let sum =
        body.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3));
    put(b, at + 56, sum, 8);
}

/// Applies the edits `data` describes to `seed` (a bbolt file, trailer
/// included or not) and reseals both metas.
pub fn mutate_bolt(seed: &[u8], data: &[u8]) -> Vec<u8> {
    let edits = Vec::<BoltEdit>::arbitrary_take_rest(Unstructured::new(data)).unwrap_or_default();
    let mut b = seed.to_vec();
    let pages = (b.len() / PAGE).max(1);
    for edit in edits.iter().take(64) {
        match *edit {
            BoltEdit::PageHeader { page, field, value } => {
                let at = (usize::from(page) % pages) * PAGE;
                match field {
                    PageField::Id => put(&mut b, at, value, 8),
                    PageField::Flags => put(&mut b, at + 8, value, 2),
                    PageField::Count => put(&mut b, at + 10, value, 2),
                    PageField::Overflow => put(&mut b, at + 12, value, 4),
                }
            }
            BoltEdit::Element { page, index, field, value } => {
                // Leaf elements are 16 bytes (flags, pos, ksize, vsize); branch
                // elements 16 too (pos, ksize, pgid): the offsets overlap.
                let at = (usize::from(page) % pages) * PAGE + 16 + usize::from(index) * 16;
                let off = match field {
                    ElementField::FlagsOrPos => 0,
                    ElementField::Pos => 4,
                    ElementField::KeySize => 8,
                    ElementField::ValueSize => 12,
                };
                put(&mut b, at + off, u64::from(value), 4);
            }
            BoltEdit::Meta { meta, field, value } => {
                let at = usize::from(meta) * PAGE + 16;
                match field {
                    MetaField::PageSize => put(&mut b, at + 8, value, 4),
                    MetaField::Flags => put(&mut b, at + 12, value, 4),
                    MetaField::Root => put(&mut b, at + 16, value, 8),
                    MetaField::Freelist => put(&mut b, at + 32, value, 8),
                    MetaField::HighWater => put(&mut b, at + 40, value, 8),
                    MetaField::Txid => put(&mut b, at + 48, value, 8),
                }
            }
            BoltEdit::Word { page, offset, value } => {
                let at = (usize::from(page) % pages) * PAGE + usize::from(offset) % PAGE;
                put(&mut b, at, value, 8);
            }
            BoltEdit::Truncate { pages: keep } => b.truncate(usize::from(keep).max(2) * PAGE),
        }
    }
    reseal(&mut b, 0);
    reseal(&mut b, 1);
    b
}

/// Structure-aware edits of a real snapshot, then the whole scan.
pub fn bolt_struct(data: &[u8]) {
    scan(&mutate_bolt(SEED_DB, data));
}

/// One change to a frame of a real WAL segment: its length field, its
/// padding bits, a byte of its record, or its record type; the CRC chain
/// is recomputed afterwards unless the edit says not to.
#[derive(Arbitrary, Debug)]
pub struct WalEdit {
    pub frame: u16,
    pub change: WalChange,
    pub keep_crc: bool,
}

#[derive(Arbitrary, Debug)]
pub enum WalChange {
    Length(u64),
    Padding(u8),
    Byte { offset: u16, value: u8 },
    Type(i64),
    Drop,
}

/// Applies the edits `data` describes to the frames of `seed` (a WAL
/// segment) and re-chains the CRCs of records that still decode.
pub fn mutate_wal(seed: &[u8], data: &[u8]) -> Vec<u8> {
    use prost::Message;

    use crate::proto::etcdwal::Record;
    // Split the seed into (length field, record bytes, padding) frames.
    let mut frames: Vec<(u64, Vec<u8>, usize)> = Vec::new();
    let mut off = 0;
    while let Some(field) = seed.get(off..off + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap())) {
        if field == 0 {
            break;
        }
        let len = (field & 0x00FF_FFFF_FFFF_FFFF) as usize;
        let pad = if field >> 63 == 1 { ((field >> 56) & 7) as usize } else { 0 };
        let Some(body) = seed.get(off + 8..off + 8 + len) else { break };
        frames.push((field, body.to_vec(), pad));
        off += 8 + len + pad;
    }
    let edits = Vec::<WalEdit>::arbitrary_take_rest(Unstructured::new(data)).unwrap_or_default();
    let (mut keep_crc, mut resized) = (vec![false; frames.len()], vec![false; frames.len()]);
    for edit in edits.iter().take(32) {
        if frames.is_empty() {
            break;
        }
        let i = usize::from(edit.frame) % frames.len();
        keep_crc[i] |= edit.keep_crc;
        let frame = &mut frames[i];
        match edit.change {
            WalChange::Length(v) => frame.0 = v,
            WalChange::Padding(bits) => frame.0 = (frame.0 & 0x00FF_FFFF_FFFF_FFFF) | (u64::from(bits) << 56),
            WalChange::Byte { offset, value } => {
                if !frame.1.is_empty() {
                    let at = usize::from(offset) % frame.1.len();
                    frame.1[at] = value;
                }
            }
            WalChange::Type(t) => {
                if let Ok(mut rec) = Record::decode(frame.1.as_slice()) {
                    rec.r#type = t;
                    frame.1 = rec.encode_to_vec();
                    resized[i] = true;
                }
            }
            WalChange::Drop => {
                frame.1.clear();
                resized[i] = true;
            }
        }
    }
    let mut crc = 0u32;
    let mut out = Vec::new();
    for (((field, mut body, pad), keep), mut resized) in frames.into_iter().zip(keep_crc).zip(resized) {
        if let Ok(mut rec) = Record::decode(body.as_slice()) {
            if rec.r#type == 4 {
                crc = rec.crc;
            } else {
                let link = crc32c::crc32c_append(crc, &rec.data);
                if !keep && rec.crc != link {
                    rec.crc = link;
                    body = rec.encode_to_vec();
                    resized = true;
                }
                crc = link;
            }
        }
        // A re-encoded record gets its true length; an edited length field stays.
        let field = if resized { (field & !0x00FF_FFFF_FFFF_FFFF) | body.len() as u64 } else { field };
        out.extend_from_slice(&field.to_le_bytes());
        out.extend_from_slice(&body);
        out.extend(std::iter::repeat_n(0, pad));
    }
    out
}

/// One WAL segment.
pub fn wal(data: &[u8]) {
    let _ = wal::read_wal(data);
}

/// One WAL record as the structure-aware target writes it: framed and, unless
/// `break_crc`, with the right link in the CRC chain.
#[derive(Arbitrary, Debug)]
pub struct WalRecord {
    pub kind: WalKind,
    pub data: Vec<u8>,
    pub break_crc: bool,
    pub pad_bits: u8,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum WalKind {
    Crc,
    Entry,
    Metadata,
    State,
    Snapshot,
    Other(i64),
}

/// Frames `records` into a segment with a valid CRC chain, then reads it.
pub fn wal_struct(data: &[u8]) {
    use prost::Message;

    use crate::proto::etcdwal::Record;
    let Ok(records) = Vec::<WalRecord>::arbitrary_take_rest(Unstructured::new(data)) else { return };
    let mut log = Vec::new();
    let mut crc = 0u32;
    for r in records.iter().take(256) {
        let kind = match r.kind {
            WalKind::Metadata => 1,
            WalKind::Entry => 2,
            WalKind::State => 3,
            WalKind::Crc => 4,
            WalKind::Snapshot => 5,
            WalKind::Other(k) => k,
        };
        let link = if kind == 4 { crc } else { crc32c::crc32c_append(crc, &r.data) };
        let record =
            Record { r#type: kind, crc: if r.break_crc { !link } else { link }, data: r.data.clone() };
        crc = link;
        let body = record.encode_to_vec();
        let pad = (8 - body.len() % 8) % 8;
        let flag = if pad > 0 || r.pad_bits & 0x80 != 0 {
            (1 << 63) | ((pad as u64 | u64::from(r.pad_bits & 7)) << 56)
        } else {
            0
        };
        log.extend_from_slice(&(body.len() as u64 | flag).to_le_bytes());
        log.extend_from_slice(&body);
        log.extend(std::iter::repeat_n(0, pad));
    }
    let _ = wal::read_wal(&log);
}

/// A Gardener delta snapshot, parsed and scanned.
pub fn gardener_delta(data: &[u8]) {
    let Ok(delta) = gardener::parse(data, 1 << 20) else { return };
    let (judge, scope) = judge();
    let opts = ScanOptions { history: true, ..ScanOptions::default() };
    let input = Input::Delta { delta: &delta, size_bytes: data.len() as u64 };
    let _ = audit::scan(input, vec![], judge, scope, &opts);
}

/// Container detection and unwrapping with a 1 MiB unpack budget; the
/// first byte picks the name (`.Z` reaches Go LZW, which has no magic).
pub fn container(data: &[u8]) {
    let Some((&pick, bytes)) = data.split_first() else { return };
    let name = if pick & 1 == 1 { "Full-00000000-00000001-1.Z" } else { "backup" };
    let Ok(blob) = Blob::copy_of(bytes) else { return };
    let mut budget = 1 << 20;
    if let Ok(unwrapped) = container::unwrap(blob, name, &mut budget, 0, &|_, _| {}) {
        if let Content::Directory(dir) = unwrapped.content {
            let _ = crate::source::discover(dir.path());
        }
    }
}

/// An EncryptionConfiguration, YAML or JSON.
pub fn config(data: &[u8]) {
    let _ = EncryptionConfig::parse("fuzz.yaml", data);
}

/// Envelope parsing and every provider's decrypt, through the keyring: the
/// first byte says how much of the rest is the etcd key (the AAD).
pub fn envelope(data: &[u8]) {
    let Some((&split, rest)) = data.split_first() else { return };
    let (aad, value) = rest.split_at(usize::from(split).min(rest.len()));
    let (judge, _) = judge();
    let _ = judge.keyring.read(value, aad, |plain| crate::k8s::decode_object(plain).1.ok_or("not an object"));
}

/// Protobuf, JSON and CBOR object heads.
pub fn object(data: &[u8]) {
    let _ = crate::k8s::decode_object(data);
    // The times `taken_at` reads: a Lease's renewTime, an Event's times.
    let _ = crate::k8s::lease_renew_seconds(data);
    let _ = crate::k8s::event_seconds(data);
}

/// A KMS v2 `EncryptedObject`.
pub fn kmsv2(data: &[u8]) {
    let _ = KmsV2Object::decode(data);
}
