"""Hypothesis keeps its files (the example database: failing examples,
replayed first on the next run; its Unicode tables) under build/, not in
the tree."""
import os

from hypothesis.configuration import set_hypothesis_home_dir

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
set_hypothesis_home_dir(os.path.join(ROOT, "build", "hypothesis"))
