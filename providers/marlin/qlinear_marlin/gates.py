"""Can the Marlin-class CUDA kernels run here? A CUDA device of cc>=80, a CUDA torch and nvcc (they
are JIT-compiled on first use). Each "no" says why, in words ``qlinear doctor`` can print."""

from __future__ import annotations

from qlinear.cuda_jit import find_nvcc, toolchain_reason  # one nvcc finder for every JIT-building provider
from qlinear.platform import Platform, resolve_platform

MIN_CAPABILITY = 80  # mma.sync m16n8k16 with bf16 and cp.async need Ampere


def cuda_verdict(platform: "Platform | int | None") -> tuple[bool, str | None]:
    """A simulated platform (``qlinear explain --platform sm90``) is judged on the device alone: the
    question is what that machine would pick. A real one must also have the toolchain here."""
    p = resolve_platform(platform)
    if not p.is_cuda():
        return False, f"needs an NVIDIA CUDA GPU, platform is {p.kind}"
    if p.capability is None or p.capability < MIN_CAPABILITY:
        have = "unknown" if p.capability is None else str(p.capability)
        return False, f"needs CUDA cc>={MIN_CAPABILITY}, have {have}"
    if p.simulated:
        return True, None
    why = toolchain_reason(find_nvcc())
    if why:
        return False, why
    from .build import failure

    if failure() is not None:  # remembered: the next layer picks another kernel instead of recompiling
        return False, f"the CUDA extension failed to build in this process: {failure()}"
    return True, None
