//! The catalog: a redb file remembering every audited backup and the keys
//! each one needs, so that "may this old key be deleted yet?" has an answer
//! across a whole bucket of backups.
//!
//! Layout (schema version [`SCHEMA_VERSION`]; version 1 files are read as they
//! are and migrated by the first write, see [`MIGRATES_FROM`]):
//! - `meta`: `&str → u64`, holds `schema_version`.
//! - `backups`: `&str → &[u8]`, content SHA-256 (hex) → JSON [`BackupRecord`].
//! - `sources`: `&str → &[u8]`, source → JSON sighting (the content it held,
//!   its ETag/mtime, keyring and tool version): what incremental sweeps ask.
//!
//! A record lives as long as some source holds its content: when a source
//! is forgotten, or re-recorded with other content, a record no source holds
//! any more is removed.
//!
//! Concurrency: redb locks the whole file while a `Database` is open, so every
//! operation opens the file, runs one transaction and closes it again. An open
//! that finds the file locked is retried with backoff for up to
//! [`DEFAULT_LOCK_TIMEOUT`] before [`CatalogError::Locked`]. Commits are
//! durable and atomic: a writer killed mid-transaction leaves the last
//! committed state, repaired on the next open.
//!
//! A sweep (`scan --catalog`) audits for minutes and records at the end, so
//! two sweeps of one catalog would audit the same objects twice: a sweep
//! holds [`SweepLock`] (an advisory `flock` on `<catalog>.sweep.lock`) for its
//! whole run, and a second one is refused at once, naming the first. The
//! kernel drops the lock when its process ends, however it ends.

mod record;

/// A catalogued backup as a member of the per-cluster sweep.
pub fn member_of(r: &BackupRecord) -> crate::audit::sweep::Member {
    use crate::audit::sweep::{Member, MemberKey};
    Member {
        source: r.source.clone(),
        uid: r.cluster_uid.clone(),
        kubernetes_version: r.kubernetes_version.clone(),
        taken_at: r.taken_at.as_ref().and_then(|t| Some((crate::time::parse_rfc3339(t).ok()?, t.clone()))),
        keys: r
            .keys
            .iter()
            .filter(|k| k.entries > 0)
            .map(|k| MemberKey {
                key: format!("{}:{}", k.provider, k.name),
                fingerprint: k.fingerprint.clone(),
                write_key: k.write_key,
            })
            .collect(),
    }
}

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redb::{
    Builder, Database, DatabaseError, ReadTransaction, ReadableDatabase, ReadableTable, Table,
    TableDefinition, TableError, TableHandle, WriteTransaction,
};

use record::Sighting;
pub use record::{
    keyring_fingerprint, keyring_of, now_unix, AuditRun, BackupRecord, ContentId, NeededKey, Origin, SeenKey,
};

/// The schema this build reads and writes.
pub const SCHEMA_VERSION: u64 = 2;
/// The oldest schema this release reads as it is and migrates on its next
/// write: version 1 lacks the cluster UID, Kubernetes version, `taken_at`
/// and each key's `write_key` (they read as `null`/`false`).
pub const MIGRATES_FROM: u64 = 1;
/// How long an operation waits for another process to release the file.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const BACKUPS: TableDefinition<&str, &[u8]> = TableDefinition::new("backups");
const SOURCES: TableDefinition<&str, &[u8]> = TableDefinition::new("sources");
const SCHEMA_KEY: &str = "schema_version";
const CACHE_BYTES: usize = 8 << 20;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog {path} is locked by another process (waited {}s); try again later", waited.as_secs())]
    Locked { path: String, waited: Duration },
    #[error(
        "catalog {path} has schema version {found}, newer than this etcd-audit supports ({supported}); \
         upgrade etcd-audit or use another --catalog"
    )]
    NewerSchema { path: String, found: u64, supported: u64 },
    #[error(
        "catalog {path} has schema version {found}, older than this etcd-audit can migrate \
         (it reads {supported}); move the file away to start a new catalog"
    )]
    OlderSchema { path: String, found: u64, supported: u64 },
    #[error("{path} is not an etcd-audit catalog (a redb file without a schema version)")]
    NotACatalog { path: String },
    #[error("catalog {path}: {source}")]
    Db { path: String, source: Box<redb::Error> },
    #[error("catalog {path}: record {key} is unreadable: {source}")]
    BadRecord { path: String, key: String, source: serde_json::Error },
    #[error("catalog {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("no default catalog location: neither XDG_DATA_HOME nor HOME is set; use --catalog PATH")]
    NoHome,
    #[error("no catalog at {path}")]
    Missing { path: String },
    #[error("catalog {path} is being swept by another etcd-audit ({holder}); one sweep at a time")]
    SweepRunning { path: String, holder: String },
    #[error("invalid backup record: {0}")]
    Invalid(String),
}

