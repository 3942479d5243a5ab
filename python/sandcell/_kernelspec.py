"""The sandcell kernelspec (no Jupyter import: `make install` writes it)."""
from __future__ import annotations

import json
import sys
from typing import Dict, Optional

NAME = "sandcell"


def kernelspec(python: Optional[str] = None) -> Dict[str, object]:
    """kernel.json: Jupyter starts `python -m sandcell.kernel`.  Interrupts
    come as SIGINT to the kernel process, which interrupts the cell."""
    return {"argv": [python or sys.executable, "-m", "sandcell.kernel", "-f", "{connection_file}"],
            "display_name": "Python 3 (sandcell)", "language": "python",
            "interrupt_mode": "signal", "metadata": {"debugger": False}}


if __name__ == "__main__":
    print(json.dumps(kernelspec(sys.argv[1] if len(sys.argv) > 1 else None), indent=1))
