//! Sources yield backups. The walk turns what the user named (files,
//! folders, data dirs, `s3://`/`gs://`/`az://` URLs, live `etcd://`
//! endpoints) into one [`Item`] per backup: its display name, the chain of
//! containers it came out of, where it came from, and whether the user named
//! it. Containers are unwrapped on the way (a tar's folder is walked again).
//!
//! Work is split so that neither side starves the other: the walk runs on
//! its own thread (downloads on a few more), and each item is audited as a
//! task on rayon's pool as soon as it is ready. Network waits never occupy a
//! rayon worker, and at most a few unwrapped backups wait at any time.
//! Results come back in a stable order: sources as given, then paths and
//! objects in sorted order.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Condvar, Mutex};

use serde::Serialize;

use crate::container::{self, ContainerError, Content, Limits};
use crate::progress::{Meter, Progress};
use crate::source::live::{Live, LiveOptions, LiveTarget};
use crate::source::remote::{ObjectUrl, Remote, RemoteObject};
use crate::source::{self, Blob, Found, SourceError};

/// Downloads of one object-storage prefix in flight at once.
const DOWNLOADS: usize = 4;

/// Why a source, or part of it, yielded no backup to audit.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error("no backups found in {name} ({files} files{})", if *.files > 0 { ", none a backup" } else { "" })]
    NoBackups { name: String, files: usize },
}

/// How live `etcd://` sources are read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LiveMode {
    /// The Maintenance Snapshot RPC, then the offline pipeline (history, residue, inspect all work).
    #[default]
    Snapshot,
    /// Paginated Range requests at one revision, for users without snapshot permission.
    Range,
}

/// Why a file was passed over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// Found by walking a folder or an archive, and not a backup.
    NotABackup,
    /// The catalog already holds it, audited with the same keys and tool version.
    AlreadyAudited,
    /// Another worker sharing the catalog is auditing it now (its claim).
    ClaimedElsewhere,
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::NotABackup => ContainerError::Unrecognized.fmt(f),
            SkipReason::AlreadyAudited => f.write_str(
                "already audited with these keys and this tool version (--rescan audits it again)",
            ),
            SkipReason::ClaimedElsewhere => f.write_str(
                "being audited by another worker sharing the catalog (the next sweep takes it if that one dies)",
            ),
        }
    }
}

impl Serialize for SkipReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A file inside a walked folder or archive that is not audited.
#[derive(Clone, Debug, Serialize)]
pub struct Skipped {
    pub path: String,
    pub reason: SkipReason,
}

/// Where a backup came from, as far as the catalog and the report care.
#[derive(Clone, Debug)]
pub enum Origin {
    /// A local file the walk found or the user named, with the k3s
    /// `.metadata/<name>` sidecar beside it when there is one.
    File(std::fs::Metadata, Option<serde_json::Value>),
    /// An object in object storage (or something inside one).
    Object(RemoteObject),
    /// A live cluster.
    Live,
    /// A data dir, or a file inside a local archive.
    Other,
}

impl Origin {
    /// An object's Last-Modified (RFC 3339).
    pub fn last_modified(&self) -> Option<&str> {
        match self {
            Origin::Object(o) => Some(o.last_modified.as_str()).filter(|t| !t.is_empty()),
            _ => None,
        }
    }

    /// What the report shows under `object`: object-storage facts, or a local
    /// file's k3s sidecar.
    pub fn object(&self, name: &str) -> Option<RemoteObject> {
        match self {
            Origin::Object(o) => Some(o.clone()),
            Origin::File(meta, Some(sidecar)) => {
                Some(RemoteObject::local(Path::new(name), meta, sidecar.clone()))
            }
            _ => None,
        }
    }

    /// User metadata of the object the backup came from.
    pub fn user_metadata(&self) -> Option<&std::collections::BTreeMap<String, String>> {
        match self {
            Origin::Object(o) => Some(&o.user_metadata),
            _ => None,
        }
    }
}

/// k3s writes `<dir>/.metadata/<snapshot file name>` beside a snapshot.
fn local_sidecar(path: &Path) -> Option<serde_json::Value> {
    let sidecar = path.parent()?.join(".metadata").join(path.file_name()?);
    std::fs::metadata(&sidecar)
        .ok()
        .filter(|m| m.is_file() && m.len() <= crate::source::remote::MAX_SIDECAR)?;
    serde_json::from_slice(&std::fs::read(sidecar).ok()?).ok()
}

