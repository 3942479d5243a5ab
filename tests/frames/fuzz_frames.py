#!/usr/bin/python3
"""Time-boxed mutation fuzzer for the frame reader (src/py/sandcell_frames.py).

    /usr/bin/python3 tests/frames/fuzz_frames.py --seconds 600 [--seed N]
        [--out build/frames-fuzz] [--save-corpus tests/frames/corpus]

Mutates the seed archives of _frames_mutate.py (every kind, index shape and label
type) with the same mutators as test_frames_mutation.py and checks the same
contract (_frames_mutate.check_contract): FrameFormatError or a frame that
round-trips, within a time and memory bound.  An input that breaks it is a
finding: written to OUT/finding-<sha256>.scf with the error beside it, and
the exit status is 1.  --save-corpus adds, for each distinct rejection
message (numbers and quoted values stripped), the first input that produced
it to CORPUS/reject/, and a few accepted mutants to CORPUS/accept/: that is
how the replayed corpus (test_frames_corpus.py) was grown.  Nothing is written into
the tree unless --save-corpus is given.
"""
import argparse
import collections
import hashlib
import os
import random
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _frames_mutate  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def normalize(msg):
    """The rule a rejection message names: without where it happened
    ("schema.data[3].codes (5.npy): ") and the values that vary per input."""
    msg = re.sub(r"^schema[^ :]*( \([0-9]+\.npy\))?: ", "", msg)
    msg = re.sub(r"^ZIP member [^:]*: ", "ZIP member: ", msg)
    msg = re.sub(r"'[^']*'|\"[^\"]*\"|\{.*|\[.*|\(.*", "X", msg)
    return re.sub(r"-?[0-9]+", "N", msg)[:60]


def save(directory, data, prefix):
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "%s-%s.scf" % (prefix, hashlib.sha256(data).hexdigest()[:16]))
    with open(path, "wb") as f:
        f.write(data)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "frames-fuzz"))
    ap.add_argument("--save-corpus", default=None)
    ap.add_argument("--accept-max", type=int, default=12)
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    rng = random.Random(seed)
    seen = collections.Counter()
    accepted = 0
    findings = 0
    runs = 0
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        seed_archive = rng.choice(_frames_mutate.SEEDS)
        archive = _frames_mutate.mutate(rng, seed_archive, _frames_mutate.ALL, rounds=rng.randint(1, 4))
        runs += 1
        try:
            outcome = _frames_mutate.check_contract(archive)
        except _frames_mutate.Finding as e:
            findings += 1
            path = save(args.out, archive, "finding")
            with open(path + ".txt", "w") as f:
                f.write("%s\n" % e)
            print("finding: %s: %s" % (path, e), file=sys.stderr)
            continue
        if outcome == "ok":
            accepted += 1
            if args.save_corpus and accepted <= args.accept_max:
                save(os.path.join(args.save_corpus, "accept"), archive, "fuzz")
            continue
        key = normalize(outcome)
        if not seen[key] and args.save_corpus:
            save(os.path.join(args.save_corpus, "reject"), archive, "fuzz")
        seen[key] += 1
    print("fuzz_frames: seed %d, %d inputs in %.0f s, %d accepted, %d distinct rejections, %d findings"
          % (seed, runs, args.seconds, accepted, len(seen), findings))
    for key, n in seen.most_common():
        print("%7d  %s" % (n, key))
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
