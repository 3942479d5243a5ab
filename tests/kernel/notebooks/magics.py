# Cells of tests/kernel/notebooks/magics.ipynb (built by conftest.py):
# IPython syntax as notebooks written for Jupyter use it (line and cell
# magics, shell escapes), with outputs both kernels must agree on.
CELLS = [
    "%matplotlib inline\nimport matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()",
    "n = 2\n!echo shell {n + 1} $n",
    "files = !ls\nsorted(f for f in files if f.endswith('.csv'))",
    "%env SANDCELL_MAGIC_ENV=on\nimport os\nos.environ['SANDCELL_MAGIC_ENV']",
    "%%html\n<b>bold</b>",
    "%%markdown\n# Title",
    "%nosuchmagic",
    "for i in range(2):\n    !echo loop {i}",
    "%load_ext autoreload\n%autoreload 2\nx = 5\nx",
]
