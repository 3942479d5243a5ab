"""Scale-out (docs/scaling.md, issue 11 item 4): three `sandcell serve
--http` servers behind HAProxy (the shipped deploy/haproxy/sandcell.cfg,
ports substituted), a bounded mixed load through the Python client, and
one server SIGKILLed (front end and warm server) in the middle of it.

What must hold: every one-shot run succeeds, first time or on the
client's retry (both counted), and its Result is one execution (its
unique marker exactly once in stdout); the killed server's sessions end
(a cell running on it comes back "killed", the next call raises
SessionEnded), the other sessions run every cell, each exactly once, in
the interpreter that holds their state (pinning); every submitted request
has exactly one final outcome; HAProxy saw the server go down; the bearer
token never reaches HAProxy's log.  Loopback only; the load is a fixed
count of requests with a global deadline, so it stops by itself.
"""
from __future__ import annotations

import datetime
import http.client
import json
import os
import re
import sys
import threading
import time
import uuid
from typing import Dict, Iterator, List, Tuple

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "python"))
sys.path.insert(0, HERE)

import sandcell  # noqa: E402
from cluster import HAPROXY, HTTP_BIN, TOKEN, Cluster, running_cluster  # noqa: E402

pytestmark = [
    pytest.mark.skipif(not os.access(HTTP_BIN, os.X_OK), reason="%s is not built (make)" % HTTP_BIN),
    pytest.mark.skipif(not os.access(HAPROXY, os.X_OK),
                       reason="haproxy is not installed (tools/install-deps.sh)"),
]

RUNS = 180          # one-shot runs in all
THREADS = 6         # client threads sending them
KILL_AFTER = 60     # runs returned before the kill
RETRIES = 4         # the client's retries= (docs/client.md)
DEADLINE = 300.0    # seconds for the whole load: then it stops, and the test fails
VICTIM = 1          # index of the server killed (s2)
SESSIONS = 6        # at least, and at least one on every server
CELLS = 8           # cells per session; half before the kill, half after


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with running_cluster("sandcell-scaleout.") as c:
        yield c


class Counting:
    """A client whose POST /v1/runs requests are counted (each is one
    attempt of the current run: the client's retries included)."""

    def __init__(self, url: str, token_file: str) -> None:
        self.remote = sandcell.connect(url, token_file=token_file, retries=RETRIES, timeout=30)
        self.sent = 0
        orig = self.remote.endpoint.request

        def request(method: str, path: str, **kw: object) -> object:
            if method == "POST" and path == "/v1/runs":
                self.sent += 1
            return orig(method, path, **kw)  # type: ignore[arg-type]
        self.remote.endpoint.request = request  # type: ignore[assignment]


def test_through_haproxy_tokens_pass_untouched_and_events_stream(cluster: Cluster) -> None:
    """HAProxy forwards Authorization as sent (a good token runs, none
    and a wrong one get the server's own 401) and forwards a run's events
    as they come (the first line long before the report), before the
    load test below kills a server."""
    good = sandcell.connect(cluster.url, token_file=cluster.token_file)
    assert good.run("print('via proxy')").stdout == b"via proxy\n"
    for token in (None, "w" * 40):
        with pytest.raises(sandcell.BadRequest) as e:
            sandcell.connect(cluster.url, token=token).run("1")
        assert e.value.answer is not None and e.value.answer["status"] == "unauthorized"
    port = int(cluster.url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", "/v1/runs", body=json.dumps(
        {"code": "import time\nprint('first', flush=True)\ntime.sleep(2)\nprint('last')"}),
        headers={"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"})
    r = conn.getresponse()
    assert r.status == 200
    seen = []
    while True:
        line = r.readline()
        if not line:
            break
        ev = json.loads(line)
        seen.append((time.monotonic(), ev["ev"], ev.get("text")))
    conn.close()
    first = next(t for t, kind, text in seen if kind == "stream" and text == "first\n")
    report = next(t for t, kind, _ in seen if kind == "report")
    assert report - first > 1.5, "HAProxy held the stream back: %r" % seen

    # A client that goes away cancels its run on the server behind
    # (HAProxy closes that side too): docs/scaling.md, "Cancel by id".
    def cancelled() -> float:
        return sum(s.metric('sandcell_http_runs_total{status="cancelled"}')
                   for s in cluster.servers)
    before = cancelled()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", "/v1/runs", body=json.dumps(
        {"code": "import time\nprint('go', flush=True)\ntime.sleep(25)"}),
        headers={"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"})
    r = conn.getresponse()
    assert json.loads(r.readline())["ev"] == "run" and json.loads(r.readline())["ev"] == "stream"
    conn.close()
    t0 = time.monotonic()
    while cancelled() == before and time.monotonic() - t0 < 10:
        threading.Event().wait(0.05)
    assert cancelled() == before + 1, "closing the connection did not cancel the run behind"
    assert sum(s.metric("sandcell_http_runs_in_flight") for s in cluster.servers) == 0


