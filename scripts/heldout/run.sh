#!/usr/bin/env bash
# Runs torchgraph validate on every model built by build.py (models/<id>.pt and .pt2), one at a
# time, 600 s timeout each. Per run: logs/<id>.<fmt>.txt (terminal report, stdout+stderr),
# logs/<id>.<fmt>.json (--json report) + .json.err, and a line in logs/results.tsv.
#   run.sh [id ...]       (default: every models/*.json without a build error)
set -u
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
HERE="${HELDOUT_DIR:-$ROOT/.torchgraph/heldout}"
CLI="npx tsx lib/app/cli/main.ts"
cd "$ROOT"
mkdir -p $HERE/logs
ids=("$@")
if [ ${#ids[@]} -eq 0 ]; then
  for j in $HERE/models/*.json; do ids+=("$(basename "$j" .json)"); done
fi
for id in "${ids[@]}"; do
  man=$HERE/models/$id.json
  inputs=$(python3 -c "import json,sys; d=json.load(open('$man')); print(' '.join('--input '+i['file'] for i in d.get('inputs',[])))")
  if [ -z "$inputs" ]; then echo -e "$id\t-\tbuild-failed\t-" >> $HERE/logs/results.tsv; continue; fi
  for fmt in ${FMTS:-pt pt2}; do
    f=$HERE/models/$id.$fmt
    [ -f "$f" ] || { echo -e "$id\t$fmt\tnot-exported\t-" >> $HERE/logs/results.tsv; continue; }
    echo "== $id.$fmt" >&2
    t0=$(date +%s)
    timeout 600 $CLI validate "$f" $inputs > $HERE/logs/$id.$fmt.txt 2>&1; rc=$?
    t1=$(date +%s)
    timeout 600 $CLI validate "$f" $inputs --json -q > $HERE/logs/$id.$fmt.json 2> $HERE/logs/$id.$fmt.json.err; rcj=$?
    echo -e "$id\t$fmt\trc=$rc\tjson_rc=$rcj\t$((t1-t0))s" | tee -a $HERE/logs/results.tsv >&2
  done
done
