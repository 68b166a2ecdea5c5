//! A KMS plugin for tests: serves both `v2.KeyManagementService` and
//! `v1beta1.KeyManagementService` on one unix socket, wrapping DEKs and seeds
//! exactly like testdata/gen/k8senc.py `kms_wrap`/`kms_unwrap`:
//! `nonce(12) || AES-256-GCM(KEK, nonce, secret, no AAD) || tag(16)`.
//!
//! ```text
//! kms_plugin SOCKET [--kek BASE64] [--key-id ID] [--healthz VALUE] [--version V]
//!            [--delay-ms N] [--status-delay-ms N] [--fail-decrypt] [--calls-file PATH]
//! ```
//! SOCKET is a path, or `@name` for a Linux abstract socket. Prints
//! `listening <SOCKET>` once it accepts connections. `--calls-file` is
//! rewritten with the number of Decrypt requests received (both APIs) after
//! each one; on SIGTERM or SIGINT the plugin prints `decrypt_calls N`, removes
//! its socket file and exits.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aes_gcm::aead::{Aead, KeyInit, OsRng};
use aes_gcm::{AeadCore, Aes256Gcm};
use base64::Engine;
use etcd_audit::encryption::kms::proto::{v1beta1, v2};
use tonic::{Request, Response, Status};

/// k8senc.KMS_KEK = sha256("etcd-audit-fixture-kms-kek").
const FIXTURE_KEK: &str = "W+ugZM0sx6ZAkLRywI6kApQQMHCeGnY2+y0LG2uM8qw=";

struct Plugin {
    kek: Aes256Gcm,
    key_id: String,
    healthz: String,
    version: String,
    delay: Duration,
    status_delay: Duration,
    fail_decrypt: bool,
    calls: AtomicU64,
    calls_file: Option<PathBuf>,
}

impl Plugin {
    fn wrap(&self, secret: &[u8]) -> Result<Vec<u8>, &'static str> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = self.kek.encrypt(&nonce, secret).map_err(|_| "wrap failed")?;
        Ok([nonce.as_slice(), &sealed].concat())
    }

    fn unwrap(&self, wrapped: &[u8]) -> Result<Vec<u8>, &'static str> {
        if wrapped.len() < 12 + 16 {
            return Err("ciphertext too short");
        }
        let (nonce, sealed) = wrapped.split_at(12);
        self.kek
            .decrypt(aes_gcm::Nonce::from_slice(nonce), sealed)
            .map_err(|_| "ciphertext was not wrapped by this KEK")
    }

    /// Counts the request, then answers as the flags say.
    async fn decrypt(&self, wrapped: &[u8]) -> Result<Vec<u8>, Status> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(path) = &self.calls_file {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, n.to_string()).and_then(|_| std::fs::rename(&tmp, path)).ok();
        }
        tokio::time::sleep(self.delay).await;
        if self.fail_decrypt {
            return Err(Status::permission_denied("decryption refused (--fail-decrypt)"));
        }
        self.unwrap(wrapped).map_err(Status::invalid_argument)
    }
}

struct V2(Arc<Plugin>);
struct V1(Arc<Plugin>);

#[tonic::async_trait]
impl v2::key_management_service_server::KeyManagementService for V2 {
    async fn status(&self, _: Request<v2::StatusRequest>) -> Result<Response<v2::StatusResponse>, Status> {
        tokio::time::sleep(self.0.status_delay).await;
        Ok(Response::new(v2::StatusResponse {
            version: self.0.version.clone(),
            healthz: self.0.healthz.clone(),
            key_id: self.0.key_id.clone(),
        }))
    }

    async fn decrypt(
        &self,
        req: Request<v2::DecryptRequest>,
    ) -> Result<Response<v2::DecryptResponse>, Status> {
        let req = req.into_inner();
        if req.uid.is_empty() || req.key_id.is_empty() {
            return Err(Status::invalid_argument("uid and key_id are required"));
        }
        let plaintext = self.0.decrypt(&req.ciphertext).await?;
        Ok(Response::new(v2::DecryptResponse { plaintext }))
    }

    async fn encrypt(
        &self,
        req: Request<v2::EncryptRequest>,
    ) -> Result<Response<v2::EncryptResponse>, Status> {
        let ciphertext = self.0.wrap(&req.into_inner().plaintext).map_err(Status::internal)?;
        Ok(Response::new(v2::EncryptResponse {
            ciphertext,
            key_id: self.0.key_id.clone(),
            annotations: Default::default(),
        }))
    }
}

#[tonic::async_trait]
impl v1beta1::key_management_service_server::KeyManagementService for V1 {
    async fn version(
        &self,
        _: Request<v1beta1::VersionRequest>,
    ) -> Result<Response<v1beta1::VersionResponse>, Status> {
        tokio::time::sleep(self.0.status_delay).await;
        Ok(Response::new(v1beta1::VersionResponse {
            version: "v1beta1".into(),
            runtime_name: "etcd-audit-test-kms".into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
        }))
    }