/// What a backup holds, ready to audit.
pub enum Payload {
    /// bbolt bytes (with or without a snapshot trailer) and, for a data dir,
    /// its WAL segments in sequence order.
    Database { blob: Blob, wal: Option<Vec<(String, Blob)>> },
    /// A Gardener delta snapshot.
    Delta(Blob),
    /// A live cluster read key by key (`--live-mode range`).
    Range(Box<Live>),
}

/// One backup.
pub struct Item {
    /// As the report names it: the path or URL, with `!/inner/path` for
    /// what came out of an archive.
    pub name: String,
    /// Outermost first, e.g. `["zip", "etcd-snapshot"]`.
    pub chain: Vec<String>,
    pub origin: Origin,
    /// The user named this very file or object (not found by a walk).
    pub explicit: bool,
    pub payload: Payload,
    /// How far its audit is (a progress bar on a terminal, else nothing).
    pub meter: Meter,
}

/// Says why a file or object (by name and origin) is passed over: the
/// catalog holds it already, or another worker is auditing it; `None`: read it.
pub type PassOver<'a> = dyn Fn(&str, &Origin) -> Option<SkipReason> + Sync + 'a;

/// The walk's settings.
pub struct Walk<'w> {
    pub limits: Limits,
    /// Connections one object download uses at most (ranged GETs of its parts).
    pub connections: usize,
    pub live_mode: LiveMode,
    pub live: &'w LiveOptions,
    pub progress: &'w Progress,
    /// Passes over what the catalog already holds (or another worker is
    /// auditing): called with the name and origin of each local file and
    /// object before it is read or downloaded.
    pub pass_over: Option<&'w PassOver<'w>>,
    /// `--salvage`: a file the user named that no container recognises (its
    /// first page destroyed) is handed on as a database to carve.
    pub salvage: bool,
    /// Only this share of listed objects and walked files (sources named one by one are whole).
    pub shard: Option<Shard>,
}

/// `--shard INDEX/COUNT`: this worker's share of what prefixes list and
/// folders hold. A key (an object's key, or a file's path relative to the
/// folder walked) falls to shard `SHA-256(key)[..8] as u64 % COUNT`: every
/// shard sees the same split, and the shards together see everything once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    pub fn takes(&self, key: &str) -> bool {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(key.as_bytes());
        let head = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
        head % u64::from(self.count) == u64::from(self.index)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("expected INDEX/COUNT with 0 <= INDEX < COUNT (e.g. 0/4), got {0:?}")]
pub struct ShardError(String);

impl std::str::FromStr for Shard {
    type Err = ShardError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ShardError(s.into());
        let (index, count) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (u32, u32) =
            (index.trim().parse().map_err(|_| bad())?, count.trim().parse().map_err(|_| bad())?);
        (index < count).then_some(Shard { index, count }).ok_or_else(bad)
    }
}

/// One backup's outcome, in report order.
pub struct Done<T, E> {
    pub name: String,
    pub origin: Origin,
    pub result: Result<T, E>,
}

pub struct Walked<T, E> {
    pub backups: Vec<Done<T, E>>,
    /// Sorted by path.
    pub skipped: Vec<Skipped>,
    /// Objects and files left to other shards.
    pub other_shards: usize,
}

impl<T, E> Walked<T, E> {
    /// Nothing was left to audit: everything was audited already, or falls to
    /// other shards (nothing to do is then no failure).
    pub fn nothing_to_do(&self) -> bool {
        self.backups.is_empty()
            && (self.other_shards > 0 || self.skipped.iter().any(|s| s.reason != SkipReason::NotABackup))
    }

    /// The same walk with each result turned by `f`.
    pub fn map<U>(self, mut f: impl FnMut(&str, Result<T, E>) -> Result<U, E>) -> Walked<U, E> {
        let backups = self
            .backups
            .into_iter()
            .map(|d| Done { result: f(&d.name, d.result), name: d.name, origin: d.origin })
            .collect();
        Walked { backups, skipped: self.skipped, other_shards: self.other_shards }
    }
}

