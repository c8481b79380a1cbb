"""Model level: quantize a float model, fuse its sibling projections, load and save compressed-tensors
checkpoints.

``quantize_model`` needs torch only; ``load_quantized`` / ``save_quantized`` need the
``qlinear[models]`` extra (transformers, compressed-tensors, safetensors), imported when called.
"""

from .checkpoint import load_quantized, save_quantized  # noqa: F401
from .ct_format import CheckpointError  # noqa: F401
from .fuse import fuse_projections  # noqa: F401
from .quantize import quantize_model  # noqa: F401
