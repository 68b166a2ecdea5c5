#!/usr/bin/env python3
"""Writes the JSON Schemas (draft 2020-12) of etcd-audit's JSON documents into this folder.
The definitions shared by several documents (findings, key use, verdict records) are written
once here and copied into each schema, so every schema file stands alone.

    python3 docs/schema/schemas.py [DIR]   # rewrites {scan,inspect,keys,configs,catalog}.v1.json here (or in DIR)

exposure.v1.json is written by hand. Within v1, fields are only ever added: a consumer should
ignore fields it does not know (the schemas of records allow none they do not list, so that a
test notices a field added without its schema).
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BASE = "https://github.com/etcd-audit/etcd-audit/docs/schema/"

S = {"type": "string"}
I = {"type": "integer"}
B = {"type": "boolean"}
N = {"type": "number"}


def opt(t):
    """t or null."""
    return {"anyOf": [t, {"type": "null"}]}


def arr(t):
    return {"type": "array", "items": t}


def obj(props, required=None, extra=False, **kw):
    o = {"type": "object", "properties": props, "required": sorted(props if required is None else required),
         "additionalProperties": extra}
    o.update(kw)
    return o


def ref(name):
    return {"$ref": f"#/$defs/{name}"}


CLASSES = ["plaintext", "decryptable", "unknown-key", "undecryptable", "malformed"]
SEVERITY = {"enum": ["critical", "high", "medium", "low"]}
CODES = [
    "plaintext-secret", "plaintext-value", "unknown-key", "undecryptable", "malformed", "key-not-in-provider-list",
    "plaintext-unreadable", "stale", "integrity", "history-plaintext", "deleted-plaintext-in-history",
    "configs-disagree", "residue-plaintext", "wal-plaintext", "kms-plugin-unavailable", "bootstrap-keys-in-backup",
    "bootstrap-unsealed", "k3s-token-mismatch", "k3s-token-hash-mismatch", "k3s-rotation-in-progress",
    "k3s-server-password-exposed", "public-key", "weak-key", "key-reused", "gcm-nonce-reuse", "gcm-write-budget",
    "identity-first", "kms-v1", "aescbc-in-use", "non-cis-provider", "secret-not-covered", "restore-quota",
    "backup-too-old", "backup-gap", "restore-mixed-versions", "key-shared-across-clusters", "taken-at-disagrees",
    "key-rotation-overdue",
]
PROVIDER = {"enum": ["aescbc", "aesgcm", "secretbox", "kms"]}
KMS_API = {"enum": ["v1", "v2"]}

DEFS = {
    "summary": obj({c: {"type": "integer", "minimum": 0} for c in CLASSES}),
    "finding": obj({
        "severity": SEVERITY, "code": {"enum": CODES}, "count": {"type": "integer", "minimum": 0},
        "message": S, "examples": {"type": "array", "items": S, "maxItems": 10},
        "details": arr({}), "references": arr(obj({"title": S, "url": S})), "remediation": S,
    }, required=["severity", "code", "count", "message", "examples"]),
    "skipped": obj({"path": S, "reason": S}),
    "integrity": obj({
        "sha256_trailer": {"enum": ["valid", "absent", "mismatch"]},
        "meta": arr(obj({"page": I, "valid": B, "txid": opt(I), "error": opt(S)})),
        "bbolt_errors": {"type": "array", "items": S, "maxItems": 1000},
        "bbolt_errors_total": I, "notes": arr(S), "salvaged": B, "ok": B,
    }),
    "object": obj({
        "url": S, "size": I, "e_tag": opt(S), "last_modified": S,
        "user_metadata": {"type": "object", "additionalProperties": S}, "sidecar": {},
    }, required=["url", "size", "e_tag", "last_modified", "user_metadata"]),
    "key_use": obj({
        "provider": PROVIDER, "name": S, "kms_api": KMS_API, "key_id": S, "entries": I, "decryptable": I,
        "available": B, "write_key": B, "fingerprint": opt(S), "origin": opt(S),
        "plugin": obj({"endpoint": S, "overridden": B, "status": {}, "error": opt(S), "decrypt_calls": I}),
    }, required=["provider", "name", "entries", "decryptable", "available", "write_key", "fingerprint", "origin"]),
    "object_info": obj({
        "api_version": opt(S), "kind": opt(S), "name": opt(S), "namespace": opt(S), "type": S, "data_keys": arr(S),
    }, required=["api_version", "kind", "name", "namespace"]),
}

DATED = obj({"source": S, "taken_at": S})
DEFS["cluster"] = obj({
    "uid": opt(S), "kubernetes_versions": arr(S), "backups": arr(S), "newest": opt(DATED),
    "oldest": opt(DATED),
    "keys": arr(obj({"key": S, "fingerprint": opt(S), "write_key": B, "first_seen": opt(S), "last_seen": opt(S)})),
    "findings": arr(ref("finding")), "failed_on": arr(S),
})

VERDICT = {
    "key": S, "resource": S, "namespace": opt(S), "name": S,
    "class": opt({"enum": CLASSES}), "provider": opt(PROVIDER), "kms_api": KMS_API, "key_name": opt(S), "key_id": S,
    "encoding": opt({"enum": ["protobuf", "json", "cbor", "unrecognized"]}), "stale": opt(B), "detail": opt(S),
    "object": opt(ref("object_info")),
}
VERDICT_REQUIRED = ["key", "resource", "namespace", "name", "class", "provider", "key_name", "encoding", "stale",
                    "detail", "object"]


def record(extra, extra_required, tombstones=False):
    """A verdict record; a tombstone (history, residue) has only its place and `class: null`."""
    required = ["key", "resource", "namespace", "name", "class"] if tombstones else VERDICT_REQUIRED
    return obj(dict(VERDICT, **extra), required=required + extra_required)


def document(name, props, defs, required=None, description=""):
    props = dict({"schema": {"const": f"etcd-audit.{name}/v1"}, "tool_version": S}, **props)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{BASE}{name}.v1.json",
        "title": f"etcd-audit {name} report (etcd-audit.{name}/v1)",
        "description": description,
        "type": "object",
        "properties": props,
        "required": sorted(props if required is None else required),
        "additionalProperties": False,
        "$defs": {k: v for k, v in DEFS.items() if k in defs} | defs.get("__own__", {}),
    }


def scan():
    own = {
        "entry": record({"mod_revision": I}, ["mod_revision"]),
        "history": record({"mod_revision": I, "create_revision": I, "version": I, "deleted": B, "tombstone": B},
                          ["mod_revision", "create_revision", "version", "deleted", "tombstone"], tombstones=True),
        "residue": record({"mod_revision": I, "page": I, "tombstone": B}, ["mod_revision", "page", "tombstone"],
                          tombstones=True),
        "wal": record({"mod_revision": {"type": "null"}, "wal_file": S, "raft_index": I, "term": I},
                      ["mod_revision", "wal_file", "raft_index", "term"]),
        "backup": obj({
            "source": S, "error": opt(S), "object": ref("object"),
            "container": arr(S),
            "cluster": opt(obj({
                "uid": opt(S), "kubernetes_version": opt(S), "nodes": arr(S),
                "etcd_members": opt(arr(obj({"id": S, "name": S, "peer_urls": arr(S)}))),
                "etcd_cluster_id": opt(S),
            })),
            "taken_at": opt(obj({"estimate": S, "source": {"enum": ["lease-renew-time", "event-time"]},
                                 "uncertainty_seconds": I})),
            "integrity": ref("integrity"),
            "etcd": obj({"revision": I, "compact_revision": opt(I), "scheduled_compact_revision": opt(I),
                         "page_size": opt(I), "size_bytes": I, "etcd_prefix": S, "undecodable_rows": I},
                        required=["revision", "compact_revision", "page_size", "size_bytes", "etcd_prefix",
                                  "undecodable_rows"]),
            "summary": ref("summary"),
            "forensics": obj({"history": opt(ref("summary")), "residue": opt(ref("summary")),
                              "wal": opt(ref("summary"))}),
            "keys": arr(ref("key_use")),
            "entries": arr(ref("entry")),
            "history": opt(arr(ref("history"))),
            "residue": opt(arr(ref("residue"))),
            "wal": opt(arr(ref("wal"))),
            "findings": arr(ref("finding")),
            "k3s": opt(obj({
                "bootstrap": arr(obj({
                    "etcd_key": S, "token_hash": S, "found_in": {"enum": ["live", "history", "residue", "wal"]},
                    "mod_revision": opt(I), "sealed_bytes": I, "unsealed": B, "no_token_needed": B,
                    "contents": arr(obj({"name": S, "sha256": S})), "encryption_stage": opt(S),
                    "server_password": B, "error": opt(S),
                })),
                "token_matches": opt(B), "supplied_token_hashes": arr(S),
                "snapshot": opt(obj({"node": S, "unix_time": I})),
            })),
            "failed_on": arr(S),
        }, required=["source", "error"]),
    }
    return document("scan", {
        "backups": arr(ref("backup")), "clusters": arr(ref("cluster")), "skipped": arr(ref("skipped")),
    }, dict.fromkeys(["summary", "finding", "skipped", "integrity", "object", "key_use", "object_info",
                      "cluster"]) | {
        "__own__": own}, description="scan: per backup, integrity, etcd facts, verdict counts, keys, entries "
                                     "(and history, residue, WAL with --history/--residue/a data dir), findings; "
                                     "per cluster, the sweep.")


def inspect():
    own = {"backup": obj({
        "source": S, "error": opt(S), "object": ref("object"), "container": arr(S), "integrity": ref("integrity"),
        "etcd": obj({"revision": I, "compact_revision": opt(I), "scheduled_compact_revision": opt(I), "hash": I,
                     "total_keys": I, "size_bytes": I, "page_size": I, "storage_version": opt(S),
                     "consistent_index": opt(I), "term": opt(I)},
                    required=["revision", "compact_revision", "hash", "total_keys", "size_bytes", "page_size",
                              "storage_version", "consistent_index", "term"]),
        "pages": obj({k: I for k in ["total", "meta", "branch", "leaf", "overflow", "freelist", "free"]}),
        "buckets": {"type": "object", "additionalProperties": I},
    }, required=["source", "error"])}
    return document("inspect", {"backups": arr(ref("backup")), "skipped": arr(ref("skipped"))},
                    dict.fromkeys(["skipped", "integrity", "object"]) | {"__own__": own},
                    description="inspect: integrity and layout, as etcdutl snapshot status and bbolt check say.")


def keys():
    own = {"backup": obj({
        "source": S, "error": opt(S), "object": ref("object"), "restorable": B, "missing": arr(S),
        "summary": ref("summary"), "keys": arr(ref("key_use")),
    }, required=["source", "error"])}
    return document("keys", {"backups": arr(ref("backup")), "skipped": arr(ref("skipped"))},
                    dict.fromkeys(["summary", "skipped", "object", "key_use"]) | {"__own__": own},
                    description="keys: which keys each backup needs, and whether the supplied configs hold them.")


def configs():
    own = {"config": obj({"path": S, "resources": arr(obj({
        "resource": S, "providers": arr(S),
        "keys": arr(obj({"provider": S, "name": S, "fingerprint": S})),
    }))})}
    return document("configs", {
        "configs": arr(ref("config")),
        "differences": arr(obj({"resource": S, "message": S, "breaks_reads": B})),
        "findings": arr(ref("finding")),
    }, dict.fromkeys(["finding"]) | {"__own__": own},
        description="configs: control-plane nodes' EncryptionConfigurations compared, keys by fingerprint, lint.")


def catalog():
    needed = obj({"provider": S, "name": S, "kms_api": KMS_API, "key_id": S, "fingerprint": opt(S), "entries": I,
                  "available": B, "write_key": B},
                 required=["provider", "name", "entries", "available", "write_key"])
    record_ = obj({
        "source": S, "sha256": S, "sources": arr(S), "size": I,
        "origin": {"type": "object", "required": ["kind"], "properties": {"kind": {"enum": ["object", "file", "other"]}}},
        "revision": I, "audited_at": I, "tool_version": S, "keyring": S,
        "summary": {"type": "object", "additionalProperties": I}, "keys": arr(ref("needed")),
        "cluster_uid": opt(S), "kubernetes_version": opt(S), "taken_at": opt(S),
    })
    # One document per query: list and can-retire (backups), needs (keys), forget (counts).
    return document("catalog", {
        "backups": arr(ref("record")), "key": S, "source": S, "keys": arr(ref("needed")),
        "forgotten": obj({"backups": I, "sources": I}),
        "imported": obj({"backups": I, "sources": I}),
        "clusters": arr(ref("cluster")),
    }, dict.fromkeys(["cluster", "finding"]) | {"__own__": {"record": record_, "needed": needed}},
        required=["schema", "tool_version"],
        description="catalog: list and can-retire give backups (can-retire also the key), needs gives a "
                    "source's keys, forget the counts removed, import the records and newer sources taken in.")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else HERE
    for name, doc in [("scan", scan()), ("inspect", inspect()), ("keys", keys()), ("configs", configs()),
                      ("catalog", catalog())]:
        with open(os.path.join(out, f"{name}.v1.json"), "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
