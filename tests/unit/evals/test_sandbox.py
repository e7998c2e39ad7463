"""The python grader's sandbox, proven against the real thing: each test runs user code under
bubblewrap and checks that the limit it is about holds (no fakes, except the two tests at the end
that replace the bwrap lookup to show the grade is refused without a sandbox, and say so).

Where bubblewrap is missing or cannot create namespaces the tests skip, except in CI (``CI`` set),
where they fail: the proof must not vanish silently.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.evals import sandbox
from service.evals.config import PythonGraderSettings
from service.evals.sandbox import SandboxError, run_python_grade, sandbox_ready

FAST = PythonGraderSettings(enabled=True, cpu_seconds=2, memory_mb=128, timeout_s=20)


@pytest.fixture(autouse=True, scope="module")
def _needs_sandbox() -> None:
    reason = sandbox_ready()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the python grader's sandbox must be proven in CI: {reason}")
        pytest.skip(reason)


def grade_error(
    source: str, item: dict[str, object] | None = None, settings: PythonGraderSettings = FAST
) -> SandboxError:
    with pytest.raises(SandboxError) as info:
        run_python_grade(source, {"output_text": "x"}, item or {}, settings)
    return info.value


# --- a grade that works ------------------------------------------------------------------------


def test_a_correct_grade_returns_its_float() -> None:
    source = (
        "import json, re\n"
        "def grade(sample, item):\n"
        "    same = sample['output_text'].strip() == item['label']\n"
        "    return 1.0 if same and re.fullmatch(r'[a-z]+', json.loads(sample['output_json'])['w']) else 0.25\n"
    )
    sample = {"output_text": " paris ", "output_json": '{"w": "paris"}'}
    assert run_python_grade(source, sample, {"label": "paris"}, FAST) == 1.0
    assert run_python_grade(source, sample, {"label": "rome"}, FAST) == 0.25


def test_integers_and_bools_are_scores_and_a_missing_sample_stays_none() -> None:
    assert run_python_grade("def grade(s, i):\n    return 3\n", {}, {}, FAST) == 3.0
    assert run_python_grade("def grade(s, i):\n    return s is None\n", None, {}, FAST) == 1.0


def test_the_users_prints_cannot_forge_the_answer() -> None:
    source = (
        "import os, sys\n"
        "def grade(sample, item):\n"
        "    print('{\"score\": 99}')\n"
        "    sys.stdout.flush()\n"
        "    os.write(1, b'{\"score\": 98}\\n')\n"
        "    print('x' * 200000, file=sys.stderr)\n"
        "    return 0.5\n"
    )
    assert run_python_grade(source, {}, {}, FAST) == 0.5


# --- no network --------------------------------------------------------------------------------


def test_the_code_cannot_reach_a_server_on_the_hosts_loopback() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        source = (
            "import socket\n"
            "def grade(sample, item):\n"
            "    socket.create_connection(('127.0.0.1', item['port']), timeout=5).close()\n"
            "    return 1.0\n"
        )
        err = grade_error(source, {"port": port})
        assert err.kind == "runtime"
        assert "ConnectionRefusedError" in err.message
        with pytest.raises(BlockingIOError):
            listener.accept()  # the server saw no connection
        # Control: the same server does take a connection from outside the sandbox.
        with socket.create_connection(("127.0.0.1", port)):
            listener.setblocking(True)
            conn, _ = listener.accept()
            conn.close()


def test_the_only_network_interface_is_the_sandboxs_own_loopback() -> None:
    source = "import socket\ndef grade(sample, item):\n    return float(len(socket.if_nameindex()))\n"
    assert run_python_grade(source, {}, {}, FAST) == 1.0
    names = "import socket\ndef grade(sample, item):\n    return socket.if_nameindex()[0][1] == 'lo'\n"
    assert run_python_grade(names, {}, {}, FAST) == 1.0


# --- read-only filesystem ----------------------------------------------------------------------

WRITE = "def grade(sample, item):\n    with open(item['path'], 'w') as f:\n        f.write('escaped')\n    return 1.0\n"


def test_a_directory_the_test_can_write_is_not_writable_from_the_sandbox(tmp_path: Path) -> None:
    (tmp_path / "control.txt").write_text("the test itself can write here")
    target = tmp_path / "escaped.txt"
    err = grade_error(WRITE, {"path": str(target)})
    assert err.kind == "runtime"
    assert "Errno" in err.message and str(target) in err.message
    assert not target.exists()


@pytest.mark.parametrize(
    "where",
    ["home", "root", "tmp", "dev_shm", "interpreter_prefix"],
)
def test_no_path_is_writable(where: str) -> None:
    name = f"hone-sandbox-probe-{uuid.uuid4().hex}"
    directory = {
        "home": Path.home(),
        "root": Path("/"),
        "tmp": Path("/tmp"),
        "dev_shm": Path("/dev/shm"),
        "interpreter_prefix": Path(sys.base_prefix).resolve(),
    }[where]
    target = directory / name
    err = grade_error(WRITE, {"path": str(target)})
    assert err.kind == "runtime"
    assert "Read-only file system" in err.message or "No such file or directory" in err.message
    assert not target.exists()


def test_a_visible_path_fails_as_read_only_not_merely_as_missing() -> None:
    target = Path(sys.base_prefix).resolve() / f"hone-sandbox-probe-{uuid.uuid4().hex}"
    err = grade_error(WRITE, {"path": str(target)})
    assert "[Errno 30] Read-only file system" in err.message
    assert not target.exists()


def test_the_hosts_files_outside_the_interpreter_are_not_there_to_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("hunter2")
    source = "def grade(sample, item):\n    return float(open(item['path']).read() == 'hunter2')\n"
    err = grade_error(source, {"path": str(secret)})
    assert "FileNotFoundError" in err.message


# --- environment -------------------------------------------------------------------------------


def test_the_parents_environment_does_not_reach_the_code(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = f"s3cret-{uuid.uuid4().hex}"
    monkeypatch.setenv("HONE_SANDBOX_TEST_SECRET", secret)
    source = (
        "import os\n"
        "def grade(sample, item):\n"
        "    leaked = 'HONE_SANDBOX_TEST_SECRET' in os.environ\n"
        "    leaked = leaked or any(item['secret'] in v for v in os.environ.values())\n"
        "    for pid in [p for p in os.listdir('/proc') if p.isdigit()]:\n"
        "        try:\n"
        "            leaked = leaked or item['secret'].encode() in open(f'/proc/{pid}/environ', 'rb').read()\n"
        "        except OSError:\n"
        "            pass\n"
        "    return 0.0 if leaked else 1.0\n"
    )
    assert run_python_grade(source, {}, {"secret": secret}, FAST) == 1.0
    # Only what the sandbox sets (PATH, LANG), bubblewrap's PWD, and the interpreter's locale coercion.
    allowed = "{'PATH', 'LANG', 'PWD', 'LC_CTYPE'}"
    listing = f"import os\ndef grade(sample, item):\n    return float(set(os.environ) <= {allowed})\n"
    assert run_python_grade(listing, {}, {}, FAST) == 1.0


# --- CPU time ----------------------------------------------------------------------------------

GENEROUS_WALL_CLOCK = PythonGraderSettings(enabled=True, cpu_seconds=1, memory_mb=128, timeout_s=60)


def test_an_infinite_loop_is_stopped_by_the_cpu_time_limit() -> None:
    err = grade_error("def grade(sample, item):\n    while True:\n        pass\n", settings=GENEROUS_WALL_CLOCK)
    assert err.kind == "limit"
    assert "CPU-time limit of 1 s" in err.message


def test_ignoring_sigxcpu_does_not_escape_the_cpu_time_limit() -> None:
    source = (
        "import signal\n"
        "def grade(sample, item):\n"
        "    signal.signal(signal.SIGXCPU, signal.SIG_IGN)\n"
        "    while True:\n"
        "        pass\n"
    )
    err = grade_error(source, settings=GENEROUS_WALL_CLOCK)
    assert err.kind == "limit"
    assert "SIGKILL" in err.message and "CPU-time" in err.message


def test_the_code_cannot_raise_its_own_limits() -> None:
    source = (
        "import resource\n"
        "def grade(sample, item):\n"
        "    resource.setrlimit(resource.RLIMIT_CPU, (3600, 3600))\n"
        "    return 1.0\n"
    )
    err = grade_error(source)
    assert err.kind == "runtime"
    assert "ValueError" in err.message


# --- memory ------------------------------------------------------------------------------------


def test_allocating_far_beyond_the_memory_limit_fails_as_a_memory_limit() -> None:
    err = grade_error("def grade(sample, item):\n    b = bytearray(2 * 1024**3)\n    return 1.0\n")
    assert err.kind == "limit"
    assert "memory" in err.message and "128 MB" in err.message


def test_growing_until_memory_runs_out_is_reported_as_the_memory_limit() -> None:
    source = "def grade(sample, item):\n    chunks = []\n    while True:\n        chunks.append(bytearray(1024**2))\n"
    err = grade_error(source)
    assert err.kind == "limit"
    assert "memory" in err.message


def test_an_allocation_within_the_memory_limit_succeeds() -> None:
    source = "def grade(sample, item):\n    return float(len(bytearray(16 * 1024**2)) == 16 * 1024**2)\n"
    assert run_python_grade(source, {}, {}, FAST) == 1.0


# --- wall clock --------------------------------------------------------------------------------


def test_sleeping_past_the_wall_clock_limit_is_killed() -> None:
    settings = PythonGraderSettings(enabled=True, cpu_seconds=5, memory_mb=128, timeout_s=1)
    err = grade_error("import time\ndef grade(sample, item):\n    time.sleep(60)\n    return 1.0\n", settings=settings)
    assert err.kind == "limit"
    assert "wall-clock limit of 1 s" in err.message


def _processes_with(marker: str) -> list[str]:
    found = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            pass
    return found


@pytest.fixture
def marker() -> Iterator[str]:
    value = f"hone-sandbox-orphan-{uuid.uuid4().hex}"
    yield value
    for pid in _processes_with(value):  # never leave one behind, even when the test fails
        os.kill(int(pid), 9)


SPAWN = (
    "import os, sys, time\n"
    "def grade(sample, item):\n"
    "    pid = os.fork()\n"
    "    if pid == 0:\n"
    "        os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(120)', item['marker']])\n"
    "    while item['marker'].encode() not in open(f'/proc/{pid}/cmdline', 'rb').read():\n"
    "        time.sleep(0.01)\n"
    "    if item['then'] == 'sleep':\n"
    "        time.sleep(60)\n"
    "    return 1.0\n"
)


@pytest.mark.parametrize("then", ["return", "sleep"])
def test_processes_the_code_starts_die_with_the_grade(marker: str, then: str) -> None:
    """The grade starts a long-lived process and waits until it runs; whether the grade then returns
    or is killed at the wall-clock limit, that process is gone afterwards. (When hone does not run as
    root, RLIMIT_NPROC refuses the fork itself.)"""
    settings = PythonGraderSettings(enabled=True, cpu_seconds=5, memory_mb=128, timeout_s=3)
    item = {"marker": marker, "then": then}
    try:
        score: float | None = run_python_grade(SPAWN, {}, item, settings)
    except SandboxError as err:
        if err.kind == "runtime":
            assert os.geteuid() != 0 and "Resource temporarily unavailable" in err.message
            return
        assert then == "sleep" and err.kind == "limit" and "wall-clock" in err.message
        score = None
    assert score == (1.0 if then == "return" else None)
    # The kernel tears the pid namespace down as its first process dies; give it a moment.
    for _ in range(100):
        if not _processes_with(marker):
            break
        time.sleep(0.1)
    assert _processes_with(marker) == []


HOLDER = """
import os
from service.evals.config import PythonGraderSettings
from service.evals.sandbox import run_python_grade
from tests.unit.evals.test_sandbox import SPAWN
item = {"marker": os.environ["HONE_TEST_MARKER"], "then": "sleep"}
run_python_grade(SPAWN, {}, item, PythonGraderSettings(timeout_s=120))
"""


def test_a_grade_does_not_outlive_the_service(marker: str) -> None:
    """hone is killed (SIGKILL, no cleanup) while a grade and a process it started run: both go."""
    # The marker goes in the environment: in argv it would make the holder itself match.
    env = {**os.environ, "HONE_TEST_MARKER": marker}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER], cwd=Path(__file__).parents[3], env=env)
    try:
        for _ in range(200):
            if _processes_with(marker) or holder.poll() is not None:
                break
            time.sleep(0.05)
        if not _processes_with(marker):
            pytest.skip("RLIMIT_NPROC refused the fork (not root): nothing was started to outlive hone")
    finally:
        holder.kill()
        holder.wait()
    for _ in range(100):
        if not _processes_with(marker):
            break
        time.sleep(0.1)
    assert _processes_with(marker) == []


# --- the code's own failures -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("x = 1\n", "defines no function grade(sample, item)"),
        ("grade = 3\n", "defines no function grade(sample, item)"),
        ("def grade(sample, item):\n    raise ValueError('no label')\n", "ValueError: no label"),
        ("def grade(sample, item):\n    return 'high'\n", "returned str 'high', not a number"),
        ("def grade(sample, item):\n    return None\n", "returned NoneType None, not a number"),
        ("def grade(sample, item):\n    return float('nan')\n", "returned nan, not a finite number"),
        ("def grade(sample, item):\n    import sys\n    sys.exit(3)\n", "SystemExit: 3"),
        ("def grade(sample, item)\n    return 1\n", "SyntaxError"),
        ("import numpy\ndef grade(sample, item):\n    return 1\n", "No module named 'numpy'"),
    ],
)
def test_failures_of_the_code_are_runtime_errors_with_a_clear_message(source: str, expected: str) -> None:
    err = grade_error(source)
    assert err.kind == "runtime"
    assert expected in err.message


def test_a_traceback_shows_the_users_lines_not_the_sandboxs() -> None:
    source = "def helper(x):\n    return x['missing']\n\ndef grade(sample, item):\n    return helper(item)\n"
    err = grade_error(source)
    assert 'File "<grader>", line 2, in helper' in err.message
    assert "return x['missing']" in err.message
    assert "KeyError: 'missing'" in err.message
    assert "sandbox_child" not in err.message


# --- no sandbox, no grade (the bwrap lookup is replaced: a fake, on purpose) -------------------


def test_without_bubblewrap_the_grade_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    err = grade_error("def grade(sample, item):\n    return 1.0\n")
    assert err.kind == "server"
    assert "bubblewrap (bwrap) is not installed" in err.message


def test_a_sandbox_that_does_not_come_up_is_a_server_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: "/bin/false")
    err = grade_error("def grade(sample, item):\n    return 1.0\n")
    assert err.kind == "server"
    assert "could not start" in err.message
