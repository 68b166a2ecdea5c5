// boltpages writes an etcd-shaped bbolt file with a chosen page size.
//
// Real etcd always uses the OS page size (4 KiB here), so 16/64 KiB page files can only be
// made directly with bbolt. The layout imitates etcd: the same ten top-level buckets, the
// `key` bucket holds 17-byte revision keys (18 with the 't' tombstone mark) mapped to
// hand-encoded mvccpb.KeyValue, `meta` holds consistent_index and the compaction revisions.
// Writes go in small batches like etcd's backend commits, and a fake compaction deletes old
// revisions afterwards, so the file has a branch level, overflow pages and free pages.
//
// Build (GOPATH mode, Debian's bbolt source):
//
//	GOPATH=/usr/share/gocode GO111MODULE=off go run boltpages.go -o bolt-16k.db -pagesize 16384
//
// Output is deterministic for given flags (math/rand with a fixed seed, no clock). A JSON
// summary of every key-bucket row is written to <out without .db>.expected.json.
package main

import (
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// ---- protobuf (only what the values need) ----

func varint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func pbVarint(b []byte, field int, v uint64) []byte {
	return varint(varint(b, uint64(field)<<3), v)
}

func pbBytes(b []byte, field int, v []byte) []byte {
	b = varint(b, uint64(field)<<3|2)
	b = varint(b, uint64(len(v)))
	return append(b, v...)
}

// secretValue is a Kubernetes Secret in apiserver protobuf storage form:
// "k8s\x00" + runtime.Unknown{TypeMeta{v1, Secret}, raw Secret, "", ""}.
func secretValue(ns, name string, data map[string][]byte) []byte {
	var meta []byte
	meta = pbBytes(meta, 1, []byte(name))
	meta = pbBytes(meta, 3, []byte(ns))
	meta = pbBytes(meta, 8, pbVarint(nil, 1, 1700000000))
	var raw []byte
	raw = pbBytes(raw, 1, meta)
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys) // map entries are written in key order
	for _, k := range keys {
		raw = pbBytes(raw, 2, pbBytes(pbBytes(nil, 1, []byte(k)), 2, data[k]))
	}
	raw = pbBytes(raw, 3, []byte("Opaque"))
	tm := pbBytes(pbBytes(nil, 1, []byte("v1")), 2, []byte("Secret"))
	out := []byte("k8s\x00")
	out = pbBytes(out, 1, tm)
	out = pbBytes(out, 2, raw)
	out = pbBytes(out, 3, nil)
	return pbBytes(out, 4, nil)
}

// keyValue encodes mvccpb.KeyValue{1 key, 2 create_revision, 3 mod_revision, 4 version, 5 value}.
// A tombstone stores only the key, as etcd does.
func keyValue(key string, create, mod, version int64, value []byte) []byte {
	b := pbBytes(nil, 1, []byte(key))
	if value == nil {
		return b
	}
	b = pbVarint(b, 2, uint64(create))
	b = pbVarint(b, 3, uint64(mod))
	b = pbVarint(b, 4, uint64(version))
	return pbBytes(b, 5, value)
}

func revKey(main int64, tombstone bool) []byte {
	k := make([]byte, 17, 18)
	binary.BigEndian.PutUint64(k, uint64(main))
	k[8] = '_' // sub revision is always 0: one op per revision here
	if tombstone {
		k = append(k, 't')
	}
	return k
}

func u64(v int64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, uint64(v))
	return b
}

var buckets = []string{"key", "meta", "lease", "alarm", "cluster", "members", "members_removed",
	"auth", "authUsers", "authRoles"}

type rev struct {
	Key      string `json:"key"`
	Rev      int64  `json:"mod_revision"`
	Create   int64  `json:"create_revision"`
	Version  int64  `json:"version"`
	Deleted  bool   `json:"deleted"`
	Marker   string `json:"marker,omitempty"`
	ValueLen int    `json:"value_len"`
}