/// Position in the report: source index, then index at each level below.
type Order = Vec<u32>;

enum Event {
    Backup(Order, Item),
    Failed(Order, String, Origin, WalkError),
    Skipped(Skipped),
    OtherShard,
}

/// Walks `sources` and audits every backup with `audit` on rayon's pool.
pub fn walk<T, E>(
    sources: &[String],
    settings: &Walk,
    audit: &(dyn Fn(&Item) -> Result<T, E> + Sync),
) -> Walked<T, E>
where
    T: Send,
    E: From<WalkError> + Send,
{
    let (tx, rx) = sync_channel::<Event>(1);
    let results: Mutex<Vec<(Order, Done<T, E>)>> = Mutex::new(Vec::new());
    let mut skipped = Vec::new();
    let mut other_shards = 0;
    let in_flight = Slots::new(rayon::current_num_threads() + 1);
    std::thread::scope(|s| {
        s.spawn(move || {
            for (i, name) in sources.iter().enumerate() {
                visit_source(vec![i as u32], name, settings, &tx);
            }
        });
        rayon::in_place_scope(|scope| {
            for event in rx {
                let (order, name, origin, outcome) = match event {
                    Event::Skipped(skip) => {
                        skipped.push(skip);
                        continue;
                    }
                    Event::OtherShard => {
                        other_shards += 1;
                        continue;
                    }
                    Event::Failed(order, name, origin, e) => (order, name, origin, Err(E::from(e))),
                    Event::Backup(order, item) => {
                        let slot = in_flight.take();
                        let results = &results;
                        scope.spawn(move |_| {
                            let _slot = slot; // given back when this task ends, even by a panic
                            let meter = settings.progress.meter("auditing", &item.name);
                            let item = Item { meter, ..item };
                            let result = audit(&item);
                            item.meter.finish();
                            let done = Done { name: item.name, origin: item.origin, result };
                            lock(results).push((order, done));
                        });
                        continue;
                    }
                };
                lock(&results).push((order, Done { name, origin, result: outcome }));
            }
        });
    });
    let mut backups = results.into_inner().unwrap_or_else(|e| e.into_inner());
    backups.sort_by(|a, b| a.0.cmp(&b.0));
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    Walked { backups: backups.into_iter().map(|(_, done)| done).collect(), skipped, other_shards }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A counting semaphore: how many unwrapped backups may wait or be audited at once.
struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
}

impl Slots {
    fn new(n: usize) -> Self {
        Slots { free: Mutex::new(n), freed: Condvar::new() }
    }

    fn take(&self) -> Slot<'_> {
        let mut free = lock(&self.free);
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        Slot(self)
    }
}

/// A taken slot, given back when dropped.
struct Slot<'s>(&'s Slots);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        *lock(&self.0.free) += 1;
        self.0.freed.notify_one();
    }
}

/// Where one source's events go, counting what it yielded.
struct Sink<'s> {
    tx: &'s SyncSender<Event>,
    yielded: AtomicUsize,
    files: AtomicUsize,
    passed_over: AtomicUsize,
    other_shards: AtomicUsize,
}

impl<'s> Sink<'s> {
    fn new(tx: &'s SyncSender<Event>) -> Self {
        Sink {
            tx,
            yielded: AtomicUsize::new(0),
            files: AtomicUsize::new(0),
            passed_over: AtomicUsize::new(0),
            other_shards: AtomicUsize::new(0),
        }
    }

    /// Whether this shard takes `key`; counts what it leaves to others.
    fn takes(&self, shard: Option<Shard>, key: &str) -> bool {
        let takes = shard.is_none_or(|s| s.takes(key));
        if !takes {
            self.other_shards.fetch_add(1, Ordering::Relaxed);
            let _ = self.tx.send(Event::OtherShard);
        }
        takes
    }

    fn backup(&self, order: Order, item: Item) {
        self.yielded.fetch_add(1, Ordering::Relaxed);
        let _ = self.tx.send(Event::Backup(order, item));
    }

    fn failed(&self, order: Order, name: String, origin: Origin, e: impl Into<WalkError>) {
        self.yielded.fetch_add(1, Ordering::Relaxed);
        let _ = self.tx.send(Event::Failed(order, name, origin, e.into()));
    }