/// Held while a sweep runs (see the module notes); released on drop.
pub struct SweepLock {
    _file: std::fs::File,
}

/// The format name of [`Catalog::export`]'s header line.
pub const EXPORT_FORMAT: &str = "etcd-audit.catalog-export/v1";

/// What an export wrote or an import took in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Moved {
    pub backups: usize,
    pub sources: usize,
}

/// How much a forget removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Forgotten {
    /// Backup records (content no known source holds any more).
    pub backups: usize,
    /// Source entries.
    pub sources: usize,
}

/// A handle on one catalog file. Holds no lock between operations; one
/// handle may be shared between threads (they take turns).
pub struct Catalog {
    path: PathBuf,
    lock_timeout: Duration,
    /// Queries open an existing file only; sweeps create it.
    create: bool,
    turn: Mutex<()>,
}

impl Catalog {
    /// `$XDG_DATA_HOME/etcd-audit/catalog.redb`, else
    /// `~/.local/share/etcd-audit/catalog.redb`. Does not create anything.
    pub fn default_path() -> Result<PathBuf, CatalogError> {
        let xdg = std::env::var_os("XDG_DATA_HOME").map(PathBuf::from).filter(|p| p.is_absolute());
        let home = || std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
        let base = match xdg {
            Some(dir) => dir,
            None => home().ok_or(CatalogError::NoHome)?.join(".local/share"),
        };
        Ok(base.join("etcd-audit").join("catalog.redb"))
    }

    /// Opens (creating it and its parent directories if needed) the catalog
    /// at `path`, checking its schema version.
    pub fn open(path: impl AsRef<Path>) -> Result<Catalog, CatalogError> {
        Catalog::open_with_lock_timeout(path, DEFAULT_LOCK_TIMEOUT)
    }

