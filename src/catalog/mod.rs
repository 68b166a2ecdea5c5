//! The catalog: every audited backup and the keys each one needs, so that
//! "may this old key be deleted yet?" has an answer across a whole bucket of
//! backups, or a whole fleet of them.
//!
//! Two stores hold the same records: a redb file (the default, [`file`]) and
//! PostgreSQL (`postgres://…`, [`postgres`]) for shard workers recording at
//! once. What the records mean (merging by content, sources moving between
//! contents, forgetting) is written once, in [`tables`], over both.

mod file;
mod postgres;
mod record;
mod tables;

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
use std::sync::Arc;
use std::time::Duration;

pub use file::{SweepLock, DEFAULT_LOCK_TIMEOUT};
pub use postgres::{ClaimKeeper, Worker};
use record::Sighting;
pub use record::{
    keyring_fingerprint, keyring_of, now_unix, AuditRun, BackupRecord, ContentId, NeededKey, Origin, SeenKey,
};
use tables::{ReadTables, WriteTables};

/// The schema of the records this build reads and writes.
pub const SCHEMA_VERSION: u64 = 2;
/// The oldest schema this release reads as it is and migrates on its next
/// write: version 1 lacks the cluster UID, Kubernetes version, `taken_at`
/// and each key's `write_key` (they read as `null`/`false`).
pub const MIGRATES_FROM: u64 = 1;
/// Where a bare `--catalog` (and `catalog …` without one) points when set:
/// a file path or a `postgres://` URL.
pub const LOCATION_ENV: &str = "ETCD_AUDIT_CATALOG_URL";

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
    #[error("catalog {path}: {}", postgres_message(source))]
    Postgres { path: String, source: Box<::postgres::Error> },
    #[error("catalog {path}: TLS: {why}")]
    Tls { path: String, why: String },
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

/// A PostgreSQL error with the server's message (the driver's own says only "db error").
fn postgres_message(e: &::postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => e.to_string(),
    }
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

/// Whether this worker may audit an object now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// It is this worker's until recorded (or its lease runs out).
    Taken,
    /// Another live worker is auditing it; its claim lasts until `until`
    /// (RFC 3339) unless renewed.
    HeldBy { worker: String, until: String },
    /// The store has no claims (a file catalog: one sweep at a time).
    Unclaimed,
}

/// Where a catalog is: a redb file or a PostgreSQL database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    File(PathBuf),
    Postgres(String),
}

impl Location {
    /// `postgres://` and `postgresql://` URLs are databases; anything else a file.
    pub fn parse(s: &str) -> Location {
        match s.starts_with("postgres://") || s.starts_with("postgresql://") {
            true => Location::Postgres(s.to_string()),
            false => Location::File(PathBuf::from(s)),
        }
    }

    /// [`LOCATION_ENV`] when set, else [`Catalog::default_path`].
    pub fn default_location() -> Result<Location, CatalogError> {
        match std::env::var(LOCATION_ENV) {
            Ok(at) if !at.is_empty() => Ok(Location::parse(&at)),
            _ => Catalog::default_path().map(Location::File),
        }
    }
}

impl From<PathBuf> for Location {
    fn from(p: PathBuf) -> Location {
        Location::File(p)
    }
}

impl From<&Path> for Location {
    fn from(p: &Path) -> Location {
        Location::File(p.to_path_buf())
    }
}

impl From<&PathBuf> for Location {
    fn from(p: &PathBuf) -> Location {
        Location::File(p.clone())
    }
}

enum Store {
    File(file::FileStore),
    Postgres(Arc<postgres::PgStore>),
}

/// A handle on one catalog. One handle may be shared between threads.
pub struct Catalog {
    store: Store,
}

/// A sweep's hold on its catalog: the file's lock, or the renewal of a
/// PostgreSQL worker's claims. Released on drop.
pub enum Sweeping {
    Locked(SweepLock),
    Claiming(ClaimKeeper),
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

    /// Opens the catalog for a sweep, creating it (a file and its parent
    /// directories, or the tables of a database) or migrating it if needed.
    pub fn open(at: impl Into<Location>) -> Result<Catalog, CatalogError> {
        Catalog::open_as(at, Worker::this_process(Worker::DEFAULT_LEASE))
    }

    /// [`Catalog::open`] as `worker` (its id and lease name its claims in a database).
    pub fn open_as(at: impl Into<Location>, worker: Worker) -> Result<Catalog, CatalogError> {
        let store = match at.into() {
            Location::File(path) => Store::File(file::FileStore::open(&path, DEFAULT_LOCK_TIMEOUT)?),
            Location::Postgres(url) => {
                Store::Postgres(Arc::new(postgres::PgStore::open(&url, true, worker)?))
            }
        };
        Ok(Catalog { store })
    }

