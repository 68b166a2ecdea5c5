//! Plumbing shared by the network clients (object storage, live etcd, KMS
//! plugins): their small tokio runtimes, driven with `block_on` from
//! synchronous code, and one way to say what went wrong.

/// A multi-threaded runtime of `threads` workers with I/O and timers.
pub fn runtime(threads: usize, name: &str) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(threads).thread_name(name).enable_all().build()
}

/// The error with its causes, each said once: a top-level message alone
/// ("transport error") does not say whether TLS, DNS or the port was the problem.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn chains_say_each_cause_once() {
        let e = Outer(std::io::Error::other("connection refused"));
        assert_eq!(error_chain(&e), "outer: connection refused");
        let e = Outer(std::io::Error::other("outer"));
        assert_eq!(error_chain(&e), "outer");
    }
}
