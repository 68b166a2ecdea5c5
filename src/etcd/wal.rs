//! The etcd write-ahead log (`member/wal/*.wal`, etcd-bbolt.md §7): frames,
//! the CRC-32C chain, raft entries and the puts inside them, including puts
//! wrapped in transactions (how kube-apiserver writes). Entries are
//! proposals: a txn whose compare failed still exposes its values.

use prost::Message;

use crate::proto::etcdwal as pb;

const METADATA_TYPE: i64 = 1;
const ENTRY_TYPE: i64 = 2;
const CRC_TYPE: i64 = 4;
const NORMAL_ENTRY: i32 = 0;
const MAX_TXN_DEPTH: usize = 16;

/// One put found in the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalPut {
    pub raft_index: u64,
    pub term: u64,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// What one WAL file holds, and where reading it stopped early.
#[derive(Debug, Default)]
pub struct WalFile {
    pub puts: Vec<WalPut>,
    pub records: u64,
    /// Torn or corrupt tails and CRC breaks: integrity notes, not fatal.
    pub notes: Vec<String>,
    /// The etcd cluster ID of the Metadata record (every segment starts with one).
    pub cluster_id: Option<u64>,
}

/// Reads one segment. The CRC chain starts at the segment's first Crc record,
/// so segments can be read alone (old ones are purged by `--max-wals`).
pub fn read_wal(bytes: &[u8]) -> WalFile {
    let mut wal = WalFile::default();
    let mut crc: Option<u32> = None;
    let mut off = 0usize;
    while off + 8 <= bytes.len() {
        let len_field = u64::from_le_bytes(bytes[off..off + 8].try_into().unwrap());
        if len_field == 0 {
            break; // end of data (preallocated zero tail)
        }
        let len = (len_field & 0x00FF_FFFF_FFFF_FFFF) as usize;
        let pad = if len_field >> 63 == 1 { ((len_field >> 56) & 7) as usize } else { 0 };
        let start = off + 8;
        let Some(record) =
            start.checked_add(len).filter(|&end| end + pad <= bytes.len()).map(|end| &bytes[start..end])
        else {
            wal.notes.push(format!("torn record at offset {off}: {len} bytes announced, file ends first"));
            break;
        };
        off = start + len + pad;
        let rec = match pb::Record::decode(record) {
            Ok(rec) => rec,
            Err(e) => {
                wal.notes.push(format!("corrupt record at offset {}: {e}", start - 8));
                break;
            }
        };
        wal.records += 1;
        if rec.r#type == CRC_TYPE {
            crc = Some(rec.crc);
            continue;
        }
        if let Some(running) = crc {
            let next = crc32c::crc32c_append(running, &rec.data);
            if next != rec.crc {
                wal.notes.push(format!("CRC mismatch at offset {}: the log is corrupt from here", start - 8));
                break;
            }
            crc = Some(next);
        }
        if rec.r#type == ENTRY_TYPE {
            collect_entry(&rec.data, &mut wal.puts);
        } else if rec.r#type == METADATA_TYPE {
            wal.cluster_id =
                pb::Metadata::decode(rec.data.as_slice()).ok().map(|m| m.cluster_id).filter(|&id| id != 0);
        }
    }
    wal
}

fn collect_entry(data: &[u8], puts: &mut Vec<WalPut>) {
    let Ok(entry) = pb::Entry::decode(data) else { return };
    if entry.r#type != NORMAL_ENTRY || entry.data.is_empty() {
        return;
    }
    // Data that is not an InternalRaftRequest is a v2 request: no v3 keys.
    let Ok(req) = pb::InternalRaftRequest::decode(entry.data.as_slice()) else { return };
    let mut push = |p: pb::PutRequest| {
        puts.push(WalPut { raft_index: entry.index, term: entry.term, key: p.key, value: p.value })
    };
    if let Some(put) = req.put {
        push(put);
    }
    if let Some(txn) = req.txn {
        txn_puts(txn, 0, &mut push);
    }
}

fn txn_puts(txn: pb::TxnRequest, depth: usize, push: &mut impl FnMut(pb::PutRequest)) {
    if depth > MAX_TXN_DEPTH {
        return;
    }
    for op in txn.success.into_iter().chain(txn.failure) {
        if let Some(put) = op.request_put {
            push(put);
        }
        if let Some(inner) = op.request_txn {
            txn_puts(inner, depth + 1, push);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(rec: &pb::Record) -> Vec<u8> {
        let body = rec.encode_to_vec();
        let pad = (8 - body.len() % 8) % 8;
        let len_field = body.len() as u64 | if pad > 0 { (1 << 63) | ((pad as u64) << 56) } else { 0 };
        [len_field.to_le_bytes().as_slice(), &body, &vec![0; pad]].concat()
    }

    #[test]
    fn txn_puts_and_crc_chain() {
        let put =
            pb::PutRequest { key: b"/registry/secrets/a/b".to_vec(), value: b"k8s\0x".to_vec(), lease: 0 };
        let txn = pb::TxnRequest {
            success: vec![pb::RequestOp { request_put: Some(put), request_txn: None }],
            failure: vec![],
        };
        let req = pb::InternalRaftRequest { put: None, txn: Some(txn) }.encode_to_vec();
        let entry = pb::Entry { r#type: 0, term: 2, index: 7, data: req }.encode_to_vec();
        let crc = crc32c::crc32c_append(0, &entry);
        let log = [
            frame(&pb::Record { r#type: CRC_TYPE, crc: 0, data: vec![] }),
            frame(&pb::Record { r#type: ENTRY_TYPE, crc, data: entry.clone() }),
            vec![0; 64],
        ]
        .concat();
        let wal = read_wal(&log);
        assert_eq!(wal.notes, Vec::<String>::new());
        assert_eq!(wal.puts.len(), 1);
        assert_eq!((wal.puts[0].raft_index, wal.puts[0].term), (7, 2));
        let bad = [
            frame(&pb::Record { r#type: CRC_TYPE, crc: 0, data: vec![] }),
            frame(&pb::Record { r#type: ENTRY_TYPE, crc: crc ^ 1, data: entry }),
        ]
        .concat();
        let wal = read_wal(&bad);
        assert!(wal.puts.is_empty() && wal.notes[0].contains("CRC mismatch"));
        assert!(read_wal(&log[..30]).notes[0].contains("torn"));
    }

    /// A record that claims more bytes than any file has: a torn tail, read
    /// without allocating what it claims.
    #[test]
    fn absurd_record_lengths_are_torn_tails() {
        for claimed in [u64::MAX >> 8, 1 << 40, 9] {
            let mut log = (claimed | (1 << 63)).to_le_bytes().to_vec();
            log.extend_from_slice(&[0xAB; 8]);
            let wal = read_wal(&log);
            assert!(wal.puts.is_empty());
            assert!(wal.notes[0].contains("torn record at offset 0"), "{:?}", wal.notes);
        }
    }

    #[test]
    fn upstream_test_new_wal_crc_chain() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/upstream/TestNew.wal");
        let wal = read_wal(&std::fs::read(path).unwrap());
        assert_eq!(wal.records, 3, "Crc, Metadata, Snapshot");
        assert!(wal.notes.is_empty(), "{:?}", wal.notes);
        assert!(wal.puts.is_empty());
    }
}
