"""The CUDA kernels' host-side logic (load-time padding to the cuBLAS alignments, M padding for
``_int_mm``, scale layouts, epilogues) run on CPU tensors with the device gate lifted: torch's CPU
``_int_mm`` / ``_scaled_mm`` / ``_weight_int8pack_mm`` accept the same arguments, so a layout or
padding bug shows up here before any GPU run. (The block-FP8 and W4A16 CUDA ops have no CPU
counterpart: see test_torch_transforms.py and the gpu tests.)"""

import pytest

from qlinear import testing
from qlinear_torch.fp8 import (
    TorchCudaChannelWiseFP8ScaledMMLinearKernel,
    TorchCudaPerTensorFP8ScaledMMLinearKernel,
    TorchCudaRowWiseFP8ScaledMMLinearKernel,
)
from qlinear_torch.int8 import TorchCudaInt8ScaledMMLinearKernel
from qlinear_torch.mp import TorchCudaW8A16LinearKernel


on_cpu = testing.gate_lifted  # the class with its platform gate lifted (the real class refuses a CPU platform)


KERNELS = {
    TorchCudaInt8ScaledMMLinearKernel: (1, 7, 33),  # 1 and 7 padded to M=17, 33 not; N=255/K=513 padded to 8
    TorchCudaPerTensorFP8ScaledMMLinearKernel: (7,),  # FP8 _scaled_mm is slow on CPU: one M each
    TorchCudaRowWiseFP8ScaledMMLinearKernel: (7,),
    TorchCudaChannelWiseFP8ScaledMMLinearKernel: (7,),
    TorchCudaW8A16LinearKernel: (1, 7),
}


@pytest.mark.parametrize("kernel", list(KERNELS), ids=lambda k: k.__name__)
def test_cuda_kernel_host_logic_on_cpu(kernel):
    k = on_cpu(kernel)
    results = testing.check_kernel(k, cases=testing.cases_for(k, ms=KERNELS[kernel]), min_ran=2)
    if kernel is not TorchCudaW8A16LinearKernel:  # the unaligned shapes went through the padding
        assert any(r.ran and r.case.config.weight_shape == (255, 513) for r in results)
