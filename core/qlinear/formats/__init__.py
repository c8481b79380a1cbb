"""Reference formats: quantize / dequantize / pack / unpack for every family.

Used by the emulation provider, by every test, and by users who need to make weights. Pure torch,
any device; decoding of E2M1, E4M3 and E8M0 is exact.
"""

from .codes import (  # noqa: F401
    E2M1_VALUES, FP4_MAX, FP8, FP8_MAX, e2m1_decode, e2m1_encode, e4m3_decode, e8m0_decode,
    e8m0_from_exponent, floor_log2, pack_fp4, to_e4m3, unpack_fp4,
)
from .fp8 import block_amax, dequantize_fp8, expand_blocks, quantize_fp8_activation, quantize_fp8_weight  # noqa: F401
from .int8 import azp_adj, int8_static_scale, quantize_int8_activation, quantize_int8_weight  # noqa: F401
from .int_pack import (  # noqa: F401
    act_order_g_idx, default_g_idx, dequantize_wna16, pack_along, quantize_wna16, unpack_along,
)
from .micro import (  # noqa: F401
    dequantize_mxfp4, dequantize_mxfp8, dequantize_nvfp4, nvfp4_global_scale, qdq, quantize_mxfp4,
    quantize_mxfp8, quantize_nvfp4,
)
from .reference import dequantize_weight, reference_linear  # noqa: F401
