//! The KMS plugin client: kube-apiserver's side of the KMS v1beta1 and v2
//! gRPC APIs (k8s-encryption.md §5–§6). Insecure gRPC over unix sockets
//! (Linux abstract sockets too), authority `localhost`, the config's per-call
//! timeout. The API is synchronous, for rayon workers: a small tokio runtime
//! is started the first time a plugin is needed and driven with `block_on`.
//!
//! Once per run and provider: the connection and the `Status` (v2) or
//! `Version` (v1beta1) call. Once per run and distinct encrypted DEK or seed:
//! the `Decrypt` call; concurrent readers of one DEK wait for that one call.
//! A plugin that cannot be reached or times out is remembered as down, so a
//! dead plugin costs one timeout, not one per value.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use serde::Serialize;
use tonic::transport::{Channel, Endpoint, Uri};
use zeroize::Zeroizing;

use super::{KmsApi, KmsProvider};

/// The generated plugin APIs: clients for the auditor, servers for test plugins.
pub mod proto {
    /// `k8s.io/kms/apis/v2`: `v2.KeyManagementService`.
    pub mod v2 {
        tonic::include_proto!("v2");
    }
    /// `k8s.io/kms/apis/v1beta1`: `v1beta1.KeyManagementService`.
    pub mod v1beta1 {
        tonic::include_proto!("v1beta1");
    }
}

use proto::{v1beta1, v2};

/// The config's default per-call timeout, also used for a `--kms` override
/// that names a provider no config has.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

/// The only v1beta1 API version kube-apiserver accepts.
pub const V1_VERSION: &str = "v1beta1";

/// Why a plugin gave no DEK.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KmsError {
    /// Not reachable, timed out, or not a usable plugin: the key may exist, it
    /// could not be asked (`unknown-key`).
    Unavailable(String),
    /// The plugin answered `Decrypt` with an error: it refuses this DEK
    /// (`undecryptable`).
    Refused(String),
}

/// An unwrapped DEK or seed; zeroed when the last reader drops it.
pub type Dek = Arc<Zeroizing<Vec<u8>>>;

/// What a plugin says about itself: v2 `Status`, or v1beta1 `Version`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PluginStatus {
    pub version: String,
    /// v2 only: kube-apiserver needs `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthz: Option<String>,
    /// v2 only: the key new writes use; values under another key ID are stale.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

impl PluginStatus {
    pub fn healthy(&self) -> bool {
        self.healthz.as_deref().is_none_or(|h| h == "ok")
    }
}

/// A plugin as the key pairing shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PluginReport {
    pub endpoint: String,
    /// `--kms` replaced the config's endpoint, or named a provider no config has.
    pub overridden: bool,
    /// `None` when it was never reached.
    pub status: Option<PluginStatus>,
    /// Why it is not usable: unreachable, timed out, bad version, unhealthy.
    pub error: Option<String>,
    /// `Decrypt` calls made to it in this run (one per distinct DEK).
    pub decrypt_calls: u64,
}

/// Where a `unix://` endpoint points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SocketAddress {
    Path(PathBuf),
    /// A Linux abstract socket, without the leading `@`.
    Abstract(Vec<u8>),
}

impl SocketAddress {
    /// As kms `util.ParseEndpoint`: the scheme must be `unix`, the socket is
    /// the URL path, and `unix:///@name` is the abstract socket `@name`.
    pub fn parse(endpoint: &str) -> Result<Self, String> {
        let rest = endpoint.strip_prefix("unix://").ok_or_else(|| {
            format!("unsupported KMS endpoint {endpoint:?}: only unix:// sockets are supported")
        })?;
        // `unix://host/path`: Go's url.Parse puts `host` aside; the path is what counts.
        let path = match rest.find('/') {
            Some(i) if !rest.starts_with('@') => &rest[i..],
            _ => rest,
        };
        if let Some(name) = path.strip_prefix("/@").or_else(|| path.strip_prefix('@')) {
            if name.is_empty() {
                return Err(format!("KMS endpoint {endpoint:?} names an empty abstract socket"));
            }
            return Ok(SocketAddress::Abstract(name.as_bytes().to_vec()));
        }
        if path.is_empty() || path == "/" {
            return Err(format!("KMS endpoint {endpoint:?} has no socket path"));
        }
        Ok(SocketAddress::Path(PathBuf::from(path)))
    }

