#!/usr/bin/env python3
"""EXPLAIN (ANALYZE, BUFFERS) of each statement of a same-statement script
(bench/pgbench/<scenario>.sql) against a seeded database, with one random draw of ids
from bench.*, to see which plans grow with the data (issue 22).

    bench/explain.py DATABASE SCENARIO [TAG]
    e.g. bench/explain.py tenure_bench search_tag vip

Only the SELECT/WITH statements are explained (inside the script's transaction, rolled
back); pgbench meta-commands are read for the draws they make.
"""
import re
import subprocess
import sys
from pathlib import Path

db, scenario = sys.argv[1], sys.argv[2]
tag = sys.argv[3] if len(sys.argv) > 3 else None
script = (Path(__file__).parent / "pgbench" / f"{scenario}.sql").read_text()


def psql(sql):
    return subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-X", "-At",
                           "-v", "ON_ERROR_STOP=1", "-c", sql],
                          check=True, capture_output=True, text=True).stdout.strip()


row = psql("SELECT merchant_id, customer_id, subscription_id, sub_ref, email FROM bench.customers"
           " ORDER BY random() LIMIT 1").split("|")
vars_ = dict(zip(["merchant", "cid", "sid", "sub_ref", "email"], row))
vars_["tag"] = tag or psql("SELECT tag FROM bench.tags ORDER BY random() LIMIT 1")
vars_["days"] = "200"
vars_["ids"] = "{}"
# Statements: drop comments and meta-command lines, split on ';' or '\gset' at line ends.
body = "\n".join(l for l in script.splitlines() if not l.startswith("--") and not l.startswith("\\"))
parts = re.split(r";\s*\n|\\gset\s*\w*\s*\n", body + "\n")
out = []
for sql in parts:
    sql = sql.strip()
    if not re.match(r"(?is)^(select|with)\b", sql) or "bench." in sql:
        continue
    sql = re.sub(r":(\w+)", lambda m: "'" + vars_[m.group(1)].replace("'", "''") + "'"
                 if m.group(1) in vars_ else m.group(0), sql)
    out.append(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql};")
print(f"-- {scenario}: customer {vars_['cid']}, tag {vars_['tag']}")
res = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-X", "-q"],
                     input="BEGIN;\nSET jit = off;\n" + "\n".join(out) + "\nROLLBACK;\n",
                     capture_output=True, text=True)
print(res.stdout, res.stderr)
