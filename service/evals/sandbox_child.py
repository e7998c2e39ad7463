"""The script a ``python`` grade runs inside the sandbox (see ``service/evals/sandbox.py``).

It runs as ``python -I -S -B child.py CPU_SECONDS MEMORY_MB`` under bubblewrap: the standard library
only (``-S`` leaves site-packages off ``sys.path``), no writable path, no network. It imports nothing
from hone on purpose: the sandbox binds this one file, not the project.

Protocol: the parent writes ``{"source", "sample", "item"}`` as JSON on stdin. The child answers on
its original stdout, one JSON object a line: first ``{"started": true}`` once the limits are set (so
the parent can tell a sandbox that never came up from user code that failed), then exactly one of
``{"score": float}``, ``{"error": "runtime", "message": ...}`` or ``{"error": "memory", "message": ...}``.
The user's own ``print`` output goes to stderr, so it cannot corrupt the answer.
"""

from __future__ import annotations

import json
import linecache
import math
import os
import resource
import sys
import traceback
from typing import Any

GRADER_FILENAME = "<grader>"
MESSAGE_LIMIT = 2000
# Built before user code runs: once the address space is exhausted there may be no memory left
# to build a message with.
MEMORY_ANSWER = (
    json.dumps({"error": "memory", "message": "the grade ran out of memory (MemoryError)"}) + "\n"
).encode()


def set_limits(cpu_seconds: int, memory_mb: int) -> None:
    """The kernel enforces these on this process and whatever it starts, whatever the user code does:
    without CAP_SYS_RESOURCE (bubblewrap drops every capability) a hard limit cannot be raised."""
    limits = {
        # SIGXCPU at the soft limit; SIGKILL one second later if the code ignores SIGXCPU.
        resource.RLIMIT_CPU: (cpu_seconds, cpu_seconds + 1),
        resource.RLIMIT_AS: (memory_mb * 1024 * 1024, memory_mb * 1024 * 1024),
        resource.RLIMIT_FSIZE: (0, 0),
        resource.RLIMIT_CORE: (0, 0),
        resource.RLIMIT_NOFILE: (32, 32),
        # Enforced only when the service does not run as root (the kernel exempts uid 0).
        resource.RLIMIT_NPROC: (1, 1),
    }
    for which, value in limits.items():
        resource.setrlimit(which, value)


def format_error(exc: BaseException) -> str:
    """The traceback of the user's code only (this script's frames are dropped), truncated from the
    front so the exception line itself always survives."""
    te = traceback.TracebackException.from_exception(exc)
    te.stack = traceback.StackSummary.from_list([f for f in te.stack if f.filename == GRADER_FILENAME])
    text = "".join(te.format()).strip()
    if len(text) > MESSAGE_LIMIT:
        text = "..." + text[-MESSAGE_LIMIT:]
    return text


def grade(source: str, sample: Any, item: Any) -> dict[str, Any]:
    linecache.cache[GRADER_FILENAME] = (len(source), None, source.splitlines(True), GRADER_FILENAME)
    namespace: dict[str, Any] = {"__name__": "grader", "__builtins__": __builtins__}
    exec(compile(source, GRADER_FILENAME, "exec"), namespace)
    fn = namespace.get("grade")
    if not callable(fn):
        return {"error": "runtime", "message": "the source defines no function grade(sample, item)"}
    value = fn(sample, item)
    if not isinstance(value, (int, float)):
        return {
            "error": "runtime",
            "message": f"grade() returned {type(value).__name__} {repr(value)[:100]}, not a number",
        }
    score = float(value)
    if not math.isfinite(score):
        return {"error": "runtime", "message": f"grade() returned {score}, not a finite number"}
    return {"score": score}


def main() -> None:
    answer_fd = os.dup(1)
    os.dup2(2, 1)  # the user's prints go to stderr
    set_limits(int(sys.argv[1]), int(sys.argv[2]))
    os.write(answer_fd, b'{"started": true}\n')
    payload = json.loads(sys.stdin.buffer.read())
    try:
        try:
            answer = grade(payload["source"], payload["sample"], payload["item"])
        except MemoryError:
            raise
        except BaseException as exc:  # noqa: BLE001 - SystemExit and KeyboardInterrupt from user code too
            answer = {"error": "runtime", "message": format_error(exc)}
        os.write(answer_fd, (json.dumps(answer) + "\n").encode())
    except MemoryError:
        # Formatting the answer can run out of memory too; the prepared answer needs none.
        os.write(answer_fd, MEMORY_ANSWER)
    # Neither atexit handlers nor threads the user code left behind get to run on.
    os._exit(0)


if __name__ == "__main__":
    main()