    /// [`Catalog::open`] waiting at most `lock_timeout` for the file, in this
    /// and every later operation.
    pub fn open_with_lock_timeout(
        path: impl AsRef<Path>,
        lock_timeout: Duration,
    ) -> Result<Catalog, CatalogError> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|source| CatalogError::Io { path: parent.display().to_string(), source })?;
        }
        let catalog = Catalog { path, lock_timeout, create: true, turn: Mutex::new(()) };
        catalog.write(|_| Ok(()))?;
        Ok(catalog)
    }

    /// Opens the catalog at `path` for queries: never creates a file or a
    /// folder, and a path with no catalog is an error (a mistyped path must
    /// not answer "no backup needs this key").
    pub fn open_existing(path: impl AsRef<Path>) -> Result<Catalog, CatalogError> {
        let path = path.as_ref().to_path_buf();
        if !path.is_file() {
            return Err(CatalogError::Missing { path: path.display().to_string() });
        }
        Ok(Catalog { path, lock_timeout: DEFAULT_LOCK_TIMEOUT, create: false, turn: Mutex::new(()) })
    }

    pub fn path(&self) -> &Path {
        &self.path
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
            return Err(CatalogError::SweepRunning { path: self.path.display().to_string(), holder });
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

    /// Records one audited backup (see [`Catalog::record_all`]).
    pub fn record(&self, record: &BackupRecord) -> Result<(), CatalogError> {
        self.record_all(std::slice::from_ref(record))
    }

    /// Records audited backups in one transaction. A record replaces the one
    /// of the same content (`sha256`), keeping every source that held it; its
    /// `source` also stops pointing at content it held before.
    pub fn record_all(&self, records: &[BackupRecord]) -> Result<(), CatalogError> {
        for r in records {
            validate(r)?;
        }
        self.write(|t| {
            for r in records {
                t.record(r)?;
            }
            Ok(())
        })
    }

    /// Every record, sorted by source.
    pub fn list(&self) -> Result<Vec<BackupRecord>, CatalogError> {
        let mut all = self.read(|t| t.backups())?;
        all.sort_by(|a, b| (&a.source, &a.sha256).cmp(&(&b.source, &b.sha256)));
        Ok(all)
    }

    /// The record of this content, if any.
    pub fn get(&self, sha256: &str) -> Result<Option<BackupRecord>, CatalogError> {
        let sha256 = sha256.to_ascii_lowercase();
        self.read(|t| t.backup(&sha256))
    }

    /// The record of the content `source` held when it was audited last.
    pub fn lookup(&self, source: &str) -> Result<Option<BackupRecord>, CatalogError> {
        self.read(|t| match t.sighting(source)? {
            Some(s) => t.backup(&s.sha256),
            None => Ok(None),
        })
    }

    /// The keys the backup last audited at `source` needs (`None`: never audited).
    pub fn needs(&self, source: &str) -> Result<Option<Vec<NeededKey>>, CatalogError> {
        Ok(self.lookup(source)?.map(|r| r.keys))
    }

    /// The backups that still need key `name` of `provider` (exact match; for
    /// KMS the name is the provider name). Empty: no catalogued backup needs
    /// it, it may be retired.
    pub fn can_retire(&self, provider: &str, name: &str) -> Result<Vec<BackupRecord>, CatalogError> {
        Ok(self.list()?.into_iter().filter(|r| r.needs(provider, name)).collect())
    }

    /// True when `seen.source` was audited last with the same keyring and tool
    /// version, and its ETag+size (object) or size+mtime (file), and content
    /// hash when given, are unchanged.
    pub fn already_audited(&self, seen: &SeenKey) -> Result<bool, CatalogError> {
        self.read(|t| match t.sighting(&seen.source)? {
            Some(s) if s.matches(seen) => Ok(t.backup(&s.sha256)?.is_some()),
            _ => Ok(false),
        })
    }

    /// Writes every record and every source's sighting as JSON lines (after
    /// a header line naming the format): what [`Catalog::import`] reads, into
    /// this or another catalog.
    pub fn export(&self, out: &mut dyn std::io::Write) -> Result<Moved, CatalogError> {
        let (backups, sightings) = self.read(|t| Ok((t.backups()?, t.sightings()?)))?;
        let io = |source| CatalogError::Io { path: "the export".into(), source };
        let header = serde_json::json!({"format": EXPORT_FORMAT, "schema_version": SCHEMA_VERSION});
        writeln!(out, "{header}").map_err(io)?;
        for r in &backups {
            writeln!(out, "{}", serde_json::json!({ "backup": r })).map_err(io)?;
        }
        for (source, s) in &sightings {
            writeln!(out, "{}", serde_json::json!({ "source": source, "sighting": s })).map_err(io)?;
        }
        Ok(Moved { backups: backups.len(), sources: sightings.len() })
    }

    /// Reads an export into this catalog, in one transaction: records merge
    /// by content (their sources joined, the later audit's fields kept), a
    /// source's sighting is taken when it is later than this catalog's.
    /// Merging the catalogs of several shards gives the fleet's.
    pub fn import(&self, input: impl std::io::BufRead) -> Result<Moved, CatalogError> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Line {
            Header { format: String, schema_version: u64 },
            Backup { backup: BackupRecord },
            Source { source: String, sighting: Sighting },
        }
        let bad = |n: usize, why: String| CatalogError::Invalid(format!("import line {n}: {why}"));
        let mut lines = Vec::new();
        for (i, line) in input.lines().enumerate() {
            let line = line.map_err(|source| CatalogError::Io { path: "the import".into(), source })?;
            if line.trim().is_empty() {
                continue;
            }
            lines.push((i + 1, serde_json::from_str::<Line>(&line).map_err(|e| bad(i + 1, e.to_string()))?));
        }
        match lines.first() {
            Some((_, Line::Header { format, schema_version }))
                if format == EXPORT_FORMAT && (MIGRATES_FROM..=SCHEMA_VERSION).contains(schema_version) => {}
            _ => return Err(bad(1, format!("not an {EXPORT_FORMAT} export of a supported schema"))),
        }
        self.write(|t| {
            let mut moved = Moved::default();
            for (n, line) in lines.into_iter().skip(1) {
                match line {
                    Line::Backup { backup } => {
                        t.import_backup(backup)?;
                        moved.backups += 1;
                    }
                    Line::Source { source, sighting } => {
                        moved.sources += usize::from(t.import_sighting(&source, sighting)?);
                    }
                    Line::Header { .. } => return Err(bad(n, "a second header".into())),
                }
            }
            Ok(moved)
        })
    }

    /// Forgets `source` (exact match), and its backup if no other source holds it.
    pub fn forget_source(&self, source: &str) -> Result<Forgotten, CatalogError> {
        self.write(|t| t.forget(source))
    }

    /// Forgets every source and backup not audited within `age` of now.
    pub fn forget_older_than(&self, age: Duration) -> Result<Forgotten, CatalogError> {
        self.forget_audited_before(now_unix().saturating_sub(age.as_secs()))
    }

    /// Forgets every source and backup last audited before `cutoff` (Unix seconds).
    pub fn forget_audited_before(&self, cutoff: u64) -> Result<Forgotten, CatalogError> {
        self.write(|t| {
            let mut gone = Forgotten::default();
            for (source, s) in t.sightings()? {
                if s.audited_at < cutoff {
                    let f = t.forget(&source)?;
                    gone.backups += f.backups;
                    gone.sources += f.sources;
                }
            }
            for r in t.backups()? {
                if r.audited_at < cutoff {
                    for source in &r.sources {
                        if t.remove_source(source)? {
                            gone.sources += 1;
                        }
                    }
                    t.remove_backup(&r.sha256)?;
                    gone.backups += 1;
                }
            }
            Ok(gone)
        })
    }

    /// Opens the file, waiting for other processes' locks with backoff.
    /// Opens the file for writing (created when this handle may create it).
    fn open_db(&self) -> Result<Database, CatalogError> {
        self.wait_for_lock(|b| if self.create { b.create(&self.path) } else { b.open(&self.path) })
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
                        return Err(CatalogError::Locked { path: self.display(), waited });
                    }
                    let jitter = Duration::from_micros(jitter_micros(delay.as_micros() as u64 / 2 + 1));
                    std::thread::sleep((delay + jitter).min(self.lock_timeout - waited));
                    delay = (delay * 2).min(Duration::from_millis(200));
                }
                Err(e) => return Err(self.db_err(e)),
            }
        }
    }

    fn write<T>(&self, f: impl FnOnce(&mut Writer) -> Result<T, CatalogError>) -> Result<T, CatalogError> {
        let _turn = self.turn.lock().unwrap_or_else(|e| e.into_inner());
        let db = self.open_db()?;
        let txn = db.begin_write().map_err(|e| self.db_err(e))?;
        self.ensure_schema(&txn)?;
        let out = {
            let mut w = Writer {
                path: self,
                backups: txn.open_table(BACKUPS).map_err(|e| self.db_err(e))?,
                sources: txn.open_table(SOURCES).map_err(|e| self.db_err(e))?,
            };
            f(&mut w)?
        };
        txn.commit().map_err(|e| self.db_err(e))?;
        drop(db);
        Ok(out)
    }

    /// A read: a query handle opens the file read-only, without modifying
    /// it (a file that needs recovery after a crash is refused, not repaired).
    fn read<T>(&self, f: impl FnOnce(&Reader) -> Result<T, CatalogError>) -> Result<T, CatalogError> {
        let _turn = self.turn.lock().unwrap_or_else(|e| e.into_inner());
        // The database handle outlives the transaction read from it.
        let (writable, read_only);
        let txn = if self.create {
            writable = self.open_db()?;
            writable.begin_read()
        } else {
            read_only = self.wait_for_lock(|b| b.open_read_only(&self.path))?;
            read_only.begin_read()
        };
        let txn = txn.map_err(|e| self.db_err(e))?;
        let empty = self.check_schema(&txn)?;
        let reader = Reader {
            path: self,
            backups: if empty { None } else { self.table(&txn, BACKUPS)? },
            sources: if empty { None } else { self.table(&txn, SOURCES)? },
        };
        f(&reader)
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
            return Err(CatalogError::NotACatalog { path: self.display() });
        }
        let mut meta = txn.open_table(META).map_err(|e| self.db_err(e))?;
        let version = meta.get(SCHEMA_KEY).map_err(|e| self.db_err(e))?.map(|v| v.value());
        self.supported(version)?;
        if version == Some(1) {
            self.migrate_v1(txn)?;
            meta.insert(SCHEMA_KEY, SCHEMA_VERSION).map_err(|e| self.db_err(e))?;
        }
        Ok(())
    }

    /// Version 1 to 2, in the caller's transaction: every record is decoded
    /// (the new fields default) and written back in the new shape.
    fn migrate_v1(&self, txn: &WriteTransaction) -> Result<(), CatalogError> {
        let mut backups = txn.open_table(BACKUPS).map_err(|e| self.db_err(e))?;
        let records = all(self, Some(&backups))?;
        for r in &records {
            backups.insert(r.sha256.as_str(), encode(r).as_slice()).map_err(|e| self.db_err(e))?;
        }
        Ok(())
    }

    fn supported(&self, version: Option<u64>) -> Result<(), CatalogError> {
        let path = self.display();
        match version {
            None => Err(CatalogError::NotACatalog { path }),
            Some(found) if (MIGRATES_FROM..=SCHEMA_VERSION).contains(&found) => Ok(()),
            Some(found) if found > SCHEMA_VERSION => {
                Err(CatalogError::NewerSchema { path, found, supported: SCHEMA_VERSION })
            }
            Some(found) => Err(CatalogError::OlderSchema { path, found, supported: SCHEMA_VERSION }),
        }
    }

    fn display(&self) -> String {
        self.path.display().to_string()
    }

    fn db_err(&self, e: impl Into<redb::Error>) -> CatalogError {
        CatalogError::Db { path: self.display(), source: Box::new(e.into()) }
    }
}

