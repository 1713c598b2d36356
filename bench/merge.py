#!/usr/bin/env python3
"""Merges a partial run's measurements into earlier results (bench/run with BENCH_MERGE=1).

    merge.py OLD.json NEW.json OUT.json

Every key NEW measured (its "measured" map, which bench/inside.py writes) replaces OLD's key
whole; every other key of OLD stays as it was. The run metadata at the top (started, kernel,
rounds, ...) stays OLD's: the report's header describes the run most sections came from.
"measured" then maps each key to the start of the run that measured it, and "runs" describes
each run by its start, so bench/report.py can say, per section, which run it came from.
"""
import json
import sys

RUN_META = ["kernel", "cpus", "cpu_model", "rounds", "sizes", "seconds", "scenarios"]

old = json.load(open(sys.argv[1]))
new = json.load(open(sys.argv[2]))
if not new.get("measured"):
    sys.exit(f"merge: {sys.argv[2]} measured nothing (or predates results['measured']); nothing merged")

merged = dict(old)
runs = dict(old.get("runs") or {old["started"]: {k: old[k] for k in RUN_META if k in old}})
runs[new["started"]] = {k: new[k] for k in RUN_META if k in new}
measured = dict(old.get("measured") or {})
for key in new["measured"]:
    merged[key] = new[key]
    measured[key] = new["started"]
if "profile" in new["measured"]:
    # a hand-written note on where the old profiles came from no longer applies
    merged.pop("profiles_from", None)
merged["measured"] = measured
merged["runs"] = runs
with open(sys.argv[3], "w") as f:
    json.dump(merged, f, indent=1)
print(f"merge: {', '.join(sorted(new['measured']))} from the run started {new['started']} "
      f"into {sys.argv[1]} (run started {old['started']})", file=sys.stderr)
