"""The ``hone`` command."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from service.config import Settings


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from service.app import create_app

    settings = Settings(host=args.host, port=args.port)
    app = create_app(settings)
    print(f"hone API on http://{args.host}:{args.port}/v1 (data dir {settings.data_dir})", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def _keys_create(args: argparse.Namespace) -> int:
    from service import auth
    from service.db.session import Database

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url)
    db.migrate()
    with db.session() as s:
        project = auth.get_or_create_project(s, args.project)
        key = auth.create_api_key(s, project)
    print(key)
    return 0


def _migrate(_: argparse.Namespace) -> int:
    from service.db.session import Database

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    Database(settings.resolved_database_url).migrate()
    print("database is at the newest revision")
    return 0


def _make_tiny_model(args: argparse.Namespace) -> int:
    from service.catalog.tiny import build_tiny_model

    print(build_tiny_model(Path(args.dir), seed=args.seed))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hone", description="Self-hosted OpenAI-compatible fine-tuning")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the API with its background loops")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(func=_serve)

    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", help="create a project (if new) and print a new API key")
    create.add_argument("--project", required=True)
    create.set_defaults(func=_keys_create)

    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=_migrate)

    tiny = sub.add_parser("make-tiny-model", help="build the tiny random-init test model")
    tiny.add_argument("dir")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.set_defaults(func=_make_tiny_model)

    args = parser.parse_args(argv)
    from service.observability import configure_logging

    configure_logging(logging.INFO)
    try:
        return int(args.func(args))
    except Exception as e:  # the CLI's user sees one line, not a traceback
        from service.errors import HoneError

        if isinstance(e, HoneError):
            print(f"error: {e.message}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