fn validate(r: &BackupRecord) -> Result<(), CatalogError> {
    if r.sha256.len() != 64 || !r.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(CatalogError::Invalid(format!("sha256 {:?} is not 64 hex digits", r.sha256)));
    }
    if r.source.is_empty() {
        return Err(CatalogError::Invalid("empty source".into()));
    }
    Ok(())
}

/// A few microseconds of noise so that waiting processes do not retry in step.
fn jitter_micros(bound: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    (nanos ^ (std::process::id() as u64).wrapping_mul(0x9E37_79B9)) % bound
}

fn decode<T: serde::de::DeserializeOwned>(
    catalog: &Catalog,
    key: &str,
    bytes: &[u8],
) -> Result<T, CatalogError> {
    serde_json::from_slice(bytes).map_err(|source| CatalogError::BadRecord {
        path: catalog.display(),
        key: key.to_string(),
        source,
    })
}

fn encode<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("catalog records always serialize")
}

struct Reader<'c> {
    path: &'c Catalog,
    backups: Option<redb::ReadOnlyTable<&'static str, &'static [u8]>>,
    sources: Option<redb::ReadOnlyTable<&'static str, &'static [u8]>>,
}

impl Reader<'_> {
    fn backup(&self, sha256: &str) -> Result<Option<BackupRecord>, CatalogError> {
        get(self.path, self.backups.as_ref(), sha256)
    }

    fn sighting(&self, source: &str) -> Result<Option<Sighting>, CatalogError> {
        get(self.path, self.sources.as_ref(), source)
    }

    fn backups(&self) -> Result<Vec<BackupRecord>, CatalogError> {
        all(self.path, self.backups.as_ref())
    }

    fn sightings(&self) -> Result<Vec<(String, Sighting)>, CatalogError> {
        rows(self.path, self.sources.as_ref())
    }
}

