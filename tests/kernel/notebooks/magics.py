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
# Writing next to the notebook (in the sandbox: a copy of its directory in
# the scratch space; the host's directory is not written).
CELLS += [
    "%%writefile helper.py\nVALUE = 6 * 7\n",
    "import helper\nhelper.VALUE",
    "import pandas as pd\npd.DataFrame({'a': [1, 2]}).to_csv('out.csv', index=False)\nopen('out.csv').read()",
    "with open('data.csv', 'a') as f:\n    f.write('x,y\\n')\nopen('data.csv').read().splitlines()[-1]",
]
# IPython's own display functions, imported as notebooks do.
CELLS += [
    "from IPython.display import display, HTML, Markdown\nimport pandas as pd\n"
    "display(pd.DataFrame({'a': [1, 2]}))\ndisplay(HTML('<i>i</i>'), Markdown('**m**'))",
]
# Top-level await, and the output history.
CELLS += [
    "import asyncio\nawait asyncio.sleep(0)\n'awaited'",
    "_ * 2",
]
