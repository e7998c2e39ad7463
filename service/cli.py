"""The ``hone`` command."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from service.config import Settings

if TYPE_CHECKING:
    from service.catalog.catalog import Catalog

FIRST_ADMIN_KEY_LOCK = "first-admin-key"
VLLM_LAUNCHER = "inference.launch"  # reached by name: the API image does not ship the inference package


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from service import ui
    from service.app import create_app

    settings = Settings(host=args.host, port=args.port)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    _first_admin_key(settings)
    app = create_app(settings)
    print(
        f"hone API on http://{args.host}:{args.port}/v1, dashboard on http://{args.host}:{args.port}{ui.PATH}/ "
        f"(data dir {settings.data_dir})",
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def _up(args: argparse.Namespace) -> int:
    """The embedded default: API + loops + local trainer launcher + one vLLM per base model."""
    import uvicorn

    from service import ui
    from service.app import create_app
    from service.catalog.catalog import Catalog, default_catalog

    settings = Settings(host=args.host, port=args.port, stop_trainers_on_exit=True)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    catalog = (
        Catalog.from_yaml(settings.catalog_path)
        if settings.catalog_path
        else default_catalog(settings.data_dir, settings.models)
    )
    key = _embedded_key(settings)
    _first_admin_key(settings)
    if settings.gateway.upstream_api_key is None:  # the vLLM servers below answer only the gateway
        settings.gateway.upstream_api_key = SecretStr(secrets.token_urlsafe(32))
    app = create_app(settings, catalog=catalog)
    ctx = app.state.ctx
    servers: list[Any] = []
    if args.no_vllm or importlib.util.find_spec("vllm") is None or importlib.util.find_spec(VLLM_LAUNCHER) is None:
        print("vLLM is not installed (or --no-vllm): training works, chat completions answer 503", flush=True)
    else:
        servers = _start_vllm(
            settings, catalog, on_restart=lambda name, n: ctx.metrics.upstream_restarts.labels(name).inc()
        )
        ctx.readiness.extend(_readiness(s) for s in servers)
    try:
        print(
            f"\nhone is up\n  base URL:  http://{args.host}:{args.port}/v1\n"
            f"  dashboard: http://{args.host}:{args.port}{ui.PATH}/ (sign in with the API key)\n  API key:   {key}\n"
            f"  models:    {', '.join(e.name for e in catalog)}\n  data dir:  {settings.data_dir}\n"
            "Ctrl-C stops everything.\n",
            flush=True,
        )
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    finally:
        for server in servers:
            server.stop()
    return 0


def _embedded_key(settings: Settings) -> str:
    """One key for the embedded default, kept (mode 0600) in the data dir so every `hone up`
    prints the same one; the database still stores only its hash."""
    import os

    from service import auth
    from service.db.session import Database

    path = settings.data_dir / "api-key"
    if path.exists():
        return path.read_text().strip()
    db = Database(settings.resolved_database_url)
    db.migrate()
    with db.session() as s:
        key = auth.create_api_key(s, auth.get_or_create_project(s, "default"))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    db.dispose()
    return key


def _first_admin_key(settings: Settings) -> None:
    """On the first start (no admin key in the database): create the organization admin key and
    print it, once. The database keeps only its hash; `hone admin-keys create` makes another."""
    from service import auth
    from service.db import locks
    from service.db.session import Database

    db = Database(settings.resolved_database_url)
    try:
        db.migrate()
        with db.session() as s:
            # Replicas starting together on a new database: one creates the key, the others then see it.
            locks.wait_lock(s.connection(), FIRST_ADMIN_KEY_LOCK)
            if auth.has_admin_key(s):
                return
            row, secret = auth.create_admin_key(s, "first admin key")
    finally:
        db.dispose()
    _print_admin_key(secret, row.id, first=True)


def _print_admin_key(secret: str, key_id: str, *, first: bool) -> None:
    what = "the first organization admin key" if first else "a new organization admin key"
    print(
        f"\n{'=' * 72}\nhone created {what} ({key_id}). It is shown ONLY NOW; store it safely:\n\n"
        f"    {secret}\n\n"
        "It manages projects, their API keys and service accounts, and usage (/v1/organization/...):\n"
        "    OpenAI(base_url=..., api_key=..., admin_api_key=<this key>)\n"
        f"Lost it? `hone admin-keys create` prints another.\n{'=' * 72}\n",
        flush=True,
    )


def _admin_keys_create(args: argparse.Namespace) -> int:
    from service import auth
    from service.db.session import Database

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url)
    try:
        db.migrate()
        with db.session() as s:
            row, secret = auth.create_admin_key(s, args.name)
    finally:
        db.dispose()
    if args.quiet:
        print(secret)
    else:
        _print_admin_key(secret, row.id, first=False)
    return 0


def _readiness(supervisor: Any) -> Callable[[], str | None]:
    name = supervisor.server.cfg.name
    return lambda: None if supervisor.ready else f"vLLM for {name} is {supervisor.state}"


def _start_vllm(settings: Settings, catalog: Catalog, on_restart: Callable[[str, int], None]) -> list[Any]:
    """One supervised vLLM per catalog base model without upstreams: restarted with backoff if it
    dies, its whole process group stopped at exit. The inference package ships with ``hone up``
    (the embedded default) but not in the API image, so it is reached by name."""
    import socket

    launch = importlib.import_module(VLLM_LAUNCHER)
    VllmConfig, VllmServer, Supervisor = launch.VllmConfig, launch.VllmServer, launch.Supervisor

    servers = []
    for entry in catalog:
        if entry.upstreams:
            continue  # served elsewhere
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        cfg = VllmConfig(
            name=entry.name,
            source=entry.source,
            storage_url=settings.resolved_storage_url,
            cache_dir=settings.data_dir / "adapter-cache" / entry.name,
            port=port,
            max_lora_rank=entry.max_lora_rank,
            max_model_len=entry.resolved_context_length(),
            runner=entry.runner,
            cpu=settings.accelerator == "cpu",
            api_key=settings.gateway.upstream_api_key.get_secret_value() if settings.gateway.upstream_api_key else None,
        )
        server = VllmServer(cfg, settings.data_dir / "logs" / f"vllm-{entry.name}.log")
        print(f"starting vLLM for {entry.name} on 127.0.0.1:{port} (log: {server.log_path})", flush=True)
        supervisor = Supervisor(server, on_restart=on_restart)
        servers.append(supervisor)
        try:
            supervisor.start()
        except BaseException:
            for started in servers:
                started.stop()
            raise
        entry.upstreams = [server.url]
    return servers


def _keys_create(args: argparse.Namespace) -> int:
    from service import auth
    from service.db.session import Database
    from service.errors import InvalidRequest

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url)
    db.migrate()
    with db.session() as s:
        project = auth.get_or_create_project(s, args.project)
        if project.archived_at is not None:
            raise InvalidRequest(f"Project {args.project!r} is archived: a new key would not authenticate.")
        key = auth.create_api_key(s, project, name=args.name)
    print(key)
    return 0


def _migrate(_: argparse.Namespace) -> int:
    from service.db.session import Database

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    Database(settings.resolved_database_url).migrate()
    print("database is at the newest revision")
    return 0


def _make_model(args: argparse.Namespace) -> int:
    """Build one built-in model into ``--out``, or ``data_dir/models/NAME`` (the directory the
    default catalog uses, so a later ``hone up`` with it in ``HONE_MODELS`` finds it built)."""
    from service.catalog import builtin

    builtin.get(args.name)  # an unknown name is refused before anything else
    if args.out is not None:
        target = Path(args.out)
    else:
        data_dir = Path(args.data_dir) if args.data_dir is not None else Settings().data_dir
        target = data_dir / "models" / args.name
    if builtin.is_built(target):
        print(f"{args.name} is already built in {target} (delete that directory to build it again)", flush=True)
    else:
        print(f"building {args.name} into {target}", flush=True)
        builtin.build(args.name, target)
    print(target, flush=True)
    return 0


def _make_tiny_model(args: argparse.Namespace) -> int:
    from service.catalog.tiny import build_tiny_model

    print(build_tiny_model(Path(args.dir), seed=args.seed))
    return 0


def _eval_compare(args: argparse.Namespace) -> int:
    """A client command: talks to a running hone over HTTP (``--base-url``/``--api-key``, else
    OPENAI_BASE_URL/OPENAI_API_KEY, else ``hone up``'s address and the key in its data dir)."""
    import os

    from service.evals import compare

    base_url = args.base_url or os.environ.get("OPENAI_BASE_URL") or "http://127.0.0.1:8000/v1"
    api_key = args.api_key or os.environ.get("OPENAI_API_KEY")
    if api_key is None and (key_file := Settings().data_dir / "api-key").exists():
        api_key = key_file.read_text().strip()
    if not api_key:
        print("error: no API key: pass --api-key or set OPENAI_API_KEY", file=sys.stderr)
        return 2
    opts = compare.Options(
        job_id=args.job_id,
        file_id=args.file,
        grader=args.grader,
        pass_threshold=args.pass_threshold,
        max_tokens=args.max_tokens,
        timeout_s=args.timeout,
    )
    return compare.main(opts, base_url, api_key, as_json=args.json)


def keep_torch_out() -> None:
    """The control plane needs tokenizers, never torch; but transformers imports torch whenever
    it is installed (as it is beside ``hone up``'s trainers): ~375 MB in every API process at
    rest. Blocking the module before transformers loads makes it see no torch (its tokenizers
    need none); trainer and vLLM subprocesses are separate processes and unaffected."""
    if "torch" not in sys.modules:
        sys.modules["torch"] = None  # type: ignore[assignment]  # import torch -> ImportError; find_spec -> None


def main(argv: list[str] | None = None) -> int:
    keep_torch_out()
    parser = argparse.ArgumentParser(prog="hone", description="Self-hosted OpenAI-compatible fine-tuning")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the API with its background loops")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(func=_serve)

    up = sub.add_parser("up", help="run everything on this machine: API, trainers, vLLM")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=8000)
    up.add_argument("--log-level", default="warning")
    up.add_argument("--no-vllm", action="store_true", help="do not start vLLM servers")
    up.set_defaults(func=_up)

    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", help="create a project (if new) and print a new API key")
    create.add_argument("--project", required=True)
    create.add_argument("--name", default="hone keys create", help="the key's name in the Admin API")
    create.set_defaults(func=_keys_create)

    admin_keys = sub.add_parser("admin-keys", help="manage organization admin keys").add_subparsers(
        dest="admin_keys_command", required=True
    )
    admin_create = admin_keys.add_parser("create", help="create an organization admin key and print it once")
    admin_create.add_argument("--name", default="admin key (hone admin-keys create)")
    admin_create.add_argument("--quiet", action="store_true", help="print only the key")
    admin_create.set_defaults(func=_admin_keys_create)

    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=_migrate)

    from service.catalog.builtin import BUILTIN_MODELS

    make = sub.add_parser(
        "make-model",
        help="build a built-in base model into the data dir",
        description="Build one of the built-in models: "
        + "; ".join(f"{m.name}: {m.summary}" for m in BUILTIN_MODELS.values()),
    )
    make.add_argument("name", metavar="NAME", help=f"one of: {', '.join(BUILTIN_MODELS)}")
    make.add_argument("--data-dir", default=None, help="build into DATA_DIR/models/NAME (default: HONE_DATA_DIR)")
    make.add_argument("--out", default=None, help="build into this directory instead")
    make.set_defaults(func=_make_model)

    tiny = sub.add_parser("make-tiny-model", help="build the tiny random-init test model into DIR (any seed)")
    tiny.add_argument("dir")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.set_defaults(func=_make_tiny_model)

    evals = sub.add_parser("eval", help="evaluate models (client of a running hone)").add_subparsers(
        dest="eval_command", required=True
    )
    cmp = evals.add_parser(
        "compare",
        help="grade a fine-tuned model against its base on held-out examples",
        description="Create one eval and two runs (the job's base model and its fine-tuned model) on the job's "
        "validation file or --file, wait, and print the pass rates and the items whose outcome changed.",
    )
    cmp.add_argument("job_id", metavar="FTJOB_ID", help="a succeeded fine-tuning job")
    cmp.add_argument("--file", default=None, help="held-out chat JSONL file id (default: the job's validation file)")
    cmp.add_argument("--grader", choices=["string_check", "fuzzy_match"], default="string_check")
    cmp.add_argument("--pass-threshold", type=float, default=0.9, help="fuzzy_match score that passes")
    cmp.add_argument("--max-tokens", type=int, default=64, help="max_completion_tokens of each answer")
    cmp.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for the runs")
    cmp.add_argument("--base-url", default=None, help="hone's /v1 URL (default: OPENAI_BASE_URL, else hone up's)")
    cmp.add_argument("--api-key", default=None, help="default: OPENAI_API_KEY, else hone up's key")
    cmp.add_argument("--json", action="store_true", help="print the comparison as JSON on stdout")
    cmp.set_defaults(func=_eval_compare, log_level="warning")

    args = parser.parse_args(argv)
    from service.observability import configure_logging

    configure_logging(getattr(logging, str(getattr(args, "log_level", "info")).upper(), logging.INFO))
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
