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
