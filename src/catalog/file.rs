//! The catalog in one redb file (the default store).
//!
//! Layout (schema version [`SCHEMA_VERSION`]; version 1 files are read as they
//! are and migrated by the first write, see [`MIGRATES_FROM`]):
//! - `meta`: `&str → u64`, holds `schema_version`.
//! - `backups` and `sources`: `&str → &[u8]`, the JSON rows of [`super::tables`].
//!
//! Concurrency: redb locks the whole file while a `Database` is open, so every
//! operation opens the file, runs one transaction and closes it again. An open
//! that finds the file locked is retried with backoff for up to
//! [`DEFAULT_LOCK_TIMEOUT`] before [`CatalogError::Locked`]. Commits are
//! durable and atomic: a writer killed mid-transaction leaves the last
//! committed state, repaired on the next open.
//!
//! A sweep (`scan --catalog`) audits for minutes, so two sweeps of one file
//! would audit the same objects twice: a sweep holds [`SweepLock`] (an
//! advisory `flock` on `<catalog>.sweep.lock`) for its whole run, and a second
//! one is refused at once, naming the first. The kernel drops the lock when
//! its process ends, however it ends. (PostgreSQL catalogs claim objects one
//! by one instead, see [`super::postgres`].)

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redb::{
    Builder, DatabaseError, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, TableError,
    TableHandle, WriteTransaction,
};

use super::tables::{OnRow, ReadTables, Table, WriteTables};
use super::{CatalogError, MIGRATES_FROM, SCHEMA_VERSION};

/// How long an operation waits for another process to release the file.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const BACKUPS: TableDefinition<&str, &[u8]> = TableDefinition::new("backups");
const SOURCES: TableDefinition<&str, &[u8]> = TableDefinition::new("sources");
const SCHEMA_KEY: &str = "schema_version";
const CACHE_BYTES: usize = 8 << 20;

fn definition(table: Table) -> TableDefinition<'static, &'static str, &'static [u8]> {
    match table {
        Table::Backups => BACKUPS,
        Table::Sources => SOURCES,
    }
}

/// Held while a sweep runs (see the module notes); released on drop.
pub struct SweepLock {
    _file: std::fs::File,
}

/// A handle on one catalog file. Holds no lock between operations; one
/// handle may be shared between threads (they take turns).
pub(super) struct FileStore {
    path: PathBuf,
    shown: String,
    lock_timeout: Duration,
    /// Queries open an existing file only; sweeps create it.
    create: bool,
    turn: Mutex<()>,
}

