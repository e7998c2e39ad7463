"""The ``hone`` command run in the test process. ``service.cli.main`` configures logging for a
real process (a stream handler on the stderr of the moment, level INFO); inside pytest that
stderr is a capture that is closed after the test, so every later log line of the session
would fail to write. ``run_cli`` puts the root logger back as it was."""

from __future__ import annotations

import logging

from service import cli


def run_cli(argv: list[str]) -> int:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        return cli.main(argv)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
