"""Shared measurement tools: device choice, timers, memory meters, statistics.

Every timing here is a wall-clock time of work that has finished on the
device (CUDA work is synchronised before the clock is read). Two systems are
always measured in the same process, in alternation, so that a change of
machine load during the run affects both alike; results are medians.

Memory
------
* CUDA: ``torch.cuda.max_memory_allocated`` after
  ``torch.cuda.reset_peak_memory_stats``: exact for tensors.
* CPU: the resident-set high-water mark of the process (``VmHWM`` in
  ``/proc/self/status``), reset before each measured call by writing ``5`` to
  ``/proc/self/clear_refs``. It counts pages, not tensors, and the C
  allocator may keep freed pages, so it is an approximation; where the reset
  is not allowed, the step peak is reported as ``None``.
"""

from __future__ import annotations

import os
import platform
import re
import statistics
import time
from collections.abc import Callable, Iterable

import torch

MB = 2.0**20


def pick_device(requested: str | None = None) -> torch.device:
    """``cuda`` when a GPU is present (or as requested), else ``cpu``.

    Example
    -------
    >>> pick_device("cpu").type
    'cpu'
    """
    if requested:
        device = torch.device(requested)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("--device cuda was asked for, but torch sees no GPU")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> tuple[float, object]:
    """Run ``fn`` once; return (seconds, result), the device synchronised on both ends."""
    synchronize(device)
    start = time.perf_counter()
    out = fn()
    synchronize(device)
    return time.perf_counter() - start, out


def median(values: Iterable[float]) -> float:
    """Median of a non-empty sequence.

    Example
    -------
    >>> median([3.0, 1.0, 2.0])
    2.0
    """
    return float(statistics.median(list(values)))


def alternate(
    systems: dict[str, Callable[[], object]],
    rounds: int,
    device: torch.device,
    warmup: int = 1,
    memory: bool = False,
) -> dict[str, dict]:
    """Time several systems in alternation, ``rounds`` calls each.

    Round ``r`` runs the systems in the given order when ``r`` is even and in
    reverse order when it is odd (A B, B A, A B, ...), so that neither always
    runs right after the other. ``warmup`` untimed rounds come first.

    Returns
    -------
    dict
        ``name -> {"times_s": [...], "median_s": float, "cpu_s": float,
        "step_peak_bytes": int | None}``; ``cpu_s`` is the median CPU time of the
        process's threads, which other jobs on a shared machine inflate far less
        than the wall time.
    """
    names = list(systems)
    for _ in range(warmup):
        for name in names:
            systems[name]()
    times = {name: [] for name in names}
    cpu_times = {name: [] for name in names}
    peaks = {name: [] for name in names}
    meter = MemoryMeter(device) if memory else None
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            if meter is not None:
                meter.start()
            cpu_start = time.process_time()
            seconds, _ = timed(systems[name], device)
            cpu_times[name].append(time.process_time() - cpu_start)
            times[name].append(seconds)
            if meter is not None:
                peaks[name].append(meter.peak_increase())
    out = {}
    for name in names:
        valid = [p for p in peaks[name] if p is not None]
        out[name] = {
            "times_s": [round(t, 6) for t in times[name]],
            "median_s": median(times[name]),
            "cpu_s": median(cpu_times[name]),
            "step_peak_bytes": max(valid) if valid else None,
        }
    return out


# ---------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------


def _proc_status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            match = re.search(rf"^{field}:\s+(\d+)\s+kB", f.read(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def _reset_cpu_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


class MemoryMeter:
    """Peak memory a call adds on top of what was allocated before it.

    Example
    -------
    >>> meter = MemoryMeter(torch.device("cpu"))
    >>> meter.start()
    >>> x = torch.ones(1 << 20)
    >>> increase = meter.peak_increase()
    >>> increase is None or increase >= 0
    True
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.base = None

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
        else:
            self.base = _proc_status_kb("VmRSS") if _reset_cpu_peak() else None

    def peak_increase(self) -> int | None:
        if self.base is None:
            return None
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            return max(0, torch.cuda.max_memory_allocated(self.device) - self.base)
        peak = _proc_status_kb("VmHWM")
        return None if peak is None else max(0, peak - self.base) * 1024


def tensor_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes held by distinct tensors (shared storage counted once)."""
    seen, total = set(), 0
    for t in tensors:
        if not isinstance(t, torch.Tensor):
            continue
        key = (t.untyped_storage().data_ptr(), t.device)
        if key in seen:
            continue
        seen.add(key)
        total += t.untyped_storage().nbytes()
    return total


def module_bytes(*modules: torch.nn.Module) -> int:
    """Bytes of the parameters and buffers of ``modules``."""
    tensors = []
    for m in modules:
        tensors.extend(m.parameters())
        tensors.extend(m.buffers())
    return tensor_bytes(tensors)


def optimizer_bytes(*optimizers: torch.optim.Optimizer) -> int:
    """Bytes of the state tensors (moments, accumulators) of ``optimizers``."""
    tensors = []
    for opt in optimizers:
        for state in opt.state.values():
            tensors.extend(v for v in state.values() if isinstance(v, torch.Tensor))
    return tensor_bytes(tensors)


# ---------------------------------------------------------------------------
# Machine description
# ---------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine_info(device: torch.device) -> dict:
    """What the numbers were measured on."""
    info = {
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_gb": _total_memory_gb(),
        "load_average_start": load_average(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": device.type,
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
    }
    try:
        import speechbrain
        import transformers

        info["speechbrain"] = speechbrain.__version__
        info["transformers"] = transformers.__version__
    except ImportError:  # pragma: no cover - both are dependencies
        pass
    return info


def _total_memory_gb() -> float | None:
    kb = None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            match = re.search(r"^MemTotal:\s+(\d+)\s+kB", f.read(), re.MULTILINE)
            kb = int(match.group(1)) if match else None
    except OSError:
        pass
    return None if kb is None else round(kb / 2**20, 1)
