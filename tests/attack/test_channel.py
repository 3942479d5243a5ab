"""G9 for the code's channel (fd 3, docs/report.md "The channel"): hostile
records never crash or bend the host, never change a verdict, are
rejected or dropped one by one with a marker and a reason, and what is
kept validates against nbformat's schema.  The location a stopped run
reports never delays the kill, and what the code claims about itself
counts only where the host's own evidence agrees."""
import json
import time

from harness import nb_validate as nb_check, run, skip_in_session

# A session reads fd 3 per cell and lists what it drops in session.problems,
# not in the report's cell object: these counts do not carry over.  The
# session's own hostile records: tests/integration/test_session_c.py
# (test_hostile_channel_records, test_hostile_dataset_requests) and
# tests/attack/test_sessions.py (forged records across cells).
PER_CELL_COUNTS = skip_in_session("the cell's drop counts and problems are per cell in a session "
                                  "(session.problems, stderr markers), not in the report's cell object; "
                                  "forged records in a session: test_sessions.py")


def chan(code, opts=("--cell",), **kw):
    """Runs code (os and sys imported, no prelude) that writes to fd 3."""
    r = run("def W3(b):\n    os.write(3, b)\n" + code, prelude=False, opts=list(opts), **kw)
    nb_check(r.report["cell"]["outputs"])
    return r


GOOD = b'O {"output_type":"stream","name":"stdout","text":"good\\n"}\n'


@PER_CELL_COUNTS
def test_G9_garbage_records_are_rejected_one_by_one(host_postconditions):
    bad = [
        b"O not json\n",
        b"O \xff\xfe{}\n",                                          # invalid UTF-8
        b'O {"output_type":"stream","name":"stdout","text":"\xc3\x28"}\n',
        b'O {"output_type":"stream","output_type":"stream","name":"stdout","text":""}\n',
        b'O {"output_type":"error","ename":"x","evalue":"y","traceback":[]}\n',
        b'O {"output_type":"stream","name":"stdout","text":"x","transient":{}}\n',
        b'O {"output_type":"display_data","data":{"image/png":"<script>"},"metadata":{}}\n',
        b'O {"output_type":"display_data","data":{"text/html\\n":"x"},"metadata":{}}\n',
        b'O {"output_type":"display_data","data":{"application/json":{"$float":"nan"}},"metadata":{}}\n',
        b"O " + b"[" * 100000 + b"\n",
        b'O {"output_type":"stream","name":"stdout\\u0000","text":""}\n',
        b'O {"output_type":"stream","name":"stdout","text":"\\u0000\\u001b[2J"}\n',  # valid: data, kept
    ]
    r = chan("for rec in %r:\n    W3(%r)\n    W3(rec)\nW3(%r)\n" % (bad, GOOD, GOOD))
    assert r.status == "ok" and r.rc == 0, r
    outs = r.report["cell"]["outputs"]
    goods = "".join(o["text"] for o in outs if o["output_type"] == "stream" and o["name"] == "stdout")
    assert goods.count("good\n") == len(bad) + 1
    assert "\x00\x1b[2J" in goods  # control characters are data, JSON-escaped in the report
    assert r.report["cell"]["dropped"] == len(bad) - 1
    problems = r.report["cell"]["problems"]
    assert len(problems) == len(bad) - 1, problems
    for p in problems:
        assert p.startswith("output ") and " was rejected: " in p, p
        assert all(ord(ch) >= 0x20 for ch in p), p  # the code's bytes arrive escaped
    markers = "".join(o["text"] for o in outs if o["output_type"] == "stream" and o["name"] == "stderr")
    assert markers.count("[sandcell: output ") == len(bad) - 1


@PER_CELL_COUNTS
def test_G9_output_flood_is_capped(host_postconditions):
    """A million tiny records: kept up to the count cap, the rest counted
    and dropped without holding them; the run ends promptly."""
    t0 = time.monotonic()
    r = chan("rec = %r\nfor _ in range(10):\n    W3(rec * 100000)\n" % GOOD,
             opts=["--cell", "--cell-outputs", "1000"])
    assert r.status == "ok", r
    assert time.monotonic() - t0 < 60
    assert r.report["cell"]["dropped"] == 1000000 - 1000
    assert "cell" in r.report["truncations"]
    outs = r.report["cell"]["outputs"]
    assert outs[0]["text"] == "good\n" * 1000
    assert "999000 more outputs" in outs[1]["text"]