impl FileStore {
    /// Opens (creating it and its parent directories if needed) the catalog
    /// at `path`, checking its schema version.
    pub fn open(path: &Path, lock_timeout: Duration) -> Result<FileStore, CatalogError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|source| CatalogError::Io { path: parent.display().to_string(), source })?;
        }
        let store = FileStore::new(path, lock_timeout, true);
        store.write(|_| Ok(()))?;
        Ok(store)
    }

    /// Opens the catalog at `path` for queries: never creates a file or a
    /// folder, and a path with no catalog is an error.
    pub fn open_existing(path: &Path) -> Result<FileStore, CatalogError> {
        if !path.is_file() {
            return Err(CatalogError::Missing { path: path.display().to_string() });
        }
        Ok(FileStore::new(path, DEFAULT_LOCK_TIMEOUT, false))
    }

    fn new(path: &Path, lock_timeout: Duration, create: bool) -> FileStore {
        let shown = path.display().to_string();
        FileStore { path: path.to_path_buf(), shown, lock_timeout, create, turn: Mutex::new(()) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Takes the sweep lock of this catalog, or says who holds it.
    pub fn sweep_lock(&self) -> Result<SweepLock, CatalogError> {
        let mut lock_path = self.path.clone().into_os_string();
        lock_path.push(".sweep.lock");
        let lock_path = PathBuf::from(lock_path);
        let io = |source| CatalogError::Io { path: lock_path.display().to_string(), source };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io)?;
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), libc::LOCK_EX | libc::LOCK_NB) } != 0
        {
            let mut holder = String::new();
            let _ = std::io::Read::read_to_string(&mut file, &mut holder);
            let holder = match holder.trim() {
                "" => "unknown process".to_string(),
                h => h.to_string(),
            };
            return Err(CatalogError::SweepRunning { path: self.shown.clone(), holder });
        }
        let me = format!(
            "pid {} since {}",
            std::process::id(),
            crate::time::rfc3339(crate::time::now_or(None).max(0) as u64)
        );
        file.set_len(0).map_err(io)?;
        std::io::Write::write_all(&mut file, me.as_bytes()).map_err(io)?;
        Ok(SweepLock { _file: file })
    }

    /// One write transaction (the file is created when this handle may).
    pub fn write<T>(
        &self,
        f: impl FnOnce(&mut dyn WriteTables) -> Result<T, CatalogError>,
    ) -> Result<T, CatalogError> {
        let _turn = self.turn.lock().unwrap_or_else(|e| e.into_inner());
        let db =
            self.wait_for_lock(|b| if self.create { b.create(&self.path) } else { b.open(&self.path) })?;
        let txn = db.begin_write().map_err(|e| self.db_err(e))?;
        self.ensure_schema(&txn)?;
        let out = f(&mut Writer { store: self, txn: &txn })?;
        txn.commit().map_err(|e| self.db_err(e))?;
        drop(db);
        Ok(out)
    }

    /// A read: a query handle opens the file read-only, without modifying
    /// it (a file that needs recovery after a crash is refused, not repaired).
    pub fn read<T>(
        &self,
        f: impl FnOnce(&mut dyn ReadTables) -> Result<T, CatalogError>,
    ) -> Result<T, CatalogError> {
        let _turn = self.turn.lock().unwrap_or_else(|e| e.into_inner());
        // The database handle outlives the transaction read from it.
        let (writable, read_only);
        let txn = if self.create {
            writable = self.wait_for_lock(|b| b.create(&self.path))?;
            writable.begin_read()
        } else {
            read_only = self.wait_for_lock(|b| b.open_read_only(&self.path))?;
            read_only.begin_read()
        };
        let txn = txn.map_err(|e| self.db_err(e))?;
        let empty = self.check_schema(&txn)?;
        let mut reader = Reader {
            store: self,
            backups: if empty { None } else { self.table(&txn, BACKUPS)? },
            sources: if empty { None } else { self.table(&txn, SOURCES)? },
        };
        f(&mut reader)
    }

    /// Retries `open` while another process holds the file, with backoff.
    fn wait_for_lock<D>(
        &self,
        open: impl Fn(&mut Builder) -> Result<D, DatabaseError>,
    ) -> Result<D, CatalogError> {
        let start = Instant::now();
        let mut delay = Duration::from_millis(5);
        loop {
            let mut builder = Builder::new();
            builder.set_cache_size(CACHE_BYTES);
            match open(&mut builder) {
                Ok(db) => return Ok(db),
                Err(DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch) => {
                    let waited = start.elapsed();
                    if waited >= self.lock_timeout {
                        return Err(CatalogError::Locked { path: self.shown.clone(), waited });
                    }
                    let jitter = Duration::from_micros(jitter_micros(delay.as_micros() as u64 / 2 + 1));
                    std::thread::sleep((delay + jitter).min(self.lock_timeout - waited));
                    delay = (delay * 2).min(Duration::from_millis(200));
                }
                Err(e) => return Err(self.db_err(e)),
            }
        }
    }

    fn table(
        &self,
        txn: &ReadTransaction,
        def: TableDefinition<&'static str, &'static [u8]>,
    ) -> Result<Option<redb::ReadOnlyTable<&'static str, &'static [u8]>>, CatalogError> {
        match txn.open_table(def) {
            Ok(t) => Ok(Some(t)),
            Err(TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(self.db_err(e)),
        }
    }

    /// Checks the version in a read; `true` for a file with no tables yet.
    fn check_schema(&self, txn: &ReadTransaction) -> Result<bool, CatalogError> {
        if txn.list_tables().map_err(|e| self.db_err(e))?.next().is_none() {
            return Ok(true);
        }
        let version = match txn.open_table(META) {
            Ok(meta) => meta.get(SCHEMA_KEY).map_err(|e| self.db_err(e))?.map(|v| v.value()),
            Err(TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(self.db_err(e)),
        };
        self.supported(version).map(|()| false)
    }

    /// Checks the version in a write, initialising an empty file.
    fn ensure_schema(&self, txn: &WriteTransaction) -> Result<(), CatalogError> {
        let names: Vec<String> =
            txn.list_tables().map_err(|e| self.db_err(e))?.map(|t| t.name().to_string()).collect();
        if names.is_empty() {
            let mut meta = txn.open_table(META).map_err(|e| self.db_err(e))?;
            meta.insert(SCHEMA_KEY, SCHEMA_VERSION).map_err(|e| self.db_err(e))?;
            return Ok(());
        }
        if !names.iter().any(|n| n == META.name()) {
            return Err(CatalogError::NotACatalog { path: self.shown.clone() });
        }
        let mut meta = txn.open_table(META).map_err(|e| self.db_err(e))?;
        let version = meta.get(SCHEMA_KEY).map_err(|e| self.db_err(e))?.map(|v| v.value());
        self.supported(version)?;
        if version == Some(1) {
            // Version 1 to 2: every record is decoded (the new fields default)
            // and written back in the new shape.
            let mut w = Writer { store: self, txn };
            for r in w.backups()? {
                w.put_backup(&r)?;
            }
            meta.insert(SCHEMA_KEY, SCHEMA_VERSION).map_err(|e| self.db_err(e))?;
        }
        Ok(())
    }

    fn supported(&self, version: Option<u64>) -> Result<(), CatalogError> {
        let path = self.shown.clone();
        match version {
            None => Err(CatalogError::NotACatalog { path }),
            Some(found) if (MIGRATES_FROM..=SCHEMA_VERSION).contains(&found) => Ok(()),
            Some(found) if found > SCHEMA_VERSION => {
                Err(CatalogError::NewerSchema { path, found, supported: SCHEMA_VERSION })
            }
            Some(found) => Err(CatalogError::OlderSchema { path, found, supported: SCHEMA_VERSION }),
        }
    }

    fn db_err(&self, e: impl Into<redb::Error>) -> CatalogError {
        CatalogError::Db { path: self.shown.clone(), source: Box::new(e.into()) }
    }
}

/// A few microseconds of noise so that waiting processes do not retry in step.
fn jitter_micros(bound: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    (nanos ^ (std::process::id() as u64).wrapping_mul(0x9E37_79B9)) % bound
}

struct Reader<'c> {
    store: &'c FileStore,
    backups: Option<redb::ReadOnlyTable<&'static str, &'static [u8]>>,
    sources: Option<redb::ReadOnlyTable<&'static str, &'static [u8]>>,
}

