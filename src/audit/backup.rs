use serde::Serialize;

use super::AuditError;
use crate::bolt::{self, CheckReport, Db, Layout, MetaError};
use crate::container::{self, Trailer};
use crate::etcd::{EtcdMeta, META_BUCKET};

/// One backup, opened and walked once; every audit reads from this.
pub struct Backup<'a> {
    pub db: Db<'a>,
    pub layout: Layout<'a>,
    pub check: CheckReport,
    pub etcd_meta: EtcdMeta,
    pub integrity: Integrity,
}

#[derive(Clone, Debug, Serialize)]
pub struct Integrity {
    pub sha256_trailer: Trailer,
    pub meta: Vec<MetaState>,
    /// The first thousand, in `bbolt check` wording.
    pub bbolt_errors: Vec<String>,
    /// How many there were (a hostile file can have one per page).
    pub bbolt_errors_total: u64,
    /// Not errors: torn WAL tails and the like.
    pub notes: Vec<String>,
    /// Read by `--salvage`: carved leaf pages, not the tree (best effort).
    pub salvaged: bool,
    pub ok: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct MetaState {
    pub page: u8,
    pub valid: bool,
    pub txid: Option<u64>,
    pub error: Option<String>,
}

impl<'a> Backup<'a> {
    /// Opens the bbolt inside `bytes`, walks it and checks it. The trailer's
    /// SHA-256 runs beside the walk: both read the whole file.
    pub fn open(bytes: &'a [u8]) -> Result<Self, AuditError> {
        let (db_bytes, _) = container::split_trailer(bytes);
        let db = Db::open(db_bytes)?;
        let (trailer, (layout, check)) = rayon::join(
            || container::verify_trailer(bytes),
            || {
                let layout = db.layout();
                let check = bolt::check(&db, &layout);
                (layout, check)
            },
        );
        let etcd_meta = layout.bucket(META_BUCKET).map(EtcdMeta::read).unwrap_or_default();
        let meta: Vec<MetaState> = (0u8..2).map(|i| meta_state(i, &db.metas()[i as usize])).collect();
        let ok = trailer != Trailer::Mismatch && meta.iter().all(|m| m.valid) && check.errors.is_empty();
        let integrity = Integrity {
            sha256_trailer: trailer,
            meta,
            bbolt_errors: check.errors.list().to_vec(),
            bbolt_errors_total: check.errors.total(),
            notes: vec![],
            salvaged: false,
            ok,
        };
        Ok(Backup { db, layout, check, etcd_meta, integrity })
    }
}

fn meta_state(page: u8, meta: &Result<bolt::Meta, MetaError>) -> MetaState {
    match meta {
        Ok(m) => MetaState { page, valid: true, txid: Some(m.txid), error: None },
        Err(e) => MetaState { page, valid: false, txid: None, error: Some(e.to_string()) },
    }
}
