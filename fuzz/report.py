"""Sums fuzz/campaign.tsv per target into the table of docs/fuzzing.md.

    python3 fuzz/report.py
"""
import csv
import os

HERE = os.path.dirname(os.path.abspath(__file__))
GOAL = 3600  # seconds per target (issue: at least one hour each)

rows = list(csv.DictReader(open(os.path.join(HERE, "campaign.tsv")), delimiter="\t"))
targets = sorted({r["target"] for r in rows} | {f[:-3] for f in os.listdir(os.path.join(HERE, "fuzz_targets"))})
print("| target | runs | hours | executions | edges (last run) | features (last run) | corpus | crashes |")
print("|---|---|---|---|---|---|---|---|")
total = 0
for t in targets:
    mine = [r for r in rows if r["target"] == t]
    # CPU seconds where recorded (a busy machine starves the fuzzer; its
    # wall time would overstate the work), never more than the wall time
    # (sanitizer threads add a little), else the wall time of the run.
    secs = sum(min(int(r["seconds"]), int(r.get("cpu_seconds") or r["seconds"])) for r in mine)
    total += secs
    execs = sum(int(r["executions"]) for r in mine)
    last = mine[-1] if mine else {"edges": "-", "features": "-", "corpus": "-"}
    crashes = sum(int(r["crashes"]) for r in mine)
    short = "" if secs >= GOAL else f" ({secs * 100 // GOAL}% of 1 h)"
    print(f"| `{t}` | {len(mine)} | {secs / 3600:.2f}{short} | {execs:,} | {last['edges']} | {last['features']} | {last['corpus']} | {crashes} |")
print(f"\nTotal: {total / 3600:.2f} core-hours over {len(targets)} targets.")