    fn skipped(&self, path: String, reason: SkipReason) {
        if reason != SkipReason::NotABackup {
            self.passed_over.fetch_add(1, Ordering::Relaxed);
        }
        let _ = self.tx.send(Event::Skipped(Skipped { path, reason }));
    }
}

fn visit_source(order: Order, name: &str, settings: &Walk, tx: &SyncSender<Event>) {
    let sink = Sink::new(tx);
    if let Some(url) = ObjectUrl::parse(name) {
        visit_remote(&order, name, &url, settings, &sink);
    } else if let Some(target) = LiveTarget::parse(name) {
        visit_live(order.clone(), &target, settings, &sink);
    } else {
        let path = Path::new(name);
        match source::discover(path) {
            Ok(found) => {
                let explicit = found.len() == 1 && found[0].path() == path;
                sink.files.store(found.len(), Ordering::Relaxed);
                let local = Local { archive: None, explicit };
                for (i, f) in found.iter().enumerate() {
                    // A folder's files are shared out by their path in it; a file named is whole.
                    let relative = f.path().strip_prefix(path).unwrap_or(f.path());
                    if explicit || sink.takes(settings.shard, &relative.to_string_lossy()) {
                        visit_found(with(&order, i), f, &local, None, settings, &sink);
                    }
                }
            }
            Err(e) => sink.failed(order.clone(), name.to_string(), Origin::Other, e),
        }
    }
    let left = sink.passed_over.load(Ordering::Relaxed) + sink.other_shards.load(Ordering::Relaxed);
    if sink.yielded.load(Ordering::Relaxed) == 0 && left == 0 {
        let files = sink.files.load(Ordering::Relaxed);
        sink.failed(
            order,
            name.to_string(),
            Origin::Other,
            WalkError::NoBackups { name: name.into(), files },
        );
    }
}

fn with(order: &Order, i: usize) -> Order {
    let mut o = order.clone();
    o.push(i as u32);
    o
}

/// Every object the URL names, as the listing streams in, downloaded a few at
/// a time on threads of their own (the listing waits for them: it is never
/// held whole), and unwrapped there.
fn visit_remote(order: &Order, name: &str, url: &ObjectUrl, settings: &Walk, sink: &Sink) {
    let remote = match Remote::connect(url) {
        Ok(remote) => remote,
        Err(e) => return sink.failed(order.clone(), name.to_string(), Origin::Other, e),
    };
    let (tx, rx) = sync_channel::<(usize, RemoteObject, bool)>(DOWNLOADS);
    let rx = Mutex::new(rx);
    std::thread::scope(|s| {
        for _ in 0..DOWNLOADS {
            s.spawn(|| loop {
                let next = lock(&rx).recv();
                let Ok((i, mut object, explicit)) = next else { break };
                let origin = Origin::Object(object.clone());
                if let Some(reason) = settings.pass_over.and_then(|pass| pass(&object.url, &origin)) {
                    sink.skipped(object.url.clone(), reason);
                    continue;
                }
                let bar = settings.progress.download(&object.url, object.size);
                let downloaded = remote.download(&mut object, settings.connections, &|n| bar.inc(n));
                bar.finish_and_clear();
                let origin = Origin::Object(object.clone());
                match downloaded {
                    Ok(blob) => {
                        let at = Unwrap { name: &object.url, chain: vec![], origin, explicit };
                        unwrap(with(order, i), blob, at, None, settings, sink)
                    }
                    Err(e) => sink.failed(with(order, i), object.url.clone(), origin, e),
                }
            });
        }
        let mut next = 0;
        let listed = remote.list(|object, listed_prefix| {
            sink.files.fetch_add(1, Ordering::Relaxed);
            // A prefix's objects are shared out by key; an object named is whole.
            if !listed_prefix || sink.takes(settings.shard, object.key()) {
                let _ = tx.send((next, object, !listed_prefix));
                next += 1;
            }
        });
        drop(tx);
        if let Err(e) = listed {
            sink.failed(with(order, usize::MAX), name.to_string(), Origin::Other, e);
        }
    });
}

