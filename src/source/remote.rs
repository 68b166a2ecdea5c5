//! Object storage sources: `s3://bucket/key`, `s3://bucket/prefix/`, `gs://`,
//! `az://container/…`, read-only through the `object_store` crate.
//! Credentials and endpoints come from the usual environment (`AWS_*`, incl.
//! `AWS_ENDPOINT_URL` with plain http for MinIO-style servers; `GOOGLE_*`;
//! `AZURE_*`). Objects stream to an unlinked temporary file, which is then
//! mapped: memory stays bounded whatever the object size.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{Attribute, BackoffConfig, GetOptions, GetRange, ObjectStore, RetryConfig};
use serde::Serialize;

use super::{Blob, SourceError};

/// The most a k3s `.metadata/` sidecar may take; larger ones are ignored.
pub const MAX_SIDECAR: u64 = 1 << 20;

/// Re-requests of a download part that dropped mid-stream, resumed at the offset reached.
const RESUMES: usize = 5;

/// Objects download in parts of this size, several at once (`--connections`).
pub const PART_BYTES: u64 = 32 << 20;

/// Why a part of a download failed.
enum PartError {
    /// The object is gone, or was replaced since the first part (ETag).
    Gone(object_store::Error),
    /// Every resume failed: what each said.
    Failed(Vec<String>),
}

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
    /// The object's key in its bucket.
    pub fn key(&self) -> &str {
        &self.key
    }

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

    /// The object the URL names, or every object under it as a prefix, handed
    /// to `each` one at a time as the listing pages arrive (in key order;
    /// the listing is never held whole, and `each` may block to pace it),
    /// with whether it came from a prefix listing. The k3s `.metadata/`
    /// sidecars are attached to their backups, not handed on: a sidecar sorts
    /// before its backup (`.` before the name), so the listing says which
    /// exist, and only those are fetched; a name sorting before `.` gets a
    /// direct look.
    pub fn list(&self, mut each: impl FnMut(RemoteObject, bool)) -> Result<(), SourceError> {
        self.runtime.block_on(async {
            let key = ObjectPath::from(self.url.key.as_str());
            if !(self.url.key.is_empty() || self.url.key.ends_with('/')) {
                match self.store.head(&key).await {
                    Ok(meta) => {
                        let sidecar = self.sidecar(&sidecar_key(meta.location.as_ref())).await;
                        each(self.object(&meta, sidecar), false);
                        return Ok(());
                    }
                    Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(self.error(&self.url.key, e)),
                }
            }
            let prefix = (!self.url.key.is_empty()).then_some(&key);
            let mut stream = self.store.list(prefix);
            let mut sidecars = std::collections::HashSet::new();
            let mut listed = 0usize;
            while let Some(meta) = stream.next().await {
                let meta = meta.map_err(|e| self.error(&self.url.key, e))?;
                let key = meta.location.as_ref();
                listed += 1;
                if key.contains(".metadata/") {
                    sidecars.insert(key.to_string());
                    continue;
                }
                let sidecar_key = sidecar_key(key);
                let name_first = key.rsplit('/').next().and_then(|n| n.bytes().next()).unwrap_or(b'.');
                let sidecar = if sidecars.remove(&sidecar_key) || name_first < b'.' {
                    self.sidecar(&sidecar_key).await
                } else {
                    None
                };
                each(self.object(&meta, sidecar), true);
            }
            if listed == 0 {
                return Err(SourceError::Remote {
                    url: self.url.with_key(&self.url.key),
                    reason: "no such object, and no objects under it as a prefix".into(),
                });
            }
            Ok(())
        })
    }

    fn object(&self, meta: &object_store::ObjectMeta, sidecar: Option<serde_json::Value>) -> RemoteObject {
        let key = meta.location.as_ref().to_string();
        RemoteObject {
            url: self.url.with_key(&key),
            size: meta.size,
            e_tag: meta.e_tag.clone(),
            last_modified: meta.last_modified.to_rfc3339(),
            user_metadata: BTreeMap::new(),
            sidecar,
            key,
        }
    }

    /// Downloads one object into an unlinked temporary file and maps it.
    /// A large object comes in parts of [`PART_BYTES`], `connections` at a
    /// time, each written at its offset and resumed where it broke off; every
    /// request after the first names the first one's ETag, so an object
    /// replaced meanwhile fails rather than mixing two versions. Also fills
    /// in the object's user metadata.
    pub fn download(
        &self,
        object: &mut RemoteObject,
        connections: usize,
        on_bytes: &(dyn Fn(u64) + Sync),
    ) -> Result<Blob, SourceError> {
        let io = |e: std::io::Error| SourceError::Io { path: object.url.clone(), source: e };
        let file = super::scratch::file().map_err(io)?;
        file.set_len(object.size).map_err(io)?;
        let path = ObjectPath::from(object.key.as_str());
        let size = object.size;
        let parts: Vec<(u64, u64)> = (0..size.max(1))
            .step_by(PART_BYTES as usize)
            .map(|at| (at, (at + PART_BYTES).min(size)))
            .collect();
        // The first part says what the object is (metadata, ETag); the rest follow it.
        let listed = object.e_tag.clone();
        let first = self.runtime.block_on(self.part(&path, parts[0], listed.clone(), &file, on_bytes));
        let (attributes, e_tag) = first.map_err(|e| self.failed(object, e))?;
        let e_tag = listed.or(e_tag);
        object.user_metadata = user_metadata(&attributes);
        let rest = futures::stream::iter(&parts[1..])
            .map(|&part| self.part(&path, part, e_tag.clone(), &file, on_bytes))
            .buffer_unordered(connections.max(1))
            .collect::<Vec<_>>();
        for done in self.runtime.block_on(rest) {
            done.map_err(|e| self.failed(object, e))?;
        }
        Blob::map(&file).map_err(io)
    }

    /// Bytes `start..end` of an object written at their offset in `file`
    /// (the whole object when it is empty), resumed at the offset reached
    /// after a dropped connection. Returns the object's attributes and ETag.
    async fn part(
        &self,
        path: &ObjectPath,
        (start, end): (u64, u64),
        e_tag: Option<String>,
        file: &std::fs::File,
        on_bytes: &(dyn Fn(u64) + Sync),
    ) -> Result<(object_store::Attributes, Option<String>), PartError> {
        use std::os::unix::fs::FileExt;
        let (mut at, mut failures) = (start, Vec::new());
        loop {
            let opts = GetOptions {
                range: (end > start).then_some(GetRange::Bounded(at..end)),
                if_match: e_tag.clone(),
                ..Default::default()
            };
            let attempt = async {
                let result = self.store.get_opts(path, opts).await?;
                let found = (result.attributes.clone(), result.meta.e_tag.clone());
                let mut stream = result.into_stream();
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk?;
                    file.write_all_at(&chunk, at)
                        .map_err(|e| object_store::Error::Generic { store: "file", source: Box::new(e) })?;
                    at += chunk.len() as u64;
                    on_bytes(chunk.len() as u64);
                }
                Ok::<_, object_store::Error>(found)
            };
            match attempt.await {
                Ok(found) if at >= end => return Ok(found),
                Ok(_) => failures.push(format!("the stream ended at byte {at} of {end}")),
                Err(
                    e @ (object_store::Error::NotFound { .. } | object_store::Error::Precondition { .. }),
                ) => return Err(PartError::Gone(e)),
                Err(e) => failures.push(e.to_string()),
            }
            if failures.len() > RESUMES {
                return Err(PartError::Failed(failures));
            }
            tokio::time::sleep(Duration::from_millis(200 * failures.len() as u64)).await;
        }
    }

    fn failed(&self, object: &RemoteObject, e: PartError) -> SourceError {
        match e {
            PartError::Gone(e) => self.error(&object.key, e),
            PartError::Failed(failures) => SourceError::Remote {
                url: object.url.clone(),
                reason: format!(
                    "download failed {} times; last: {}",
                    failures.len(),
                    failures.last().map_or("", String::as_str)
                ),
            },
        }
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
