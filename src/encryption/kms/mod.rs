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

mod client;
mod endpoint;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError};
use std::time::Duration;

use serde::Serialize;
use zeroize::Zeroizing;

pub use client::{Plugin, PluginError};
pub use endpoint::{EndpointError, SocketAddress};

use super::{KmsApi, KmsProvider};
use client::{Connection, DekCell};

use crate::proto::kms as proto;

/// The config's default per-call timeout, also used for a `--kms` override
/// that names a provider no config has.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

/// The only v1beta1 API version kube-apiserver accepts.
pub const V1_VERSION: &str = "v1beta1";

/// Why a plugin gave no DEK.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KmsError {
    /// Not reachable, timed out, or not a usable plugin: the key may exist, it
    /// could not be asked (`unknown-key`).
    #[error(transparent)]
    Unavailable(PluginError),
    /// The plugin answered `Decrypt` with an error: it refuses this DEK
    /// (`undecryptable`).
    #[error(transparent)]
    Refused(PluginError),
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

/// Every KMS provider of the supplied configs and `--kms` overrides, with
/// their plugins, for one run.
#[derive(Default)]
pub struct KmsPlugins {
    plugins: Vec<Plugin>,
    runtime: OnceLock<Result<tokio::runtime::Runtime, PluginError>>,
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

    fn runtime(&self) -> Result<&tokio::runtime::Runtime, PluginError> {
        self.runtime
            .get_or_init(|| {
                crate::net::runtime(1, "etcd-audit-kms").map_err(|e| PluginError::Runtime(e.to_string()))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    fn connection<'p>(&self, plugin: &'p Plugin) -> Result<&'p Connection, PluginError> {
        plugin
            .connection
            .get_or_init(|| self.runtime()?.block_on(plugin.connect()))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Connects and asks `Status`/`Version`, once per run; the error says why
    /// the plugin cannot be used.
    pub fn status<'p>(&self, plugin: &'p Plugin) -> Result<&'p PluginStatus, PluginError> {
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
        let result = runtime
            .block_on(plugin.decrypt(connection.channel.clone(), encrypted, key_id, annotations))
            .map_err(KmsError::from);
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
            Some(Err(e)) => (None, Some(e.to_string())),
        };
        if let Some(reason) = plugin.down.get() {
            error = Some(reason.to_string());
        }
        if let Some(s) = status.as_ref().filter(|s| !s.healthy()) {
            error.get_or_insert_with(|| plugin.unhealthy(s).to_string());
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
    pub fn health_note(&self, plugin: &Plugin) -> Option<PluginError> {
        match plugin.connection.get() {
            Some(Ok(c)) if !c.status.healthy() => Some(plugin.unhealthy(&c.status)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::kms_server::v2 as v2_server;

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
        assert!(matches!(&e, KmsError::Unavailable(PluginError::Unreachable { .. })), "{e:?}");
        assert!(plugins.unwrap_dek(plugin, b"dek-2", "k", &[]).is_err());
        assert_eq!(plugins.decrypt_calls(), 0, "no Decrypt without a connection");
        assert!(!plugins.available(plugin));
        assert!(plugins.report(plugin).error.unwrap().contains("not reachable"));
    }

    /// An in-process v2 plugin on an abstract socket: "unwraps" by reversing
    /// the bytes, refuses ciphertexts starting with `bad`, counts calls.
    struct Reverse(Arc<AtomicU64>);

    #[tonic::async_trait]
    impl v2_server::key_management_service_server::KeyManagementService for Reverse {
        async fn status(
            &self,
            _: tonic::Request<v2_server::StatusRequest>,
        ) -> Result<tonic::Response<v2_server::StatusResponse>, tonic::Status> {
            let s =
                v2_server::StatusResponse { version: "v2".into(), healthz: "ok".into(), key_id: "k1".into() };
            Ok(tonic::Response::new(s))
        }

        async fn decrypt(
            &self,
            req: tonic::Request<v2_server::DecryptRequest>,
        ) -> Result<tonic::Response<v2_server::DecryptResponse>, tonic::Status> {
            self.0.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(150)).await;
            let req = req.into_inner();
            assert_eq!(req.uid.len(), 36);
            if req.ciphertext.starts_with(b"bad") {
                return Err(tonic::Status::not_found("no such key version"));
            }
            let plaintext = req.ciphertext.iter().rev().copied().collect();
            Ok(tonic::Response::new(v2_server::DecryptResponse { plaintext }))
        }

        async fn encrypt(
            &self,
            _: tonic::Request<v2_server::EncryptRequest>,
        ) -> Result<tonic::Response<v2_server::EncryptResponse>, tonic::Status> {
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
        let service = v2_server::key_management_service_server::KeyManagementServiceServer::new(Reverse(
            served.clone(),
        ));
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
        assert!(
            matches!(&refused, KmsError::Refused(m) if m.to_string().contains("no such key version")),
            "{refused:?}"
        );
        assert_eq!(plugins.unwrap_dek(plugin, b"dek-two", "k1", &[]).unwrap().as_slice(), b"owt-ked");
        assert_eq!(plugins.unwrap_dek(plugin, b"dek-one", "k1", &[]).unwrap().as_slice(), b"eno-ked");
        assert_eq!((plugins.decrypt_calls(), served.load(Ordering::SeqCst)), (3, 3));
        assert!(plugins.available(plugin), "a refusal is an answer, not an outage");
    }
}
