#!/usr/bin/env python3
"""The file-level half of the forensics fixture (populate.py forensics writes the data).

    forensics.py datadir SRC_DATA_DIR DST_DIR       # usable data dir copy: db, *.snap, WAL cut after its data
    forensics.py check-live --port P --td TESTDATA  # etcd restarted on such a copy serves the expected data
    forensics.py finish TESTDATA                    # add the residue and wal sections to the expected.json

`finish` reads the files with boltread.py and walread.py (never with etcd) and records what an
attacker holding them can read beyond the live revisions:
- residue: markers in the raw bytes of unreachable pages, and the revisions decodable from leaf
  elements left in them that the key bucket no longer has;
- wal: every put (and delete) of an in-scope key in the WAL, checked against what populate.py
  wrote. The CRC chain of the WAL must hold, or the generator fails.
"""

import argparse
import glob
import json
import os
import re
import shutil
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import k8senc as k  # noqa: E402
from boltread import Bolt  # noqa: E402
from populate import K, dump_nested, split_key  # noqa: E402
from walread import read_wal  # noqa: E402

NAME = "etcd35-forensics"
DATADIR = f"{NAME}-datadir"
FILES = [f"{NAME}.snapshot.db", f"{NAME}.member.db", f"{NAME}-defrag.snapshot.db"]
MARKER_PREFIX = b"ETCDAUDIT-SECRET-forensics-"
P = "/registry"
IN_SCOPE = (f"{P}/secrets/", f"{P}/configmaps/")


def in_scope(key: str) -> bool:
    return key.startswith(IN_SCOPE)


def wal_paths(data_dir: str):
    return sorted(glob.glob(os.path.join(data_dir, "member", "wal", "*.wal")))


# ---- datadir ----------------------------------------------------------------------------------


def make_datadir(src: str, dst: str):
    """member/snap/db, member/snap/*.snap and member/wal/*.wal cut at the end of their records
    (etcd preallocates segments to 64 MB of zeros). The WAL must decode with an intact CRC chain."""
    shutil.rmtree(dst, ignore_errors=True)
    os.makedirs(os.path.join(dst, "member", "snap"))
    os.makedirs(os.path.join(dst, "member", "wal"))
    shutil.copyfile(os.path.join(src, "member", "snap", "db"), os.path.join(dst, "member", "snap", "db"))
    for snap in sorted(glob.glob(os.path.join(src, "member", "snap", "*.snap"))):
        shutil.copyfile(snap, os.path.join(dst, "member", "snap", os.path.basename(snap)))
    wal = read_wal(wal_paths(src))  # raises on a broken chain or data after the zero tail
    for path, f in zip(wal_paths(src), wal["files"]):
        assert f["end"] % 8 == 0, f
        with open(path, "rb") as fin:
            data = fin.read(f["end"])
        with open(os.path.join(dst, "member", "wal", os.path.basename(path)), "wb") as fout:
            fout.write(data)
        print(f"{os.path.basename(path)}: {f['size']} -> {f['end']} bytes, {f['records']} records")
    total = sum(os.path.getsize(p) for p in glob.glob(os.path.join(dst, "**"), recursive=True) if os.path.isfile(p))
    print(f"{dst}: {total} bytes")


# ---- check-live -------------------------------------------------------------------------------


def check_live(port: int, td: str):
    """etcd restarted on a copy of the data dir: same revision, same live secrets, and one of them
    decrypts to its marker."""
    doc = json.load(open(os.path.join(td, f"{NAME}.expected.json")))
    etcd = k.Etcd(port)
    assert etcd.revision() == doc["revision"], (etcd.revision(), doc["revision"])
    got = {kv["key"].decode(): kv for kv in etcd.get(f"{P}/secrets/", prefix=True)}
    want = {e["key"]: e for e in doc["entries"]}
    assert set(got) == set(want), sorted(set(got) ^ set(want))
    for key, e in want.items():
        kv = got[key]
        assert (kv["mod_revision"], kv["create_revision"], kv["version"]) == (
            e["mod_revision"], e["create_revision"], e["version"]), (key, kv, e)
    e = doc["entries"][0]
    v = got[e["key"]]["value"]
    pre = k.prefix("aescbc", "key-new")
    pt = k.cbc_decrypt_raw(K["key-new"], v[len(pre):])
    assert v.startswith(pre) and e["marker"].encode() in pt, e["key"]
    print(f"restarted data dir: revision {doc['revision']}, {len(got)} secrets as expected; read {e['key']}")


# ---- finish: residue --------------------------------------------------------------------------


