//! Live etcd sources: `etcd://host:port[,host:port…]` and `etcds://…` (TLS),
//! through the `etcd-client` crate. Two ways in: the Maintenance Snapshot RPC
//! streamed into an unlinked temporary file (its SHA-256 checked while it
//! streams), or paginated Range requests pinned to one revision, for users
//! without snapshot permission. Nothing is left on disk either way.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, GetOptions, Identity, TlsOptions};
use sha2::{Digest, Sha256};

use super::{Blob, SourceError};
use crate::net::error_chain;

const TRAILER: usize = 32;
const CONNECT_ATTEMPTS: u32 = 3;
/// Keys per Range request: bounded memory whatever the database size.
pub const RANGE_PAGE: i64 = 1000;
/// Later pages hold about this many bytes of values (etcd has no byte
/// limit: the key limit follows the values' mean size).
const RANGE_PAGE_BYTES: usize = 8 << 20;
/// The largest page in keys. etcd counts every key from a page's start to
/// the prefix's end for each request, so fewer, larger pages cost the
/// server much less; this bounds the count and the client's memory.
const RANGE_PAGE_MAX: i64 = 10_000;
/// A response may be this large (tonic's default is 4 MiB, less than one
/// page of large values); a page larger still is fetched again, halved.
const RANGE_MESSAGE_MAX: usize = 64 << 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveTarget {
    /// As the user wrote it; the report's `source`.
    pub url: String,
    pub endpoints: Vec<String>,
    pub tls: bool,
}

impl LiveTarget {
    pub fn parse(s: &str) -> Option<LiveTarget> {
        let (tls, rest) = match s.split_once("://")? {
            ("etcd", rest) => (false, rest),
            ("etcds", rest) => (true, rest),
            _ => return None,
        };
        let scheme = if tls { "https" } else { "http" };
        let endpoints: Vec<String> = rest
            .trim_end_matches('/')
            .split(',')
            .filter(|e| !e.is_empty())
            .map(|e| format!("{scheme}://{e}"))
            .collect();
        (!endpoints.is_empty()).then(|| LiveTarget { url: s.to_string(), endpoints, tls })
    }
}

/// Client credentials, as etcdctl takes them. The password only ever comes
/// from the environment (`ETCD_AUDIT_PASSWORD`, else `ETCDCTL_PASSWORD`).
#[derive(Clone, Debug, Default)]
pub struct LiveOptions {
    pub cacert: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub user: Option<String>,
}

pub struct Live {
    target: LiveTarget,
    client: Client,
    runtime: tokio::runtime::Runtime,
}

