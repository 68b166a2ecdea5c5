//! Streaming decompression into an unlinked temporary file, capped by the
//! source's budget, so a compressed backup never has to fit in memory.

use std::io::{BufWriter, Read, Write};

use super::{ContainerError, Kind};
use crate::source::Blob;

/// Reports how much of its input a layer has read: `(read, total)`.
pub type OnRead<'a> = &'a (dyn Fn(u64, u64) + Sync);

/// A reader over a layer's input that reports its position every MiB.
pub(super) struct Counting<'a> {
    bytes: &'a [u8],
    read: usize,
    reported: usize,
    on_read: OnRead<'a>,
}

impl<'a> Counting<'a> {
    pub(super) fn new(bytes: &'a [u8], on_read: OnRead<'a>) -> Self {
        Counting { bytes, read: 0, reported: 0, on_read }
    }
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (&self.bytes[self.read..]).read(buf)?;
        self.read += n;
        if self.read - self.reported >= 1 << 20 || n == 0 {
            self.reported = self.read;
            (self.on_read)(self.read as u64, self.bytes.len() as u64);
        }
        Ok(n)
    }
}

pub fn to_temp(kind: Kind, bytes: &[u8], budget: &mut u64, on_read: OnRead) -> Result<Blob, ContainerError> {
    let layer = kind.name();
    let corrupt = |e: std::io::Error| ContainerError::Corrupt { layer, reason: e.to_string() };
    // Decoders fill what they are given: through 128 KiB (zstd's block, and
    // within L2) a GB is 8,000 writes where `io::copy`'s own 8 KiB made it
    // 128,000; 1 MiB was slower again (the output left the cache).
    let mut out = BufWriter::with_capacity(128 << 10, crate::source::scratch::file()?);
    let bytes = Counting::new(bytes, on_read);
    let written = match kind {
        Kind::Gzip => copy_capped(flate2::read::MultiGzDecoder::new(bytes), &mut out, *budget),
        Kind::Zlib => copy_capped(flate2::read::ZlibDecoder::new(bytes), &mut out, *budget),
        Kind::Zstd => {
            copy_capped(zstd::stream::read::Decoder::new(bytes).map_err(corrupt)?, &mut out, *budget)
        }
        Kind::Lzw => lzw(bytes.bytes, &mut out, *budget),
        other => unreachable!("{other:?} is not a compression"),
    }
    .map_err(|e| match e {
        Capped::TooLarge => ContainerError::TooLarge { layer, limit: *budget },
        Capped::Io(e) => corrupt(e),
    })?;
    *budget -= written;
    let file = out.into_inner().map_err(|e| e.into_error())?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_report_how_far_they_have_read() {
        use std::sync::Mutex;
        let input = vec![7u8; (5 << 20) / 2];
        let seen = Mutex::new(Vec::new());
        let on_read = |read: u64, total: u64| seen.lock().unwrap().push((read, total));
        let mut reader = Counting::new(&input, &on_read);
        std::io::copy(&mut reader, &mut std::io::sink()).unwrap();
        let seen = seen.into_inner().unwrap();
        assert!(seen.len() >= 2, "{seen:?}");
        assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0));
        assert_eq!(*seen.last().unwrap(), (input.len() as u64, input.len() as u64));
    }
}