    /// A file catalog waiting at most `lock_timeout` for the file, in this
    /// and every later operation.
    pub fn open_with_lock_timeout(
        path: impl AsRef<Path>,
        lock_timeout: Duration,
    ) -> Result<Catalog, CatalogError> {
        Ok(Catalog { store: Store::File(file::FileStore::open(path.as_ref(), lock_timeout)?) })
    }

    /// Opens the catalog for queries: never creates (or migrates) anything,
    /// and a location with no catalog is an error (a mistyped path must not
    /// answer "no backup needs this key").
    pub fn open_existing(at: impl Into<Location>) -> Result<Catalog, CatalogError> {
        let store = match at.into() {
            Location::File(path) => Store::File(file::FileStore::open_existing(&path)?),
            Location::Postgres(url) => Store::Postgres(Arc::new(postgres::PgStore::open(
                &url,
                false,
                Worker::this_process(Worker::DEFAULT_LEASE),
            )?)),
        };
        Ok(Catalog { store })
    }

    /// The file of a file catalog.
    pub fn path(&self) -> Option<&Path> {
        match &self.store {
            Store::File(f) => Some(f.path()),
            Store::Postgres(_) => None,
        }
    }

    /// The catalog as messages name it (a database URL without its password).
    pub fn location(&self) -> &str {
        match &self.store {
            Store::File(f) => f.shown(),
            Store::Postgres(p) => p.shown(),
        }
    }

    /// What a sweep holds while it runs: a file's sweep lock (a second sweep
    /// is refused, naming the first), or a database worker's claim renewals.
    pub fn start_sweep(&self) -> Result<Sweeping, CatalogError> {
        match &self.store {
            Store::File(f) => f.sweep_lock().map(Sweeping::Locked),
            Store::Postgres(p) => Ok(Sweeping::Claiming(p.keep_claims())),
        }
    }

    /// Claims `source` for this worker before it is read (see [`Claim`]).
    pub fn claim(&self, source: &str) -> Result<Claim, CatalogError> {
        match &self.store {
            Store::File(_) => Ok(Claim::Unclaimed),
            Store::Postgres(p) => p.claim(source),
        }
    }

    /// Ends this worker's claim on `source` without recording it.
    pub fn release(&self, source: &str) -> Result<(), CatalogError> {
        match &self.store {
            Store::File(_) => Ok(()),
            Store::Postgres(p) => p.release(source),
        }
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&mut dyn ReadTables) -> Result<T, CatalogError>,
    ) -> Result<T, CatalogError> {
        match &self.store {
            Store::File(s) => s.read(f),
            Store::Postgres(s) => s.read(f),
        }
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&mut dyn WriteTables) -> Result<T, CatalogError>,
    ) -> Result<T, CatalogError> {
        match &self.store {
            Store::File(s) => s.write(f),
            Store::Postgres(s) => s.write(f),
        }
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
        self.write(|t| records.iter().try_for_each(|r| t.record(r)))
    }

    /// Every record, sorted by source.
    pub fn list(&self) -> Result<Vec<BackupRecord>, CatalogError> {
        let mut all = self.read(|t| t.backups())?;
        all.sort_by(|a, b| (&a.source, &a.sha256).cmp(&(&b.source, &b.sha256)));
        Ok(all)
    }

    /// Every record as a member of the per-cluster sweep, read one record
    /// at a time (only the members are held).
    pub fn members(&self) -> Result<Vec<crate::audit::sweep::Member>, CatalogError> {
        let mut members = Vec::new();
        self.read(|t| t.each_backup(&mut |r| members.push(member_of(&r))))?;
        Ok(members)
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
    /// this or another catalog, of either store.
    pub fn export(&self, out: &mut dyn std::io::Write) -> Result<Moved, CatalogError> {
        let (mut backups, mut sightings) = self.read(|t| Ok((t.backups()?, t.sightings()?)))?;
        backups.sort_by(|a, b| a.sha256.cmp(&b.sha256));
        sightings.sort_by(|a, b| a.0.cmp(&b.0));
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
        self.write(|t| t.forget_audited_before(cutoff))
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
        let first = catalog.start_sweep().unwrap();
        match catalog.start_sweep() {
            Err(CatalogError::SweepRunning { holder, .. }) => {
                assert!(holder.starts_with(&format!("pid {} since ", std::process::id())), "{holder}")
            }
            other => panic!("a second sweep was let in: {:?}", other.map(|_| ())),
        }
        // Queries and records still work while a sweep runs.
        assert!(catalog.list().unwrap().is_empty());
        drop(first);
        assert!(catalog.start_sweep().is_ok());
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
