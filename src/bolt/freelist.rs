//! On-disk freelist (bbolt internal/freelist/shared.go): sorted u64 ids,
//! with the 0xFFFF count escape for lists longer than a u16.

use super::page::{u64_at, Page, PAGE_HEADER_SIZE};
use super::{BoltError, Pgid};

pub fn ids(page: &Page) -> Result<Vec<Pgid>, BoltError> {
    let (count, start) = match page.count {
        0xFFFF => {
            let n = u64_at(page.buf, PAGE_HEADER_SIZE)
                .ok_or_else(|| page.error("freelist count out of bounds"))?;
            (n, PAGE_HEADER_SIZE + 8)
        }
        n => (u64::from(n), PAGE_HEADER_SIZE),
    };
    let room = (page.buf.len() - start.min(page.buf.len())) as u64 / 8;
    if count > room {
        return Err(
            page.error(format!("freelist count {count} exceeds the {room} ids its page span can hold"))
        );
    }
    Ok(page.buf[start..start + count as usize * 8]
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect())
}