    pub async fn connect(&self) -> std::io::Result<tokio::net::UnixStream> {
        match self {
            SocketAddress::Path(p) => tokio::net::UnixStream::connect(p).await,
            SocketAddress::Abstract(name) => connect_abstract(name),
        }
    }
}

#[cfg(target_os = "linux")]
fn connect_abstract(name: &[u8]) -> std::io::Result<tokio::net::UnixStream> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    let stream = std::os::unix::net::UnixStream::connect_addr(&addr)?;
    stream.set_nonblocking(true)?;
    tokio::net::UnixStream::from_std(stream)
}

#[cfg(not(target_os = "linux"))]
fn connect_abstract(_: &[u8]) -> std::io::Result<tokio::net::UnixStream> {
    Err(std::io::Error::new(std::io::ErrorKind::Unsupported, "abstract unix sockets exist on Linux only"))
}

type DekCell = Arc<OnceLock<Result<Dek, KmsError>>>;

/// One KMS provider (name and API) and its plugin.
pub struct Plugin {
    pub api: KmsApi,
    pub name: String,
    pub endpoint: String,
    pub timeout: Duration,
    /// Some supplied config has this provider (else only a `--kms` override names it).
    pub configured: bool,
    pub overridden: bool,
    connection: OnceLock<Result<Connection, String>>,
    /// Set when a call after a good start found the plugin unreachable.
    down: OnceLock<String>,
    deks: Mutex<HashMap<Vec<u8>, DekCell>>,
    decrypt_calls: AtomicU64,
}

struct Connection {
    channel: Channel,
    status: PluginStatus,
}

impl Plugin {
    fn new(
        api: KmsApi,
        name: &str,
        endpoint: &str,
        timeout: Duration,
        configured: bool,
        overridden: bool,
    ) -> Self {
        Plugin {
            api,
            name: name.into(),
            endpoint: endpoint.into(),
            timeout,
            configured,
            overridden,
            connection: OnceLock::new(),
            down: OnceLock::new(),
            deks: Mutex::new(HashMap::new()),
            decrypt_calls: AtomicU64::new(0),
        }
    }

    fn label(&self) -> String {
        let api = if self.api == KmsApi::V1 { "v1" } else { "v2" };
        format!("KMS {api} plugin {:?} at {}", self.name, self.endpoint)
    }

