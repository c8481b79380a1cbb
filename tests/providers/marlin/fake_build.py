"""A stand-in for nvcc/ninja under ``qlinear_marlin.build``, so the build cache's locking, failure
memory and stale-lock recovery run in CI without a CUDA toolchain.

Only torch's two innermost steps are replaced: ``_write_ninja_file_and_build_library`` runs a
child "compiler" process (it writes ``started.<pid>``, sleeps ``FAKE_COMPILE_S``, then writes the
library, or fails with ``FAKE_COMPILE_RC``), and ``_import_module_from_library`` checks that the
library exists. Everything around them is real: ``torch.utils.cpp_extension.load`` with its own
lock file, and all of ``qlinear_marlin.build``.

As a script (``python fake_build.py``) it builds once and prints ``LOADED`` or ``FAILED <why>``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

COMPILER = r"""
import os, sys, time
build, name = sys.argv[1], sys.argv[2]
lib = os.path.join(build, name + ".so")
if os.path.exists(lib):  # up to date: ninja would do nothing
    sys.exit(0)
open(os.path.join(build, "started.%d" % os.getpid()), "w").close()
time.sleep(float(os.environ.get("FAKE_COMPILE_S", "0.2")))
rc = int(os.environ.get("FAKE_COMPILE_RC", "0"))
if rc:
    print("fake-nvcc: error: mp_kernels_int.cu(1): identifier 'broken' is undefined")
    sys.exit(rc)
with open(lib + ".tmp", "w") as f:
    f.write("built")
os.replace(lib + ".tmp", lib)
"""


def install(monkeypatch=None) -> None:
    import torch.utils.cpp_extension as ce

    from qlinear_marlin import build

    def fake_build_library(name, build_directory, **kw):
        r = subprocess.run([sys.executable, "-c", COMPILER, build_directory, name], capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError(f"Error building extension '{name}': {r.stdout}{r.stderr}")

    def fake_import(name, build_directory, is_python_module):
        lib = Path(build_directory) / f"{name}.so"
        if not lib.exists():
            raise ImportError(f"{lib}: cannot open shared object file")
        return types.ModuleType(name)

    patches = [(ce, "_write_ninja_file_and_build_library", fake_build_library),
               (ce, "_import_module_from_library", fake_import),
               (build, "_arch_flags", lambda: (["-gencode=arch=compute_90,code=sm_90"], "90"))]
    for obj, attr, value in patches:
        if monkeypatch is not None:
            monkeypatch.setattr(obj, attr, value)
        else:
            setattr(obj, attr, value)


def started(root: Path) -> list[Path]:
    return sorted(root.rglob("started.*"))


if __name__ == "__main__":
    install()
    from qlinear_marlin import build

    try:
        build.load_extension()
    except Exception as e:  # noqa: BLE001
        print("FAILED", e)
        sys.exit(3)
    print("LOADED")
