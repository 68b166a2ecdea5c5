//! Object storage sources: `s3://bucket/key`, `s3://bucket/prefix/`, `gs://`,
//! `az://container/…`, read-only through the `object_store` crate.
//! Credentials and endpoints come from the usual environment (`AWS_*`, incl.
//! `AWS_ENDPOINT_URL` with plain http for MinIO-style servers; `GOOGLE_*`;
//! `AZURE_*`). Objects stream to an unlinked temporary file, which is then
//! mapped: memory stays bounded whatever the object size.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{Attribute, BackoffConfig, GetOptions, GetRange, ObjectStore, RetryConfig};
use serde::Serialize;

use super::{Blob, SourceError};

/// The most a k3s `.metadata/` sidecar may take; larger ones are ignored.
pub const MAX_SIDECAR: u64 = 1 << 20;

/// Re-requests of a download that dropped mid-stream, resumed at the offset reached.
const RESUMES: usize = 5;

/// `scheme://bucket/key`, split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectUrl {
    pub scheme: String,
    pub bucket: String,
    pub key: String,
}

impl ObjectUrl {
    pub fn parse(s: &str) -> Option<ObjectUrl> {
        let (scheme, rest) = s.split_once("://")?;
        if !matches!(scheme, "s3" | "gs" | "az") {
            return None;
        }
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        (!bucket.is_empty()).then(|| ObjectUrl {
            scheme: scheme.into(),
            bucket: bucket.into(),
            key: key.into(),
        })
    }

    fn with_key(&self, key: &str) -> String {
        format!("{}://{}/{key}", self.scheme, self.bucket)
    }
}

/// One object to audit, with what the store says about it.
#[derive(Clone, Debug, Serialize)]
pub struct RemoteObject {
    pub url: String,
    pub size: u64,
    pub e_tag: Option<String>,
    pub last_modified: String,
    /// User metadata, e.g. k3s's `K3s-Cluster-Id`, `K3s-Node-Name`.
    pub user_metadata: BTreeMap<String, String>,
    /// The k3s/rke2 `.metadata/<name>` sidecar object, when there is one.
    pub sidecar: Option<serde_json::Value>,
    #[serde(skip)]
    key: String,
}

impl RemoteObject {
    /// A local file described like an object: for a k3s snapshot whose
    /// `.metadata/<name>` sidecar sits beside it.
    pub fn local(
        path: &std::path::Path,
        meta: &std::fs::Metadata,
        sidecar: serde_json::Value,
    ) -> RemoteObject {
        let modified = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
        RemoteObject {
            url: path.display().to_string(),
            size: meta.len(),
            e_tag: None,
            last_modified: modified.map_or_else(String::new, |d| crate::time::rfc3339(d.as_secs())),
            user_metadata: BTreeMap::new(),
            sidecar: Some(sidecar),
            key: String::new(),
        }
    }
}

/// Where k3s puts the sidecar of `key`: `<dir>/.metadata/<name>`.
fn sidecar_key(key: &str) -> String {
    match key.rsplit_once('/') {
        Some((dir, name)) => format!("{dir}/.metadata/{name}"),
        None => format!(".metadata/{key}"),
    }
}

pub struct Remote {
    url: ObjectUrl,
    store: Arc<dyn ObjectStore>,
    runtime: tokio::runtime::Runtime,
}