    /// Bounds one call by the provider's timeout and sorts its failure.
    async fn call<T>(
        &self,
        method: &str,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, KmsError> {
        let timed_out = || {
            KmsError::Unavailable(format!(
                "{} did not answer {method} within the timeout of {}",
                self.label(),
                human(self.timeout)
            ))
        };
        match tokio::time::timeout(self.timeout, call).await {
            Err(_) => Err(timed_out()),
            Ok(Ok(response)) => Ok(response.into_inner()),
            // tonic enforces the request's grpc-timeout itself, as Cancelled.
            Ok(Err(status))
                if status.code() == tonic::Code::Cancelled
                    && status.message().contains("Timeout expired") =>
            {
                Err(timed_out())
            }
            Ok(Err(status)) => Err(classify(&self.label(), method, &status)),
        }
    }

    async fn connect(&self) -> Result<Connection, String> {
        let address = SocketAddress::parse(&self.endpoint)?;
        let connector = tower::service_fn(move |_: Uri| {
            let address = address.clone();
            async move { address.connect().await.map(hyper_util::rt::TokioIo::new) }
        });
        let endpoint = Endpoint::from_static("http://localhost").connect_timeout(self.timeout);
        let connecting = endpoint.connect_with_connector(connector);
        let channel = match tokio::time::timeout(self.timeout, connecting).await {
            Err(_) => {
                return Err(format!(
                    "{} is not reachable: connect timed out after {}",
                    self.label(),
                    human(self.timeout)
                ))
            }
            Ok(Err(e)) => return Err(format!("{} is not reachable: {}", self.label(), error_chain(&e))),
            Ok(Ok(channel)) => channel,
        };
        let unusable = |e: KmsError| match e {
            KmsError::Unavailable(e) | KmsError::Refused(e) => e,
        };
        let status = match self.api {
            KmsApi::V2 => {
                let mut client =
                    v2::key_management_service_client::KeyManagementServiceClient::new(channel.clone());
                let s = self.call("Status", client.status(request(v2::StatusRequest {}, self.timeout))).await;
                let s = s.map_err(unusable)?;
                if s.version != "v2" && s.version != "v2beta1" {
                    return Err(format!(
                        "{} reports API version {:?}; kube-apiserver needs v2 or v2beta1",
                        self.label(),
                        s.version
                    ));
                }
                if s.key_id.is_empty() || s.key_id.len() > 1024 {
                    return Err(format!(
                        "{} reports an invalid key_id ({} bytes)",
                        self.label(),
                        s.key_id.len()
                    ));
                }
                PluginStatus { version: s.version, healthz: Some(s.healthz), key_id: Some(s.key_id) }
            }
            KmsApi::V1 => {
                let mut client =
                    v1beta1::key_management_service_client::KeyManagementServiceClient::new(channel.clone());
                let req = v1beta1::VersionRequest { version: V1_VERSION.into() };
                let v = self.call("Version", client.version(request(req, self.timeout))).await;
                let v = v.map_err(unusable)?;
                if v.version != V1_VERSION {
                    return Err(format!(
                        "{} reports API version {:?}; kube-apiserver needs {V1_VERSION}",
                        self.label(),
                        v.version
                    ));
                }
                PluginStatus { version: v.version, healthz: None, key_id: None }
            }
        };
        Ok(Connection { channel, status })
    }

    async fn decrypt(
        &self,
        channel: Channel,
        encrypted: &[u8],
        key_id: &str,
        annotations: &[(String, Vec<u8>)],
    ) -> Result<Dek, KmsError> {
        let plain = match self.api {
            KmsApi::V2 => {
                let mut client = v2::key_management_service_client::KeyManagementServiceClient::new(channel);
                let req = v2::DecryptRequest {
                    ciphertext: encrypted.to_vec(),
                    uid: random_uid(),
                    key_id: key_id.into(),
                    annotations: annotations.iter().cloned().collect(),
                };
                self.call("Decrypt", client.decrypt(request(req, self.timeout))).await?.plaintext
            }
            KmsApi::V1 => {
                let mut client =
                    v1beta1::key_management_service_client::KeyManagementServiceClient::new(channel);
                let req = v1beta1::DecryptRequest { version: V1_VERSION.into(), cipher: encrypted.to_vec() };
                self.call("Decrypt", client.decrypt(request(req, self.timeout))).await?.plain
            }
        };
        if plain.is_empty() {
            return Err(KmsError::Refused(format!(
                "{} returned an empty plaintext for this DEK",
                self.label()
            )));
        }
        Ok(Arc::new(Zeroizing::new(plain)))
    }
}

fn request<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    req.set_timeout(timeout);
    req
}

