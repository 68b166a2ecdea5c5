//! etcd-audit: an offline, read-only auditor for etcd backups of Kubernetes
//! clusters. Data flows one way:
//! `source → container → bolt → etcd → k8s → encryption → audit → report`.

pub mod audit;
pub mod bolt;
pub mod catalog;
pub mod container;
pub mod encryption;
pub mod etcd;
pub mod k8s;
pub mod progress;
pub mod report;
pub mod run;
pub mod source;

pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");
