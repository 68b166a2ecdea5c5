//! One KMS plugin and its gRPC calls: connect over the unix socket, ask
//! `Status` (v2) or `Version` (v1beta1), and `Decrypt` a DEK. Every call is
//! bounded by the provider's timeout, and every failure says which plugin,
//! which call and why.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tonic::transport::{Channel, Endpoint, Uri};
use zeroize::Zeroizing;

use super::endpoint::{EndpointError, SocketAddress};
use super::proto::{v1beta1, v2};
use super::{Dek, KmsError, PluginStatus, V1_VERSION};
use crate::encryption::KmsApi;
use crate::net::error_chain;

/// Why a plugin could not be used, or what it answered instead of a DEK.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error("{plugin} is not reachable: {reason}")]
    Unreachable { plugin: String, reason: String },
    #[error("{plugin} did not answer {method} within the timeout of {}", human(*.after))]
    Timeout { plugin: String, method: &'static str, after: Duration },
    #[error("{plugin} could not serve {method}: {code:?}: {message}")]
    Unavailable { plugin: String, method: &'static str, code: tonic::Code, message: String },
    #[error("{plugin} reports API version {found:?}; kube-apiserver needs {wanted}")]
    BadVersion { plugin: String, found: String, wanted: &'static str },
    #[error("{plugin} reports an invalid key_id ({len} bytes)")]
    BadKeyId { plugin: String, len: usize },
    #[error("{plugin} reports healthz {healthz:?}, not \"ok\": kube-apiserver would not use it")]
    Unhealthy { plugin: String, healthz: String },
    #[error("{plugin} refused {method}: {code:?}: {message}")]
    Refused { plugin: String, method: &'static str, code: tonic::Code, message: String },
    #[error("{plugin} returned an empty plaintext for this DEK")]
    EmptyPlaintext { plugin: String },
    #[error("cannot start the KMS client runtime: {0}")]
    Runtime(String),
}

impl From<PluginError> for KmsError {
    /// A refusal is the plugin's answer (`undecryptable`); anything else
    /// means it could not be asked (`unknown-key`).
    fn from(e: PluginError) -> KmsError {
        match e {
            PluginError::Refused { .. } | PluginError::EmptyPlaintext { .. } => KmsError::Refused(e),
            e => KmsError::Unavailable(e),
        }
    }
}

pub(super) type DekCell = Arc<OnceLock<Result<Dek, KmsError>>>;

/// One KMS provider (name and API) and its plugin.
pub struct Plugin {
    pub api: KmsApi,
    pub name: String,
    pub endpoint: String,
    pub timeout: Duration,
    /// Some supplied config has this provider (else only a `--kms` override names it).
    pub configured: bool,
    pub overridden: bool,
    pub(super) connection: OnceLock<Result<Connection, PluginError>>,
    /// Set when a call after a good start found the plugin unreachable.
    pub(super) down: OnceLock<PluginError>,
    /// One cell per distinct encrypted DEK: concurrent readers wait for one call.
    pub(super) deks: Mutex<HashMap<Vec<u8>, DekCell>>,
    pub(super) decrypt_calls: AtomicU64,
}

pub(super) struct Connection {
    pub(super) channel: Channel,
    pub(super) status: PluginStatus,
}

impl Plugin {
    pub(super) fn new(
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

    pub(super) fn label(&self) -> String {
        let api = if self.api == KmsApi::V1 { "v1" } else { "v2" };
        format!("KMS {api} plugin {:?} at {}", self.name, self.endpoint)
    }

    pub(super) fn unhealthy(&self, status: &PluginStatus) -> PluginError {
        PluginError::Unhealthy { plugin: self.label(), healthz: status.healthz.clone().unwrap_or_default() }
    }

    /// Bounds one call by the provider's timeout and sorts its failure.
    async fn call<T>(
        &self,
        method: &'static str,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, PluginError> {
        let timed_out = || PluginError::Timeout { plugin: self.label(), method, after: self.timeout };
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
            Ok(Err(status)) => Err(classify(self.label(), method, &status)),
        }
    }

    pub(super) async fn connect(&self) -> Result<Connection, PluginError> {
        let address = SocketAddress::parse(&self.endpoint)?;
        let connector = tower::service_fn(move |_: Uri| {
            let address = address.clone();
            async move { address.connect().await.map(hyper_util::rt::TokioIo::new) }
        });
        let endpoint = Endpoint::from_static("http://localhost").connect_timeout(self.timeout);
        let connecting = endpoint.connect_with_connector(connector);
        let unreachable = |reason| PluginError::Unreachable { plugin: self.label(), reason };
        let channel = match tokio::time::timeout(self.timeout, connecting).await {
            Err(_) => return Err(unreachable(format!("connect timed out after {}", human(self.timeout)))),
            Ok(Err(e)) => return Err(unreachable(error_chain(&e))),
            Ok(Ok(channel)) => channel,
        };
        let status = match self.api {
            KmsApi::V2 => {
                let mut client =
                    v2::key_management_service_client::KeyManagementServiceClient::new(channel.clone());
                let s =
                    self.call("Status", client.status(request(v2::StatusRequest {}, self.timeout))).await?;
                if s.version != "v2" && s.version != "v2beta1" {
                    let (plugin, wanted) = (self.label(), "v2 or v2beta1");
                    return Err(PluginError::BadVersion { plugin, found: s.version, wanted });
                }
                if s.key_id.is_empty() || s.key_id.len() > 1024 {
                    return Err(PluginError::BadKeyId { plugin: self.label(), len: s.key_id.len() });
                }
                PluginStatus { version: s.version, healthz: Some(s.healthz), key_id: Some(s.key_id) }
            }
            KmsApi::V1 => {
                let mut client =
                    v1beta1::key_management_service_client::KeyManagementServiceClient::new(channel.clone());
                let req = v1beta1::VersionRequest { version: V1_VERSION.into() };
                let v = self.call("Version", client.version(request(req, self.timeout))).await?;
                if v.version != V1_VERSION {
                    let plugin = self.label();
                    return Err(PluginError::BadVersion { plugin, found: v.version, wanted: V1_VERSION });
                }
                PluginStatus { version: v.version, healthz: None, key_id: None }
            }
        };
        Ok(Connection { channel, status })
    }

    pub(super) async fn decrypt(
        &self,
        channel: Channel,
        encrypted: &[u8],
        key_id: &str,
        annotations: &[(String, Vec<u8>)],
    ) -> Result<Dek, PluginError> {
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
            return Err(PluginError::EmptyPlaintext { plugin: self.label() });
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
fn classify(plugin: String, method: &'static str, status: &tonic::Status) -> PluginError {
    use std::error::Error;
    use tonic::Code;
    let (code, message) = (status.code(), status.message().to_string());
    // Errors tonic makes on the client side carry their cause; the plugin's don't.
    match (code, status.source()) {
        (Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded, Some(cause)) => {
            PluginError::Unreachable { plugin, reason: format!("{method}: {}", error_chain(cause)) }
        }
        (Code::Unavailable | Code::Cancelled | Code::DeadlineExceeded, None) => {
            PluginError::Unavailable { plugin, method, code, message }
        }
        _ => PluginError::Refused { plugin, method, code, message },
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_uuids() {
        let (a, b) = (random_uid(), random_uid());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }

    #[test]
    fn refusals_are_answers_and_transport_trouble_is_not() {
        let refused = classify("p".into(), "Decrypt", &tonic::Status::not_found("no such key version"));
        assert!(matches!(KmsError::from(refused), KmsError::Refused(_)));
        let down = classify("p".into(), "Decrypt", &tonic::Status::unavailable("restarting"));
        assert!(matches!(KmsError::from(down), KmsError::Unavailable(_)));
    }
}
