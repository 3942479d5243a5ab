#!/bin/sh
# The README's demo (make demo): a three-cell notebook analysis of
# examples/data/sales.csv through the host client, every cell in its own
# sandbox, DataFrames passed between cells as datasets; writes
# build/demo/notebook.html, notebook.ipynb, by_region.csv and summary.json.
# Run from the repository root.
set -eu
SANDCELL_BIN=$(pwd)/build/sandcell exec /usr/bin/python3 examples/notebook.py build/demo
