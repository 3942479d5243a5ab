"""Helpers shared by the integration tests (black-box: CLI only)."""
import hashlib
import json
import os


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


def host_files(root):
    """Every regular file below root, as relative '/'-separated paths."""
    out = []
    for d, _dirs, files in os.walk(root):
        for name in files:
            out.append(os.path.relpath(os.path.join(d, name), root).replace(os.sep, "/"))
    return sorted(out)


def last_json_line(text):
    """The last line of text that parses as JSON (what the code printed)."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith(("{", "[")):
            return json.loads(line)
    raise AssertionError("no JSON line in %r" % text[-2000:])


def assert_limit_stop(run, status, rc, reason_words):
    """A run stopped by a limit: documented status, exit code, a reason
    naming the limit in the report and the one-line cause on stderr."""
    assert run.report is not None, run
    assert run.status == status, run
    assert run.rc == rc, run
    assert run.report["exit_code"] == rc, run
    reason = run.report["reason"]
    assert isinstance(reason, str) and reason, run
    for w in reason_words:
        assert w in reason.lower(), (w, reason)
    assert ("sandcell: %s" % status) in run.err, run
    assert run.report["script"]["started"] is True, run
    assert run.report["error"] is None, run
