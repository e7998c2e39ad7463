"""The sandbox the ``python`` grader runs caller-supplied code in.

Every grade is a fresh interpreter (``python -I -S -B``: the standard library only, no site-packages,
no ``PYTHON*`` variables, no bytecode written) started under bubblewrap:

- no network: a new network namespace holds only its own loopback, so even 127.0.0.1 is not the host's;
- a read-only filesystem that shows only ``/usr`` and the interpreter's prefix (and ``/dev``, ``/proc`` of
  its own): no path is writable, and hone's data directory, config and home are not there to read;
- no environment: ``--clearenv``; the parent's variables (keys, database URLs) never reach the code;
- its own pid, ipc, uts, cgroup and user namespaces (uid 65534 inside, no capabilities, no further
  user namespaces); it dies with its parent;
- kernel limits set before the code runs (``sandbox_child.py``): RLIMIT_CPU ``cpu_seconds``, RLIMIT_AS
  ``memory_mb``, no file size, few files, and a wall-clock limit ``timeout_s`` after which the whole
  process tree is killed (the pid namespace goes with its first process).

There is no fallback: without a working bubblewrap the grade is refused (kind ``"server"``), never run
unconfined. Data goes in on stdin as JSON and the answer comes back as JSON lines read with a size
cap; nothing the code sends is evaluated here.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any, Literal

from service.evals.config import PythonGraderSettings

SandboxErrorKind = Literal["runtime", "limit", "server"]

CHILD_SCRIPT = Path(__file__).with_name("sandbox_child.py")
CHILD_PATH_INSIDE = "/sandbox/child.py"
ANSWER_CAP = 64 * 1024  # bytes of the child's answer read; more is a broken answer
STDERR_TAIL = 2000  # characters of the child's stderr kept for messages
SANDBOX_UID = 65534


class SandboxError(Exception):
    """A grade that produced no score. ``kind``: ``"runtime"`` the code raised, defines no ``grade`` or
    returned something that is not a finite number; ``"limit"`` it hit the CPU-time, memory or
    wall-clock limit (the message says which); ``"server"`` the sandbox itself could not be built."""

    def __init__(self, message: str, kind: SandboxErrorKind) -> None:
        super().__init__(message)
        self.message = message
        self.kind: SandboxErrorKind = kind


def interpreter() -> Path:
    """The base interpreter (not a venv's launcher, whose ``pyvenv.cfg`` would have to be visible)."""
    return Path(os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable))


def _bind_args() -> list[str]:
    """Read-only binds for ``/usr`` (with Debian's merged-usr symlinks), the interpreter's prefix and
    this child script; every other path of the host is absent."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "lib", "lib64", "lib32", "sbin"):
        host = Path("/") / name
        if host.is_symlink():
            args += ["--symlink", os.readlink(host), str(host)]
        elif host.is_dir():
            args += ["--ro-bind", str(host), str(host)]
    prefix = Path(sys.base_prefix).resolve()
    bound = [Path("/usr")]
    for extra in (prefix, interpreter().parent):
        if not any(extra.is_relative_to(b) for b in bound):
            args += ["--ro-bind", str(extra), str(extra)]
            bound.append(extra)
    args += ["--ro-bind", str(CHILD_SCRIPT), CHILD_PATH_INSIDE]
    return args


def build_command(bwrap: str, settings: PythonGraderSettings) -> list[str]:
    return [
        bwrap,
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--uid",
        str(SANDBOX_UID),
        "--gid",
        str(SANDBOX_UID),
        "--cap-drop",
        "ALL",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        "--setenv",
        "PATH",
        "/usr/bin:/bin",
        "--setenv",
        "LANG",
        "C.UTF-8",
        *_bind_args(),
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        # bubblewrap builds the root on a tmpfs: without these, / and /dev would be writable.
        "--remount-ro",
        "/dev",
        "--remount-ro",
        "/",
        "--chdir",
        "/",
        str(interpreter()),
        "-I",
        "-S",
        "-B",
        CHILD_PATH_INSIDE,
        str(settings.cpu_seconds),
        str(settings.memory_mb),
    ]


@functools.cache
def sandbox_ready() -> str | None:
    """Why the sandbox cannot run here (bubblewrap missing, namespaces refused), or None when it can.
    Checked once per process with a trivial grade."""
    if shutil.which("bwrap") is None:
        return "bubblewrap (bwrap) is not installed"
    try:
        score = run_python_grade("def grade(sample, item):\n    return 1\n", {}, {}, PythonGraderSettings())
    except SandboxError as exc:
        return f"the sandbox does not work here: {exc.message}"
    return None if score == 1.0 else f"the sandbox's probe grade returned {score}, not 1.0"


class _Reader(threading.Thread):
    """Drains one pipe so the child never blocks on it; keeps the first ``cap`` bytes (or the last, for
    stderr) and drops the rest, so a flood cannot fill the parent's memory."""

    def __init__(self, pipe: IO[bytes], cap: int, keep_tail: bool) -> None:
        super().__init__(daemon=True)
        self.pipe, self.cap, self.keep_tail = pipe, cap, keep_tail
        self.data = b""
        self.overflow = False

    def run(self) -> None:
        while chunk := os.read(self.pipe.fileno(), 65536):
            if self.keep_tail:
                self.data = (self.data + chunk)[-self.cap :]
            elif len(self.data) < self.cap:
                self.data += chunk[: self.cap - len(self.data)]
            else:
                self.overflow = True


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Kill bwrap's process group; the sandboxed processes die with it (``--die-with-parent``, and the
    pid namespace ends with its first process)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _start(command: list[str]) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={},
            close_fds=True,
            start_new_session=True,
        )
    except OSError as exc:
        raise SandboxError(f"the python grader's sandbox could not start: {exc}", "server") from exc