def test_cancel_by_id_reaches_the_server_running_the_run(cluster: Cluster) -> None:
    """Silent runs on every server (leastconn spreads them), each
    cancelled by id through HAProxy: the stick table learned each id from
    its X-Sandcell-Run header, so every cancel reaches its run's server
    (202, never another server's 404) and each report says cancelled."""
    port = int(cluster.url.rsplit(":", 1)[1])
    runs = []
    for _ in range(len(cluster.servers)):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        conn.request("POST", "/v1/runs", body=json.dumps({"code": "import time\ntime.sleep(60)"}),
                     headers={"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"})
        r = conn.getresponse()
        assert r.status == 200
        rid = r.getheader("X-Sandcell-Run")
        assert json.loads(r.readline()) == {"ev": "run", "id": rid}
        runs.append((conn, r, rid))
    per_server = [s.metric("sandcell_http_runs_in_flight") for s in cluster.servers]
    assert per_server == [1.0] * len(cluster.servers), per_server
    for conn, r, rid in runs:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        c.request("POST", "/v1/runs/%s/cancel" % rid, body=b"",
                  headers={"Authorization": "Bearer " + TOKEN})
        answer = c.getresponse()
        assert answer.status == 202, (rid, answer.status, answer.read())
        c.close()
        rest = [json.loads(x) for x in r.read().splitlines()]
        assert [e["ev"] for e in rest] == ["report"] and rest[0]["report"]["status"] == "cancelled", rest
        conn.close()


CELL = "import time\ntime.sleep(0.1)\nn = globals().get('n', 0) + 1\nprint(n)"


def holders(cluster: Cluster) -> Dict[str, int]:
    """session id -> index of the server that holds it (each server still
    running asked directly)."""
    out: Dict[str, int] = {}
    for i, s in enumerate(cluster.servers):
        if s.proc.poll() is not None:
            continue
        direct = sandcell.connect("http://127.0.0.1:%d" % s.port, token_file=cluster.token_file)
        for info in direct.sessions():
            out[info.id] = i
    return out


def open_sessions(cluster: Cluster) -> Tuple[list, Dict[str, int]]:
    """SESSIONS sessions or more through HAProxy, until every server holds
    one (leastconn spreads them; bounded)."""
    remote = sandcell.connect(cluster.url, token_file=cluster.token_file, retries=RETRIES)
    sessions = []
    while len(sessions) < 3 * SESSIONS:
        sessions.append(remote.session())
        where = holders(cluster)
        if len(sessions) >= SESSIONS and len(set(where.values())) == len(cluster.servers):
            break
    where = holders(cluster)
    assert sorted(where) == sorted(x.id for x in sessions), "a session is held by no server"
    assert len(set(where.values())) == len(cluster.servers), "sessions not spread: %r" % where
    return sessions, where


#: A POST /v1/runs that HAProxy logged as answered whole (200, normal end),
#: with the time HAProxy accepted it.
WHOLE_RUN = re.compile(r'\[(\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d\.\d{3})\] \S+ '
                       r'sandcell/s\d \S+ 200 \d+ - - ---- \S+ \S+ "POST /v1/runs ')