struct Writer<'c, 't> {
    path: &'c Catalog,
    backups: Table<'t, &'static str, &'static [u8]>,
    sources: Table<'t, &'static str, &'static [u8]>,
}

impl Writer<'_, '_> {
    fn remove_source(&mut self, source: &str) -> Result<bool, CatalogError> {
        Ok(self.sources.remove(source).map_err(storage_err(self.path))?.is_some())
    }

    fn remove_backup(&mut self, sha256: &str) -> Result<bool, CatalogError> {
        Ok(self.backups.remove(sha256).map_err(storage_err(self.path))?.is_some())
    }

    fn backup(&self, sha256: &str) -> Result<Option<BackupRecord>, CatalogError> {
        get(self.path, Some(&self.backups), sha256)
    }

    fn sighting(&self, source: &str) -> Result<Option<Sighting>, CatalogError> {
        get(self.path, Some(&self.sources), source)
    }

    fn backups(&self) -> Result<Vec<BackupRecord>, CatalogError> {
        all(self.path, Some(&self.backups))
    }

    fn sightings(&self) -> Result<Vec<(String, Sighting)>, CatalogError> {
        rows(self.path, Some(&self.sources))
    }

    /// A record from another catalog: its sources join those this one has.
    fn import_backup(&mut self, mut r: BackupRecord) -> Result<(), CatalogError> {
        validate(&r)?;
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
        self.sources.insert(source, encode(&s).as_slice()).map_err(storage_err(self.path))?;
        Ok(true)
    }

