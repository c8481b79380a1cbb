"""The cpu provider: qlinear's own CPU GEMMs on Intel AMX tiles.

A C++ extension (``csrc/qlinear_cpu.cpp``) compiled with gcc at first use and cached on disk
(``build.py``). Kernels: W4A16 / W8A16 (GPTQ, AWQ zero points, groups, act-order), INT8 W8A8
(dynamic / static, symmetric / asymmetric) and FP8 (per-tensor, per-channel, 128x128 blocks).
Importing this module imports nothing heavy; the compiler runs in ``process_weights_after_loading``.
"""

from qlinear import hookimpl


@hookimpl
def qlinear_kernels():
    from .kernels import KERNELS

    return KERNELS