/// A live cluster: a snapshot streamed to a temp file and audited like a
/// file, or (range mode) read key by key by the audit itself.
fn visit_live(order: Order, target: &LiveTarget, settings: &Walk, sink: &Sink) {
    let live = match Live::connect(target, settings.live) {
        Ok(live) => live,
        Err(e) => return sink.failed(order, target.url.clone(), Origin::Live, e),
    };
    if settings.live_mode == LiveMode::Range {
        let chain = vec!["etcd-range".to_string()];
        let item = Item {
            name: target.url.clone(),
            chain,
            origin: Origin::Live,
            explicit: true,
            payload: Payload::Range(Box::new(live)),
            meter: Meter::default(),
        };
        return sink.backup(order, item);
    }
    let bar = settings.progress.download(&target.url, 0);
    let streamed = live.snapshot(&|n| bar.inc(n));
    bar.finish_and_clear();
    match streamed {
        Ok(blob) => {
            let at = Unwrap {
                name: &target.url,
                chain: vec!["etcd-live".into()],
                origin: Origin::Live,
                explicit: true,
            };
            unwrap(order, blob, at, None, settings, sink)
        }
        Err(e) => sink.failed(order, target.url.clone(), Origin::Live, e),
    }
}

/// Where a local walk is: in the user's folder, or in an unpacked archive.
struct Local<'l> {
    /// `(display name of the archive, its temp root, its chain, its origin)`.
    archive: Option<(&'l str, &'l Path, &'l [String], &'l Origin)>,
    explicit: bool,
}

/// What one backup file may still unpack, shared with everything nested in
/// it (`--max-unpacked-bytes`); a file the walk finds by itself starts afresh.
type Budget<'b> = Option<&'b mut u64>;

fn visit_found(order: Order, found: &Found, local: &Local, budget: Budget, settings: &Walk, sink: &Sink) {
    let (name, chain, inner_origin) = match local.archive {
        Some((outer, root, chain, origin)) => {
            let inner = found.path().strip_prefix(root).unwrap_or(found.path());
            (format!("{outer}!/{}", inner.display()), chain.to_vec(), Some(origin))
        }
        None => (found.path().display().to_string(), vec![], None),
    };
    let origin_or = |fallback: Origin| inner_origin.cloned().unwrap_or(fallback);
    match found {
        Found::DataDir(dir) => {
            let origin = origin_or(Origin::Other);
            match data_dir(dir) {
                Ok((blob, wal)) => {
                    let chain = chain.into_iter().chain(["data-dir".into(), "bbolt".into()]).collect();
                    let payload = Payload::Database { blob, wal: Some(wal) };
                    sink.backup(
                        order,
                        Item { name, chain, origin, explicit: true, payload, meter: Meter::default() },
                    )
                }
                Err(e) => sink.failed(order, name, origin, e),
            }
        }
        Found::File(path) => {
            let origin = match inner_origin {
                Some(o) => o.clone(),
                None => {
                    std::fs::metadata(path).map_or(Origin::Other, |m| Origin::File(m, local_sidecar(path)))
                }
            };
            if let Some(reason) =
                settings.pass_over.filter(|_| local.archive.is_none()).and_then(|pass| pass(&name, &origin))
            {
                return sink.skipped(name, reason);
            }
            match Blob::open(path) {
                Ok(blob) => {
                    let at = Unwrap { name: &name, chain, origin, explicit: local.explicit };
                    unwrap(order, blob, at, budget, settings, sink)
                }
                Err(e) => sink.failed(order, name, origin, e),
            }
        }
    }
}

/// A data dir's database and WAL segments, mapped.
fn data_dir(dir: &Path) -> Result<(Blob, Vec<(String, Blob)>), SourceError> {
    let (db, segments) = source::data_dir(dir)?;
    let wal = segments
        .iter()
        .map(|segment| Ok((file_name(segment), Blob::open(segment)?)))
        .collect::<Result<_, SourceError>>()?;
    Ok((Blob::open(&db)?, wal))
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// What is being unwrapped, and what it was named.
struct Unwrap<'u> {
    name: &'u str,
    chain: Vec<String>,
    origin: Origin,
    explicit: bool,
}