impl ReadTables for Reader<'_> {
    fn at(&self) -> &str {
        &self.store.shown
    }

    fn get(&mut self, table: Table, key: &str) -> Result<Option<Vec<u8>>, CatalogError> {
        let t = match table {
            Table::Backups => self.backups.as_ref(),
            Table::Sources => self.sources.as_ref(),
        };
        get(self.store, t, key)
    }

    fn each(&mut self, table: Table, row: &mut OnRow) -> Result<(), CatalogError> {
        let t = match table {
            Table::Backups => self.backups.as_ref(),
            Table::Sources => self.sources.as_ref(),
        };
        each(self.store, t, row)
    }
}

/// A write transaction; tables are opened per operation (redb hands out one
/// handle per table at a time).
struct Writer<'c, 't> {
    store: &'c FileStore,
    txn: &'t WriteTransaction,
}

impl Writer<'_, '_> {
    fn open(&self, table: Table) -> Result<redb::Table<'_, &'static str, &'static [u8]>, CatalogError> {
        self.txn.open_table(definition(table)).map_err(|e| self.store.db_err(e))
    }
}

impl ReadTables for Writer<'_, '_> {
    fn at(&self) -> &str {
        &self.store.shown
    }

    fn get(&mut self, table: Table, key: &str) -> Result<Option<Vec<u8>>, CatalogError> {
        get(self.store, Some(&self.open(table)?), key)
    }

    fn each(&mut self, table: Table, row: &mut OnRow) -> Result<(), CatalogError> {
        each(self.store, Some(&self.open(table)?), row)
    }
}

impl WriteTables for Writer<'_, '_> {
    fn put(&mut self, table: Table, key: &str, value: &[u8]) -> Result<(), CatalogError> {
        self.open(table)?.insert(key, value).map_err(|e| self.store.db_err(e))?;
        Ok(())
    }

    fn remove(&mut self, table: Table, key: &str) -> Result<bool, CatalogError> {
        Ok(self.open(table)?.remove(key).map_err(|e| self.store.db_err(e))?.is_some())
    }
}

fn get<R>(store: &FileStore, table: Option<&R>, key: &str) -> Result<Option<Vec<u8>>, CatalogError>
where
    R: ReadableTable<&'static str, &'static [u8]>,
{
    let Some(table) = table else {
        return Ok(None);
    };
    Ok(table.get(key).map_err(|e| store.db_err(e))?.map(|v| v.value().to_vec()))
}

fn each<R>(store: &FileStore, table: Option<&R>, f: &mut OnRow) -> Result<(), CatalogError>
where
    R: ReadableTable<&'static str, &'static [u8]>,
{
    let Some(table) = table else {
        return Ok(());
    };
    for row in table.iter().map_err(|e| store.db_err(e))? {
        let (k, v) = row.map_err(|e| store.db_err(e))?;
        f(k.value(), v.value())?;
    }
    Ok(())
}
