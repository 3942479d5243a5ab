# Cells of tests/kernel/notebooks/analysis.ipynb (built by conftest.py):
# numpy, pandas and matplotlib, state carried from cell to cell.
CELLS = [
    "import numpy as np\nimport pandas as pd\nrng = np.random.default_rng(7)\nx = rng.normal(size=1000)\nprint(round(float(x.mean()), 6), x.shape)",
    "df = pd.DataFrame({'g': list('abcd') * 250, 'x': x})\ndf.head(3)",
    "summary = df.groupby('g').x.agg(['mean', 'count']).round(4)\nsummary",
    "import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nax.hist(x, bins=20)\nplt.show()",
    "for i in range(3):\n    print('step', i)\nimport sys\nprint('warn', file=sys.stderr)\nsummary.loc['a', 'count']",
    "total = int(df.x.count())\ntotal;",
    "from IPython.display import HTML\ndisplay(HTML('<b>bold</b>'))\n'text' * 2",
    "data = open('data.csv').read().splitlines()\nlen(data), data[0]",
    "def f(n):\n    return 1 / n\nf(0)",
]
