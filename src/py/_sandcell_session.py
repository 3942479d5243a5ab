# The session loop (docs/sessions.md): STUB for the C side's tests; the
# real loop replaces this file.  Reads commands from fd 0, one JSON object
# per line ({"op": "run", "id", "code"} and {"op": "input", "id", "value"}),
# runs each cell in one globals dict and answers on the channel (fd 3):
# O records for what the cell prints, E for an exception, I for input(),
# D when the cell is done.  Not a security boundary: the kernel layers are.
import builtins
import io
import json
import os
import sys

_FD = int(os.environ.get("SANDCELL_RESULT_FD", "3"))


def _send(tag, obj):
    # type: (str, object) -> None
    data = (tag + " " + json.dumps(obj) + "\n").encode("utf-8", "surrogatepass")
    while data:
        n = os.write(_FD, data)
        data = data[n:]


class _Stream(io.TextIOBase):
    def __init__(self, name):
        # type: (str) -> None
        self.name = name

    def write(self, text):
        # type: (str) -> int
        if text:
            _send("O", {"output_type": "stream", "name": self.name, "text": text})
        return len(text)



def main():
    # type: () -> None
    commands = os.fdopen(0, "rb", buffering=0)
    g = {"__name__": "__main__", "__builtins__": builtins}
    sys.stdout = _Stream("stdout")  # type: ignore[assignment]
    sys.stderr = _Stream("stderr")  # type: ignore[assignment]
    state = {"id": ""}  # type: dict[str, str]

    def read_command():
        # type: () -> dict[str, str] | None
        line = b""
        while not line.endswith(b"\n"):
            b = commands.read(1)
            if not b:
                return None
            line += b
        cmd = json.loads(line)  # type: dict[str, str]
        return cmd

    def ask(prompt=""):
        # type: (object) -> str
        _send("I", {"id": state["id"], "prompt": str(prompt), "password": False})
        cmd = read_command()
        if cmd is None:
            raise EOFError
        return str(cmd["value"])

    builtins.input = ask
    count = 0
    while True:
        cmd = read_command()
        if cmd is None:
            return
        if cmd.get("op") != "run":
            continue
        count += 1
        state["id"] = cmd["id"]
        status = "ok"
        try:
            exec(compile(cmd["code"], "<cell>", "exec"), g)
        except KeyboardInterrupt:
            status = "interrupted"
        except BaseException as e:
            status = "error"
            _send("E", {"ename": type(e).__name__, "evalue": str(e), "traceback": [repr(e)]})
        _send("D", {"id": cmd["id"], "execution_count": count, "status": status})