def _feed(proc: subprocess.Popen[bytes], payload: bytes) -> None:
    assert proc.stdin is not None
    with contextlib.suppress(BrokenPipeError):  # the child ended before reading it all: its exit status says why
        proc.stdin.write(payload)
        proc.stdin.close()


def run_python_grade(
    source: str, sample: dict[str, Any] | None, item: dict[str, Any], settings: PythonGraderSettings
) -> float:
    """Run ``grade(sample, item)`` defined by ``source`` in the sandbox and return its score. Blocks
    until the grade ends (call it from a worker thread in async code). Raises ``SandboxError``."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxError(
            "the python grader is enabled but bubblewrap (bwrap) is not installed: user code never runs "
            "without the sandbox",
            "server",
        )
    try:
        payload = json.dumps({"source": source, "sample": sample, "item": item}).encode()
    except (TypeError, ValueError) as exc:
        raise SandboxError(f"the grade's sample or item is not JSON: {exc}", "server") from exc
    proc = _start(build_command(bwrap, settings))
    assert proc.stdout is not None and proc.stderr is not None
    out = _Reader(proc.stdout, ANSWER_CAP, keep_tail=False)
    err = _Reader(proc.stderr, STDERR_TAIL, keep_tail=True)
    feeder = threading.Thread(target=_feed, args=(proc, payload), daemon=True)
    for thread in (out, err, feeder):
        thread.start()
    try:
        proc.wait(timeout=settings.timeout_s)
    except subprocess.TimeoutExpired:
        _kill(proc)
        raise SandboxError(
            f"the grade exceeded the wall-clock limit of {settings.timeout_s:g} s and was killed", "limit"
        ) from None
    except BaseException:
        _kill(proc)  # interrupted while waiting: leave nothing running
        raise
    finally:
        for thread in (out, err, feeder):
            thread.join(timeout=5)
    return _outcome(proc.returncode, out, err.data.decode(errors="replace"), settings)


def _outcome(returncode: int, out: _Reader, stderr: str, settings: PythonGraderSettings) -> float:
    """The score, or the SandboxError the child's answer and exit status describe."""
    lines = out.data.split(b"\n")
    if not lines or lines[0].strip() != b'{"started": true}':
        raise SandboxError(
            f"the python grader's sandbox could not start (exit status {returncode}): {stderr.strip()[-500:]}",
            "server",
        )
    signum = returncode - 128 if returncode > 128 else -returncode
    if signum == signal.SIGXCPU:
        raise SandboxError(f"the grade exceeded the CPU-time limit of {settings.cpu_seconds} s", "limit")
    if signum == signal.SIGKILL:
        raise SandboxError(
            f"the grade was killed (SIGKILL): it exceeded the CPU-time limit of {settings.cpu_seconds} s "
            f"or ran out of memory ({settings.memory_mb} MB)",
            "limit",
        )
    answer = _parse(lines[1] if len(lines) > 1 else b"")
    if answer is None:
        detail = f"; stderr: {stderr.strip()[-500:]}" if stderr.strip() else ""
        raise SandboxError(f"the grade ended (exit status {returncode}) without a result{detail}", "runtime")
    score = answer.get("score")
    if isinstance(score, (int, float)) and math.isfinite(score):
        return float(score)
    message = str(answer.get("message", "the grade failed"))
    if answer.get("error") == "memory":
        raise SandboxError(f"{message}: it exceeded the memory limit of {settings.memory_mb} MB", "limit")
    raise SandboxError(message, "runtime")


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
