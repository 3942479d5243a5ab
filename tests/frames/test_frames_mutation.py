"""Hypothesis-driven mutation of valid archives: whatever the bytes, load()
raises FrameFormatError or returns a frame that round-trips, within a time
and memory bound (fm.check_contract).  FRAMES_FUZZ_EXAMPLES sets the
number of examples per family (default 400); fuzz_frames.py runs the same
mutations time-boxed, for longer."""
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import _frames_mutate as fm

EXAMPLES = int(os.environ.get("FRAMES_FUZZ_EXAMPLES", "400"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")

seeds = st.sampled_from(fm.SEEDS)


@pytest.mark.parametrize("seed", range(len(fm.SEEDS)))
def test_seeds_are_valid(seed):
    assert fm.check_contract(fm.SEEDS[seed]) == "ok"


@SETTINGS
@given(seeds, st.randoms(use_true_random=False))
def test_raw_byte_mutations(archive, rng):
    fm.check_contract(fm.mutate(rng, archive, fm.RAW))


@SETTINGS
@given(seeds, st.randoms(use_true_random=False))
def test_member_mutations(archive, rng):
    fm.check_contract(fm.mutate(rng, archive, [fm.member_bytes, fm.member_shuffle]))


@SETTINGS
@given(seeds, st.randoms(use_true_random=False))
def test_schema_mutations(archive, rng):
    fm.check_contract(fm.mutate(rng, archive, [fm.schema_edit]))


@SETTINGS
@given(seeds, st.randoms(use_true_random=False))
def test_buffer_mutations(archive, rng):
    fm.check_contract(fm.mutate(rng, archive, [fm.npy_header, fm.buffer_values]))


@SETTINGS
@given(seeds, st.randoms(use_true_random=False))
def test_mixed_mutations(archive, rng):
    fm.check_contract(fm.mutate(rng, archive, fm.ALL, rounds=rng.randint(2, 5)))
