"""Object ids in OpenAI's shapes: a prefix plus random base62 characters."""

from __future__ import annotations

import secrets
import string

_ALPHABET = string.ascii_letters + string.digits


def random_token(n: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def file_id() -> str:
    return "file-" + random_token(24)


def job_id() -> str:
    return "ftjob-" + random_token(24)


def event_id() -> str:
    return "ftevent-" + random_token(24)


def checkpoint_id() -> str:
    return "ftckpt-" + random_token(24)


def project_id() -> str:
    return "proj_" + random_token(24)


def model_short_id() -> str:
    return random_token(8)


def admin_key_id() -> str:
    return "key_" + random_token(16)


def api_key_id() -> str:
    return "key_" + random_token(16)


def service_account_id() -> str:
    return "svc_acct_" + random_token(24)


def checkpoint_permission_id() -> str:
    return "cp_" + random_token(24)


def upload_id() -> str:
    return "upload_" + random_token(24)


def upload_part_id() -> str:
    return "part_" + random_token(24)


def eval_id() -> str:
    return "eval_" + random_token(32)


def eval_run_id() -> str:
    return "evalrun_" + random_token(32)


def eval_output_item_id() -> str:
    return "outputitem_" + random_token(32)
