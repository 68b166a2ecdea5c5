//! What the catalog means, written once over two tables of JSON rows,
//! whichever store holds them (the redb file or PostgreSQL):
//! - `backups`: content SHA-256 (hex) → [`BackupRecord`];
//! - `sources`: source → [`Sighting`] (the content it held, its ETag/mtime,
//!   keyring and tool version): what incremental sweeps ask.
//!
//! A record lives as long as some source holds its content: when a source
//! is forgotten, or re-recorded with other content, a record no source holds
//! any more is removed. A store runs each closure in one transaction.

use super::record::Sighting;
use super::{BackupRecord, CatalogError, Forgotten};

/// The catalog's two tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Table {
    Backups,
    Sources,
}

/// What [`ReadTables::each`] calls with each row's key and JSON bytes.
pub(super) type OnRow<'a> = dyn FnMut(&str, &[u8]) -> Result<(), CatalogError> + 'a;

/// One read transaction: rows by key, and every row. The typed reads are
/// provided on top.
pub(super) trait ReadTables {
    /// The catalog, as error messages name it.
    fn at(&self) -> &str;
    fn get(&mut self, table: Table, key: &str) -> Result<Option<Vec<u8>>, CatalogError>;
    /// Every row of a table, one at a time as the store yields it (never
    /// all at once), with its key.
    fn each(&mut self, table: Table, row: &mut OnRow) -> Result<(), CatalogError>;

    fn backup(&mut self, sha256: &str) -> Result<Option<BackupRecord>, CatalogError> {
        let row = self.get(Table::Backups, sha256)?;
        row.map(|bytes| decode(self.at(), sha256, &bytes)).transpose()
    }

    fn sighting(&mut self, source: &str) -> Result<Option<Sighting>, CatalogError> {
        let row = self.get(Table::Sources, source)?;
        row.map(|bytes| decode(self.at(), source, &bytes)).transpose()
    }

    fn backups(&mut self) -> Result<Vec<BackupRecord>, CatalogError> {
        let mut out = Vec::new();
        self.each_backup(&mut |r| out.push(r))?;
        Ok(out)
    }

    /// Every record turned by `f` as it is read: the records are never all
    /// in memory at once (a fleet's catalog may hold hundreds of thousands).
    fn each_backup(&mut self, f: &mut dyn FnMut(BackupRecord)) -> Result<(), CatalogError> {
        let at = self.at().to_string();
        self.each(Table::Backups, &mut |k, v| {
            f(decode(&at, k, v)?);
            Ok(())
        })
    }

    fn sightings(&mut self) -> Result<Vec<(String, Sighting)>, CatalogError> {
        let (at, mut out) = (self.at().to_string(), Vec::new());
        self.each(Table::Sources, &mut |k, v| {
            out.push((k.to_string(), decode(&at, k, v)?));
            Ok(())
        })?;
        Ok(out)
    }
}

/// One write transaction. The catalog's rules (records merge by content,
/// sources move between contents, forgetting) are provided on top.
pub(super) trait WriteTables: ReadTables {
    fn put(&mut self, table: Table, key: &str, value: &[u8]) -> Result<(), CatalogError>;
    fn remove(&mut self, table: Table, key: &str) -> Result<bool, CatalogError>;
    /// This worker recorded `source` (content `sha256`): a store with work
    /// claims ends the claim and logs the audit, in the same transaction.
    fn audited(&mut self, _source: &str, _sha256: &str) -> Result<(), CatalogError> {
        Ok(())
    }

    fn put_backup(&mut self, r: &BackupRecord) -> Result<(), CatalogError> {
        self.put(Table::Backups, &r.sha256, &encode(r))
    }

    /// Records an audited backup: it replaces the record of the same content,
    /// keeping every source that held it; its `source` also stops pointing at
    /// content it held before.
    fn record(&mut self, r: &BackupRecord) -> Result<(), CatalogError> {
        let mut r = r.clone();
        r.sha256.make_ascii_lowercase();
        if let Some(prev) = self.sighting(&r.source)? {
            if prev.sha256 != r.sha256 {
                self.detach(&prev.sha256, &r.source)?;
            }
        }
        let mut sources = self.backup(&r.sha256)?.map(|old| old.sources).unwrap_or_default();
        sources.push(r.source.clone());
        sources.sort();
        sources.dedup();
        r.sources = sources;
        self.put_backup(&r)?;
        self.put(Table::Sources, &r.source, &encode(&Sighting::of(&r)))?;
        self.audited(&r.source, &r.sha256)
    }

