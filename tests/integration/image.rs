//! The container image (Containerfile, scripts/image.sh): built with buildah
//! from a statically linked binary, FROM scratch (no base image can be
//! pulled here). Its config and contents are checked, and the binary runs
//! from the image's mounted root filesystem, under chroot as the image's
//! user, on a bundled fixture (containers cannot be started in this sandbox).

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::util::*;

fn buildah(args: &[&str]) -> String {
    let out =
        Command::new("buildah").arg("--storage-driver").arg("vfs").args(args).output().expect("buildah");
    assert!(out.status.success(), "buildah {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A working container of the image, removed on drop.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("buildah").args(["--storage-driver", "vfs", "umount", &self.0]).output();
        let _ = Command::new("buildah").args(["--storage-driver", "vfs", "rm", &self.0]).output();
    }
}

#[test]
fn the_image_builds_from_scratch_and_its_binary_runs() {
    require_command("buildah", "buildah (Debian buildah)");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tag = "localhost/etcd-audit:test";
    let mut build = Command::new("bash");
    build.arg(root.join("scripts/image.sh")).arg(tag);
    without_test_env(&mut build);
    let built = build.output().unwrap();
    assert!(built.status.success(), "scripts/image.sh: {}", String::from_utf8_lossy(&built.stderr));

    let inspect: Value = serde_json::from_str(&buildah(&["inspect", "--type", "image", tag])).unwrap();
    let config = &inspect["OCIv1"]["config"];
    assert_eq!(config["User"], "65532:65532", "runs as non-root");
    assert_eq!(config["Entrypoint"], serde_json::json!(["/usr/local/bin/etcd-audit"]));
    let env: Vec<&str> = config["Env"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
    assert!(env.contains(&"TMPDIR=/tmp"), "{env:?}");
    assert_eq!(
        inspect["OCIv1"]["rootfs"]["diff_ids"].as_array().unwrap().len(),
        1,
        "one layer, no base image"
    );

    let container = Container(buildah(&["from", tag]));
    let mnt = buildah(&["mount", &container.0]);
    let mnt = Path::new(&mnt);
    // Nothing but the binary, the CA bundle, passwd/group and /tmp.
    let mut files: Vec<String> = Vec::new();
    let mut stack = vec![mnt.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path.clone());
            } else {
                files.push(path.strip_prefix(mnt).unwrap().display().to_string());
            }
        }
    }
    files.sort();
    assert_eq!(
        files,
        ["etc/group", "etc/passwd", "etc/ssl/certs/ca-certificates.crt", "usr/local/bin/etcd-audit"]
    );
    let file = Command::new("file").arg(mnt.join("usr/local/bin/etcd-audit")).output().unwrap();
    let file = String::from_utf8_lossy(&file.stdout);
    assert!(file.contains("statically linked") || file.contains("static-pie linked"), "{file}");

    // The image's binary, chrooted into the image as its user, on a bundled fixture.
    for f in ["etcd35-scan.snapshot.db", "scan/config-current.yaml"] {
        std::fs::copy(testdata(f), mnt.join("tmp").join(Path::new(f).file_name().unwrap())).unwrap();
    }
    require_command("chroot", "chroot (coreutils)");
    let out = Command::new(which("chroot").unwrap())
        .args(["--userspec=65532:65532"])
        .arg(mnt)
        .args([
            "/usr/local/bin/etcd-audit",
            "scan",
            "/tmp/etcd35-scan.snapshot.db",
            "-c",
            "/tmp/config-current.yaml",
        ])
        .args(["--format", "json", "--quiet"])
        .env_clear()
        .env("TMPDIR", "/tmp")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let inside: Value = serde_json::from_slice(&out.stdout).unwrap();
    let host = run(&[
        "scan",
        path_str(&testdata("etcd35-scan.snapshot.db")),
        "-c",
        path_str(&testdata("scan/config-current.yaml")),
        "--format",
        "json",
    ])
    .json();
    assert_eq!(inside["backups"][0]["summary"], host["backups"][0]["summary"]);
    let codes = |doc: &Value| -> Vec<(String, u64)> {
        let findings = doc["backups"][0]["findings"].as_array().unwrap();
        findings
            .iter()
            .map(|f| (f["code"].as_str().unwrap().to_string(), f["count"].as_u64().unwrap()))
            .collect()
    };
    assert_eq!(codes(&inside), codes(&host));
}
