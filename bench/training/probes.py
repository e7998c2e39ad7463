"""What the training bench reads besides the clock: device sync, CPU pressure from other load,
and a process's resident-memory peak while a step runs."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any

import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def trim_heap() -> None:
    """Hand freed heap memory back to the OS (glibc), so RSS starts near the live set and a
    step's peak is not hidden behind what an earlier, larger step left cached."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def set_mmap_threshold(size: int) -> bool:
    """Serve every allocation of ``size`` bytes or more with its own mmap, returned to the OS on
    free (glibc ``mallopt(M_MMAP_THRESHOLD)``, as ``MALLOC_MMAP_THRESHOLD_`` does). By default
    glibc raises that threshold as large blocks are freed (up to 32 MiB), after which
    activation-sized tensors come from the heap, whose freed pages the process keeps: RSS then
    grows well past the live tensors during a backward pass. True if glibc took it."""
    try:
        import ctypes

        return bool(ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, size))
    except (OSError, AttributeError):
        return False


class RSSPeak:
    """Peak resident set size of this process while the block runs (sampled every ms), after
    trimming the heap."""

    def __init__(self) -> None:
        import psutil

        self.proc = psutil.Process()
        self.before = self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.001)

    def __enter__(self) -> RSSPeak:
        trim_heap()
        self.before = self.peak = self.proc.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def cpu_pressure() -> float | None:
    """Linux PSI: % of the last minute some runnable task waited for a CPU (other load here)."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        return float(dict(kv.split("=") for kv in line.split()[1:])["avg60"])
    except (OSError, KeyError, ValueError, IndexError):
        return None
