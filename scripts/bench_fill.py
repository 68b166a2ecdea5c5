"""Fill a real etcd with Kubernetes Secrets for scripts/bench-large.sh.

Values are encoded exactly as kube-apiserver stores them (testdata/gen/k8senc.py):
mostly aescbc, some aesgcm and secretbox, a few plaintext. Writes go in
transactions of 100 puts through etcd's JSON gateway on 127.0.0.1.

Like a real cluster, the store holds more than one revision of a key and keys
out of the audit's scope: with BENCH_REWRITE=1 (the default) the first half of
the Secrets is written a second time (a rotation), and a quarter as many
ConfigMaps (plaintext, out of the default scope) as Secrets are added.
"""
import base64
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "testdata", "gen"))
import k8senc as k  # noqa: E402

KEY = bytes(range(32))  # the bench config's key for every provider (see bench-large.sh)


def value(i: int, etcd_key: bytes, size: int, rand: random.Random) -> bytes:
    ns, name = f"ns-{i % 500}", f"secret-{i}"
    plain = k.secret_pb(name, ns, {"blob": rand.randbytes(size)})
    roll = i % 100
    if os.environ.get("BENCH_GCM_ONLY"):  # gcm-write-budget: every value under one aesgcm key
        return k.aesgcm("bench-gcm", KEY, plain, etcd_key)
    if roll < 80:
        return k.aescbc("bench-cbc", KEY, plain)
    if roll < 88:
        return k.aesgcm("bench-gcm", KEY, plain, etcd_key)
    if roll < 95:
        return k.secretbox("bench-sb", KEY, plain)
    return plain


def main():
    port, count, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    etcd = k.Etcd(port)
    rand = random.Random(1)
    b64 = lambda b: base64.b64encode(b).decode()
    rewrite = os.environ.get("BENCH_REWRITE", "1") == "1"

    def secret(i):
        key = f"/registry/secrets/ns-{i % 500}/secret-{i}".encode()
        return key, value(i, key, size, rand)

    def configmap(i):
        ns, name = f"ns-{i % 500}", f"config-{i}"
        return f"/registry/configmaps/{ns}/{name}".encode(), k.configmap_pb(name, ns, {"k": "v" * (size // 2)})

    batches = [(secret, range(count))]
    if rewrite:
        batches += [(secret, range(count // 2)), (configmap, range(count // 4))]
    for make, ids in batches:
        ids = list(ids)
        for start in range(0, len(ids), 100):
            ops = []
            for i in ids[start:start + 100]:
                key, val = make(i)
                ops.append({"request_put": {"key": b64(key), "value": b64(val)}})
            etcd.call("kv/txn", {"success": ops})
            if start % 20000 == 0:
                print(f"  {make.__name__}: {start}/{len(ids)} written", flush=True)


if __name__ == "__main__":
    main()
