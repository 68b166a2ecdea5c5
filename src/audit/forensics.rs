//! Exposure beyond the live revisions: values carved from pages the tree no
//! longer reaches (`--residue`), and puts in the write-ahead log.

use std::collections::HashMap;

use rayon::prelude::*;

use super::record::{null_class, Location, ResidueRecord, WalRecord};
use super::verdict::Judge;
use super::Scope;
use crate::bolt::{Db, PageSet, Pgid};
use crate::etcd::wal::WalFile;
use crate::etcd::{KeyValueRef, Revision};
use crate::k8s::RegistryKey;

/// The revisions a tree holds, as (main, sub): sorted, 16 bytes each.
#[derive(Debug, Default)]
pub struct Revisions(Vec<(i64, i64)>);

impl Revisions {
    /// From revisions in any order (a bucket's are already sorted).
    pub fn new(mut revisions: Vec<(i64, i64)>) -> Revisions {
        if !revisions.is_sorted() {
            revisions.par_sort_unstable();
        }
        Revisions(revisions)
    }

    pub fn contains(&self, revision: &(i64, i64)) -> bool {
        self.0.binary_search(revision).is_ok()
    }
}

/// What decides which keys are judged: the prefix in use and the scope.
pub struct KeyFilter<'s> {
    pub prefix: &'s str,
    pub scope: &'s Scope,
}

impl KeyFilter<'_> {
    pub fn parse<'k>(&self, key: &'k [u8]) -> Option<RegistryKey<'k>> {
        RegistryKey::parse(key, self.prefix).filter(|rk| self.scope.contains(rk.resource))
    }
}

/// Every in-scope revision carved from unreachable pages that the `key`
/// bucket does not hold (`in_tree`, as (main, sub)), deduplicated by revision.
pub fn residue(
    db: &Db,
    reachable: &PageSet,
    in_tree: &Revisions,
    filter: &KeyFilter,
    judge: &Judge,
) -> Vec<ResidueRecord> {
    let carved: Vec<(Revision, Pgid, KeyValueRef)> = db
        .unreachable_pages(reachable)
        .into_par_iter()
        .flat_map_iter(|page| {
            db.carve_leaf(page).into_iter().filter_map(move |item| {
                let rev = Revision::parse(item.key)?;
                let kv = KeyValueRef::decode(item.value).ok()?;
                Some((rev, page, kv))
            })
        })
        .filter(|(rev, _, kv)| !in_tree.contains(&(rev.main, rev.sub)) && filter.parse(kv.key).is_some())
        .collect();
    // Every leaf rewrite frees another copy of the same revision: keep one.
    let mut unique: HashMap<(i64, i64), (Pgid, Revision, KeyValueRef)> = HashMap::new();
    for (rev, page, kv) in carved {
        let slot = unique.entry((rev.main, rev.sub)).or_insert((page, rev, kv));
        if page < slot.0 {
            *slot = (page, rev, kv);
        }
    }
    let mut records: Vec<ResidueRecord> = unique
        .into_par_iter()
        .filter_map(|(_, (page, rev, kv))| {
            let rk = filter.parse(kv.key)?;
            let verdict = (!rev.tombstone).then(|| judge.judge(kv.key, &rk, kv.value));
            Some(ResidueRecord {
                at: Location::new(kv.key, &rk),
                mod_revision: rev.main,
                page,
                tombstone: rev.tombstone,
                class: null_class(&verdict),
                verdict,
            })
        })
        .collect();
    records.sort_by(|a, b| (a.mod_revision, &a.at.key).cmp(&(b.mod_revision, &b.at.key)));
    records
}

/// Every in-scope put of the log, each with a verdict.
pub fn wal_entries(segments: &[(String, WalFile)], filter: &KeyFilter, judge: &Judge) -> Vec<WalRecord> {
    segments
        .par_iter()
        .flat_map_iter(|(name, wal)| {
            wal.puts.iter().filter_map(move |put| {
                let rk = filter.parse(&put.key)?;
                Some(WalRecord {
                    at: Location::new(&put.key, &rk),
                    mod_revision: None,
                    wal_file: name.clone(),
                    raft_index: put.raft_index,
                    term: put.term,
                    verdict: judge.judge(&put.key, &rk, &put.value),
                })
            })
        })
        .collect()
}