def find_markers(data: bytes, markers: list):
    """(hits, partial): every known marker occurrence, and occurrences of the marker prefix that
    are no known marker (cut off at the end of a byte range)."""
    hits, partial = [], 0
    for m in re.finditer(re.escape(MARKER_PREFIX), data):
        full = [x for x in markers if data.startswith(x, m.start())]
        assert len(full) <= 1, full
        if full:
            hits.append(full[0].decode())
        else:
            partial += 1
    return hits, partial


def decode_revision(rk: bytes, value: bytes):
    """A key-bucket row: 17-byte revision key (18 with 't' for a tombstone) and an
    mvccpb.KeyValue that parses (key set, known fields only, mod_revision = main for puts)."""
    if len(rk) not in (17, 18) or rk[8:9] != b"_" or (len(rk) == 18 and rk[17:] != b"t"):
        return None
    main, sub = struct.unpack(">Q", rk[:8])[0], struct.unpack(">Q", rk[9:17])[0]
    try:
        parsed = k.pb_parse(value)
    except ValueError:
        return None
    kinds = {1: 2, 2: 0, 3: 0, 4: 0, 5: 2, 6: 0}
    if any(kinds.get(f) != wt for f, wt, _ in parsed):
        return None
    kv = {f: v for f, _, v in parsed}
    tomb = len(rk) == 18
    if not kv.get(1) or (not tomb and kv.get(3) != main):
        return None
    try:
        key = kv[1].decode()
    except UnicodeDecodeError:
        return None
    return {"main": main, "sub": sub, "tombstone": tomb, "key": key, "create_revision": kv.get(2, 0),
            "version": kv.get(4, 0), "value": kv.get(5, b"")}


def classify(value: bytes):
    """(class, provider, key_name, plaintext) of a secret value of this fixture."""
    if value.startswith(k.PROTO_MAGIC):
        return "plaintext", None, None, value
    pre = k.prefix("aescbc", "key-new")
    assert value.startswith(pre), value[:40]
    r = k.cbc_decrypt_raw(K["key-new"], value[len(pre):])
    assert k.cbc_padding_ok(K["key-new"], value[len(pre):])
    return "decryptable", "aescbc", "key-new", r[:-r[-1]]


def marker_of(pt: bytes, markers: list):
    found = [m for m in markers if m in pt]
    assert len(found) == 1, found
    return found[0].decode()


def residue(path: str, markers: list, known_rows: dict):
    b = Bolt(path)
    in_tree = {rk for rk, _ in b.buckets[b"key"]}
    pages = b.unreachable()
    ps = b.page_size
    hits, partial, per_page = [], 0, set()
    for first, count in b.runs(pages):
        h, pa = find_markers(b.buf[first * ps:(first + count) * ps], markers)
        hits += h
        partial += pa
        for p in range(first, first + count):
            per_page |= set(find_markers(b.buf[p * ps:(p + 1) * ps], markers)[0])
    revs, other = {}, set()
    for pgid, eflags, rk, value in b.carve_leaves(pages):
        if eflags & 1 or rk in in_tree:
            continue
        r = decode_revision(rk, value)
        if r is None:
            continue
        if not in_scope(r["key"]):
            other.add(rk)
            continue
        row = revs.get(rk)
        if row is None:
            known = known_rows.get(r["main"])
            assert known is not None and known["key"] == r["key"], (path, r["key"], r["main"])
            if r["tombstone"]:
                cls, prov, kn, enc, marker = None, None, None, None, None
            else:
                cls, prov, kn, pt = classify(r["value"])
                enc, marker = "protobuf", marker_of(pt, markers)
                assert marker == known["marker"], (marker, known)
            resource, ns, name = split_key(r["key"], P)
            row = revs[rk] = {"key": r["key"], "resource": resource, "namespace": ns, "name": name, "class": cls,
                              "provider": prov, "key_name": kn, "stale": False if cls == "decryptable" else None,
                              "encoding": enc, "mod_revision": r["main"],
                              "sub": r["sub"], "create_revision": r["create_revision"], "version": r["version"],
                              "tombstone": r["tombstone"], "marker": marker, "removed_by_compaction":
                              known["removed"], "pages": []}
        if pgid not in row["pages"]:
            row["pages"].append(pgid)
    rows = sorted(revs.values(), key=lambda x: (x["mod_revision"], x["sub"]))
    return {
        "page_size": ps,
        "hwm_pages": b.meta["pgid"],
        "file_pages": len(b.buf) // ps,
        "unreachable_pages": len(pages),
        "unreachable_leaf_pages": sum(1 for p in pages if struct.unpack_from("<QH", b.buf, p * ps) == (p, 0x02)),
        "markers": sorted(set(hits)),
        "marker_hits": len(hits),
        "partial_marker_hits": partial,
        "markers_only_across_page_boundaries": sorted(set(hits) - per_page),
        "revisions": rows,
        "revisions_out_of_scope": len(other),
    }