func main() {
	out := flag.String("o", "", "output file (replaced)")
	pageSize := flag.Int("pagesize", 16384, "bbolt page size")
	nKeys := flag.Int("keys", 300, "number of secrets")
	bigEvery := flag.Int("big-every", 50, "every Nth secret gets a big value (overflow pages)")
	bigSize := flag.Int("big-size", 40000, "size of the big values' payload in bytes")
	bigLast := flag.Int("big-last", 0, "extra big secrets written last, after the compaction")
	batch := flag.Int("batch", 25, "puts per bbolt transaction")
	noFreelistSync := flag.Bool("no-freelist-sync", false, "like etcd on Linux: no freelist page")
	flag.Parse()
	if *out == "" {
		log.Fatal("-o is required")
	}
	_ = os.Remove(*out)
	rng := rand.New(rand.NewSource(int64(*pageSize)))
	tag := fmt.Sprintf("bolt%dk", *pageSize/1024)

	db, err := bolt.Open(*out, 0600, &bolt.Options{PageSize: *pageSize, NoFreelistSync: *noFreelistSync,
		FreelistType: bolt.FreelistArrayType})
	if err != nil {
		log.Fatal(err)
	}
	must := func(err error) {
		if err != nil {
			log.Fatal(err)
		}
	}
	must(db.Update(func(tx *bolt.Tx) error {
		for _, b := range buckets {
			if _, err := tx.CreateBucket([]byte(b)); err != nil {
				return err
			}
		}
		return nil
	}))

	var history []rev
	byKey := map[string][]int{} // key -> indexes into history
	revision := int64(1)        // etcd starts at revision 1 with an empty store
	const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	filler := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = alnum[rng.Intn(len(alnum))]
		}
		return b
	}
	// write applies ops in batches; each op is a put (value != nil) or a delete.
	type op struct {
		key    string
		marker string
		value  []byte
	}
	write := func(ops []op) {
		for start := 0; start < len(ops); start += *batch {
			end := start + *batch
			if end > len(ops) {
				end = len(ops)
			}
			must(db.Update(func(tx *bolt.Tx) error {
				kb := tx.Bucket([]byte("key"))
				kb.FillPercent = 0.9 // etcd's UnsafeSeqPut: keys only ever append
				for _, o := range ops[start:end] {
					revision++
					r := rev{Key: o.key, Rev: revision, Marker: o.marker, ValueLen: len(o.value)}
					prev := byKey[o.key]
					if len(prev) > 0 && !history[prev[len(prev)-1]].Deleted {
						last := history[prev[len(prev)-1]]
						r.Create, r.Version = last.Create, last.Version+1
					} else {
						r.Create, r.Version = revision, 1
					}
					if o.value == nil {
						r.Deleted, r.Create, r.Version, r.Marker = true, 0, 0, ""
					}
					if err := kb.Put(revKey(revision, r.Deleted), keyValue(o.key, r.Create, r.Rev, r.Version, o.value)); err != nil {
						return err
					}
					byKey[o.key] = append(prev, len(history))
					history = append(history, r)
				}
				meta := tx.Bucket([]byte("meta"))
				return meta.Put([]byte("consistent_index"), u64(revision+10))
			}))
		}
	}
	secret := func(i, version int) op {
		ns, name := fmt.Sprintf("team-%02d", i%8), fmt.Sprintf("secret-%04d", i)
		marker := fmt.Sprintf("ETCDAUDIT-SECRET-%s-%d-v%d", tag, i, version)
		size := 150 + rng.Intn(700)
		if (*bigEvery > 0 && i%*bigEvery == *bigEvery-1) || i >= *nKeys {
			size = *bigSize
		}
		data := map[string][]byte{
			"password": append([]byte(marker+"-"), filler(24)...),
			"blob":     filler(size),
		}
		key := "/registry/secrets/" + ns + "/" + name
		return op{key, marker, secretValue(ns, name, data)}
	}

	var ops []op
	for i := 0; i < *nKeys; i++ {
		ops = append(ops, secret(i, 1))
	}
	write(ops)
	// Update the first fifth: the old revisions become garbage for the compaction below.
	ops = ops[:0]
	for i := 0; i < *nKeys/5; i++ {
		ops = append(ops, secret(i, 2))
	}
	write(ops)
	compactRev := revision
	// Delete a few secrets after the compaction point: tombstones stay in the key bucket.
	ops = ops[:0]
	for i := *nKeys - 6; i < *nKeys; i++ {
		ops = append(ops, op{key: fmt.Sprintf("/registry/secrets/team-%02d/secret-%04d", i%8, i)})
	}
	write(ops)

	// Compaction at compactRev: every revision <= compactRev that is not the newest one of its
	// key is deleted (no key was deleted before compactRev, so this is etcd's rule here).
	var removed []rev
	must(db.Update(func(tx *bolt.Tx) error {
		kb := tx.Bucket([]byte("key"))
		for _, idx := range byKey {
			for j, h := range idx {
				r := history[h]
				newer := j+1 < len(idx) && history[idx[j+1]].Rev <= compactRev
				if r.Rev <= compactRev && newer {
					if err := kb.Delete(revKey(r.Rev, r.Deleted)); err != nil {
						return err
					}
					removed = append(removed, r)
				}
			}
		}
		meta := tx.Bucket([]byte("meta"))
		if err := meta.Put([]byte("scheduledCompactRev"), revKey(compactRev, false)); err != nil {
			return err
		}
		return meta.Put([]byte("finishedCompactRev"), revKey(compactRev, false))
	}))
	// Big secrets written after the compaction land in their own overflow leaf at the end of
	// the key space. With 64 KiB pages this keeps the file small: the rewrite churn above
	// then never has to copy a multi-page leaf.
	ops = ops[:0]
	for i := *nKeys; i < *nKeys+*bigLast; i++ {
		o := secret(i, 1)
		ops = append(ops, o)
	}
	write(ops)
	info := db.Info()
	var hwm int64
	must(db.View(func(tx *bolt.Tx) error { hwm = tx.Size(); return nil }))
	must(db.Close())
	// bbolt grows the file to its mmap size (a power of two, 1 MiB here), all zeros past the
	// high-water mark. Cut that tail: the file stays a valid bbolt file (both metas and
	// everything they reach lie below the mark) and the fixture stays small.
	must(os.Truncate(*out, hwm))

	sort.Slice(removed, func(a, b int) bool { return removed[a].Rev < removed[b].Rev })
	var kept []rev
	isRemoved := map[int64]bool{}
	for _, r := range removed {
		isRemoved[r.Rev] = true
	}
	for _, r := range history {
		if !isRemoved[r.Rev] {
			kept = append(kept, r)
		}
	}
	// One row per line (like populate.py's files): readable, and diffs stay small.
	fields := []struct {
		name  string
		value interface{}
	}{
		{"file", filepath.Base(*out)},
		{"page_size", info.PageSize},
		{"freelist_synced", !*noFreelistSync},
		{"revision", revision},
		{"compact_revision", compactRev},
		{"buckets", buckets},
		{"key_bucket_rows", len(kept)},
		{"removed_by_compaction", removed},
		{"key_bucket", kept},
	}
	var doc []byte
	for i, fld := range fields {
		sep := ",\n"
		if i == len(fields)-1 {
			sep = "\n"
		}
		if rows, ok := fld.value.([]rev); ok {
			doc = append(doc, fmt.Sprintf(" %q: [\n", fld.name)...)
			for j, r := range rows {
				b, err := json.Marshal(r)
				must(err)
				doc = append(doc, "  "...)
				doc = append(doc, b...)
				if j < len(rows)-1 {
					doc = append(doc, ',')
				}
				doc = append(doc, '\n')
			}
			doc = append(doc, " ]"+sep...)
			continue
		}
		b, err := json.Marshal(fld.value)
		must(err)
		doc = append(doc, fmt.Sprintf(" %q: %s%s", fld.name, b, sep)...)
	}
	doc = append([]byte("{\n"), append(doc, "}\n"...)...)
	must(os.WriteFile(strings.TrimSuffix(*out, ".db")+".expected.json", doc, 0644))
	fmt.Printf("%s: page size %d, revision %d, compacted at %d, %d rows, %d removed\n",
		*out, info.PageSize, revision, compactRev, len(kept), len(removed))
}
