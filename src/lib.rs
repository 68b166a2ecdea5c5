//! etcd-audit: an offline, read-only auditor for etcd backups of Kubernetes
//! clusters. Data flows one way:
//! `source → container → walk → bolt → etcd → k8s → encryption → audit → report`,
//! with the `catalog` of audited backups last; `run` holds the commands.

pub mod audit;
pub mod bolt;
pub mod catalog;
pub mod container;
pub mod encryption;
pub mod etcd;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzz;
pub mod k8s;
pub mod net;
pub mod progress;
pub mod proto;
pub mod report;
pub mod run;
pub mod source;
pub mod time;
pub mod walk;

pub use net::error_chain;

pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");
