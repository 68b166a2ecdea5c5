"""A small independent bbolt reader, used only to verify the generated fixtures.

It checks what the fixtures claim (overflow pages, free pages, branch levels, the key bucket
matching *.expected.json) without trusting etcd or bbolt. Layout per
docs/formats/etcd-bbolt.md §1-§3 (little-endian files only).

    python3 boltread.py FILE...      # prints page statistics per file
"""

import struct
import sys

PGID_NO_FREELIST = 0xFFFFFFFFFFFFFFFF


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


class Bolt:
    def __init__(self, path):
        self.buf = open(path, "rb").read()
        if len(self.buf) % 512 == 32:  # etcd snapshot: SHA-256 trailer
            self.buf = self.buf[:-32]
        self.page_size = struct.unpack_from("<I", self.buf, 24)[0]
        metas = [self._meta(i) for i in (0, 1)]
        valid = [m for m in metas if m["valid"]]
        assert valid, "no valid meta page"
        self.metas = metas
        self.meta = max(valid, key=lambda m: m["txid"])
        self.reachable = {}  # pgid -> flags of the page heading the run
        self.overflow_pages = 0
        self.depth = {}
        self.buckets = {}
        for name, v in self._leaf_items(self.meta["root"], 0, "<root>"):
            self.buckets[name] = list(self._bucket_items(v, name.decode()))
        self.free = self._free_pages()

    def _meta(self, i):
        off = i * self.page_size
        magic, version, psize, _flags, root, _seq, freelist, pgid, txid, csum = struct.unpack_from(
            "<IIIIQQQQQQ", self.buf, off + 16)
        ok = magic == 0xED0CDAED and version == 2 and csum == fnv1a64(self.buf[off + 16:off + 72])
        return {"valid": ok, "root": root, "freelist": freelist, "pgid": pgid, "txid": txid}

    def _page(self, pgid):
        off = pgid * self.page_size
        pid, flags, count, overflow = struct.unpack_from("<QHHI", self.buf, off)
        assert pid == pgid, f"page {pgid} says it is {pid}"
        return off, flags, count, overflow

    def _mark(self, pgid, flags, overflow):
        for p in range(pgid, pgid + overflow + 1):
            assert p not in self.reachable, f"page {p} referenced twice"
            self.reachable[p] = flags
        self.overflow_pages += overflow

    def _leaf_items(self, pgid, level, bucket):
        """Yield (key, (flags, value)) of the tree rooted at pgid, in order."""
        off, flags, count, overflow = self._page(pgid)
        self._mark(pgid, flags, overflow)
        self.depth[bucket] = max(self.depth.get(bucket, 0), level + 1)
        for i in range(count):
            e = off + 16 + 16 * i
            if flags & 0x01:  # branch
                pos, ksize, child = struct.unpack_from("<IIQ", self.buf, e)
                yield from self._leaf_items(child, level + 1, bucket)
            elif flags & 0x02:  # leaf
                eflags, pos, ksize, vsize = struct.unpack_from("<IIII", self.buf, e)
                k = self.buf[e + pos:e + pos + ksize]
                yield k, (eflags, self.buf[e + pos + ksize:e + pos + ksize + vsize])
            else:
                raise AssertionError(f"page {pgid}: unexpected flags {flags:#x}")

    def _bucket_items(self, v, name):
        eflags, value = v
        assert eflags & 1, f"{name}: not a bucket"
        root = struct.unpack_from("<Q", value, 0)[0]
        if root == 0:  # inline bucket: a leaf page image after the 16-byte header
            img = value[16:]
            _, flags, count, _ = struct.unpack_from("<QHHI", img, 0)
            for i in range(count):
                e = 16 + 16 * i
                _f, pos, ksize, vsize = struct.unpack_from("<IIII", img, e)
                yield img[e + pos:e + pos + ksize], img[e + pos + ksize:e + pos + ksize + vsize]
            self.depth[name] = 0
            return
        for k, (f, val) in self._leaf_items(root, 0, name):
            yield k, val

    def _free_pages(self):
        fl = self.meta["freelist"]
        if fl != PGID_NO_FREELIST:  # synced freelist: it owns its own pages
            off, flags, count, overflow = self._page(fl)
            self._mark(fl, flags, overflow)
        self.reachable.setdefault(0, 4)
        self.reachable.setdefault(1, 4)
        return [p for p in range(2, self.meta["pgid"]) if p not in self.reachable]

    def unreachable(self):
        """Pages in [2, len(file) / page_size) that the active meta's tree does not reach: the
        free pages below the high-water mark plus any page past it (a live file can be longer).
        The snapshot trailer is already cut off."""
        return [p for p in range(2, len(self.buf) // self.page_size) if p not in self.reachable]

    def runs(self, pages):
        """Group sorted page ids into runs of adjacent pages: [(first, count)]."""
        out = []
        for p in pages:
            if out and out[-1][0] + out[-1][1] == p:
                out[-1][1] += 1
            else:
                out.append([p, 1])
        return [tuple(r) for r in out]

    def carve_leaves(self, pages):
        """Leaf elements left in unreachable pages. For every page of `pages` whose header
        is a leaf naming itself, yield (pgid, flags, key, value) for each element whose bytes lie
        inside the page and those of its overflow pages that are unreachable too (a reused
        overflow page cuts the run short)."""
        free, ps = set(pages), self.page_size
        for p in pages:
            off = p * ps
            pid, flags, count, overflow = struct.unpack_from("<QHHI", self.buf, off)
            if pid != p or flags != 0x02:
                continue
            span = 1
            while span <= overflow and p + span in free:
                span += 1
            end = min(off + span * ps, len(self.buf))
            for i in range(count):
                e = off + 16 + 16 * i
                if e + 16 > end:
                    break
                eflags, pos, ksize, vsize = struct.unpack_from("<IIII", self.buf, e)
                ks = e + pos
                if ks + ksize + vsize > end:
                    continue
                yield p, eflags, self.buf[ks:ks + ksize], self.buf[ks + ksize:ks + ksize + vsize]

    def stats(self):
        kinds = {}
        for f in self.reachable.values():
            kinds[f] = kinds.get(f, 0) + 1
        return {
            "page_size": self.page_size,
            "hwm": self.meta["pgid"],
            "txid": self.meta["txid"],
            "freelist": "not synced" if self.meta["freelist"] == PGID_NO_FREELIST else self.meta["freelist"],
            "overflow_pages": self.overflow_pages,
            "free_pages": len(self.free),
            "key_bucket_depth": self.depth.get("key"),
            "buckets": {k.decode(): len(v) for k, v in self.buckets.items()},
        }


def kv_decode(b: bytes) -> dict:
    """mvccpb.KeyValue -> dict (fields 1-5)."""
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    from k8senc import pb_parse
    names = {1: "key", 2: "create_revision", 3: "mod_revision", 4: "version", 5: "value", 6: "lease"}
    out = {"create_revision": 0, "mod_revision": 0, "version": 0, "value": b""}
    for num, _, val in pb_parse(b):
        out[names.get(num, num)] = val
    return out


if __name__ == "__main__":
    for p in sys.argv[1:]:
        print(p, Bolt(p).stats())