    fn put_backup(&mut self, r: &BackupRecord) -> Result<(), CatalogError> {
        self.backups.insert(r.sha256.as_str(), encode(r).as_slice()).map_err(storage_err(self.path))?;
        Ok(())
    }

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
        let sighting = encode(&Sighting::of(&r));
        self.sources.insert(r.source.as_str(), sighting.as_slice()).map_err(storage_err(self.path))?;
        Ok(())
    }

    fn forget(&mut self, source: &str) -> Result<Forgotten, CatalogError> {
        let Some(s) = self.sighting(source)? else {
            return Ok(Forgotten::default());
        };
        self.remove_source(source)?;
        let backups = self.detach(&s.sha256, source)?;
        Ok(Forgotten { backups, sources: 1 })
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
        if holders.is_empty() {
            self.remove_backup(sha256)?;
            return Ok(1);
        }
        r.sources = holders.iter().map(|(s, _)| s.clone()).collect();
        if r.source == source || !r.sources.contains(&r.source) {
            let (latest, sighting) = holders.iter().max_by_key(|(s, g)| (g.audited_at, s.clone())).unwrap();
            r.source = latest.clone();
            r.origin = sighting.origin.clone();
        }
        self.put_backup(&r)?;
        Ok(0)
    }
}

fn storage_err(catalog: &Catalog) -> impl Fn(redb::StorageError) -> CatalogError + '_ {
    |e| catalog.db_err(e)
}

fn get<T, R>(catalog: &Catalog, table: Option<&R>, key: &str) -> Result<Option<T>, CatalogError>
where
    T: serde::de::DeserializeOwned,
    R: ReadableTable<&'static str, &'static [u8]>,
{
    let Some(table) = table else {
        return Ok(None);
    };
    match table.get(key).map_err(|e| catalog.db_err(e))? {
        Some(v) => decode(catalog, key, v.value()).map(Some),
        None => Ok(None),
    }
}

fn all<R>(catalog: &Catalog, table: Option<&R>) -> Result<Vec<BackupRecord>, CatalogError>
where
    R: ReadableTable<&'static str, &'static [u8]>,
{
    Ok(rows(catalog, table)?.into_iter().map(|(_, r)| r).collect())
}

/// Every row of a table, decoded, with its key.
fn rows<T, R>(catalog: &Catalog, table: Option<&R>) -> Result<Vec<(String, T)>, CatalogError>
where
    T: serde::de::DeserializeOwned,
    R: ReadableTable<&'static str, &'static [u8]>,
{
    let Some(table) = table else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for row in table.iter().map_err(|e| catalog.db_err(e))? {
        let (k, v) = row.map_err(|e| catalog.db_err(e))?;
        out.push((k.value().to_string(), decode(catalog, k.value(), v.value())?));
    }
    Ok(out)
}

/// A key as `PROVIDER:NAME`, split at the first `:` (key names may contain `:`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRef {
    pub provider: String,
    pub name: String,
}

#[derive(Debug, thiserror::Error)]
#[error("expected PROVIDER:NAME (e.g. aescbc:key1), got {0:?}")]
pub struct KeyRefError(String);

