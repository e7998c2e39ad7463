"""A pod's container run on this machine with bubblewrap (no container engine works here): its
real command, its env, its user id and a read-only root filesystem where only the pod's declared
volumes are writable.

What is the pod's and what stands in for the cluster:

* the root filesystem is this machine's, bound read-only file by file onto an empty root that is
  then remounted read-only, so nothing outside the volumes can be written (not even a new
  directory at ``/``); ``/tmp`` is an empty read-only directory, as in an image; ``/proc`` and
  ``/dev`` are fresh, the network is this machine's (the test reaches the pod on 127.0.0.1);
* each declared volume is bound at its ``mountPath``: an ``emptyDir`` is a new directory (mode
  0777, as the kubelet makes it), a ``persistentVolumeClaim`` is the directory the test hands in
  for that claim (read-only when the volume or the mount says so), a ``configMap`` or ``secret``
  is written from the rendered object into a read-only directory (a secret's files get its
  ``defaultMode``, group-owned by ``fsGroup`` and group-readable, as the kubelet does);
* the command runs as the pod's ``runAsUser``/``runAsGroup`` with ``fsGroup`` as a supplementary
  group, no capabilities and no_new_privs: as root, bwrap sets up the mounts and ``setpriv`` drops
  to that real uid (so file permissions are checked as in the pod); as another user, bwrap's user
  namespace maps the uid (``--uid``) and permissions are checked as the invoking user;
* the env is the Dockerfile's ``ENV`` for the image's stage, then ``envFrom``, then ``env`` (later
  wins, as in Kubernetes), ``$(VAR)`` expanded in env values, command and args;
* STAND-INS, named where they are made: this repository's ``.venv`` is the image's Python (its
  ``bin`` first on ``PATH``) and the repository on ``PYTHONPATH`` is the image's ``pip install .``;
  the test replaces the values that name cluster addresses (database, S3 endpoint, public URL,
  listen port) through ``env_overrides`` / ``args``.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
BWRAP = shutil.which("bwrap")
_SKIP_AT_ROOT = {"proc", "dev", "tmp"}  # made fresh in the sandbox


def render(path: str | Path) -> list[dict[str, Any]]:
    """``kubectl kustomize PATH`` as a list of objects."""
    out = subprocess.run(
        ["kubectl", "kustomize", str(path)], check=True, capture_output=True, text=True, timeout=120
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def find(docs: Iterable[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    """The pod spec of a Deployment, StatefulSet or Job."""
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def dockerfile_stage(image: str, dockerfile: Path = REPO / "Dockerfile") -> tuple[dict[str, str], dict[int, str]]:
    """(``ENV``, ``useradd`` users by uid) of the Dockerfile stage that builds ``image`` (its
    repository's last component, e.g. ``ghcr.io/hone/trainer-cpu:0.1.0`` -> stage ``trainer-cpu``,
    else ``trainer``)."""
    repo_name = image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]
    stages: dict[str, list[str]] = {}
    current: list[str] | None = None
    text = dockerfile.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        m = re.match(r"\s*FROM\s+\S+(?:\s+AS\s+(\S+))?", line, re.I)
        if m:
            current = stages.setdefault((m.group(1) or "").lower(), [])
        elif current is not None:
            current.append(line)
    for name in (repo_name, repo_name.removesuffix("-cpu")):
        if name in stages:
            env: dict[str, str] = {}
            users: dict[int, str] = {}
            for line in stages[name]:
                if re.match(r"\s*ENV\s", line, re.I):
                    for key, value in re.findall(r'(\w+)=("[^"]*"|\S+)', line.split(None, 1)[1]):
                        env[key] = value.strip('"')
                for uid, user in re.findall(
                    r"useradd\b[^&|;]*?--uid\s+(\d+)[^&|;]*?\s([a-z_][a-z0-9_-]*)\s*(?:$|&&|\|\||;|\))", line
                ):
                    users[int(uid)] = user
            return env, users
    raise AssertionError(f"no Dockerfile stage builds {image} (stages: {sorted(stages)})")


def _expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: defined names are replaced, others left as written."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), value)


def _object_data(obj: dict[str, Any]) -> dict[str, str]:
    data = (
        {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
        if obj["kind"] == "Secret"
        else dict(obj.get("data") or {})
    )
    data.update(obj.get("stringData") or {})
    return data


@dataclass
class PodSandbox:
    """The volumes of one pod (shared by its containers) and the way to run its containers."""

    pod: dict[str, Any]
    workdir: Path
    objects: list[dict[str, Any]] = field(default_factory=list)  # rendered ConfigMaps and Secrets
    claims: dict[str, Path] = field(default_factory=dict)  # PVC claimName -> a directory standing for it
    pod_name: str = "pod-0"
    namespace: str = "hone"
    volume_dirs: dict[str, Path] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        sec = self.pod.get("securityContext") or {}
        self.fs_group = sec.get("fsGroup")
        for vol in self.pod.get("volumes") or []:
            name = vol["name"]
            if "emptyDir" in vol:
                path = self.workdir / "emptydir" / name
                path.mkdir(parents=True)
                path.chmod(0o777)
            elif "persistentVolumeClaim" in vol:
                claim = vol["persistentVolumeClaim"]["claimName"]
                assert claim in self.claims, f"the pod mounts PVC {claim!r}: the test must hand in a directory for it"
                path = self.claims[claim]
                if self.fs_group is not None and os.geteuid() == 0 and not vol["persistentVolumeClaim"].get("readOnly"):
                    os.chown(path, -1, self.fs_group)  # the kubelet gives a writable claim to fsGroup
                    path.chmod(0o2775)
            elif "configMap" in vol or "secret" in vol:
                kind, ref = (
                    ("ConfigMap", vol["configMap"]["name"])
                    if "configMap" in vol
                    else ("Secret", vol["secret"]["secretName"])
                )
                path = self.workdir / kind.lower() / name
                path.mkdir(parents=True)
                obj = find(self.objects, kind, ref)
                mode = (vol.get("configMap") or vol.get("secret") or {}).get("defaultMode", 0o644)
                for key, value in _object_data(obj).items():
                    f = path / key
                    f.write_text(value)
                    if self.fs_group is not None and os.geteuid() == 0:
                        os.chown(f, 0, self.fs_group)
                        mode |= 0o040
                    f.chmod(mode)
            else:
                raise AssertionError(f"volume {name}: this harness knows emptyDir, PVC, configMap and secret only")
            self.volume_dirs[name] = path

    # -- env -------------------------------------------------------------------------------

    def env(self, container: dict[str, Any], overrides: dict[str, str | None] | None = None) -> dict[str, str]:
        env = {
            "PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin",  # STAND-IN: the venv is the image's Python
            "PYTHONPATH": str(REPO),  # STAND-IN: the image's `pip install .`
            "HOSTNAME": self.pod_name,
        }
        image_env, users = dockerfile_stage(container["image"])
        uid = int(self._security(container).get("runAsUser", 0))
        # The container runtime sets HOME from the image's passwd entry for the uid ("/" if none).
        env["HOME"] = f"/home/{users[uid]}" if uid in users else "/"
        env.update(image_env)
        for source in container.get("envFrom") or []:
            ref = source.get("secretRef") or source.get("configMapRef")
            kind = "Secret" if "secretRef" in source else "ConfigMap"
            if ref.get("optional") and not any(
                d["kind"] == kind and d["metadata"]["name"] == ref["name"] for d in self.objects
            ):
                continue
            env.update(
                {
                    source.get("prefix", "") + k: v
                    for k, v in _object_data(find(self.objects, kind, ref["name"])).items()
                }
            )
        for var in container.get("env") or []:
            if "value" in var:
                env[var["name"]] = _expand(str(var["value"]), env)
            else:
                env[var["name"]] = self._value_from(var["valueFrom"])
        for k, v in (overrides or {}).items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        return env

    def _security(self, container: dict[str, Any]) -> dict[str, Any]:
        return {**(self.pod.get("securityContext") or {}), **(container.get("securityContext") or {})}

    def _value_from(self, ref: dict[str, Any]) -> str:
        if "fieldRef" in ref:
            path = ref["fieldRef"]["fieldPath"]
            values = {"metadata.namespace": self.namespace, "metadata.name": self.pod_name}
            assert path in values, f"fieldRef {path} is not emulated"
            return values[path]
        kind, key = ("Secret", "secretKeyRef") if "secretKeyRef" in ref else ("ConfigMap", "configMapKeyRef")
        sel = ref[key]
        return _object_data(find(self.objects, kind, sel["name"]))[sel["key"]]

    # -- the sandbox -----------------------------------------------------------------------

    def mounts(self, container: dict[str, Any]) -> list[tuple[str, Path, bool]]:
        """(mountPath, host directory, read-only) of each of the container's volume mounts."""
        out = []
        for m in container.get("volumeMounts") or []:
            vol = next(v for v in self.pod["volumes"] if v["name"] == m["name"])
            ro = bool(m.get("readOnly")) or "configMap" in vol or "secret" in vol
            ro = ro or bool((vol.get("persistentVolumeClaim") or {}).get("readOnly"))
            src = self.volume_dirs[m["name"]]
            if m.get("subPath"):
                src = src / m["subPath"]
            out.append((m["mountPath"], src, ro))
        return out

    def argv(self, container: dict[str, Any], env: dict[str, str], *, args: list[str] | None = None) -> list[str]:
        """The bwrap command line that runs ``container`` (``args`` replaces its args)."""
        assert BWRAP, "bubblewrap (bwrap) is not installed: scripts/setup.sh installs it (apt-get install bubblewrap)"
        mounts = self.mounts(container)
        # The kubelet writes each pod's /etc/hosts: its hostname resolves to the pod's address (here
        # this machine's loopback: the sandbox shares its network).
        hosts = self.workdir / "kubelet" / "hosts"
        hosts.parent.mkdir(parents=True, exist_ok=True)
        hosts.write_text(f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n127.0.0.1\t{self.pod_name}\n")
        hosts.chmod(0o644)
        mounts.append(("/etc/hosts", hosts, True))
        sec = self._security(container)
        assert sec.get("readOnlyRootFilesystem"), f"container {container['name']} does not ask for a read-only root"
        uid, gid = int(sec.get("runAsUser", 0)), int(sec.get("runAsGroup", sec.get("runAsUser", 0)))
        command = [_expand(a, env) for a in (container.get("command") or [])]
        command += [_expand(a, env) for a in (args if args is not None else container.get("args") or [])]
        assert command, f"container {container['name']} has no command"
        out = [
            BWRAP,
            "--die-with-parent",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--hostname",
            self.pod_name,
        ]
        out += _root_binds(Path("/"), {Path(p) for p, _, _ in mounts})
        out += ["--proc", "/proc", "--dev", "/dev", "--perms", "0755", "--dir", "/tmp"]
        made: set[Path] = set()
        for mount_path, src, ro in sorted(mounts, key=lambda m: m[0].count("/")):
            for parent in reversed(Path(mount_path).parents):  # not in the image: the runtime makes them 0755
                if parent != Path("/") and not parent.exists() and parent not in made:
                    out += ["--perms", "0755", "--dir", str(parent)]
                    made.add(parent)
            out += ["--ro-bind" if ro else "--bind", str(src), mount_path]
        image = _image_paths()
        for path in sorted(image):  # STAND-IN image content under a directory made fresh (a checkout in /tmp)
            if path.parts[1:2] and path.parts[1] in _SKIP_AT_ROOT and not any(p in path.parents for p in image):
                for parent in reversed(path.parents):
                    if parent != Path("/") and parent not in made:
                        out += ["--perms", "0755", "--dir", str(parent)]
                        made.add(parent)
                out += ["--ro-bind", str(path), str(path)]
        out += ["--remount-ro", "/", "--clearenv"]
        for k, v in env.items():
            out += ["--setenv", k, v]
        out += ["--chdir", "/"]
        if os.geteuid() == 0:
            groups = [str(self.fs_group)] if self.fs_group is not None else []
            drop = [
                "setpriv", f"--reuid={uid}", f"--regid={gid}",
                f"--groups={','.join(groups)}" if groups else "--clear-groups",
                "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all", "--",
            ]  # fmt: skip
            out += drop
        else:
            out[1:1] = ["--unshare-user", "--uid", str(uid), "--gid", str(gid)]
        return out + command

    def start(
        self,
        container: dict[str, Any],
        log: Path,
        *,
        env_overrides: dict[str, str | None] | None = None,
        args: list[str] | None = None,
    ) -> subprocess.Popen[bytes]:
        env = self.env(container, env_overrides)
        with log.open("ab") as fh:
            return subprocess.Popen(
                self.argv(container, env, args=args), stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
            )

    def run(
        self,
        container: dict[str, Any],
        log: Path,
        *,
        env_overrides: dict[str, str | None] | None = None,
        args: list[str] | None = None,
        timeout_s: float = 300,
    ) -> int:
        proc = self.start(container, log, env_overrides=env_overrides, args=args)
        try:
            return proc.wait(timeout=timeout_s)
        finally:
            stop(proc)


def stop(proc: subprocess.Popen[bytes], grace_s: float = 10) -> None:
    """SIGTERM the sandbox (bwrap takes its pid namespace down with it), then SIGKILL."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _image_paths() -> set[Path]:
    """What stands for the image's own files: this interpreter, the venv and the repository."""
    return {Path(sys.base_prefix).resolve(), REPO, VENV_BIN.parent}


def _traversable(path: Path) -> bool:
    return bool(path.stat().st_mode & 0o001)


def _root_binds(host_dir: Path, mount_paths: set[Path]) -> list[str]:
    """Read-only binds that rebuild ``host_dir`` on the sandbox's empty root. A directory holding
    a mount point (or this interpreter, behind a directory other users cannot enter, such as a
    0700 /root) is rebuilt entry by entry, so the mount point can be made in the root's tmpfs
    rather than in a read-only bind."""
    needed = _image_paths()
    out: list[str] = []
    for child in sorted(host_dir.iterdir()):
        if host_dir == Path("/") and child.name in _SKIP_AT_ROOT or child in mount_paths:
            continue
        if child.is_symlink():
            out += ["--symlink", os.readlink(child), str(child)]
            continue
        holds_mount = any(child in p.parents for p in mount_paths)
        holds_python = not _traversable(child) and any(child in p.parents for p in needed) if child.is_dir() else False
        if child.is_dir() and (holds_mount or holds_python):
            out += ["--perms", "0755", "--dir", str(child)]
            if holds_python and not holds_mount:
                keep = {p for p in needed if child in p.parents}
                out += _partial_binds(child, keep)
            else:
                out += _root_binds(child, mount_paths)
        elif child.exists():
            out += ["--ro-bind", str(child), str(child)]
    return out


def _partial_binds(host_dir: Path, keep: set[Path]) -> list[str]:
    """Only the paths in ``keep`` (and the directories leading to them) of ``host_dir``."""
    out: list[str] = []
    for target in sorted(keep):
        parts = target.relative_to(host_dir).parts
        at = host_dir
        for part in parts[:-1]:
            at = at / part
            out += ["--perms", "0755", "--dir", str(at)]
        out += ["--ro-bind", str(target), str(target)]
    return out


class PodLauncher:
    """A launcher (service.launcher.base.Launcher) that builds each attempt's Kubernetes Job with
    the real ``service.launcher.kubernetes.build`` and runs that Job's pod under bwrap, in place of
    a cluster running it: the spec Secret it builds is the pod's secret volume, the claims are
    directories the test hands in, ``env_overrides`` replaces cluster addresses."""

    def __init__(
        self,
        cfg: Any,
        workdir: Path,
        *,
        objects: list[dict[str, Any]],
        claims: dict[str, Path],
        env_overrides: dict[str, str | None] | None = None,
    ) -> None:
        self.cfg, self.workdir, self.objects, self.claims = cfg, workdir, objects, claims
        self.env_overrides = env_overrides or {}
        self.jobs: dict[tuple[str, int], dict[str, Any]] = {}
        self.procs: dict[tuple[str, int], subprocess.Popen[bytes]] = {}
        self.logs: dict[tuple[str, int], Path] = {}

    def start(self, spec: Any, resources: Any) -> None:
        from service.launcher.kubernetes import build

        key = (spec.job_id, spec.attempt)
        if key in self.procs:
            return
        job, secret, _service = build(spec, resources, self.cfg)
        name = job["metadata"]["name"]
        pod = pod_spec(job)
        sandbox = PodSandbox(
            pod, self.workdir / name, objects=[*self.objects, secret], claims=self.claims, pod_name=f"{name}-0"
        )
        self.jobs[key], self.logs[key] = job, self.workdir / f"{name}.log"
        self.procs[key] = sandbox.start(pod["containers"][0], self.logs[key], env_overrides=self.env_overrides)

    def poll(self, job_id: str, attempt: int) -> Any:
        from service.launcher.base import AttemptState

        proc = self.procs.get((job_id, attempt))
        if proc is None:
            return AttemptState("missing")
        code = proc.poll()
        if code is None:
            return AttemptState("running")
        return AttemptState("succeeded" if code == 0 else "failed", code)

    def cancel(self, job_id: str, attempt: int) -> None:
        if (proc := self.procs.get((job_id, attempt))) is not None:
            stop(proc)

    def shutdown(self, stop_attempts: bool) -> None:
        for proc in self.procs.values():
            stop(proc)
