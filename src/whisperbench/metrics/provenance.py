"""What a result depends on: library versions, CPU, threads, date (recorded per cell)."""

from __future__ import annotations

import datetime
import platform
import resource
from importlib import metadata

PACKAGES = (
    "torch",
    "transformers",
    "torchao",
    "optimum-quanto",
    "onnxruntime",
    "onnx",
    "ctranslate2",
    "coremltools",
    "numpy",
    "jiwer",
    "whisper-normalizer",
)
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
    versions = {}
    for package in PACKAGES:
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


def peak_rss_mb() -> float:
    """Peak resident memory of this process (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if platform.system() == "Darwin" else peak / 1024


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
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


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
