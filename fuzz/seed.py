"""Writes the seed corpora of every fuzz target (fuzz/corpus/<target>/) from
testdata/: whole fixtures for the file parsers, and for the value parsers the
values of the real etcd 3.5 scan fixture, read with the independent Python
bbolt reader of testdata/gen (not the code under test).

    python3 fuzz/seed.py
"""
import gzip
import hashlib
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "testdata", "gen"))
from boltread import Bolt, kv_decode  # noqa: E402

CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def add(target, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def testdata(*parts):
    return os.path.join(ROOT, "testdata", *parts)


def read(*parts):
    with open(testdata(*parts), "rb") as f:
        return f.read()


def main():
    # Small files only (libFuzzer mutates whole inputs): every class of value,
    # the OpenShift prefix, free pages to carve, and etcd's corrupted fixture.
    for db in ["etcd35-scan.snapshot.db", "etcd35-openshift.snapshot.db", "etcd35-forensics.member.db",
               "upstream/corrupted_backup.db"]:
        for target in ["bolt", "scan"]:
            add(target, read(db))
    add("wal", read("upstream", "TestNew.wal"))
    wal_dir = testdata("etcd35-forensics-datadir", "member", "wal")
    for name in sorted(os.listdir(wal_dir)):
        add("wal", open(os.path.join(wal_dir, name), "rb").read().rstrip(b"\0"))
    gardener = testdata("containers", "gardener", "v2")
    for name in sorted(os.listdir(gardener)):
        if name.startswith("Incr-"):
            add("gardener_delta", gzip.decompress(read("containers", "gardener", "v2", name)))
    for dirpath, _, files in os.walk(testdata("containers")):
        for name in sorted(files):
            path = os.path.join(dirpath, name)
            if os.path.getsize(path) <= 64 * 1024:
                pick = b"\x01" if name.endswith(".Z") else b"\x00"
                add("container", pick + open(path, "rb").read())
    for name in sorted(os.listdir(testdata("scan"))):
        add("config", read("scan", name))
    bolt = Bolt(testdata("etcd35-scan.snapshot.db"))
    for _, value in bolt.buckets[b"key"]:
        kv = kv_decode(value)
        key, val = kv.get("key", b""), kv["value"]
        if not key.startswith(b"/registry/"):
            continue
        add("envelope", bytes([min(len(key), 255)]) + key[:255] + val)
        if val.startswith(b"k8s\0") or val.startswith(b"{"):
            add("object", val)
        if val.startswith(b"k8s:enc:kms:v2:"):
            add("kmsv2", val.split(b":", 5)[5])


if __name__ == "__main__":
    main()