impl Live {
    pub fn connect(target: &LiveTarget, opts: &LiveOptions) -> Result<Live, SourceError> {
        let fail = |reason: String| SourceError::Remote { url: target.url.clone(), reason };
        let runtime = crate::net::runtime(2, "etcd-audit-live").map_err(|e| fail(e.to_string()))?;
        let mut options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(10));
        if target.tls {
            options = options.with_tls(tls_options(opts).map_err(|e| fail(e.to_string()))?);
        }
        if let Some(user) = &opts.user {
            let password = std::env::var("ETCD_AUDIT_PASSWORD")
                .or_else(|_| std::env::var("ETCDCTL_PASSWORD"))
                .map_err(|_| fail(format!("--user {user} needs the password in ETCD_AUDIT_PASSWORD")))?;
            options = options.with_user(user, password);
        }
        let mut last = String::new();
        for attempt in 0..CONNECT_ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(300 << attempt));
            }
            let connected = runtime.block_on(async {
                let mut client = Client::connect(&target.endpoints, Some(options.clone())).await?;
                client.status().await?; // the connection is lazy: prove it works
                Ok::<Client, etcd_client::Error>(client)
            });
            match connected {
                Ok(client) => return Ok(Live { target: target.clone(), client, runtime }),
                Err(e) => last = error_chain(&e),
            }
        }
        Err(fail(format!("cannot connect after {CONNECT_ATTEMPTS} attempts: {last}")))
    }

    /// Streams a snapshot into an unlinked temporary file. The file is the
    /// database followed by its SHA-256 (as `etcdctl snapshot save` writes);
    /// a stream that ends early or whose digest does not match is an error.
    pub fn snapshot(&self, on_bytes: &(dyn Fn(u64) + Sync)) -> Result<Blob, SourceError> {
        let fail = |reason: String| SourceError::Remote { url: self.target.url.clone(), reason };
        let mut file = super::scratch::file().map_err(|e| fail(e.to_string()))?;
        let mut hasher = Sha256::new();
        // The last 32 bytes are the digest: hash everything before them.
        let mut tail: Vec<u8> = Vec::with_capacity(2 * TRAILER);
        let mut client = self.client.maintenance_client();
        self.runtime
            .block_on(async {
                let mut stream = client.snapshot().await?;
                while let Some(msg) = stream.message().await? {
                    let blob = msg.blob();
                    file.write_all(blob).map_err(etcd_client::Error::IoError)?;
                    tail.extend_from_slice(blob);
                    if tail.len() > TRAILER {
                        let settled = tail.len() - TRAILER;
                        hasher.update(&tail[..settled]);
                        tail.drain(..settled);
                    }
                    on_bytes(blob.len() as u64);
                }
                Ok::<(), etcd_client::Error>(())
            })
            .map_err(|e| fail(format!("snapshot stream failed: {}", error_chain(&e))))?;
        if tail.len() != TRAILER || hasher.finalize().as_slice() != tail.as_slice() {
            return Err(fail("snapshot stream ended without a matching SHA-256: incomplete snapshot".into()));
        }
        file.flush().map_err(|e| fail(e.to_string()))?;
        Blob::map(&file).map_err(|e| fail(e.to_string()))
    }

    /// The prefix that holds objects: `prefix` if given, else the first of
    /// `candidates` with keys.
    pub fn detect_prefix(&self, candidates: &[&str]) -> Result<String, SourceError> {
        let mut kv = self.client.kv_client();
        for p in candidates {
            let n = self
                .runtime
                .block_on(kv.get(format!("{p}/"), Some(GetOptions::new().with_prefix().with_count_only())))
                .map_err(|e| self.error(&e))?
                .count();
            if n > 0 {
                return Ok(p.to_string());
            }
        }
        Ok(candidates[0].to_string())
    }

    /// Reads every key under `prefix/` at one revision, a page at a time,
    /// handing each page to `page`; the next page is already being fetched
    /// meanwhile. Page sizes follow the values' size. Returns the pinned
    /// revision.
    pub fn range(
        &self,
        prefix: &str,
        page: &mut dyn FnMut(&[etcd_client::KeyValue]),
    ) -> Result<i64, SourceError> {
        let kv = self.client.kv_client().max_decoding_message_size(RANGE_MESSAGE_MAX);
        let start = format!("{prefix}/").into_bytes();
        let mut end = start.clone();
        *end.last_mut().unwrap() += 1; // '/' + 1 = '0': the end of the prefix
        let fetch = |from: &[u8], limit: i64, revision: i64| {
            let mut opts = GetOptions::new().with_range(end.clone()).with_limit(limit);
            if revision > 0 {
                opts = opts.with_revision(revision);
            }
            let (mut kv, from) = (kv.clone(), from.to_vec());
            self.runtime.spawn(async move { kv.get(from, Some(opts)).await })
        };
        let (mut from, mut limit, mut revision) = (start, RANGE_PAGE, 0i64);
        let mut pending = Some(fetch(&from, limit, revision));
        while let Some(fetching) = pending.take() {
            let resp = match self.runtime.block_on(fetching) {
                Ok(Ok(resp)) => resp,
                Ok(Err(e)) if too_large(&e) && limit > 1 => {
                    limit /= 2;
                    pending = Some(fetch(&from, limit, revision));
                    continue;
                }
                // A transient failure (or a task that died): ask again, with backoff.
                _ => self.with_retry(|| {
                    self.runtime
                        .block_on(fetch(&from, limit, revision))
                        .map_err(|e| {
                            Box::new(etcd_client::Error::IoError(std::io::Error::other(e.to_string())))
                        })?
                        .map_err(Box::new)
                })?,
            };
            if revision == 0 {
                revision = resp.header().map_or(0, |h| h.revision());
            }
            let next = resp.kvs().last().map(|k| [k.key(), b"\0"].concat()).filter(|_| resp.more());
            if let Some(next) = next {
                limit = page_limit(resp.kvs());
                pending = Some(fetch(&next, limit, revision));
                from = next;
            }
            page(resp.kvs());
        }
        Ok(revision)
    }

    /// Retries a transient failure with backoff (the error boxed: it is large).
    fn with_retry<T>(
        &self,
        mut call: impl FnMut() -> Result<T, Box<etcd_client::Error>>,
    ) -> Result<T, SourceError> {
        let mut last = None;
        for attempt in 0..CONNECT_ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(300 << attempt));
            }
            match call() {
                Ok(v) => return Ok(v),
                Err(e) => last = Some(e),
            }
        }
        Err(self.error(&last.expect("at least one attempt")))
    }

    fn error(&self, e: &etcd_client::Error) -> SourceError {
        SourceError::Remote { url: self.target.url.clone(), reason: error_chain(e) }
    }
}

/// Why the TLS client settings cannot be used.
#[derive(Debug, thiserror::Error)]
enum TlsError {
    #[error("{path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("--cert and --key go together")]
    CertWithoutKey,
}

/// The key limit of the next page: about [`RANGE_PAGE_BYTES`] of values
/// like those of `last`.
fn page_limit(last: &[etcd_client::KeyValue]) -> i64 {
    let bytes: usize = last.iter().map(|k| k.key().len() + k.value().len()).sum();
    let mean = (bytes / last.len().max(1)).max(1);
    ((RANGE_PAGE_BYTES / mean) as i64).clamp(1, RANGE_PAGE_MAX)
}

/// A response over the decoding limit (tonic says `OutOfRange`).
fn too_large(e: &etcd_client::Error) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(s) if s.code() == tonic::Code::OutOfRange || s.code() == tonic::Code::ResourceExhausted)
}

fn tls_options(opts: &LiveOptions) -> Result<TlsOptions, TlsError> {
    let read = |p: &PathBuf| {
        std::fs::read(p).map_err(|source| TlsError::Read { path: p.display().to_string(), source })
    };
    let mut tls = TlsOptions::new();
    if let Some(ca) = &opts.cacert {
        tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
    }
    match (&opts.cert, &opts.key) {
        (Some(cert), Some(key)) => tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?)),
        (None, None) => {}
        _ => return Err(TlsError::CertWithoutKey),
    }
    Ok(tls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = LiveTarget::parse("etcd://127.0.0.1:2379,10.0.0.2:2379").unwrap();
        assert_eq!(t.endpoints, ["http://127.0.0.1:2379", "http://10.0.0.2:2379"]);
        assert!(!t.tls);
        assert_eq!(LiveTarget::parse("etcds://h:1/").unwrap().endpoints, ["https://h:1"]);
        assert!(LiveTarget::parse("s3://b/k").is_none());
        assert!(LiveTarget::parse("etcd://").is_none());
    }
}
