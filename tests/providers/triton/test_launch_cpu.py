"""launch.FastKernel's cache key (CPU): it must separate every call Triton would specialize apart,
or a cached kernel compiled for aligned pointers / divisible sizes would run on inputs it was not
compiled for."""

import pytest
import torch

pytest.importorskip("triton")
from qlinear_triton import launch  # noqa: E402


def test_key_separates_what_triton_specializes_on():
    buf = torch.zeros(64, dtype=torch.bfloat16)
    aligned, odd = buf[:8], buf[1:9]
    assert aligned.data_ptr() % 16 == 0 and odd.data_ptr() % 16 != 0
    assert launch._spec(aligned) != launch._spec(odd)  # 16-byte alignment
    assert launch._spec(aligned) != launch._spec(aligned.to(torch.float16))  # pointer dtype
    assert launch._spec(1) != launch._spec(17)  # the value 1 becomes a constant
    assert launch._spec(32) != launch._spec(33)  # divisibility by 16
    assert launch._spec(16) != launch._spec(2**32)  # int32 vs int64 argument
    assert launch._spec(True) != launch._spec(1)
    assert launch._spec(None) != launch._spec(0)
    assert launch._spec(48) == launch._spec(64)  # both just "divisible by 16": one compiled kernel


def test_installed_launch_hooks_send_launches_through_triton():
    import triton

    hooks = triton.knobs.runtime.launch_enter_hook
    assert not launch._hooked(None)
    was = launch._hooked(hooks)

    def hook(*a):
        return None

    hooks.add(hook)
    try:
        assert launch._hooked(hooks)
    finally:
        hooks.remove(hook)
    assert launch._hooked(hooks) == was


def test_run_time_keywords_are_keyed_by_kind_not_value():
    """A tensor or size passed by keyword is keyed like a positional one: a fresh output tensor per call
    must map to the same entry (keyed by value, every call missed the cache and the cache kept every
    call's tensor alive), while constexprs still separate by value."""
    from qlinear_triton import mm_kernels

    k = mm_kernels.scaled_gemv_kernel
    k = k if isinstance(k, launch.FastKernel) else launch.FastKernel(k)  # (unwrapped under the interpreter)
    assert {"out_ptr", "M", "N"} <= k._runtime and "BN" not in k._runtime
    a, b = torch.empty(64), torch.empty(64)
    assert k.kw_key(dict(out_ptr=a, N=4096, BN=64)) == k.kw_key(dict(out_ptr=b, N=8192, BN=64))
    assert k.kw_key(dict(out_ptr=a, N=4096, BN=64)) != k.kw_key(dict(out_ptr=a, N=4097, BN=64))
    assert k.kw_key(dict(out_ptr=a, BN=64)) != k.kw_key(dict(out_ptr=a, BN=128))
    assert k.kw_key(dict(out_ptr=a)) != k.kw_key(dict(out_ptr=a.half()))


def test_inline_key_equals_the_per_argument_key():
    """_key_of (the per-call key, kinds inline) must give exactly what _spec gives argument by argument."""
    buf = torch.zeros(9)
    args = (torch.zeros(8, dtype=torch.bfloat16), buf[1:], 1, 17, 32, 2**33, -(2**40), True, False, None, 1.5,
            torch.nn.Parameter(torch.zeros(4)), torch.float16)
    assert launch._key_of(args) == tuple(map(launch._spec, args))
    assert launch._key_of((buf[:8],)) != launch._key_of((buf[1:],))
