"""Replays tests/frames/corpus: inputs the fuzzer (fuzz_frames.py
--save-corpus) kept, one per distinct rejection rule it reached (reject/)
plus mutants that are still valid frames (accept/).  Every input must keep
its verdict and the reader's contract (_frames_mutate.check_contract).  A finding
fixed later goes here too, so CI replays it."""
import os

import pytest

import _frames_mutate
from _frames_util import CORPUS

CASES = sorted((verdict, name) for verdict in ("accept", "reject")
               for name in os.listdir(os.path.join(CORPUS, verdict)) if name.endswith(".scf"))


def test_corpus_is_there():
    assert sum(v == "reject" for v, _ in CASES) >= 30
    assert any(v == "accept" for v, _ in CASES)


@pytest.mark.parametrize("verdict,name", CASES, ids=["%s/%s" % c for c in CASES])
def test_replay(verdict, name):
    with open(os.path.join(CORPUS, verdict, name), "rb") as f:
        archive = f.read()
    outcome = _frames_mutate.check_contract(archive)
    if verdict == "accept":
        assert outcome == "ok"
    else:
        assert outcome != "ok"
