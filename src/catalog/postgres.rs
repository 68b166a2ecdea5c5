//! The catalog in PostgreSQL (`--catalog postgres://…`), for fleets: many
//! shard workers record into one database at once, and every query answers
//! across all of them.
//!
//! The records are the redb file's (the same JSON rows of
//! [`super::tables`], as `jsonb`), in tables prefixed `etcd_audit_`; the
//! schema is created and upgraded by the versioned migrations in
//! `migrations/postgres/`, applied in order under an advisory lock by the
//! first sweep that connects (queries never create or migrate anything).
//!
//! Writes are serialised by a transaction-level advisory lock: a record is
//! a read-merge-write of the rows of one content, a few milliseconds, while
//! the audits around it take seconds. Reads take a repeatable-read snapshot.
//!
//! **Work claims.** Before a sweep downloads an object it claims it: a row
//! in `etcd_audit_claims` naming the worker, with a lease. Another worker
//! meeting a live claim passes the object over; a worker that dies leaves a
//! claim that expires after its lease, and the next sweep takes the object.
//! A live worker renews its claims every third of the lease; recording an
//! object ends its claim in the same transaction and appends a row to
//! `etcd_audit_audits` (who audited what, claimed when, recorded when).
//!
//! TLS: `sslmode` in the URL (`disable`, `prefer` (the default), `require`),
//! verified against the system's roots, or the PEM file `PGSSLROOTCERT`
//! names (as libpq reads it).

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use postgres::{Client, Config, IsolationLevel, Transaction};

use super::tables::{OnRow, ReadTables, Table, WriteTables};
use super::{CatalogError, Claim};

/// The migrations, in order: (version, SQL). A database with a version
/// this build does not know is refused as newer.
const MIGRATIONS: &[(i32, &str)] = &[(1, include_str!("../../migrations/postgres/0001_catalog.sql"))];

/// `pg_advisory_xact_lock` key of catalog writes and migrations ("etcdaudi").
const WRITE_LOCK: i64 = 0x6574_6364_6175_6469;

fn table_sql(table: Table) -> (&'static str, &'static str, &'static str) {
    match table {
        Table::Backups => ("etcd_audit_backups", "sha256", "record"),
        Table::Sources => ("etcd_audit_sources", "source", "sighting"),
    }
}

/// Who this process is to other workers, and how long its claims last
/// without renewal.
#[derive(Clone, Debug)]
pub struct Worker {
    pub id: String,
    pub lease: Duration,
}

impl Worker {
    /// The default lease: long enough that a renewal every third of it is
    /// never missed, short enough that a dead worker's objects are soon taken.
    pub const DEFAULT_LEASE: Duration = Duration::from_secs(300);

    /// `HOSTNAME:PID` (a pod's host name is its name).
    pub fn this_process(lease: Duration) -> Worker {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "localhost".into());
        Worker { id: format!("{host}:{}", std::process::id()), lease }
    }
}

pub(super) struct PgStore {
    config: Config,
    shown: String,
    client: Mutex<Client>,
    worker: Worker,
}

impl PgStore {
    /// Connects; `create` applies the migrations this database lacks, else
    /// a database without the catalog's tables is [`CatalogError::Missing`].
    pub fn open(url: &str, create: bool, worker: Worker) -> Result<PgStore, CatalogError> {
        let mut config: Config = url.parse().map_err(|source| CatalogError::Postgres {
            path: "--catalog postgres://…".into(),
            source: Box::new(source),
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("etcd-audit");
        }
        let shown = shown(&config);
        let client = connect(&config, &shown)?;
        let store = PgStore { config, shown, client: Mutex::new(client), worker };
        store.schema(create)?;
        Ok(store)
    }

    pub fn shown(&self) -> &str {
        &self.shown
    }

    fn err(&self) -> impl Fn(postgres::Error) -> CatalogError + '_ {
        |source| CatalogError::Postgres { path: self.shown.clone(), source: Box::new(source) }
    }