/// Unwraps one file's bytes and yields what is inside: a backup, or (for an
/// archive) everything its folder holds.
fn unwrap(order: Order, blob: Blob, at: Unwrap, budget: Budget, settings: &Walk, sink: &Sink) {
    if settings.salvage && at.explicit && container::sniff(blob.bytes(), at.name).is_none() {
        let chain = at.chain.into_iter().chain(["unrecognized".to_string()]).collect();
        let payload = Payload::Database { blob, wal: None };
        return sink.backup(
            order,
            Item {
                name: at.name.to_string(),
                chain,
                origin: at.origin,
                explicit: true,
                payload,
                meter: Meter::default(),
            },
        );
    }
    let mut fresh = settings.limits.max_unpacked_bytes;
    let budget = budget.unwrap_or(&mut fresh);
    let bar = settings.progress.bytes("unpacking", at.name, blob.bytes().len() as u64);
    let on_read = |read: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(read);
    };
    let unwrapped = container::unwrap(blob, at.name, budget, at.chain.len(), &on_read);
    bar.finish_and_clear();
    let unwrapped = match unwrapped {
        Ok(u) => u,
        Err(ContainerError::Unrecognized) if !at.explicit => {
            return sink.skipped(at.name.to_string(), SkipReason::NotABackup)
        }
        Err(e) => return sink.failed(order, at.name.to_string(), at.origin, e),
    };
    let chain: Vec<String> =
        at.chain.into_iter().chain(unwrapped.chain.iter().map(|c| c.to_string())).collect();
    let item = |chain, payload| Item {
        name: at.name.to_string(),
        chain,
        origin: at.origin.clone(),
        explicit: at.explicit,
        meter: Meter::default(),
        payload,
    };
    match unwrapped.content {
        Content::Database(blob) => sink.backup(order, item(chain, Payload::Database { blob, wal: None })),
        Content::Delta(blob) => sink.backup(order, item(chain, Payload::Delta(blob))),
        Content::Directory(dir) => match source::discover(dir.path()) {
            Ok(inner) => {
                let archive = Some((at.name, dir.path(), chain.as_slice(), &at.origin));
                let local = Local { archive, explicit: false };
                for (i, f) in inner.iter().enumerate() {
                    visit_found(with(&order, i), f, &local, Some(&mut *budget), settings, sink);
                }
            }
            Err(e) => sink.failed(order, at.name.to_string(), at.origin, e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(sources: &[&str]) -> Walked<String, WalkError> {
        let (progress, live) = (Progress::new(true), LiveOptions::default());
        let settings = Walk {
            limits: Limits::default(),
            connections: 1,
            live_mode: LiveMode::Snapshot,
            live: &live,
            progress: &progress,
            pass_over: None,
            salvage: false,
            shard: None,
        };
        let sources: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
        walk(&sources, &settings, &|item: &Item| Ok(item.chain.join(">")))
    }

    #[test]
    fn shards_parse_and_split_every_key_to_exactly_one() {
        let shard = |s: &str| s.parse::<Shard>().ok();
        assert_eq!(shard("1/4"), Some(Shard { index: 1, count: 4 }));
        assert_eq!(shard(" 0 / 2 "), Some(Shard { index: 0, count: 2 }));
        for bad in ["4/4", "0/0", "1", "-1/2", "a/b", "1/2/3"] {
            assert_eq!(shard(bad), None, "{bad}");
        }
        for key in ["a", "k3s/etcd-snapshot-1", "", "ü/ß"] {
            let owners = (0..5).filter(|&index| Shard { index, count: 5 }.takes(key)).count();
            assert_eq!(owners, 1, "{key:?}");
        }
    }

    #[test]
    fn an_empty_folder_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let walked = names(&[dir.path().to_str().unwrap()]);
        let e = walked.backups[0].result.as_ref().unwrap_err().to_string();
        assert_eq!(e, format!("no backups found in {} (0 files)", dir.path().display()));
        std::fs::write(dir.path().join("notes.txt"), "hello").unwrap();
        let walked = names(&[dir.path().to_str().unwrap()]);
        let e = walked.backups[0].result.as_ref().unwrap_err().to_string();
        assert!(e.ends_with("(1 files, none a backup)"), "{e}");
        assert_eq!(walked.skipped.len(), 1);
    }

    #[test]
    fn results_keep_the_order_of_sources() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let walked = names(&[missing.to_str().unwrap(), dir.path().to_str().unwrap()]);
        let names: Vec<&str> = walked.backups.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, [missing.to_str().unwrap(), dir.path().to_str().unwrap()]);
    }
}
