"""The trainer's command line, for every launcher: ``python -m trainer`` for one process,
``torchrun --standalone`` for several on one node, and a static rendezvous for several nodes."""

from __future__ import annotations

from dataclasses import dataclass

RENDEZVOUS_PORT = 29500


@dataclass(frozen=True)
class Rendezvous:
    """Where the ranks of a multi-node attempt meet (node 0's address)."""

    nnodes: int
    node_rank: str  # a number, or an expansion like "$(JOB_COMPLETION_INDEX)"
    master_addr: str
    master_port: int = RENDEZVOUS_PORT


def trainer_command(
    python: str,
    spec_path: str,
    workdir: str,
    *,
    nproc_per_node: int = 1,
    rendezvous: Rendezvous | None = None,
    trainer_module: str = "trainer",
) -> list[str]:
    """``trainer_module`` is the ``-m`` module run (tests run a fake trainer in its place)."""
    args = ["-m", trainer_module, "--spec", spec_path, "--workdir", workdir]
    if rendezvous is not None and rendezvous.nnodes > 1:
        return [
            python,
            "-m",
            "torch.distributed.run",
            f"--nnodes={rendezvous.nnodes}",
            f"--nproc-per-node={nproc_per_node}",
            f"--node-rank={rendezvous.node_rank}",
            f"--master-addr={rendezvous.master_addr}",
            f"--master-port={rendezvous.master_port}",
            *args,
        ]
    if nproc_per_node > 1:
        return [python, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc_per_node}", *args]
    return [python, *args]