/// Transport trouble (no connection, reset, deadline) means the plugin could
/// not be asked; any other status the plugin returned is its answer.
fn classify(label: &str, method: &str, status: &tonic::Status) -> KmsError {
    use std::error::Error;
    use tonic::Code;
    let (code, message) = (status.code(), status.message());
    // Errors tonic makes on the client side carry their cause; the plugin's don't.
    match (code, status.source()) {
        (Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded, Some(cause)) => {
            KmsError::Unavailable(format!("{label} is not reachable: {method}: {}", error_chain(cause)))
        }
        (Code::Unavailable | Code::Cancelled | Code::DeadlineExceeded, None) => {
            KmsError::Unavailable(format!("{label} could not serve {method}: {code:?}: {message}"))
        }
        _ => KmsError::Refused(format!("{label} refused {method}: {code:?}: {message}")),
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

fn human(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// A random UUID (v4) for the `uid` the apiserver puts on each request.
fn random_uid() -> String {
    use aes_gcm::aead::rand_core::RngCore;
    let mut b = [0u8; 16];
    aes_gcm::aead::OsRng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// Every KMS provider of the supplied configs and `--kms` overrides, with
/// their plugins, for one run.
#[derive(Default)]
pub struct KmsPlugins {
    plugins: Vec<Plugin>,
    runtime: OnceLock<Result<tokio::runtime::Runtime, String>>,
    decrypt_calls: AtomicU64,
}

impl std::fmt::Debug for KmsPlugins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.plugins.iter().map(|p| format!("{:?} {} {}", p.api, p.name, p.endpoint)))
            .finish()
    }
}

impl KmsPlugins {
    /// `providers` in config order; an override (`NAME`, endpoint) replaces the
    /// endpoint of every provider of that name (the last override wins), and
    /// one whose name no config has serves both APIs with the default timeout.
    pub fn new(providers: &[KmsProvider], overrides: &[(String, String)]) -> Self {
        let override_of =
            |name: &str| overrides.iter().rev().find(|(n, _)| n == name).map(|(_, e)| e.as_str());
        let mut plugins: Vec<Plugin> = providers
            .iter()
            .map(|p| {
                let endpoint = override_of(&p.name);
                Plugin::new(
                    p.api,
                    &p.name,
                    endpoint.unwrap_or(&p.endpoint),
                    p.timeout,
                    true,
                    endpoint.is_some(),
                )
            })
            .collect();
        for (name, _) in overrides {
            if !plugins.iter().any(|p| &p.name == name) {
                let endpoint = override_of(name).unwrap_or_default();
                for api in [KmsApi::V2, KmsApi::V1] {
                    plugins.push(Plugin::new(api, name, endpoint, DEFAULT_TIMEOUT, false, true));
                }
            }
        }
        KmsPlugins { plugins, runtime: OnceLock::new(), decrypt_calls: AtomicU64::new(0) }
    }

    pub fn plugins(&self) -> &[Plugin] {
        &self.plugins
    }

    /// The plugin of a KMS v2 provider (names cannot contain `:`), or of a v1 one by exact name.
    pub fn find(&self, api: KmsApi, name: &str) -> Option<&Plugin> {
        self.plugins.iter().find(|p| p.api == api && p.name == name)
    }

    /// KMS v1 providers whose `name:` starts `rest`, in config order (v1
    /// names may contain `:`, so only known names can split it).
    pub fn v1_matching(&self, rest: &[u8]) -> Vec<&Plugin> {
        self.plugins
            .iter()
            .filter(|p| p.api == KmsApi::V1)
            .filter(|p| rest.starts_with(p.name.as_bytes()) && rest.get(p.name.len()) == Some(&b':'))
            .collect()
    }

    /// `Decrypt` calls made in this run, over every plugin.
    pub fn decrypt_calls(&self) -> u64 {
        self.decrypt_calls.load(Ordering::Relaxed)
    }

    fn runtime(&self) -> Result<&tokio::runtime::Runtime, String> {
        self.runtime
            .get_or_init(|| {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("etcd-audit-kms")
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot start the KMS client runtime: {e}"))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    fn connection<'p>(&self, plugin: &'p Plugin) -> Result<&'p Connection, String> {
        plugin
            .connection
            .get_or_init(|| self.runtime()?.block_on(plugin.connect()))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Connects and asks `Status`/`Version`, once per run; the error says why
    /// the plugin cannot be used.
    pub fn status<'p>(&self, plugin: &'p Plugin) -> Result<&'p PluginStatus, String> {
        self.connection(plugin).map(|c| &c.status)
    }

    /// The DEK or seed `encrypted` wraps, asking the plugin once per run for
    /// each distinct `encrypted`; concurrent readers wait for that one call.
    pub fn unwrap_dek(
        &self,
        plugin: &Plugin,
        encrypted: &[u8],
        key_id: &str,
        annotations: &[(String, Vec<u8>)],
    ) -> Result<Dek, KmsError> {
        let cell: DekCell = {
            let mut deks = plugin.deks.lock().unwrap_or_else(PoisonError::into_inner);
            deks.entry(encrypted.to_vec()).or_default().clone()
        };
        cell.get_or_init(|| self.decrypt_once(plugin, encrypted, key_id, annotations)).clone()
    }

    fn decrypt_once(
        &self,
        plugin: &Plugin,
        encrypted: &[u8],
        key_id: &str,
        annotations: &[(String, Vec<u8>)],
    ) -> Result<Dek, KmsError> {
        let connection = self.connection(plugin).map_err(KmsError::Unavailable)?;
        if let Some(reason) = plugin.down.get() {
            return Err(KmsError::Unavailable(reason.clone()));
        }
        let runtime = self.runtime().map_err(KmsError::Unavailable)?;
        self.decrypt_calls.fetch_add(1, Ordering::Relaxed);
        plugin.decrypt_calls.fetch_add(1, Ordering::Relaxed);
        let result =
            runtime.block_on(plugin.decrypt(connection.channel.clone(), encrypted, key_id, annotations));
        if let Err(KmsError::Unavailable(reason)) = &result {
            let _ = plugin.down.set(reason.clone());
        }
        result
    }

    /// Reached, a usable version, healthy, and not found gone since.
    pub fn available(&self, plugin: &Plugin) -> bool {
        matches!(plugin.connection.get(), Some(Ok(c)) if c.status.healthy()) && plugin.down.get().is_none()
    }

    /// What the key pairing shows; never connects.
    pub fn report(&self, plugin: &Plugin) -> PluginReport {
        let (status, mut error) = match plugin.connection.get() {
            None => (None, None),
            Some(Ok(c)) => (Some(c.status.clone()), None),
            Some(Err(e)) => (None, Some(e.clone())),
        };
        if let Some(reason) = plugin.down.get() {
            error = Some(reason.clone());
        }
        if let Some(s) = status.as_ref().filter(|s| !s.healthy()) {
            error.get_or_insert_with(|| unhealthy(plugin, s));
        }
        PluginReport {
            endpoint: plugin.endpoint.clone(),
            overridden: plugin.overridden,
            status,
            error,
            decrypt_calls: plugin.decrypt_calls.load(Ordering::Relaxed),
        }
    }

    /// A note for values read through a plugin that is not healthy.
    pub fn health_note(&self, plugin: &Plugin) -> Option<String> {
        match plugin.connection.get() {
            Some(Ok(c)) if !c.status.healthy() => Some(unhealthy(plugin, &c.status)),
            _ => None,
        }
    }
}

fn unhealthy(plugin: &Plugin, s: &PluginStatus) -> String {
    format!(
        "{} reports healthz {:?}, not \"ok\": kube-apiserver would not use it",
        plugin.label(),
        s.healthz.as_deref().unwrap_or("")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            SocketAddress::parse("unix:///var/run/kms.sock").unwrap(),
            SocketAddress::Path("/var/run/kms.sock".into())
        );
        assert_eq!(SocketAddress::parse("unix:///@kms").unwrap(), SocketAddress::Abstract(b"kms".to_vec()));
        assert_eq!(SocketAddress::parse("unix://@kms").unwrap(), SocketAddress::Abstract(b"kms".to_vec()));
        assert_eq!(SocketAddress::parse("unix://host/tmp/s").unwrap(), SocketAddress::Path("/tmp/s".into()));
        assert!(SocketAddress::parse("tcp://127.0.0.1:1").is_err());
        assert!(SocketAddress::parse("unix://").is_err());
        assert!(SocketAddress::parse("unix:///@").is_err());
    }

    #[test]
    fn overrides_replace_endpoints_and_add_providers() {
        let p = |api, name: &str| KmsProvider {
            api,
            name: name.into(),
            endpoint: format!("unix:///cfg/{name}"),
            timeout: Duration::from_millis(500),
        };
        let plugins = KmsPlugins::new(
            &[p(KmsApi::V2, "vault"), p(KmsApi::V1, "a:b")],
            &[("vault".into(), "unix:///x".into()), ("dr".into(), "unix:///@dr".into())],
        );
        let vault = plugins.find(KmsApi::V2, "vault").unwrap();
        assert_eq!(
            (vault.endpoint.as_str(), vault.overridden, vault.timeout),
            ("unix:///x", true, Duration::from_millis(500))
        );
        assert!(!plugins.find(KmsApi::V1, "a:b").unwrap().overridden);
        assert_eq!(plugins.v1_matching(b"a:b:\x00\x01").len(), 1);
        assert!(plugins.v1_matching(b"a:\x00\x01").is_empty());
        let dr = plugins.find(KmsApi::V1, "dr").unwrap();
        assert_eq!((dr.configured, dr.timeout), (false, DEFAULT_TIMEOUT));
        assert!(plugins.find(KmsApi::V2, "dr").is_some());
    }

    #[test]
    fn unreachable_plugin_is_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let endpoint = format!("unix://{}/none.sock", dir.path().display());
        let provider = KmsProvider {
            api: KmsApi::V2,
            name: "vault".into(),
            endpoint,
            timeout: Duration::from_millis(300),
        };
        let plugins = KmsPlugins::new(&[provider], &[]);
        let plugin = plugins.find(KmsApi::V2, "vault").unwrap();
        let e = plugins.unwrap_dek(plugin, b"dek-1", "k", &[]).unwrap_err();
        assert!(matches!(&e, KmsError::Unavailable(m) if m.contains("not reachable")), "{e:?}");
        assert!(plugins.unwrap_dek(plugin, b"dek-2", "k", &[]).is_err());
        assert_eq!(plugins.decrypt_calls(), 0, "no Decrypt without a connection");
        assert!(!plugins.available(plugin));
        assert!(plugins.report(plugin).error.unwrap().contains("not reachable"));
    }

    #[test]
    fn uids_are_uuids() {
        let (a, b) = (random_uid(), random_uid());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }

    /// An in-process v2 plugin on an abstract socket: "unwraps" by reversing
    /// the bytes, refuses ciphertexts starting with `bad`, counts calls.
    struct Reverse(Arc<AtomicU64>);

    #[tonic::async_trait]
    impl v2::key_management_service_server::KeyManagementService for Reverse {
        async fn status(
            &self,
            _: tonic::Request<v2::StatusRequest>,
        ) -> Result<tonic::Response<v2::StatusResponse>, tonic::Status> {
            let s = v2::StatusResponse { version: "v2".into(), healthz: "ok".into(), key_id: "k1".into() };
            Ok(tonic::Response::new(s))
        }

        async fn decrypt(
            &self,
            req: tonic::Request<v2::DecryptRequest>,
        ) -> Result<tonic::Response<v2::DecryptResponse>, tonic::Status> {
            self.0.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(150)).await;
            let req = req.into_inner();
            assert_eq!(req.uid.len(), 36);
            if req.ciphertext.starts_with(b"bad") {
                return Err(tonic::Status::not_found("no such key version"));
            }
            let plaintext = req.ciphertext.iter().rev().copied().collect();
            Ok(tonic::Response::new(v2::DecryptResponse { plaintext }))
        }

        async fn encrypt(
            &self,
            _: tonic::Request<v2::EncryptRequest>,
        ) -> Result<tonic::Response<v2::EncryptResponse>, tonic::Status> {
            Err(tonic::Status::unimplemented("read-only"))
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn one_decrypt_per_distinct_dek_even_when_concurrent() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("etcd-audit-kms-unit-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
        listener.set_nonblocking(true).unwrap();
        let served = Arc::new(AtomicU64::new(0));
        let server_rt =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let service =
            v2::key_management_service_server::KeyManagementServiceServer::new(Reverse(served.clone()));
        server_rt.spawn(async move {
            let listener = tokio::net::UnixListener::from_std(listener).unwrap();
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener))
                .await
                .unwrap();
        });

        let provider = KmsProvider {
            api: KmsApi::V2,
            name: "vault".into(),
            endpoint: format!("unix:///@{name}"),
            timeout: Duration::from_secs(5),
        };
        let plugins = KmsPlugins::new(&[provider], &[]);
        let plugin = plugins.find(KmsApi::V2, "vault").unwrap();
        std::thread::scope(|s| {
            let readers: Vec<_> =
                (0..8).map(|_| s.spawn(|| plugins.unwrap_dek(plugin, b"dek-one", "k1", &[]))).collect();
            for r in readers {
                assert_eq!(r.join().unwrap().unwrap().as_slice(), b"eno-ked");
            }
        });
        assert_eq!((plugins.decrypt_calls(), served.load(Ordering::SeqCst)), (1, 1));
        assert_eq!(plugins.status(plugin).unwrap().key_id.as_deref(), Some("k1"));
        let refused = plugins.unwrap_dek(plugin, b"bad-dek", "k0", &[]).unwrap_err();
        assert!(matches!(&refused, KmsError::Refused(m) if m.contains("no such key version")), "{refused:?}");
        assert_eq!(plugins.unwrap_dek(plugin, b"dek-two", "k1", &[]).unwrap().as_slice(), b"owt-ked");
        assert_eq!(plugins.unwrap_dek(plugin, b"dek-one", "k1", &[]).unwrap().as_slice(), b"eno-ked");
        assert_eq!((plugins.decrypt_calls(), served.load(Ordering::SeqCst)), (3, 3));
        assert!(plugins.available(plugin), "a refusal is an answer, not an outage");
    }
}
