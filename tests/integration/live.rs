//! Live mode against a real etcd 3.5 on 127.0.0.1, restored from the verdict
//! scenario's snapshot so the expected verdicts are known: snapshot and range
//! modes, TLS with client certificates, and the failures a runbook meets.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;
use serde_json::{json, Value};

struct Etcd {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn bin(name: &str) -> PathBuf {
    etcd35(name)
}

/// etcd serving the scan scenario, restored with etcdutl from its snapshot.
fn start_etcd(tls: Option<&Certs>) -> Etcd {
    start_etcd_from(&testdata("etcd35-scan.snapshot.db"), tls)
}

/// etcd serving `snapshot`, restored with etcdutl.
fn start_etcd_from(snapshot: &Path, tls: Option<&Certs>) -> Etcd {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (port, peer) = (free_port(), free_port());
    let out = Command::new(bin("etcdutl"))
        .args(["snapshot", "restore"])
        .arg(snapshot)
        .arg("--data-dir")
        .arg(&data)
        .args(["--name", "live", "--initial-cluster", &format!("live=http://127.0.0.1:{peer}")])
        .args(["--initial-advertise-peer-urls", &format!("http://127.0.0.1:{peer}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "restore: {}", String::from_utf8_lossy(&out.stderr));
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut cmd = Command::new(bin("etcd"));
    cmd.args(["--name", "live", "--data-dir"])
        .arg(&data)
        .args(["--listen-client-urls", &format!("{scheme}://127.0.0.1:{port}")])
        .args(["--advertise-client-urls", &format!("{scheme}://127.0.0.1:{port}")])
        .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
        .args(["--initial-advertise-peer-urls", &format!("http://127.0.0.1:{peer}")])
        .args(["--initial-cluster", &format!("live=http://127.0.0.1:{peer}")]);
    if let Some(c) = tls {
        cmd.arg("--cert-file").arg(c.path("server.pem")).arg("--key-file").arg(c.path("server.key"));
        cmd.arg("--client-cert-auth").arg("--trusted-ca-file").arg(c.path("ca.pem"));
    }
    let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "etcd did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500)); // leader election
    Etcd { child, port, _dir: dir }
}

/// A CA, a server certificate for 127.0.0.1, a client certificate, and a
/// second, untrusted CA with its own client certificate.
struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    fn make() -> Certs {
        let dir = tempfile::tempdir().unwrap();
        let sh = |script: &str| {
            let out = Command::new("sh").arg("-c").arg(script).current_dir(dir.path()).output().unwrap();
            assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
        };
        for ca in ["ca", "rogue-ca"] {
            sh(&format!(
                "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN={ca} -keyout {ca}.key -out {ca}.pem 2>/dev/null"
            ));
        }
        let sign = |name: &str, ca: &str, ext: &str| {
            sh(&format!(
                "openssl req -newkey rsa:2048 -nodes -subj /CN={name} -keyout {name}.key -out {name}.csr 2>/dev/null && \
                 printf '{ext}' > {name}.ext && \
                 openssl x509 -req -in {name}.csr -CA {ca}.pem -CAkey {ca}.key -CAcreateserial -days 2 -extfile {name}.ext -out {name}.pem 2>/dev/null"
            ))
        };
        sign("server", "ca", "subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n");
        sign("client", "ca", "extendedKeyUsage=clientAuth\\n");
        sign("rogue-client", "rogue-ca", "extendedKeyUsage=clientAuth\\n");
        Certs { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn str(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}

fn configs() -> Vec<String> {
    ["config-current.yaml", "config-old.yaml"]
        .iter()
        .flat_map(|c| ["-c".to_string(), path_str(&testdata(&format!("scan/{c}"))).to_string()])
        .collect()
}

fn scan(source: &str, extra: &[String]) -> Run {
    let mut args: Vec<String> = vec!["scan".into(), "--format".into(), "json".into(), source.into()];
    args.extend(configs());
    args.extend_from_slice(extra);
    run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn offline() -> Value {
    scan(path_str(&testdata("etcd35-scan.snapshot.db")), &[]).json()["backups"][0].clone()
}

fn same_verdicts(live: &Value, offline: &Value) {
    assert_eq!(live["error"], Value::Null);
    assert_eq!(live["summary"], offline["summary"]);
    let strip = |b: &Value| -> Vec<Value> {
        b["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| json!([e["key"], e["class"], e["key_name"], e["stale"], e["mod_revision"]]))
            .collect()
    };
    assert_eq!(strip(live), strip(offline));
}

#[test]
fn snapshot_and_range_modes_match_the_offline_scan() {
    let etcd = start_etcd(None);
    let url = format!("etcd://127.0.0.1:{}", etcd.port);
    let offline = offline();

    let r = scan(&url, &[]);
    let b = &r.json()["backups"][0];
    same_verdicts(b, &offline);
    assert_eq!(b["source"], url.as_str());
    assert_eq!(b["container"], json!(["etcd-live", "etcd-snapshot"]));
    assert_eq!(b["integrity"]["sha256_trailer"], "valid");
    assert_eq!(b["etcd"]["revision"], offline["etcd"]["revision"]);

    // History and residue work on the streamed snapshot too.
    let r = scan(&url, &["--history".into(), "--residue".into()]);
    assert!(r.json()["backups"][0]["history"].as_array().unwrap().len() >= 3);

    let r = scan(&url, &["--live-mode".into(), "range".into()]);
    let b = &r.json()["backups"][0];
    same_verdicts(b, &offline);
    assert_eq!(b["container"], json!(["etcd-range"]));
    assert!(b["etcd"]["revision"].as_i64().unwrap() >= offline["etcd"]["revision"].as_i64().unwrap());
    assert_eq!(b["history"], Value::Null);
    assert!(b["integrity"]["notes"][0].as_str().unwrap().contains("unavailable"));

    // The DR runbook question works live too.
    let mut args = vec!["keys".to_string(), url.clone()];
    args.extend(configs());
    let r = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(r.code, 1, "key-gone is missing");
    assert!(r.stdout.contains("aescbc:key-gone"));
}

#[test]
fn tls_with_client_certificates() {
    let certs = Certs::make();
    let etcd = start_etcd(Some(&certs));
    let url = format!("etcds://127.0.0.1:{}", etcd.port);
    let offline = offline();
    let good = |mode: &str| -> Vec<String> {
        [
            "--cacert",
            &certs.str("ca.pem"),
            "--cert",
            &certs.str("client.pem"),
            "--key",
            &certs.str("client.key"),
            "--live-mode",
            mode,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    same_verdicts(&scan(&url, &good("snapshot")).json()["backups"][0], &offline);
    same_verdicts(&scan(&url, &good("range")).json()["backups"][0], &offline);

    let wrong_ca: Vec<String> = [
        "--cacert",
        &certs.str("rogue-ca.pem"),
        "--cert",
        &certs.str("client.pem"),
        "--key",
        &certs.str("client.key"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let r = scan(&url, &wrong_ca);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains(&url) && r.stderr.contains("cannot connect"), "{}", r.stderr);
    let rogue_client: Vec<String> = [
        "--cacert",
        &certs.str("ca.pem"),
        "--cert",
        &certs.str("rogue-client.pem"),
        "--key",
        &certs.str("rogue-client.key"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let r = scan(&url, &rogue_client);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains(&url), "{}", r.stderr);
    assert_eq!(r.json()["backups"][0]["summary"], Value::Null, "no partial report");
}

#[test]
fn an_endpoint_that_is_down_exits_2() {
    let url = format!("etcd://127.0.0.1:{}", free_port());
    let r = scan(&url, &[]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains(&url) && r.stderr.contains("cannot connect"), "{}", r.stderr);
}

#[test]
fn a_server_dying_mid_stream_gives_a_clean_error() {
    let etcd = start_etcd(None);
    let mut proxy = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/cut_proxy.py"))
        .arg(etcd.port.to_string())
        .arg("30000")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(proxy.stdout.as_mut().unwrap()), &mut line)
        .unwrap();
    let url = format!("etcd://127.0.0.1:{}", line.trim());
    let r = scan(&url, &[]);
    let _ = proxy.kill();
    let _ = proxy.wait();
    assert_eq!(r.code, 2, "{}", r.stdout);
    let b = &r.json()["backups"][0];
    assert!(b["error"].as_str().unwrap().contains("snapshot"), "{b}");
    assert_eq!(b["summary"], Value::Null, "no partial report claiming success");
}

/// Range mode pages by the values' size: 700 values of 100 KB do not fit
/// the first page of 1,000 keys under the 64 MiB response limit, so it is
/// fetched again halved, and later pages hold about 8 MiB. Every key comes
/// back once, in key order.
#[test]
fn range_pages_follow_the_values_size() {
    let etcd = start_etcd(None);
    let endpoint = format!("127.0.0.1:{}", etcd.port);
    let names: Vec<String> = (0..700).map(|i| format!("/registry/secrets/big/s-{i:04}")).collect();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut client = etcd_client::Client::connect([endpoint.as_str()], None).await.unwrap();
        for chunk in names.chunks(10) {
            let value = [&b"k8s\0"[..], &vec![b'x'; 100 << 10]].concat();
            let puts: Vec<_> =
                chunk.iter().map(|k| etcd_client::TxnOp::put(k.as_str(), value.clone(), None)).collect();
            client.txn(etcd_client::Txn::new().and_then(puts)).await.unwrap();
        }
    });
    let url = format!("etcd://{endpoint}");
    let r = scan(&url, &["--live-mode".into(), "range".into()]);
    let entries = r.json()["backups"][0]["entries"].as_array().unwrap().clone();
    let big: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["key"].as_str())
        .filter(|k| k.starts_with("/registry/secrets/big/"))
        .collect();
    assert_eq!(big, names.iter().map(String::as_str).collect::<Vec<_>>());
    let keys: Vec<&str> = entries.iter().filter_map(|e| e["key"].as_str()).collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "key order, no duplicates");
}

/// A live cluster says which cluster it is and when it was read as its
/// snapshot does, in both modes (its etcd member ids are new after the restore).
#[test]
fn live_modes_give_the_same_cluster_and_time_as_the_file() {
    let file = testdata("clusters/alpha.db");
    let etcd = start_etcd_from(&file, None);
    let url = format!("etcd://127.0.0.1:{}", etcd.port);
    let offline = run(&["scan", "--format", "json", "--fail-on", "integrity", path_str(&file)]).json();
    let want = &offline["backups"][0];
    assert_eq!(want["cluster"]["uid"], "11111111-1111-4111-8111-111111111111");
    for mode in ["snapshot", "range"] {
        let r = run(&["scan", "--format", "json", "--fail-on", "integrity", "--live-mode", mode, &url]);
        let b = &r.json()["backups"][0];
        assert_eq!(b["cluster"]["uid"], want["cluster"]["uid"], "{mode}");
        assert_eq!(b["cluster"]["kubernetes_version"], want["cluster"]["kubernetes_version"], "{mode}");
        assert_eq!(b["cluster"]["nodes"], want["cluster"]["nodes"], "{mode}");
        assert_eq!(b["taken_at"], want["taken_at"], "{mode}");
    }
}
