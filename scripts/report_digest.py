"""SHA-256 of a scan report (stdin) that ignores what may change without
changing a result: the tool version, the source's path (a temporary folder),
and the order of entries, history and residue (sorted by key and revision).
scripts/bench-large.sh compares a build's report with a baseline's by it."""
import hashlib
import json
import sys

doc = json.load(sys.stdin)
doc.pop("tool_version", None)
for backup in doc["backups"]:
    backup["source"] = None
    for field in ("entries", "history", "residue"):
        if backup.get(field):
            backup[field].sort(key=lambda e: (e["key"], e.get("mod_revision") or 0, e.get("page") or 0))
print(hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest())