impl std::str::FromStr for KeyRef {
    type Err = KeyRefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some((p, n)) if !p.is_empty() && !n.is_empty() => {
                Ok(KeyRef { provider: p.into(), name: n.into() })
            }
            _ => Err(KeyRefError(s.into())),
        }
    }
}

impl std::fmt::Display for KeyRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.provider, self.name)
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {0:?}: expected e.g. 90d, 12h, 30m, 45s, 2w or 1d12h")]
pub struct DurationError(String);

/// Parses `90d`, `12h`, `30m`, `45s`, `2w` or a sequence such as `1d12h`.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let bad = || DurationError(s.to_string());
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        total = n.checked_mul(unit).and_then(|v| total.checked_add(v)).ok_or_else(bad)?;
        digits.clear();
    }
    if !digits.is_empty() || s.trim().is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sweep_at_a_time_and_the_lock_goes_with_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(dir.path().join("c.redb")).unwrap();
        let first = catalog.sweep_lock().unwrap();
        match catalog.sweep_lock() {
            Err(CatalogError::SweepRunning { holder, .. }) => {
                assert!(holder.starts_with(&format!("pid {} since ", std::process::id())), "{holder}")
            }
            other => panic!("a second sweep was let in: {:?}", other.map(|_| ())),
        }
        // Queries and records still work while a sweep runs.
        assert!(catalog.list().unwrap().is_empty());
        drop(first);
        assert!(catalog.sweep_lock().is_ok());
    }

    #[test]
    fn key_refs_split_at_the_first_colon() {
        let key = |s: &str| s.parse::<KeyRef>().ok().map(|k| (k.provider, k.name));
        assert_eq!(key("aescbc:key:with:colons"), Some(("aescbc".into(), "key:with:colons".into())));
        assert_eq!(key("kms:vault"), Some(("kms".into(), "vault".into())));
        assert_eq!("aescbc:key:with:colons".parse::<KeyRef>().unwrap().to_string(), "aescbc:key:with:colons");
        for bad in ["aescbc", ":name", "aescbc:"] {
            assert_eq!(key(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert_eq!(parse_duration("1d12h"), Ok(Duration::from_secs(36 * 3600)));
        assert_eq!(parse_duration("2w"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse_duration("45s"), Ok(Duration::from_secs(45)));
        for bad in ["", "12", "d", "3x", "-1d", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keyring_fingerprints_ignore_order_and_repeats() {
        let a = keyring_fingerprint(["aescbc:a:sha256:1", "aesgcm:b:sha256:2"]);
        assert_eq!(a, keyring_fingerprint(["aesgcm:b:sha256:2", "aescbc:a:sha256:1", "aescbc:a:sha256:1"]));
        assert_ne!(a, keyring_fingerprint(["aescbc:a:sha256:1"]));
        // Length-prefixed: moving a boundary changes it.
        assert_ne!(keyring_fingerprint(["ab", "c"]), keyring_fingerprint(["a", "bc"]));
    }

    #[test]
    fn origins_match_on_etag_and_size_or_size_and_mtime() {
        let obj = |size, e_tag: Option<&str>, lm: &str| Origin::Object {
            size,
            e_tag: e_tag.map(str::to_string),
            last_modified: Some(lm.to_string()),
        };
        assert!(obj(10, Some("\"x\""), "a").same_as(&obj(10, Some("\"x\""), "b")));
        assert!(!obj(10, Some("\"x\""), "a").same_as(&obj(11, Some("\"x\""), "a")));
        assert!(!obj(10, Some("\"x\""), "a").same_as(&obj(10, Some("\"y\""), "a")));
        assert!(!obj(10, None, "a").same_as(&obj(10, None, "a")), "no ETag, no skip");
        let file = |size, mtime_ns| Origin::File { size, mtime_ns };
        assert!(file(10, Some(5)).same_as(&file(10, Some(5))));
        assert!(!file(10, Some(5)).same_as(&file(10, Some(6))));
        assert!(!file(10, None).same_as(&file(10, None)));
        assert!(!Origin::Other.same_as(&Origin::Other));
        assert!(!file(10, Some(5)).same_as(&obj(10, Some("5"), "a")));
    }
}
