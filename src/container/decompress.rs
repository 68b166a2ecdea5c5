//! Streaming decompression into an unlinked temporary file, capped by the
//! source's budget, so a compressed backup never has to fit in memory.

use std::io::{Read, Write};

use super::{ContainerError, Kind};
use crate::source::Blob;

pub fn to_temp(kind: Kind, bytes: &[u8], budget: &mut u64) -> Result<Blob, ContainerError> {
    let layer = kind.name();
    let corrupt = |e: std::io::Error| ContainerError::Corrupt { layer, reason: e.to_string() };
    let mut file = crate::source::scratch::file()?;
    let written = match kind {
        Kind::Gzip => copy_capped(flate2::read::MultiGzDecoder::new(bytes), &mut file, *budget),
        Kind::Zlib => copy_capped(flate2::read::ZlibDecoder::new(bytes), &mut file, *budget),
        Kind::Zstd => {
            copy_capped(zstd::stream::read::Decoder::new(bytes).map_err(corrupt)?, &mut file, *budget)
        }
        Kind::Lzw => lzw(bytes, &mut file, *budget),
        other => unreachable!("{other:?} is not a compression"),
    }
    .map_err(|e| match e {
        Capped::TooLarge => ContainerError::TooLarge { layer, limit: *budget },
        Capped::Io(e) => corrupt(e),
    })?;
    *budget -= written;
    file.flush()?;
    Ok(Blob::map(&file)?)
}

pub(super) enum Capped {
    TooLarge,
    Io(std::io::Error),
}

impl From<std::io::Error> for Capped {
    fn from(e: std::io::Error) -> Self {
        Capped::Io(e)
    }
}

/// Copies at most `limit` bytes; one byte more means the source is too big.
pub(super) fn copy_capped(reader: impl Read, out: &mut impl Write, limit: u64) -> Result<u64, Capped> {
    let copied = std::io::copy(&mut reader.take(limit.saturating_add(1)), out)?;
    if copied > limit {
        return Err(Capped::TooLarge);
    }
    Ok(copied)
}

/// Go's `compress/lzw` with LSB order and 8-bit literals, as Gardener's
/// etcd-backup-restore writes `.Z` snapshots: GIF-style codes, no header.
fn lzw(bytes: &[u8], out: &mut impl Write, limit: u64) -> Result<u64, Capped> {
    let mut decoder = weezl::decode::Decoder::new(weezl::BitOrder::Lsb, 8);
    let mut capped = CappedWriter { out, left: limit, written: 0 };
    let result = decoder.into_stream(&mut capped).decode_all(bytes);
    match result.status {
        Ok(_) => Ok(capped.written),
        Err(_) if capped.left == 0 && capped.written >= limit => Err(Capped::TooLarge),
        Err(e) => Err(Capped::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, e))),
    }
}

struct CappedWriter<'w, W: Write> {
    out: &'w mut W,
    left: u64,
    written: u64,
}

impl<W: Write> Write for CappedWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() as u64 > self.left {
            self.left = 0;
            return Err(std::io::Error::other("too large"));
        }
        let n = self.out.write(buf)?;
        self.left -= n as u64;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}