    async fn decrypt(
        &self,
        req: Request<v1beta1::DecryptRequest>,
    ) -> Result<Response<v1beta1::DecryptResponse>, Status> {
        let req = req.into_inner();
        if req.version != "v1beta1" {
            return Err(Status::invalid_argument(format!("unsupported version {:?}", req.version)));
        }
        let plain = self.0.decrypt(&req.cipher).await?;
        Ok(Response::new(v1beta1::DecryptResponse { plain }))
    }

    async fn encrypt(
        &self,
        req: Request<v1beta1::EncryptRequest>,
    ) -> Result<Response<v1beta1::EncryptResponse>, Status> {
        let cipher = self.0.wrap(&req.into_inner().plain).map_err(Status::internal)?;
        Ok(Response::new(v1beta1::EncryptResponse { cipher }))
    }
}

fn usage(msg: &str) -> ! {
    eprintln!("kms_plugin: {msg}");
    eprintln!(
        "usage: kms_plugin SOCKET [--kek BASE64] [--key-id ID] [--healthz VALUE] [--version V] \
         [--delay-ms N] [--status-delay-ms N] [--fail-decrypt] [--calls-file PATH]"
    );
    std::process::exit(2)
}

fn listener(socket: &str) -> std::io::Result<tokio::net::UnixListener> {
    let std_listener = match socket.strip_prefix('@') {
        Some(name) => {
            #[cfg(target_os = "linux")]
            {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
                std::os::unix::net::UnixListener::bind_addr(&addr)?
            }
            #[cfg(not(target_os = "linux"))]
            {
                let _ = name;
                return Err(std::io::Error::other("abstract sockets exist on Linux only"));
            }
        }
        None => std::os::unix::net::UnixListener::bind(socket)?,
    };
    std_listener.set_nonblocking(true)?;
    tokio::net::UnixListener::from_std(std_listener)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut socket = None;
    let mut kek = FIXTURE_KEK.to_string();
    let (mut key_id, mut healthz, mut version) = ("kek-1".to_string(), "ok".to_string(), "v2".to_string());
    let (mut delay, mut status_delay, mut fail_decrypt, mut calls_file) = (0, 0, false, None);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage(&format!("{arg} needs a value")));
        let ms = |v: String| v.parse::<u64>().unwrap_or_else(|_| usage(&format!("bad number {v:?}")));
        match arg.as_str() {
            "--kek" => kek = value(),
            "--key-id" => key_id = value(),
            "--healthz" => healthz = value(),
            "--version" => version = value(),
            "--delay-ms" => delay = ms(value()),
            "--status-delay-ms" => status_delay = ms(value()),
            "--fail-decrypt" => fail_decrypt = true,
            "--calls-file" => calls_file = Some(PathBuf::from(value())),
            s if s.starts_with("--") => usage(&format!("unknown flag {s}")),
            s if socket.is_none() => socket = Some(s.to_string()),
            s => usage(&format!("unexpected argument {s:?}")),
        }
    }
    let socket = socket.unwrap_or_else(|| usage("SOCKET is required"));
    let kek = base64::engine::general_purpose::STANDARD
        .decode(kek)
        .ok()
        .filter(|k| k.len() == 32)
        .unwrap_or_else(|| usage("--kek must be 32 bytes of base64"));
    let plugin = Arc::new(Plugin {
        kek: Aes256Gcm::new_from_slice(&kek).unwrap(),
        key_id,
        healthz,
        version,
        delay: Duration::from_millis(delay),
        status_delay: Duration::from_millis(status_delay),
        fail_decrypt,
        calls: AtomicU64::new(0),
        calls_file,
    });
    if let Some(path) = &plugin.calls_file {
        std::fs::write(path, "0").unwrap_or_else(|e| usage(&format!("cannot write {}: {e}", path.display())));
    }
    let listener = listener(&socket).unwrap_or_else(|e| usage(&format!("cannot listen on {socket}: {e}")));
    println!("listening {socket}");

    let shutdown = async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    };
    let served = tonic::transport::Server::builder()
        .add_service(v2::key_management_service_server::KeyManagementServiceServer::new(V2(plugin.clone())))
        .add_service(v1beta1::key_management_service_server::KeyManagementServiceServer::new(V1(
            plugin.clone()
        )))
        .serve_with_incoming_shutdown(tokio_stream::wrappers::UnixListenerStream::new(listener), shutdown)
        .await;
    if !socket.starts_with('@') {
        std::fs::remove_file(&socket).ok();
    }
    println!("decrypt_calls {}", plugin.calls.load(Ordering::SeqCst));
    if let Err(e) = served {
        eprintln!("kms_plugin: {e}");
        std::process::exit(1);
    }
}
