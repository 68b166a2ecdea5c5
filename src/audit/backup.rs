use std::sync::OnceLock;

use serde::Serialize;

use super::AuditError;
use crate::bolt::{self, CheckReport, Db, Layout, MetaError};
use crate::container::{self, Trailer};
use crate::etcd::{EtcdMeta, META_BUCKET};

/// One backup, opened and walked once; every audit reads from this.
pub struct Backup<'a> {
    /// The whole file, snapshot trailer included.
    bytes: &'a [u8],
    pub db: Db<'a>,
    pub layout: Layout<'a>,
    pub check: CheckReport,
    pub etcd_meta: EtcdMeta,
    meta: Vec<MetaState>,
    /// The trailer's verdict, hashed once, by whoever asks first.
    trailer: OnceLock<Trailer>,
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
    /// Opens the bbolt inside `bytes`, walks it and checks it. The trailer
    /// is not hashed yet: the SHA-256 of the whole file is one core's
    /// sequential read, so audits run [`Backup::trailer`] beside their own
    /// work (`rayon::join`), and [`Backup::integrity`] waits for it.
    pub fn open(bytes: &'a [u8]) -> Result<Self, AuditError> {
        let (db_bytes, _) = container::split_trailer(bytes);
        let db = Db::open(db_bytes)?;
        let layout = db.layout();
        let check = bolt::check(&db, &layout);
        let etcd_meta = layout.bucket(META_BUCKET).map(EtcdMeta::read).unwrap_or_default();
        let meta: Vec<MetaState> = (0u8..2).map(|i| meta_state(i, &db.metas()[i as usize])).collect();
        Ok(Backup { bytes, db, layout, check, etcd_meta, meta, trailer: OnceLock::new() })
    }

    /// The snapshot trailer's verdict (hashed on first use; a caller that
    /// asks meanwhile waits for that hash).
    pub fn trailer(&self) -> Trailer {
        *self.trailer.get_or_init(|| container::verify_trailer(self.bytes))
    }

    pub fn integrity(&self) -> Integrity {
        let trailer = self.trailer();
        let check = &self.check;
        Integrity {
            sha256_trailer: trailer,
            meta: self.meta.clone(),
            bbolt_errors: check.errors.list().to_vec(),
            bbolt_errors_total: check.errors.total(),
            notes: vec![],
            salvaged: false,
            ok: trailer != Trailer::Mismatch && self.meta.iter().all(|m| m.valid) && check.errors.is_empty(),
        }
    }
}

fn meta_state(page: u8, meta: &Result<bolt::Meta, MetaError>) -> MetaState {
    match meta {
        Ok(m) => MetaState { page, valid: true, txid: Some(m.txid), error: None },
        Err(e) => MetaState { page, valid: false, txid: None, error: Some(e.to_string()) },
    }
}
