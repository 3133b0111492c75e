"""What a result depends on: library versions, CPU, threads, date (recorded per cell)."""

from __future__ import annotations

import datetime
import os
import platform
import resource
import time
from importlib import metadata

# Every cell's libraries; each backend adds its own (`LIBRARIES` in its module).
CORE_LIBRARIES = ("torch", "transformers", "numpy", "jiwer", "whisper-normalizer")
CPU_FLAGS = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_bf16",
    "amx_int8",
    "f16c",
    "neon",
    "asimd",
)


def library_versions() -> dict[str, str]:
    """The installed version of the core libraries and of every registered backend's (absent: not listed)."""
    from whisperbench.backends import registry

    packages = CORE_LIBRARIES + tuple(
        package for spec in registry.BACKENDS.values() for package in getattr(spec.load_module(), "LIBRARIES", ())
    )
    versions = {}
    for package in dict.fromkeys(packages):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def cpu_info() -> dict:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    import os

    return {
        "model": model,
        "machine": platform.machine(),
        "logical_cores": os.cpu_count(),
        "flags": sorted(flags.intersection(CPU_FLAGS)),
    }


def has_vnni() -> bool:
    """Whether this CPU multiplies u8 x s8 into int32 in one instruction (VNNI, AMX): int8 kernels may then take
    8-bit activations; without it, AVX2's 16-bit intermediate sums can saturate, so 7 bits are safer."""
    return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & set(cpu_info()["flags"]))


def peak_rss_mb() -> float:
    """Peak resident memory of this process (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if platform.system() == "Darwin" else peak / 1024


def rss_mb() -> float | None:
    """VmRSS: the resident memory of this process now (Linux only)."""
    return _status_mb("VmRSS:")


def reset_peak_rss() -> bool:
    """Start measuring a new peak (Linux: writing 5 to /proc/self/clear_refs resets VmHWM); False elsewhere."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def peak_rss_since_reset_mb() -> float | None:
    """VmHWM: the peak resident memory since the last `reset_peak_rss` (Linux only)."""
    return _status_mb("VmHWM:")


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class OtherLoad:
    """How busy the rest of the machine was while a block ran: CPU seconds used by everything but this
    process (and its children), hypervisor steal included, per second of wall time — in cores (0: idle;
    1: one core kept busy by others), with the 1-minute load average before and after."""

    def _busy_s(self) -> float:
        import psutil

        times = psutil.cpu_times()
        return sum(getattr(times, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq", "steal"))

    def _own_s(self) -> float:
        times = self.process.cpu_times()
        return times.user + times.system + times.children_user + times.children_system

    def __enter__(self):
        import psutil

        self.process = psutil.Process()
        self.start = (time.perf_counter(), self._busy_s(), self._own_s())
        self.load_before = os.getloadavg()[0]
        return self

    def __exit__(self, *_):
        wall, busy, own = (time.perf_counter(), self._busy_s(), self._own_s())
        others = (busy - self.start[1]) - (own - self.start[2])
        self.record = {
            "other_load_cores": round(max(others, 0.0) / max(wall - self.start[0], 1e-9), 3),
            "load_average_1min": [round(self.load_before, 2), round(os.getloadavg()[0], 2)],
        }


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def record(**fields) -> dict:
    return {
        "date": now(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_info(),
        "libraries": library_versions(),
        **fields,
    }
