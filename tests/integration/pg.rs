//! A real PostgreSQL server for the tests (Debian's `postgresql`: `initdb`
//! and `postgres` in a folder under the target dir, on 127.0.0.1 at a free
//! port, trust authentication). One server per test process, started on
//! first use; one fresh database per caller. The server is this process's
//! child with a parent-death signal, so it ends with the test process, and
//! the folders of earlier runs are removed when the next starts.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

const USER: &str = "etcd_audit";

struct Server {
    port: u16,
}

static SERVER: OnceLock<Server> = OnceLock::new();
static DATABASES: AtomicUsize = AtomicUsize::new(0);

/// A fresh, empty database: its URL (no TLS on loopback).
pub fn database() -> String {
    let server = SERVER.get_or_init(start);
    let name = format!("t{}_{}", std::process::id(), DATABASES.fetch_add(1, Ordering::Relaxed));
    let mut admin = client(server.port, "postgres");
    admin.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    url(server.port, &name)
}

/// A plain client on a database URL, for checks the CLI does not show.
pub fn connect(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).unwrap()
}

fn url(port: u16, db: &str) -> String {
    format!("postgres://{USER}@127.0.0.1:{port}/{db}?sslmode=disable")
}

fn client(port: u16, db: &str) -> postgres::Client {
    connect(&url(port, db))
}

/// `initdb`, `postgres`: on PATH, else the newest of /usr/lib/postgresql/*/bin.
fn bin(name: &str) -> PathBuf {
    let newest = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin").join(name))
        .filter(|p| p.is_file())
        .max_by_key(|p| {
            p.parent().and_then(Path::parent).and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
        });
    newest.unwrap_or_else(|| PathBuf::from(name))
}

/// PostgreSQL refuses to run as root: then it runs as the `postgres` user.
fn unprivileged() -> Option<(u32, u32)> {
    // SAFETY: getuid and getpwnam have no preconditions; the record is read at once.
    unsafe {
        if libc::getuid() != 0 {
            return None;
        }
        let pw = libc::getpwnam(c"postgres".as_ptr());
        assert!(!pw.is_null(), "running as root needs the postgres user (Debian's postgresql package)");
        Some(((*pw).pw_uid, (*pw).pw_gid))
    }
}

fn as_server_user(cmd: &mut Command, ids: Option<(u32, u32)>, die_with_parent: bool) {
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if let Some((uid, gid)) = ids {
                if libc::setgid(gid) != 0 || libc::setuid(uid) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            // After setuid, which clears it.
            if die_with_parent && libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn start() -> Server {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    remove_stale(base);
    let dir = base.join(format!("pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ids = unprivileged();
    if let Some((uid, gid)) = ids {
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
    }
    let data = dir.join("data");
    let mut initdb = Command::new(bin("initdb"));
    initdb.args(["-D", data.to_str().unwrap(), "-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync"]);
    initdb.stdout(Stdio::null()).stderr(Stdio::piped());
    as_server_user(&mut initdb, ids, false);
    let out = initdb.output().expect("initdb (Debian postgresql; scripts/test-deps.sh installs it)");
    assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = std::fs::File::create(dir.join("server.log")).unwrap();
    let mut server = Command::new(bin("postgres"));
    server
        .args(["-D", data.to_str().unwrap(), "-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-k", dir.to_str().unwrap()])
        .args(["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
        .args(["-c", "max_connections=200"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    as_server_user(&mut server, ids, true);
    // The parent-death signal follows the thread that spawned the server:
    // that thread lives as long as the process.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let child = server.spawn();
        let _ = tx.send(child.map(|c| c.id()));
        loop {
            std::thread::park();
        }
    });
    rx.recv().unwrap().expect("postgres starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match postgres::Client::connect(&url(port, "postgres"), postgres::NoTls) {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!(
                "postgres on port {port} did not come up: {e}\n{}",
                std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
            ),
        }
    }
    Server { port }
}

/// The folders of earlier test processes that are gone.
fn remove_stale(base: &Path) {
    for entry in std::fs::read_dir(base).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("pg-")).and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
