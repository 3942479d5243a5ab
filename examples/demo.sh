#!/bin/sh
# The README's demo: a pandas analysis of an input CSV, run in sandcell,
# writing a summary CSV and a PNG plot to the output directory, then the
# report.  Run from the repository root (make demo).
set -eu
OUT=build/demo-output
REPORT=build/demo-report.json
rm -rf "$OUT"
set +e
build/sandcell run \
	--input sales=examples/data/sales.csv \
	--value top=3 \
	--output "$OUT" \
	--report "$REPORT" \
	--wall-time 60 --memory 1G \
	examples/analyze.py
rc=$?
set -e
echo
echo "== report ($REPORT) =="
cat "$REPORT"
echo
echo "== files collected in $OUT =="
find "$OUT" -type f -exec ls -l {} \;
echo "sandcell exit status: $rc"
exit $rc
