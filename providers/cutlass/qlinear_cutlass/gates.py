"""Can the CUTLASS kernels run here? The sm_90a kernels need an NVIDIA GPU of compute capability 9.0
exactly (the ``sm_90a`` wgmma/TMA instructions exist on no other arch, Blackwell included), the
sm_100a one (NVFP4) capability 10.0 exactly (B200 / GB200: tcgen05 is arch-specific too); all need a
CUDA torch, nvcc and the CUTLASS headers (the ``nvidia-cutlass`` wheel, or ``$QLINEAR_CUTLASS_DIR``).
Each "no" says why, in words ``qlinear doctor`` prints. Nothing here imports CUTLASS or compiles
anything."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from qlinear.cuda_jit import find_nvcc, toolchain_reason
from qlinear.platform import Platform, resolve_platform

ARCH = 90  # sm_90a: Hopper (H100 / H200 / GH200)
ARCH_NAMES = {90: "sm_90a kernels: needs CUDA cc 9.0 exactly (Hopper)",
              100: "sm_100a kernels: needs CUDA cc 10.0 exactly (B200 / GB200)"}


def cutlass_include_dirs() -> list[str] | None:
    """[include, tools/util/include] of a CUTLASS 3.x/4.x tree: ``$QLINEAR_CUTLASS_DIR`` (a CUTLASS
    checkout), else the ``nvidia-cutlass`` wheel's ``cutlass_library/source`` (found without importing
    it); None if neither has ``cutlass/cutlass.h``."""
    roots = []
    env = os.environ.get("QLINEAR_CUTLASS_DIR")
    if env:
        roots.append(Path(env))
    else:
        try:
            spec = importlib.util.find_spec("cutlass_library")
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.submodule_search_locations:
            roots.extend(Path(p) / "source" for p in spec.submodule_search_locations)
    for root in roots:
        inc, util = root / "include", root / "tools" / "util" / "include"
        if (inc / "cutlass" / "cutlass.h").is_file() and (util / "cutlass" / "util" / "packed_stride.hpp").is_file():
            return [str(inc), str(util)]
    return None


def verdict(platform: "Platform | int | None", arch: int = ARCH) -> tuple[bool, str | None]:
    """A simulated platform (``qlinear explain --platform sm90``) is judged on the device alone; a real
    one must also have the toolchain and headers here."""
    p = resolve_platform(platform)
    if not p.is_cuda():
        return False, f"needs an NVIDIA CUDA GPU, platform is {p.kind}"
    if p.capability != arch:
        have = "unknown" if p.capability is None else str(p.capability)
        return False, f"{ARCH_NAMES[arch]}, have {have}"
    if p.simulated:
        return True, None
    why = toolchain_reason(find_nvcc())
    if why:
        return False, why
    if cutlass_include_dirs() is None:
        return False, "CUTLASS headers not found: pip install nvidia-cutlass (or set QLINEAR_CUTLASS_DIR to a CUTLASS checkout)"
    return True, None


class CutlassKernelMixin:
    """What every cutlass kernel class shares: the provider's name, the Hopper gate (``verdict``) and
    a tile (so the K order of the sums) chosen per M bucket, hence not batch invariant."""

    provider = "cutlass"
    backend = "cutlass"
    batch_invariant = False
    min_capability = 90

    @classmethod
    def is_supported(cls, platform=None):
        return verdict(platform)