@PER_CELL_COUNTS
def test_G9_huge_record_and_report_size_are_bounded(host_postconditions, tmp_path):
    """A 64 MiB record is dropped without being held; deep tiny values
    cannot inflate the report through its indentation."""
    r = chan("""
W3(b'O {"output_type":"stream","name":"stdout","text":"' + b"x" * (64 << 20) + b'"}\\n')
tiny = b'O {"output_type":"display_data","data":{"application/json":' + b"[[[[[[[[[[0]]]]]]]]]," * 50000 + b'0},"metadata":{}}\\n'
for _ in range(20):
    W3(tiny)
""", opts=["--cell", "--cell-limit", "4M", "--cell-output-limit", "2M"])
    assert r.status == "ok", r
    text = json.dumps(r.report, indent=2)
    assert len(text) < 12 << 20, len(text)
    problems = r.report["cell"]["problems"]
    assert problems[0].startswith("output 1 (67108") and "per-output limit" in problems[0]
    assert any("bytes of the report" in p or "not kept" in p for p in problems[1:]), problems


def test_G9_fake_exception_does_not_count_on_success(host_postconditions):
    r = chan('W3(b\'E {"ename":"Fake","evalue":"x","traceback":["fake"]}\\n\')\n')
    assert r.status == "ok", r
    assert r.report["error"] is None
    assert r.report["cell"]["outputs"] == []


def test_G9_exception_record_cannot_set_status(host_postconditions):
    """The code's claim is reported as its own; the status stays the
    host's (exited, from the wait status)."""
    r = chan('W3(b\'E {"ename":"Fake","evalue":"x","traceback":["fake"]}\\n\')\nsys.exit(5)\n')
    assert r.status == "exited" and r.rc == 5, r
    assert r.report["error"]["ename"] == "Fake"


def test_G9_fake_location_without_a_stop(host_postconditions):
    r = chan('W3(b\'W {"traceback":["fake"]}\\n\')\n', opts=["--cell", "--wall-time", "5"])
    assert r.status == "ok", r
    assert r.report["stopped_at"] is None


def test_G9_location_handler_cannot_delay_the_kill(host_postconditions):
    """Code that answers the question by blocking forever is still killed
    at its wall limit."""
    r = chan("""
import signal, time
signal.signal(signal.SIGURG, lambda s, f: time.sleep(3600))
while True:
    time.sleep(0.01)
""", opts=["--cell", "--wall-time", "2"])
    assert r.status == "timeout" and r.rc == 124, r
    assert r.report["time"]["wall_sec"] < 6, r.report["time"]
    assert r.report["stopped_at"] is None
    assert r.report["cell"]["outputs"][-1]["ename"] == "SandcellStopped"


def test_G9_ignored_question_is_no_location(host_postconditions):
    r = chan("import signal, time\nsignal.signal(signal.SIGURG, signal.SIG_IGN)\ntime.sleep(60)\n",
             opts=["--cell", "--wall-time", "1"])
    assert r.status == "timeout", r
    assert r.report["stopped_at"] is None


def test_G9_code_asking_init_for_its_location(host_postconditions):
    """init passes SIGUSR1 on as SIGURG to the code: the code can only
    make itself answer, which counts for nothing without a stop.  (On a
    warm server the init is outside the code's Landlock domain, so the
    signal is refused: the supervisor asks the code's process itself.)"""
    r = chan("""
import time
for _ in range(50):
    try:
        os.kill(1, 10)
    except PermissionError:
        pass
    time.sleep(0.005)
print("alive")
""")
    assert r.status == "ok", r
    assert r.report["stopped_at"] is None
    assert r.report["cell"]["outputs"] == [{"output_type": "stream", "name": "stdout", "text": "alive\n"}]


@skip_in_session("the loop sends each cell's done record on fd 3: a cell that closes it never ends "
                 "and runs to its limit (test_sessions.py::test_G9_cell_closing_its_channel_and_stdin)")
def test_G9_closed_or_reused_channel(host_postconditions):
    """The code closes fd 3, then a file takes the number: its prints land
    in its own file; the host sees an empty channel and a clean run."""
    r = chan("""
os.close(3)
f = open("/tmp/f", "w")
assert f.fileno() == 3
print("to the file, not the host")
print(len(open("/tmp/f").read()) >= 0)
""")
    assert r.status == "ok", r
    assert r.report["cell"]["outputs"] == []
    assert r.report["result"] is None and r.report["result_error"] is None
    assert r.out.startswith("to the file, not the host\n")


def test_G9_result_survives_an_output_flood(host_postconditions):
    """Outputs have their own caps: they cannot crowd out the result."""
    r = chan("W3(%r * 200000)\nimport sandcell\nsandcell.result({'kept': True})\n" % GOOD,
             opts=["--cell", "--cell-limit", "64K"])
    assert r.status == "ok", r
    assert r.report["result"] == {"kept": True}
