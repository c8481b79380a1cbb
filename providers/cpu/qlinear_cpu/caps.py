"""What this CPU can run: the AMX / AVX-512 flags the kernels need, read from the platform's
``/proc/cpuinfo`` flags (a simulated platform's flags when one is active)."""

from __future__ import annotations

import importlib.util
import os
import shutil

from qlinear.platform import resolve_platform

# The whole extension is compiled for Sapphire Rapids-class cores: AMX tiles (bf16 and int8) and the
# AVX-512 subsets the dequantization, epilogues and small-M int8 path (VNNI) use.
NEEDED = ("avx512f", "avx512bw", "avx512vl", "avx512_bf16", "avx512_vnni", "avx512vbmi", "amx_tile", "amx_bf16", "amx_int8")
# Every CPU with AMX has the AVX-512 subsets; a simulated platform (``--platform cpu``) lists only these.
NEEDED_SIMULATED = ("avx512f", "amx_tile", "amx_bf16", "amx_int8")


def gate(platform=None) -> tuple[bool, str | None]:
    """(ok, reason): a CPU platform with every flag in ``NEEDED``."""
    p = resolve_platform(platform)
    if not p.is_cpu():
        return False, f"CPU kernel; platform is {p.kind}"
    missing = [f for f in (NEEDED_SIMULATED if p.simulated else NEEDED) if f not in p.cpu_flags]
    if missing:
        return False, (f"needs Intel AMX + AVX-512 BF16 (Sapphire Rapids or later); this CPU lacks {', '.join(missing)}")
    if not p.simulated:  # the extension is compiled at first use: say so now rather than fail at load
        cxx = os.environ.get("CXX", "c++")
        if shutil.which(cxx) is None:
            return False, f"no C++ compiler ({cxx}) to build the extension; install gcc or set CXX"
        if shutil.which("ninja") is None and importlib.util.find_spec("ninja") is None:
            return False, "ninja is needed to build the extension: `pip install ninja`"
    return True, None
