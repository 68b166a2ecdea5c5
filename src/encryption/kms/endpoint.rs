//! Where a KMS plugin listens: `unix://` endpoints as kms
//! `util.ParseEndpoint` reads them, Linux abstract sockets included.

use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("unsupported KMS endpoint {0:?}: only unix:// sockets are supported")]
    NotUnix(String),
    #[error("KMS endpoint {0:?} names an empty abstract socket")]
    EmptyAbstract(String),
    #[error("KMS endpoint {0:?} has no socket path")]
    NoPath(String),
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
    pub fn parse(endpoint: &str) -> Result<Self, EndpointError> {
        let rest = endpoint.strip_prefix("unix://").ok_or_else(|| EndpointError::NotUnix(endpoint.into()))?;
        // `unix://host/path`: Go's url.Parse puts `host` aside; the path is what counts.
        let path = match rest.find('/') {
            Some(i) if !rest.starts_with('@') => &rest[i..],
            _ => rest,
        };
        if let Some(name) = path.strip_prefix("/@").or_else(|| path.strip_prefix('@')) {
            if name.is_empty() {
                return Err(EndpointError::EmptyAbstract(endpoint.into()));
            }
            return Ok(SocketAddress::Abstract(name.as_bytes().to_vec()));
        }
        if path.is_empty() || path == "/" {
            return Err(EndpointError::NoPath(endpoint.into()));
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
        assert!(matches!(SocketAddress::parse("tcp://127.0.0.1:1"), Err(EndpointError::NotUnix(_))));
        assert!(matches!(SocketAddress::parse("unix://"), Err(EndpointError::NoPath(_))));
        assert!(matches!(SocketAddress::parse("unix:///@"), Err(EndpointError::EmptyAbstract(_))));
    }
}