def whole_runs_since(log: str, start: datetime.datetime) -> int:
    """Runs answered whole that HAProxy accepted at or after start: a
    request of an earlier test is logged when its stream ends, which can be
    after this test began, and must not count here."""
    return sum(1 for accepted in WHOLE_RUN.findall(log)
               if datetime.datetime.strptime(accepted, "%d/%b/%Y:%H:%M:%S.%f") >= start)


def test_a_server_killed_under_load(cluster: Cluster) -> None:
    victim = cluster.servers[VICTIM]
    # HAProxy logs the local time to the millisecond: the start, truncated so.
    now = datetime.datetime.now()
    start = now.replace(microsecond=now.microsecond // 1000 * 1000)
    sessions, where = open_sessions(cluster)
    on_victim = [x for x in sessions if where[x.id] == VICTIM]
    long_one = on_victim[0]        # the one with a cell running when its server dies
    long_started = threading.Event()
    # session id -> the outputs of its cells in order, and how it finished.
    cells: Dict[str, List[str]] = {x.id: [] for x in sessions}
    finished: Dict[str, str] = {}
    deadline = time.monotonic() + DEADLINE
    lock = threading.Lock()
    todo = iter(range(RUNS))
    # index -> ("ok", attempts) or ("error", what): exactly one entry each.
    outcomes: Dict[int, Tuple[str, object]] = {}
    twice: List[int] = []
    done = threading.Event()
    killed = threading.Event()
    kill_info: Dict[str, object] = {}

    def record(i: int, outcome: Tuple[str, object]) -> None:
        with lock:
            if i in outcomes:
                twice.append(i)
            outcomes[i] = outcome

    def one_shot() -> None:
        client = Counting(cluster.url, cluster.token_file)
        while time.monotonic() < deadline:
            with lock:
                i = next(todo, None)
            if i is None:
                return
            marker = "run-%d-%s" % (i, uuid.uuid4().hex)
            client.sent = 0
            try:
                # A quarter of a second of work: runs are in flight on
                # every server when one dies.
                res = client.remote.run("import time\ntime.sleep(0.25)\nprint(%r)" % marker)
            except sandcell.Error as e:
                record(i, ("error", "%s: %s (after %d attempts)" % (type(e).__name__, e,
                                                                    client.sent)))
                continue
            if res.status != "ok" or res.stdout != (marker + "\n").encode():
                record(i, ("error", "status %s, stdout %r" % (res.status, res.stdout[:200])))
            else:
                record(i, ("ok", client.sent))

    def killer() -> None:
        """After KILL_AFTER runs returned, once the victim has runs in
        flight (asked of it directly), SIGKILL its front end and warm server."""
        while time.monotonic() < deadline and not done.is_set():
            with lock:
                n = len(outcomes)
            if n >= KILL_AFTER and long_started.is_set() \
                    and victim.metric("sandcell_http_runs_in_flight") >= 1:
                kill_info["returned"] = n
                kill_info["in_flight"] = victim.metric("sandcell_http_runs_in_flight")
                victim.kill()
                killed.set()
                return
            done.wait(0.02)

    def session_cells(x: "sandcell.RemoteSession") -> None:
        """CELLS cells, half before the kill; the long one's session runs a
        cell that is still running when its server dies."""
        try:
            for k in range(CELLS):
                if k == CELLS // 2:
                    if x is long_one:
                        r = x.run("print('long', flush=True)\nimport time\ntime.sleep(120)",
                                  on_output=lambda o: long_started.set())
                        cells[x.id].append("long:" + r.status)
                    killed.wait(max(0.0, deadline - time.monotonic()))
                r = x.run(CELL)
                text = "".join(o.get("text", "") for o in r.outputs)
                cells[x.id].append(text if r.ok else "status:" + r.status)
            finished[x.id] = "done"
        except sandcell.SessionEnded as e:
            finished[x.id] = "ended: %s" % e
        except sandcell.Error as e:
            finished[x.id] = "error: %s: %s" % (type(e).__name__, e)

    threads = [threading.Thread(target=one_shot, name="run-%d" % k) for k in range(THREADS)]
    threads += [threading.Thread(target=session_cells, args=(x,), name="session-%d" % k)
                for k, x in enumerate(sessions)]
    kt = threading.Thread(target=killer, name="killer")
    for t in threads + [kt]:
        t.start()
    for t in threads:
        t.join(max(1.0, deadline - time.monotonic() + 60))
    done.set()
    kt.join(10)
    assert not any(t.is_alive() for t in threads + [kt]), "the load did not stop by itself"
    assert killed.is_set(), "the victim was never killed (no run in flight on it?)"

    # Every submitted request has exactly one final outcome, and it is a success.
    assert not twice, "runs with two outcomes: %r" % twice
    assert sorted(outcomes) == list(range(RUNS)), "lost: %r" % sorted(set(range(RUNS)) - set(outcomes))
    errors = {i: o[1] for i, o in outcomes.items() if o[0] != "ok"}
    assert not errors, "runs that did not succeed: %r" % dict(list(errors.items())[:5])
    attempts = [int(o[1]) for o in outcomes.values()]   # type: ignore[call-overload]
    first_time = sum(1 for a in attempts if a == 1)
    retried = sum(1 for a in attempts if a > 1)
    print("scaleout: %d runs: %d first time, %d on retry (attempts %r); killed with %d returned, "
          "%d in flight on %s" % (RUNS, first_time, retried, sorted(a for a in attempts if a > 1),
                                  kill_info["returned"], kill_info["in_flight"], victim.name))
    assert first_time + retried == RUNS
    # The runs in flight on the victim came back as a retryable failure
    # and were sent again by the client.
    assert retried >= 1, "no run was retried: the kill hit nothing in flight"
    assert max(attempts) <= RETRIES + 1

    # HAProxy writes a request's log line when its stream ends, which may
    # be just after the client read the report: wait for the lines (bounded).
    wait_until = time.monotonic() + 10
    while whole_runs_since(cluster.log(), start) < RUNS \
            and time.monotonic() < wait_until:
        threading.Event().wait(0.05)
    log = cluster.log()
    # What the kill looked like from HAProxy (for the reader of -s output).
    for line in log.splitlines():
        if "sandcell/%s " % victim.name in line and " ---- " not in line or "DOWN" in line:
            print("haproxy: " + line)
    assert re.search(r"Server sandcell/%s is DOWN" % victim.name, log), log[-3000:]
    # Requests that completed through HAProxy with a whole answer: one per
    # run returned (an attempt cut by the kill is not among them), so no
    # run was answered twice.
    whole = whole_runs_since(log, start)
    assert whole == RUNS, "%d whole answers for %d runs" % (whole, RUNS)
    assert TOKEN not in log and "Bearer" not in log, "HAProxy logged the token"
    # Sessions: the victim's ended (the one mid-cell saw it "killed"), the
    # others ran every cell exactly once, in order, in one interpreter.
    assert sorted(finished) == sorted(cells), "sessions without an outcome"
    counted = ["%d\n" % (k + 1) for k in range(CELLS // 2)]
    for x in sessions:
        if where[x.id] == VICTIM:
            assert finished[x.id].startswith("ended: "), (x.id, finished[x.id])
            assert not x.alive
            expect = counted + (["long:killed"] if x is long_one else [])
            assert cells[x.id] == expect, (x.id, cells[x.id])
            print("scaleout: session on %s: %s" % (victim.name, finished[x.id]))
        else:
            assert finished[x.id] == "done" and x.alive, (x.id, finished[x.id])
            assert cells[x.id] == ["%d\n" % (k + 1) for k in range(CELLS)], cells[x.id]
    assert any("ended: session %s ended: " % x.id in finished[x.id] for x in on_victim
               if x is not long_one) or on_victim == [long_one]
    # The survivors still hold their sessions; closing them ends them there.
    held = holders(cluster)
    assert {i for i in held.values()} <= set(range(len(cluster.servers))) - {VICTIM}
    assert sorted(held) == sorted(x.id for x in sessions if where[x.id] != VICTIM)
    for x in sessions:
        rep = x.close()
        if where[x.id] != VICTIM:
            assert rep is not None and rep.status == "ok", rep
    assert holders(cluster) == {}

    # The other servers are still there and ready.
    for i, s in enumerate(cluster.servers):
        if i != VICTIM:
            assert s.ready(), s.log()[-2000:]
