#!/usr/bin/env bash
# The test command: set up, check lint, format, types and the import rules, then run the whole
# suite on SQLite, and again on PostgreSQL when one answers on 127.0.0.1:5432 (CI always has
# one; tests create and drop their own databases), all but the tests marked db_incidental.
set -uo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh || exit 1

echo "== ruff (lint, format check), mypy =="
.venv/bin/ruff check . || exit 1
.venv/bin/ruff format --check . || exit 1
.venv/bin/mypy || exit 1

run() {
  .venv/bin/python -m pytest --durations=25 "$@"  # the slowest, to keep CI within its time
  local rc=$?
  if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests for: $*" >&2
    return 1
  fi
  return "$rc"
}

run tests || exit $?

PG_URL="${HONE_TEST_POSTGRES:-postgresql+psycopg://postgres@127.0.0.1:5432/postgres}"
if .venv/bin/python -c "import sys, sqlalchemy as sa; sa.create_engine(sys.argv[1]).connect().close()" "$PG_URL" 2>/dev/null; then
  # Every test whose subject involves the database, again; those marked db_incidental (vLLM
  # serving, model conversion, blob streaming, pod commands) ran once above.
  echo "== the suite again on PostgreSQL (all but db_incidental) =="
  HONE_TEST_POSTGRES="$PG_URL" run tests -m "not db_incidental" || exit $?
else
  echo "PostgreSQL not reachable at $PG_URL: skipped the PostgreSQL pass" >&2
  if [ "${CI:-}" = "true" ]; then exit 1; fi
fi