    /// A record from another catalog: its sources join those this one has.
    fn import_backup(&mut self, mut r: BackupRecord) -> Result<(), CatalogError> {
        super::validate(&r)?;
        r.sha256.make_ascii_lowercase();
        if let Some(mine) = self.backup(&r.sha256)? {
            let newer = if mine.audited_at > r.audited_at { mine.clone() } else { r.clone() };
            let mut sources: Vec<String> = mine.sources.into_iter().chain(r.sources).collect();
            sources.sort();
            sources.dedup();
            r = BackupRecord { sources, ..newer };
        }
        self.put_backup(&r)
    }

    /// A sighting from another catalog, unless this one saw the source later.
    fn import_sighting(&mut self, source: &str, s: Sighting) -> Result<bool, CatalogError> {
        if self.sighting(source)?.is_some_and(|mine| mine.audited_at >= s.audited_at) {
            return Ok(false);
        }
        self.put(Table::Sources, source, &encode(&s))?;
        Ok(true)
    }

    fn forget(&mut self, source: &str) -> Result<Forgotten, CatalogError> {
        let Some(s) = self.sighting(source)? else {
            return Ok(Forgotten::default());
        };
        self.remove(Table::Sources, source)?;
        let backups = self.detach(&s.sha256, source)?;
        Ok(Forgotten { backups, sources: 1 })
    }

    /// Forgets every source and backup last audited before `cutoff` (Unix seconds).
    fn forget_audited_before(&mut self, cutoff: u64) -> Result<Forgotten, CatalogError> {
        let mut gone = Forgotten::default();
        for (source, s) in self.sightings()? {
            if s.audited_at < cutoff {
                let f = self.forget(&source)?;
                gone.backups += f.backups;
                gone.sources += f.sources;
            }
        }
        for r in self.backups()? {
            if r.audited_at < cutoff {
                for source in &r.sources {
                    if self.remove(Table::Sources, source)? {
                        gone.sources += 1;
                    }
                }
                self.remove(Table::Backups, &r.sha256)?;
                gone.backups += 1;
            }
        }
        Ok(gone)
    }

    /// `source` no longer holds `sha256`: drop it from the record, and the
    /// record itself when no source holds it. Returns the records removed.
    fn detach(&mut self, sha256: &str, source: &str) -> Result<usize, CatalogError> {
        let Some(mut r) = self.backup(sha256)? else {
            return Ok(0);
        };
        r.sources.retain(|s| s != source);
        // Sources whose sighting moved on to other content do not hold it either.
        let mut holders = Vec::new();
        for s in std::mem::take(&mut r.sources) {
            if let Some(sighting) = self.sighting(&s)?.filter(|g| g.sha256 == sha256) {
                holders.push((s, sighting));
            }
        }
        let Some((latest, sighting)) = holders.iter().max_by_key(|(s, g)| (g.audited_at, s.clone())) else {
            self.remove(Table::Backups, sha256)?;
            return Ok(1);
        };
        if r.source == source || !holders.iter().any(|(s, _)| *s == r.source) {
            r.source = latest.clone();
            r.origin = sighting.origin.clone();
        }
        r.sources = holders.into_iter().map(|(s, _)| s).collect();
        self.put_backup(&r)?;
        Ok(0)
    }
}

pub(super) fn decode<T: serde::de::DeserializeOwned>(
    at: &str,
    key: &str,
    bytes: &[u8],
) -> Result<T, CatalogError> {
    serde_json::from_slice(bytes).map_err(|source| CatalogError::BadRecord {
        path: at.to_string(),
        key: key.to_string(),
        source,
    })
}

pub(super) fn encode<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("catalog records always serialize")
}