# ---- finish: WAL ------------------------------------------------------------------------------


def wal_section(data_dir: str, doc: dict, markers: list):
    rows = {r["marker"]: r for r in doc["entries"] + doc["history"] + doc["removed_by_compaction"] if r.get("marker")}
    tombs = {r["key"]: r["mod_revision"] for r in doc["history"] + doc["removed_by_compaction"] if r["tombstone"]}
    w = read_wal(wal_paths(data_dir))  # raises on a broken CRC chain
    puts, deletes = [], []
    for o in w["ops"]:
        key = o["key"].decode()
        if not in_scope(key):
            continue
        base = {"wal_file": o["wal_file"], "raft_index": o["raft_index"], "term": o["term"], "via": o["via"]}
        resource, ns, name = split_key(key, P)
        if o["op"] == "delete":
            deletes.append(dict(base, key=key, applied_revision=tombs[key]))
            continue
        cls, prov, kn, pt = classify(o["value"])
        marker = marker_of(pt, markers)
        r = rows[marker]
        assert r["key"] == key, (r, key)
        puts.append(dict(base, key=key, resource=resource, namespace=ns, name=name, **{"class": cls}, provider=prov,
                         key_name=kn, encoding="protobuf", marker=marker, applied_revision=r["mod_revision"]))
    idx = [e[1] for e in w["entries"]]
    assert idx == sorted(idx) and len(idx) == len(set(idx)), "raft indexes must grow by one entry each"
    written = sorted(r["mod_revision"] for r in rows.values())
    assert sorted(p["applied_revision"] for p in puts) == written, "every secret put must be in the WAL exactly once"
    assert sorted(d["applied_revision"] for d in deletes) == sorted(tombs.values())
    files = [{"file": f["file"], "bytes": f["end"], "records": f["records"],
              "record_types": {str(t): n for t, n in sorted(f["record_types"].items())}} for f in w["files"]]
    return files, puts, deletes, {"entries": len(w["entries"]), "first_index": idx[0], "last_index": idx[-1],
                                  "terms": sorted({e[2] for e in w["entries"]})}


def finish(td: str):
    path = os.path.join(td, f"{NAME}.expected.json")
    doc = json.load(open(path))
    markers = [m.encode() for m in doc["markers"]]
    known = {}
    for r in doc["entries"] + doc["history"]:
        known[r["mod_revision"]] = {"key": r["key"], "marker": r.get("marker"), "removed": False}
    for r in doc["removed_by_compaction"]:
        known[r["mod_revision"]] = {"key": r["key"], "marker": r.get("marker"), "removed": True}
    res = {f: residue(os.path.join(td, f), markers, known) for f in FILES}
    wal_files, puts, deletes, wal_info = wal_section(os.path.join(td, DATADIR), doc, markers)
    for d in (doc, ):
        d.pop("residue", None), d.pop("wal_files", None), d.pop("wal", None), d.pop("wal_deletes", None)
    doc["summary"]["residue"] = {f: {"unreachable_pages": r["unreachable_pages"], "markers": len(r["markers"]),
                                     "revisions": len(r["revisions"]),
                                     "revisions_plaintext": sum(1 for x in r["revisions"] if x["class"] == "plaintext")}
                                 for f, r in res.items()}
    count = {}
    for p in puts:
        count[p["class"]] = count.get(p["class"], 0) + 1
        count["via_" + p["via"]] = count.get("via_" + p["via"], 0) + 1
    doc["summary"]["wal"] = dict(wal_info, puts=len(puts), deletes=len(deletes), **count)
    doc["residue"] = res
    doc["wal_files"] = wal_files
    doc["wal"] = puts
    doc["wal_deletes"] = deletes
    dump_nested(path, doc)
    for f, r in res.items():
        print(f"{f}: {r['unreachable_pages']} unreachable pages ({r['unreachable_leaf_pages']} leaves), "
              f"{len(r['markers'])} markers ({r['marker_hits']} hits, {r['partial_marker_hits']} partial), "
              f"{len(r['revisions'])} in-scope revisions, {r['revisions_out_of_scope']} out-of-scope")
    print(f"wal: {doc['summary']['wal']}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("datadir")
    d.add_argument("src")
    d.add_argument("dst")
    c = sub.add_parser("check-live")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--td", required=True)
    f = sub.add_parser("finish")
    f.add_argument("td")
    a = ap.parse_args()
    if a.cmd == "datadir":
        make_datadir(a.src, a.dst)
    elif a.cmd == "check-live":
        check_live(a.port, a.td)
    else:
        finish(a.td)


if __name__ == "__main__":
    main()