impl Remote {
    pub fn connect(url: &ObjectUrl) -> Result<Remote, SourceError> {
        let err = |e: object_store::Error| SourceError::Remote {
            url: url.with_key(&url.key),
            reason: e.to_string(),
        };
        let retry = RetryConfig {
            max_retries: 5,
            retry_timeout: Duration::from_secs(120),
            backoff: BackoffConfig::default(),
        };
        let store: Arc<dyn ObjectStore> = match url.scheme.as_str() {
            "s3" => {
                let mut b = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(&url.bucket)
                    .with_retry(retry);
                let endpoint = std::env::var("AWS_ENDPOINT_URL").or_else(|_| std::env::var("AWS_ENDPOINT"));
                if let Some(endpoint) = endpoint.as_deref().ok().map(str::trim).filter(|e| !e.is_empty()) {
                    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                        return Err(SourceError::Remote {
                            url: url.with_key(&url.key),
                            reason: format!(
                                "AWS_ENDPOINT_URL {endpoint:?} is not an http:// or https:// URL"
                            ),
                        });
                    }
                    b = b.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://"));
                }
                Arc::new(b.build().map_err(err)?)
            }
            "gs" => Arc::new(
                object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(&url.bucket)
                    .with_retry(retry)
                    .build()
                    .map_err(err)?,
            ),
            _ => Arc::new(
                object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_container_name(&url.bucket)
                    .with_retry(retry)
                    .build()
                    .map_err(err)?,
            ),
        };
        let runtime = crate::net::runtime(2, "etcd-audit-remote")
            .map_err(|e| SourceError::Io { path: "tokio runtime".into(), source: e })?;
        Ok(Remote { url: url.clone(), store, runtime })
    }

    /// The object the URL names, or every object under it as a prefix; the
    /// k3s `.metadata/` sidecars are attached to their backups, not listed.
    pub fn objects(&self) -> Result<Vec<RemoteObject>, SourceError> {
        self.runtime.block_on(async {
            let key = ObjectPath::from(self.url.key.as_str());
            let exact = if self.url.key.is_empty() || self.url.key.ends_with('/') {
                None
            } else {
                match self.store.head(&key).await {
                    Ok(meta) => Some(vec![meta]),
                    Err(object_store::Error::NotFound { .. }) => None,
                    Err(e) => return Err(self.error(&self.url.key, e)),
                }
            };
            let listed_prefix = exact.is_none();
            let metas = match exact {
                Some(metas) => metas,
                None => {
                    let prefix = (!self.url.key.is_empty()).then_some(&key);
                    let mut listed: Vec<_> = self.store.list(prefix).collect::<Vec<_>>().await;
                    let metas: Result<Vec<_>, _> = listed.drain(..).collect();
                    let metas = metas.map_err(|e| self.error(&self.url.key, e))?;
                    if metas.is_empty() {
                        return Err(SourceError::Remote {
                            url: self.url.with_key(&self.url.key),
                            reason: "no such object, and no objects under it as a prefix".into(),
                        });
                    }
                    metas
                }
            };
            // A listing shows which sidecars exist: ask only for those (one
            // request per object would be 10,000 requests for a big prefix).
            let sidecars: std::collections::HashSet<&str> =
                metas.iter().map(|m| m.location.as_ref()).filter(|k| k.contains(".metadata/")).collect();
            let mut objects = Vec::new();
            for meta in metas.iter().filter(|m| !m.location.as_ref().contains(".metadata/")) {
                let key = meta.location.as_ref().to_string();
                let sidecar_key = sidecar_key(&key);
                let sidecar = if listed_prefix && !sidecars.contains(sidecar_key.as_str()) {
                    None
                } else {
                    self.sidecar(&sidecar_key).await
                };
                objects.push(RemoteObject {
                    url: self.url.with_key(&key),
                    size: meta.size,
                    e_tag: meta.e_tag.clone(),
                    last_modified: meta.last_modified.to_rfc3339(),
                    user_metadata: BTreeMap::new(),
                    sidecar,
                    key,
                });
            }
            objects.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(objects)
        })
    }

    /// Streams one object into an unlinked temporary file, resuming at the
    /// offset reached when the connection drops, and maps it. Also fills in
    /// the object's user metadata.
    pub fn download(
        &self,
        object: &mut RemoteObject,
        on_bytes: &(dyn Fn(u64) + Sync),
    ) -> Result<Blob, SourceError> {
        let io = |e: std::io::Error| SourceError::Io { path: object.url.clone(), source: e };
        let mut file = super::scratch::file().map_err(io)?;
        let path = ObjectPath::from(object.key.as_str());
        let (mut written, mut failures) = (0u64, Vec::new());
        while written < object.size || (object.size == 0 && failures.is_empty() && written == 0) {
            let opts = GetOptions {
                range: (written > 0).then_some(GetRange::Offset(written)),
                ..Default::default()
            };
            let attempt = self.runtime.block_on(async {
                let result = self.store.get_opts(&path, opts).await?;
                if written == 0 {
                    object.user_metadata = user_metadata(&result.attributes);
                }
                let mut stream = result.into_stream();
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk?;
                    file.write_all(&chunk)
                        .map_err(|e| object_store::Error::Generic { store: "file", source: Box::new(e) })?;
                    written += chunk.len() as u64;
                    on_bytes(chunk.len() as u64);
                }
                Ok::<(), object_store::Error>(())
            });
            match attempt {
                Ok(()) if object.size == 0 => break,
                Ok(()) => {}
                Err(e @ object_store::Error::NotFound { .. }) => return Err(self.error(&object.key, e)),
                Err(e) => {
                    failures.push(e.to_string());
                    if failures.len() > RESUMES {
                        return Err(SourceError::Remote {
                            url: object.url.clone(),
                            reason: format!(
                                "download failed {} times; last: {}",
                                failures.len(),
                                failures.last().unwrap()
                            ),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(200 * failures.len() as u64));
                }
            }
        }
        file.flush().map_err(io)?;
        Blob::map(&file).map_err(io)
    }

    async fn sidecar(&self, sidecar_key: &str) -> Option<serde_json::Value> {
        let found = self.store.get(&ObjectPath::from(sidecar_key)).await.ok()?;
        // A sidecar is a few hundred bytes of JSON: stop reading anything big.
        let mut bytes = Vec::new();
        let mut stream = found.into_stream();
        while let Some(chunk) = stream.next().await {
            bytes.extend_from_slice(&chunk.ok()?);
            if bytes.len() as u64 > MAX_SIDECAR {
                return None;
            }
        }
        serde_json::from_slice(&bytes).ok()
    }

    fn error(&self, key: &str, e: object_store::Error) -> SourceError {
        SourceError::Remote { url: self.url.with_key(key), reason: e.to_string() }
    }
}

fn user_metadata(attributes: &object_store::Attributes) -> BTreeMap<String, String> {
    attributes
        .iter()
        .filter_map(|(k, v)| match k {
            Attribute::Metadata(name) => Some((name.to_string(), v.as_ref().to_string())),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecars_sit_in_a_metadata_folder_beside_the_snapshot() {
        assert_eq!(sidecar_key("k3s/etcd-snapshot-a-1.zip"), "k3s/.metadata/etcd-snapshot-a-1.zip");
        assert_eq!(sidecar_key("etcd-snapshot-a-1"), ".metadata/etcd-snapshot-a-1");
    }

    #[test]
    fn urls() {
        let u = ObjectUrl::parse("s3://backups/etcd/snap-1.zip").unwrap();
        assert_eq!(
            (u.scheme.as_str(), u.bucket.as_str(), u.key.as_str()),
            ("s3", "backups", "etcd/snap-1.zip")
        );
        assert_eq!(ObjectUrl::parse("gs://b").unwrap().key, "");
        assert!(ObjectUrl::parse("/var/lib/etcd").is_none());
        assert!(ObjectUrl::parse("http://x/y").is_none());
        assert!(ObjectUrl::parse("s3:///key").is_none());
    }
}
