"""The attack tier's helpers moved to tests/harness.py; this alias (no
logic) only keeps `from attack_lib import ...` of branches written before
the move working.  New tests import harness; delete this file once no
test imports it."""
import sys

import harness

sys.modules[__name__] = harness
