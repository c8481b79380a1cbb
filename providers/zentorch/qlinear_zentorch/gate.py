"""Can zentorch run here? Platform first (cheap, imports nothing), then a cached import of zentorch,
then the ops each kernel needs. zentorch is imported only here, never when the provider loads."""

from __future__ import annotations

import functools
from types import ModuleType

import torch

from qlinear.platform import Platform, resolve_platform
from qlinear.settings import get_settings

Verdict = tuple[bool, "str | None"]


@functools.lru_cache(maxsize=1)
def load_zentorch() -> tuple[ModuleType | None, str | None]:
    """(module, None) or (None, why). Importing zentorch registers ``torch.ops.zentorch.*``."""
    try:
        import zentorch
    except Exception as e:  # noqa: BLE001 - ImportError, or a torch/zentorch minor-version mismatch
        return None, f"zentorch not importable: {type(e).__name__}: {e}"
    return zentorch, None


def missing_ops(names: tuple[str, ...]) -> list[str]:
    ns = torch.ops.zentorch
    out = []
    for n in names:
        try:
            getattr(ns, n)
        except (AttributeError, RuntimeError):
            out.append(n)
    return out


# zentorch 2.13's int8 (zentorch_dynamic_qlinear) and weight-only (zentorch_woq_linear) kernels need
# AVX-512: on an AVX2-only AMD EPYC (Zen 3) the int8 op died with SIGILL (float32 and bfloat16 input)
# or returned values off by 1e35, and the weight-only op returned NaN / 100 % error (tests/providers/
# zentorch on such a CI host); on a Zen 4 / 5 EPYC both pass the conformance kit.
AVX512_NEEDED = ("avx512f", "avx512_vnni", "avx512_bf16")


def check_platform(p: Platform) -> Verdict:
    if not p.is_cpu():
        return False, f"zentorch kernels run on CPU tensors; this platform is {p.kind}"
    what = p.cpu_model or p.cpu_vendor or "unknown CPU"
    if p.cpu_flags:  # checked when known
        if "avx2" not in p.cpu_flags:  # ZenDNN's kernels need at least AVX2 (every Zen has it)
            return False, f"CPU lacks AVX2 ({what})"
        lacking = [f for f in AVX512_NEEDED if f not in p.cpu_flags]
        if lacking:
            return False, (f"CPU lacks {', '.join(lacking)} ({what}): zentorch's int8 and weight-only kernels need AVX-512 "
                           "(Zen 4 and newer); on an AVX2-only Zen 3 they crash or return garbage")
    if not p.is_zen():
        if not get_settings().zentorch_any_cpu:
            return False, f"not an AMD Zen CPU ({what}); set QLINEAR_ZENTORCH_ANY_CPU=1 to allow"
    return True, None


def check(platform: "Platform | int | None", ops: tuple[str, ...]) -> Verdict:
    """The whole gate for a kernel that calls ``torch.ops.zentorch.<ops>``."""
    ok, why = check_platform(resolve_platform(platform))
    if not ok:
        return ok, why
    zt, err = load_zentorch()
    if zt is None:
        return False, err
    gone = missing_ops(ops)
    if gone:
        version = getattr(zt, "__version__", "?")
        return False, f"zentorch {version} lacks op(s) {', '.join(gone)}"
    return True, None


def op(name: str):
    """``torch.ops.zentorch.<name>`` (zentorch imported first, so the op is registered)."""
    zt, err = load_zentorch()
    if zt is None:
        raise RuntimeError(err)
    return getattr(torch.ops.zentorch, name)
