"""The cpu provider's FP8 kernels expand every E4M3 code (subnormals, negative zero, both signs)
to bf16 exactly, on the AVX512-BF16 vector path and on the AMX path."""

import pytest
import torch

pytest.importorskip("qlinear_cpu")

from qlinear.families.schemes import scheme_config  # noqa: E402
from qlinear.layers import make_layer, quantize_layer_params  # noqa: E402
from qlinear_cpu import caps, fp8  # noqa: E402
from qlinear_cpu.fp8 import CpuAmxFP8ScaledMMLinearKernel  # noqa: E402

pytestmark = pytest.mark.skipif(not caps.gate()[0], reason=f"{caps.gate()[1]}")

N, K = 64, 256


def _layer_with_every_code():
    c = scheme_config("fp8-dynamic", N, K)
    layer = make_layer(c, quantize_layer_params(c, torch.randn(N, K) * 0.05, calib_x=torch.randn(4, K)))
    kern = CpuAmxFP8ScaledMMLinearKernel.create(c)
    w_name, s_name = kern.layer_param_names[:2]
    codes = (torch.arange(K).view(K, 1) + 3 * torch.arange(N).view(1, N)) % 256  # [K, N]: every code in every column
    codes[(codes & 0x7F) == 0x7F] = 0  # E4M3 NaN codes are not weights
    w = codes.to(torch.uint8).view(torch.float8_e4m3fn)
    getattr(layer, w_name).data = w
    getattr(layer, s_name).data = torch.ones_like(getattr(layer, s_name).data, dtype=torch.float32)
    want = w.float().t()  # [N, K]
    kern.process_weights_after_loading(layer)
    return kern, layer, w_name, want


@pytest.mark.parametrize("vec_max_m", [0, 4])
def test_every_e4m3_code_expands_exactly(vec_max_m):
    kern, layer, w_name, want = _layer_with_every_code()
    assert ((want != 0) & (want.abs() < 2.0**-6)).any() and (want < 0).any()  # subnormals and negatives present
    eye = torch.eye(K, dtype=torch.bfloat16)
    rows = 4 if vec_max_m else K  # the vector path takes <= 4 rows per call
    got = torch.cat([fp8._run(kern, layer, w_name, eye[i:i + rows], None, vec_max_m) for i in range(0, K, rows)])
    assert torch.equal(got.float(), want.t())  # out[k, n] = W[k, n]
