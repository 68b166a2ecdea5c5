//! zip and tar: unpacked into a temporary directory that is then walked like
//! a local folder. Entries whose path would leave that directory (absolute,
//! `..`) are refused, links are not followed, and every byte counts against
//! the budget, so a bomb stops at the cap.

use std::fs::File;
use std::io::{Cursor, Write};
use std::path::{Component, Path, PathBuf};

use super::decompress::{copy_capped, Capped, Counting, OnRead};
use super::ContainerError;
use crate::source::{scratch, Blob};

const MAX_ENTRIES: usize = 100_000;

pub enum Unzipped {
    /// A single file (k3s/rke2 `--etcd-snapshot-compress`): its name and bytes.
    One(String, Blob),
    Many(tempfile::TempDir),
}

pub fn unzip(bytes: &[u8], budget: &mut u64) -> Result<Unzipped, ContainerError> {
    let corrupt = |e: zip::result::ZipError| ContainerError::Corrupt { layer: "zip", reason: e.to_string() };
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(corrupt)?;
    if zip.len() > MAX_ENTRIES {
        return Err(ContainerError::Corrupt { layer: "zip", reason: format!("{} entries", zip.len()) });
    }
    let files: Vec<usize> =
        (0..zip.len()).filter(|&i| zip.by_index_raw(i).is_ok_and(|e| e.is_file())).collect();
    if let [only] = files[..] {
        let mut entry = zip.by_index(only).map_err(corrupt)?;
        let name = entry.name().to_string();
        safe_path("zip", &name)?;
        let mut file = scratch::file()?;
        *budget -= capped("zip", copy_capped(&mut entry, &mut file, *budget), *budget)?;
        file.flush()?;
        return Ok(Unzipped::One(name, Blob::map(&file)?));
    }
    let dir = scratch::dir()?;
    for i in files {
        let mut entry = zip.by_index(i).map_err(corrupt)?;
        let target = dir.path().join(safe_path("zip", entry.name())?);
        let mut out = create(&target)?;
        *budget -= capped("zip", copy_capped(&mut entry, &mut out, *budget), *budget)?;
    }
    Ok(Unzipped::Many(dir))
}

pub fn untar(bytes: &[u8], budget: &mut u64, on_read: OnRead) -> Result<tempfile::TempDir, ContainerError> {
    let corrupt = |e: std::io::Error| ContainerError::Corrupt { layer: "tar", reason: e.to_string() };
    let dir = scratch::dir()?;
    let mut archive = tar::Archive::new(Counting::new(bytes, on_read));
    for (n, entry) in archive.entries().map_err(corrupt)?.enumerate() {
        if n >= MAX_ENTRIES {
            return Err(ContainerError::Corrupt {
                layer: "tar",
                reason: format!("more than {MAX_ENTRIES} entries"),
            });
        }
        let mut entry = entry.map_err(corrupt)?;
        let name = entry.path().map_err(corrupt)?.to_string_lossy().into_owned();
        let relative = safe_path("tar", &name)?;
        // Only regular files are unpacked: links could point anywhere.
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let mut out = create(&dir.path().join(relative))?;
        *budget -= capped("tar", copy_capped(&mut entry, &mut out, *budget), *budget)?;
    }
    Ok(dir)
}

fn capped(layer: &'static str, r: Result<u64, Capped>, limit: u64) -> Result<u64, ContainerError> {
    r.map_err(|e| match e {
        Capped::TooLarge => ContainerError::TooLarge { layer, limit },
        Capped::Io(e) => ContainerError::Corrupt { layer, reason: e.to_string() },
    })
}

fn create(path: &Path) -> Result<File, ContainerError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    Ok(File::create(path)?)
}

/// The entry's path relative to the unpack directory, or a refusal.
fn safe_path(layer: &'static str, name: &str) -> Result<PathBuf, ContainerError> {
    let refuse = |reason| ContainerError::UnsafeEntry { layer, name: name.to_string(), reason };
    let mut out = PathBuf::new();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err(refuse("`..` would leave the archive")),
            Component::RootDir | Component::Prefix(_) => return Err(refuse("absolute path")),
        }
    }
    Ok(out)
}