    fn client(&self) -> std::sync::MutexGuard<'_, Client> {
        self.client.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks (and with `create`, brings up to date) the schema version.
    fn schema(&self, create: bool) -> Result<(), CatalogError> {
        let known = MIGRATIONS.last().map_or(0, |m| m.0);
        let mut client = self.client();
        let mut tx = client.transaction().map_err(self.err())?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK]).map_err(self.err())?;
        let exists: bool = tx
            .query_one("SELECT to_regclass('etcd_audit_migrations') IS NOT NULL", &[])
            .map_err(self.err())?
            .get(0);
        match (exists, create) {
            (true, _) => {}
            // Queries create nothing (and need no CREATE privilege: a
            // read-only role may ask).
            (false, false) => return Err(CatalogError::Missing { path: self.shown.clone() }),
            (false, true) => tx
                .batch_execute(
                    "CREATE TABLE etcd_audit_migrations (
                         version integer PRIMARY KEY,
                         applied_at timestamptz NOT NULL DEFAULT now())",
                )
                .map_err(self.err())?,
        }
        let found: i32 = tx
            .query_one("SELECT coalesce(max(version), 0) FROM etcd_audit_migrations", &[])
            .map_err(self.err())?
            .get(0);
        if found > known {
            return Err(CatalogError::NewerSchema {
                path: self.shown.clone(),
                found: found as u64,
                supported: known as u64,
            });
        }
        if found < known && !create {
            return Err(CatalogError::OlderSchema {
                path: self.shown.clone(),
                found: found as u64,
                supported: known as u64,
            });
        }
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
            tx.batch_execute(sql).map_err(self.err())?;
            tx.execute("INSERT INTO etcd_audit_migrations (version) VALUES ($1)", &[version])
                .map_err(self.err())?;
        }
        tx.commit().map_err(self.err())
    }

    pub fn read<T>(
        &self,
        f: impl FnOnce(&mut dyn ReadTables) -> Result<T, CatalogError>,
    ) -> Result<T, CatalogError> {
        let mut client = self.client();
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(self.err())?;
        let mut tables = Tables { store: self, tx };
        let out = f(&mut tables)?;
        tables.tx.commit().map_err(self.err())?;
        Ok(out)
    }

    pub fn write<T>(
        &self,
        f: impl FnOnce(&mut dyn WriteTables) -> Result<T, CatalogError>,
    ) -> Result<T, CatalogError> {
        let mut client = self.client();
        let mut tx = client.transaction().map_err(self.err())?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK]).map_err(self.err())?;
        let mut tables = Tables { store: self, tx };
        let out = f(&mut tables)?;
        tables.tx.commit().map_err(self.err())?;
        Ok(out)
    }

    /// Claims `source` for this worker, unless another worker's claim on it
    /// is live (an expired claim, or this worker's own, is taken over).
    pub fn claim(&self, source: &str) -> Result<Claim, CatalogError> {
        let lease = self.worker.lease.as_secs_f64();
        let mut client = self.client();
        let taken = client
            .query_opt(
                "INSERT INTO etcd_audit_claims AS c (source, worker, claimed_at, expires_at)
                 VALUES ($1, $2, now(), now() + make_interval(secs => $3))
                 ON CONFLICT (source) DO UPDATE
                   SET worker = EXCLUDED.worker, claimed_at = EXCLUDED.claimed_at,
                       expires_at = EXCLUDED.expires_at
                   WHERE c.expires_at < now() OR c.worker = EXCLUDED.worker
                 RETURNING worker",
                &[&source, &self.worker.id, &lease],
            )
            .map_err(self.err())?;
        if taken.is_some() {
            return Ok(Claim::Taken);
        }
        let holder = client
            .query_opt(
                "SELECT worker, to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
                 FROM etcd_audit_claims WHERE source = $1",
                &[&source],
            )
            .map_err(self.err())?;
        Ok(match holder {
            Some(row) => Claim::HeldBy { worker: row.get(0), until: row.get(1) },
            // Released between the two statements: the holder recorded it.
            None => {
                Claim::HeldBy { worker: "a worker that has just finished it".into(), until: String::new() }
            }
        })
    }

    /// Ends this worker's claim on `source` without a record.
    pub fn release(&self, source: &str) -> Result<(), CatalogError> {
        self.client()
            .execute(
                "DELETE FROM etcd_audit_claims WHERE source = $1 AND worker = $2",
                &[&source, &self.worker.id],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// Renews this worker's claims every third of the lease on a connection
    /// of its own, until the keeper is dropped; then releases them all.
    pub fn keep_claims(self: &Arc<Self>) -> ClaimKeeper {
        let (stop, stopped): (Sender<()>, Receiver<()>) = std::sync::mpsc::channel();
        let store = Arc::clone(self);
        let every = (self.worker.lease / 3).max(Duration::from_millis(100));
        let thread = std::thread::spawn(move || {
            let mut own: Option<Client> = None;
            let mut warned = false;
            // Renews every `every` until the keeper drops its sender.
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                let renewed = match own.as_mut() {
                    Some(c) => store.renew(c),
                    None => connect(&store.config, &store.shown).and_then(|mut c| {
                        let r = store.renew(&mut c);
                        own = Some(c);
                        r
                    }),
                };
                if let Err(e) = renewed {
                    own = None;
                    if !std::mem::replace(&mut warned, true) {
                        // Not eprintln!: a closed stderr must not end the renewals.
                        let line = format!("etcd-audit: renewing claims: {e}\n");
                        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
                    }
                }
            }
        });
        ClaimKeeper { store: Arc::clone(self), stop: Some(stop), thread: Some(thread) }
    }

    fn renew(&self, client: &mut Client) -> Result<(), CatalogError> {
        client
            .execute(
                "UPDATE etcd_audit_claims SET expires_at = now() + make_interval(secs => $2) WHERE worker = $1",
                &[&self.worker.id, &self.worker.lease.as_secs_f64()],
            )
            .map_err(self.err())?;
        Ok(())
    }
}

