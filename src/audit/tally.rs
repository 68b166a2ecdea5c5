//! Live entries are judged in key order, a chunk at a time in parallel, and
//! tallied as they come, so that no report holds its entries: counts per
//! class, the entry rules' counts and first examples, the keys the values
//! need, the nonces they were sealed with and, when the caller keeps them,
//! the entries themselves as JSON lines in a scratch file.

use rayon::prelude::*;

use super::findings::RuleHits;
use super::forensics::KeyFilter;
use super::hygiene::NonceLedger;
use super::pairing::KeyTally;
use super::record::{Entries, EntryRecord, Location, Spool, Summary};
use super::verdict::Judge;

/// One revision of an in-scope key, in 48 bytes: the index a scan sorts
/// to find the newest revision of every key, which is its entry.
#[derive(Clone, Copy)]
pub(super) struct KeyRev<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
    pub main: i64,
    /// The sub revision (saturated: only equal main revisions compare it).
    pub sub: u32,
    pub tombstone: bool,
}

/// Entries judged at once: enough to keep both cores busy, few enough that
/// their records (a few hundred bytes each) stay small.
const CHUNK: usize = 8192;
/// Entries one task judges and serializes.
const PART: usize = 256;

pub(super) struct Tally {
    pub summary: Summary,
    pub rules: RuleHits,
    pub keys: KeyTally,
    pub nonces: NonceLedger,
    spool: Option<Spool>,
    count: u64,
}

impl Tally {
    /// `keep`: spool every entry (for a JSON report).
    pub fn new(keep: bool) -> std::io::Result<Tally> {
        Ok(Tally {
            summary: Summary::default(),
            rules: RuleHits::default(),
            keys: KeyTally::default(),
            nonces: NonceLedger::default(),
            spool: if keep { Some(Spool::new()?) } else { None },
            count: 0,
        })
    }

    /// Judges `live` (newest revisions, not deleted, in key order) and tallies each entry in that order.
    pub fn judge(&mut self, live: &[KeyRev], filter: &KeyFilter, judge: &Judge) -> std::io::Result<()> {
        let keep = self.spool.is_some();
        for chunk in live.chunks(CHUNK) {
            let parts = chunk
                .par_chunks(PART)
                .map(|part| {
                    let entries: Vec<EntryRecord> = part
                        .iter()
                        .filter_map(|l| {
                            let rk = filter.parse(l.key)?;
                            let verdict = judge.judge(l.key, &rk, l.value);
                            Some(EntryRecord { at: Location::new(l.key, &rk), mod_revision: l.main, verdict })
                        })
                        .collect();
                    let mut lines = Vec::new();
                    if keep {
                        for e in &entries {
                            serde_json::to_writer(&mut lines, e)?;
                            lines.push(b'\n');
                        }
                    }
                    Ok((entries, lines))
                })
                .collect::<Result<Vec<_>, serde_json::Error>>()?;
            for (entries, lines) in parts {
                entries.iter().for_each(|e| self.add(e));
                if let Some(spool) = &mut self.spool {
                    spool.write(&lines)?;
                }
            }
        }
        Ok(())
    }

    fn add(&mut self, e: &EntryRecord) {
        self.count += 1;
        self.summary.add(e.verdict.class);
        self.rules.add(e);
        self.keys.add(&e.verdict);
        self.nonces.add(&e.verdict, || format!("{}@{}", e.at.key, e.mod_revision));
    }

    /// The entries, with the tallies taken out.
    pub fn entries(&mut self) -> std::io::Result<Entries> {
        Spool::finish(self.spool.take(), self.count)
    }
}
