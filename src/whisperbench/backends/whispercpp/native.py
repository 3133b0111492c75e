"""whisper.cpp built for the CPU it runs on, as its users build it: the pinned pywhispercpp's source
distribution compiled with ggml's `GGML_NATIVE=ON` (every instruction set this CPU has: AVX-512, VNNI, BF16,
AMX …), installed in the venv beside the binary wheel, which stays the generic build (SSE3 … AVX2).
`backends.whispercpp.options.build` picks one per study (native by default).

    python -m whisperbench.backends.whispercpp.native      # `make venv` runs it (about 40 s on 2 cores)

The folder's `build.json` records the version, the CPU it was built on and whisper.cpp's system info; a
pass refuses a native build made on a CPU with instruction sets this one lacks (it would stop on an illegal
instruction) or from another pywhispercpp version than the venv's, naming the rebuild command.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from whisperbench.io import write_json
from whisperbench.metrics import provenance

NATIVE_DIR = Path(sys.prefix) / "whispercpp-native"
RECORD = "build.json"
REBUILD = "python -m whisperbench.backends.whispercpp.native (or `make venv`)"
# the binding's shared libraries in link order: each is loaded before the ones that need it
LIBRARIES = ("ggml-base", "ggml-cpu", "ggml", "whisper")
SYSTEM_INFO = "import _pywhispercpp; print(_pywhispercpp.whisper_print_system_info())"


def build_problem(build: str, directory: Path = NATIVE_DIR) -> str | None:
    """Why the chosen build cannot run here (None: it can); read from files, no import."""
    if build == "wheel":
        return None
    record_path = directory / RECORD
    if not record_path.is_file():
        return f"build: native: no whisper.cpp built for this CPU in {directory}; run {REBUILD}, or use build: wheel"
    record = json.loads(record_path.read_text())
    if record["pywhispercpp"] != version("pywhispercpp"):
        return (
            f"build: native was built from pywhispercpp {record['pywhispercpp']}, the venv has "
            f"{version('pywhispercpp')}; run {REBUILD}"
        )
    missing = sorted(set(record["cpu"]["flags"]) - set(provenance.cpu_info()["flags"]))
    if missing:
        return (
            f"build: native was built on a CPU with {', '.join(missing)}, which this one lacks (it would stop on "
            f"an illegal instruction); run {REBUILD} on this machine, or use build: wheel"
        )
    return None


def use(build: str, directory: Path = NATIVE_DIR) -> dict:
    """Make `import pywhispercpp` load the chosen build; returns what the run record says of it. Call before
    anything imports pywhispercpp (each pass is its own process)."""
    if build == "wheel":
        return {"build": "wheel (pywhispercpp's binary wheel: the generic build)"}
    loaded = sys.modules.get("_pywhispercpp")
    if loaded is not None and not Path(loaded.__file__).is_relative_to(directory):
        raise RuntimeError(f"pywhispercpp's wheel is already imported in this process ({loaded.__file__})")
    _preload(directory)
    sys.path.insert(0, str(directory))
    record = json.loads((directory / RECORD).read_text())
    return {"build": f"native ({record['cmake']}, pywhispercpp {record['pywhispercpp']} source, {directory})"}


def _preload(directory: Path) -> None:
    """pip's --target install leaves the binding without an rpath to its libraries: loading them first, by
    path and globally, lets the dynamic linker resolve the binding's needs to them."""
    import ctypes

    for name in LIBRARIES:
        found = sorted(directory.glob(f"lib{name}.so.*"), key=lambda p: len(p.name)) or sorted(
            directory.glob(f"lib{name}*.dylib"), key=lambda p: len(p.name)
        )
        if found:
            ctypes.CDLL(str(found[0]), mode=ctypes.RTLD_GLOBAL)


def build(directory: Path = NATIVE_DIR) -> dict:
    """Compile the venv's pywhispercpp version from its source distribution for this CPU into `directory`
    (staged, then moved in whole: an interrupted build leaves no half folder)."""
    pinned = version("pywhispercpp")
    staging = directory.with_name(directory.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-cache-dir"]
    pip += ["--no-binary", "pywhispercpp", "--target", str(staging), f"pywhispercpp=={pinned}"]
    # pywhispercpp's setup.py hands every environment variable to CMake as -D<name>=<value>
    subprocess.run(pip, env=os.environ | {"GGML_NATIVE": "ON"}, check=True)
    record = {"pywhispercpp": pinned, "cmake": "GGML_NATIVE=ON", "cpu": provenance.cpu_info()}
    probe = f"from whisperbench.backends.whispercpp import native; native._preload(native.Path({str(staging)!r}))"
    probe += f"; import sys; sys.path.insert(0, {str(staging)!r}); {SYSTEM_INFO}"
    info = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    record["system_info"] = info.stdout.strip().strip(" |")
    write_json(staging / RECORD, record)
    shutil.rmtree(directory, ignore_errors=True)
    staging.rename(directory)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=NATIVE_DIR, help=f"install folder (default {NATIVE_DIR})")
    record = build(parser.parse_args().out)
    print(f"whisper.cpp built for this CPU: {record['system_info']}")


if __name__ == "__main__":
    main()