/// Keeps a sweep's claims alive; dropping it stops the renewals and
/// releases every claim the sweep still holds (objects it failed on).
pub struct ClaimKeeper {
    store: Arc<PgStore>,
    stop: Option<Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for ClaimKeeper {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let mut client = self.store.client();
        let _ = client.execute("DELETE FROM etcd_audit_claims WHERE worker = $1", &[&self.store.worker.id]);
    }
}

fn connect(config: &Config, shown: &str) -> Result<Client, CatalogError> {
    let err = |source| CatalogError::Postgres { path: shown.to_string(), source: Box::new(source) };
    config.connect(tls(shown)?).map_err(err)
}

/// The TLS connector every connection offers (`sslmode` decides whether
/// it is used): the system's roots, or those in `PGSSLROOTCERT`.
fn tls(shown: &str) -> Result<tokio_postgres_rustls::MakeRustlsConnect, CatalogError> {
    let bad = |why: String| CatalogError::Tls { path: shown.to_string(), why };
    let mut roots = rustls::RootCertStore::empty();
    match std::env::var_os("PGSSLROOTCERT") {
        Some(file) => {
            let pem = std::fs::read(&file)
                .map_err(|e| bad(format!("PGSSLROOTCERT {}: {e}", std::path::Path::new(&file).display())))?;
            use rustls::pki_types::{pem::PemObject, CertificateDer};
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| bad(format!("PGSSLROOTCERT: {e}")))?;
                roots.add(cert).map_err(|e| bad(format!("PGSSLROOTCERT: {e}")))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// The database as messages name it: never the password.
fn shown(config: &Config) -> String {
    use postgres::config::Host;
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let port = config.get_ports().first().map(|p| format!(":{p}")).unwrap_or_default();
    let user = config.get_user().map(|u| format!("{u}@")).unwrap_or_default();
    format!("postgres://{user}{}{port}/{}", hosts.join(","), config.get_dbname().unwrap_or(""))
}

struct Tables<'s, 'c> {
    store: &'s PgStore,
    tx: Transaction<'c>,
}

impl ReadTables for Tables<'_, '_> {
    fn at(&self) -> &str {
        &self.store.shown
    }

    fn get(&mut self, table: Table, key: &str) -> Result<Option<Vec<u8>>, CatalogError> {
        let (name, k, v) = table_sql(table);
        let row = self
            .tx
            .query_opt(&format!("SELECT {v}::text FROM {name} WHERE {k} = $1"), &[&key])
            .map_err(self.store.err())?;
        Ok(row.map(|r| r.get::<_, String>(0).into_bytes()))
    }

    fn each(&mut self, table: Table, row: &mut OnRow) -> Result<(), CatalogError> {
        use postgres::fallible_iterator::FallibleIterator;
        let (name, k, v) = table_sql(table);
        let sql = format!("SELECT {k}, {v}::text FROM {name}");
        let mut rows = self.tx.query_raw(&sql, std::iter::empty::<&str>()).map_err(self.store.err())?;
        while let Some(r) = rows.next().map_err(self.store.err())? {
            row(r.get::<_, &str>(0), r.get::<_, &str>(1).as_bytes())?;
        }
        Ok(())
    }
}

impl WriteTables for Tables<'_, '_> {
    fn put(&mut self, table: Table, key: &str, value: &[u8]) -> Result<(), CatalogError> {
        let (name, k, v) = table_sql(table);
        let json = std::str::from_utf8(value).expect("catalog rows are JSON text");
        self.tx
            .execute(
                &format!(
                    "INSERT INTO {name} ({k}, {v}) VALUES ($1, $2::text::jsonb)
                     ON CONFLICT ({k}) DO UPDATE SET {v} = EXCLUDED.{v}"
                ),
                &[&key, &json],
            )
            .map_err(self.store.err())?;
        Ok(())
    }

    fn remove(&mut self, table: Table, key: &str) -> Result<bool, CatalogError> {
        let (name, k, _) = table_sql(table);
        let n = self
            .tx
            .execute(&format!("DELETE FROM {name} WHERE {k} = $1"), &[&key])
            .map_err(self.store.err())?;
        Ok(n > 0)
    }

    fn audited(&mut self, source: &str, sha256: &str) -> Result<(), CatalogError> {
        self.tx
            .execute(
                "WITH ended AS (
                     DELETE FROM etcd_audit_claims WHERE source = $1 AND worker = $2 RETURNING claimed_at)
                 INSERT INTO etcd_audit_audits (source, sha256, worker, claimed_at)
                 VALUES ($1, $3, $2, (SELECT claimed_at FROM ended))",
                &[&source, &self.store.worker.id, &sha256],
            )
            .map_err(self.store.err())?;
        Ok(())
    }
}
