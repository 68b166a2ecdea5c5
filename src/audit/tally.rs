//! Live entries (and, with `--history`, older revisions) are judged in key
//! order, a chunk at a time in parallel, and tallied as they come, so that
//! no report holds its records: counts per class, the rules' counts and first
//! examples, the keys the values need, the nonces they were sealed with and,
//! when the caller keeps them, the records themselves as JSON lines in a
//! scratch file.

use rayon::prelude::*;
use serde::Serialize;

use super::findings::{HistoryHits, RuleHits};
use super::forensics::KeyFilter;
use super::hygiene::NonceLedger;
use super::pairing::KeyTally;
use super::record::{Entries, EntryRecord, HistoryRecord, Location, Spool, Summary};
use super::verdict::Judge;
use crate::progress::Meter;

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

/// Items judged at once: enough to keep both cores busy, few enough that
/// their records (a few hundred bytes each) stay small.
const CHUNK: usize = 2048;
/// Items one task judges and serializes.
const PART: usize = 256;

pub(super) struct Tally {
    pub summary: Summary,
    pub rules: RuleHits,
    pub keys: KeyTally,
    /// Seals of every value judged: live entries, then history (then the
    /// caller adds residue and WAL).
    pub nonces: NonceLedger,
    spool: Option<Spool>,
    count: u64,
    /// Older revisions (`--history`), tallied the same way.
    pub history: Option<HistoryTally>,
    meter: Meter,
}

pub(super) struct HistoryTally {
    pub summary: Summary,
    pub hits: HistoryHits,
    spool: Option<Spool>,
    count: u64,
}

impl Tally {
    /// `keep`: spool every record (for a JSON report); `history`: tally
    /// older revisions too.
    pub fn new(keep: bool, history: bool, meter: Meter) -> std::io::Result<Tally> {
        let spool = || if keep { Spool::new().map(Some) } else { Ok(None) };
        let history = match history {
            true => Some(HistoryTally {
                summary: Summary::default(),
                hits: HistoryHits::default(),
                spool: spool()?,
                count: 0,
            }),
            false => None,
        };
        Ok(Tally {
            summary: Summary::default(),
            rules: RuleHits::default(),
            keys: KeyTally::default(),
            nonces: NonceLedger::default(),
            spool: spool()?,
            count: 0,
            history,
            meter,
        })
    }

    /// Judges the entries of `keys` (in key order): `newest` gives a key's
    /// newest revision, or none when it is deleted. Tallies each entry in
    /// that order.
    pub fn judge<'k, I: Sync>(
        &mut self,
        keys: &[I],
        newest: impl Fn(&I) -> Option<KeyRev<'k>> + Sync,
        filter: &KeyFilter,
        judge: &Judge,
    ) -> std::io::Result<()> {
        let Tally { summary, rules, keys: used, nonces, spool, count, meter, .. } = self;
        meter.stage("keys", keys.len() as u64);
        let make = |key: &I, out: &mut Vec<EntryRecord>| {
            let Some(l) = newest(key) else { return };
            if let Some(rk) = filter.parse(l.key) {
                let verdict = judge.judge(l.key, &rk, l.value);
                out.push(EntryRecord { at: Location::new(l.key, &rk), mod_revision: l.main, verdict });
            }
        };
        *count += in_order(keys, spool.as_mut(), meter, make, |e: &EntryRecord| {
            summary.add(e.verdict.class);
            rules.add(e);
            used.add(&e.verdict);
            nonces.add(&e.verdict, || format!("{}@{}", e.at.key, e.mod_revision));
        })?;
        Ok(())
    }

    /// Judges older revisions: `make` turns each item (a key's revisions)
    /// into its history records, in order. Nothing when history is off.
    pub fn judge_history<I: Sync>(
        &mut self,
        items: &[I],
        make: impl Fn(&I, &mut Vec<HistoryRecord>) + Sync,
    ) -> std::io::Result<()> {
        let Tally { nonces, history: Some(history), meter, .. } = self else { return Ok(()) };
        let HistoryTally { summary, hits, spool, count } = history;
        meter.stage("keys' history", items.len() as u64);
        *count += in_order(items, spool.as_mut(), meter, make, |h: &HistoryRecord| {
            hits.add(h);
            if let Some(v) = &h.verdict {
                summary.add(v.class);
                nonces.add(v, || format!("{}@{}", h.at.key, h.mod_revision));
            }
        })?;
        Ok(())
    }

    /// The entries and the history, with the tallies left behind.
    pub fn spooled(&mut self) -> std::io::Result<(Entries, Option<Entries>)> {
        let entries = Spool::finish(self.spool.take(), self.count)?;
        let history = match &mut self.history {
            Some(h) => Some(Spool::finish(h.spool.take(), h.count)?),
            None => None,
        };
        Ok((entries, history))
    }
}

/// Turns `items` into records a chunk at a time, in parallel, and hands
/// every record to `absorb` in order (spooling it as a JSON line first,
/// when kept); returns how many there were.
fn in_order<I: Sync, R: Serialize + Send>(
    items: &[I],
    mut spool: Option<&mut Spool>,
    meter: &Meter,
    make: impl Fn(&I, &mut Vec<R>) + Sync,
    mut absorb: impl FnMut(&R),
) -> std::io::Result<u64> {
    let keep = spool.is_some();
    let mut count = 0;
    for chunk in items.chunks(CHUNK) {
        let parts = chunk
            .par_chunks(PART)
            .map(|part| {
                let mut records = Vec::new();
                part.iter().for_each(|item| make(item, &mut records));
                let mut lines = Vec::new();
                if keep {
                    for r in &records {
                        serde_json::to_writer(&mut lines, r)?;
                        lines.push(b'\n');
                    }
                }
                Ok((records, lines))
            })
            .collect::<Result<Vec<_>, serde_json::Error>>()?;
        for (records, lines) in parts {
            count += records.len() as u64;
            records.iter().for_each(&mut absorb);
            if let Some(spool) = spool.as_deref_mut() {
                spool.write(&lines)?;
            }
        }
        meter.advance(chunk.len() as u64);
    }
    Ok(count)
}
