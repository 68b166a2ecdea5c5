//! The integration tests, one crate (one binary to build and link): each
//! module drives the real `etcd-audit` binary or the library against real
//! fixtures and real servers (etcd, an S3 server, Azurite, a KMS plugin).

mod catalog;
mod catalog_cli;
mod cli;
mod containers;
mod corrupt;
mod deploy;
mod errors;
mod exposure;
mod fleet;
mod forensics;
#[cfg(feature = "fuzzing")]
mod fuzz;
mod gcs;
mod hygiene;
mod image;
mod inspect;
mod interrupt;
mod k3s;
mod kms;
mod live;
mod outputs;
mod pg;
mod readonly;
mod s3;
mod scan;
mod schemas;
mod shard;
mod sweep;
mod util;
