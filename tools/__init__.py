"""Tuning and benchmark tools for the providers (run from the repository root: ``python -m tools.<name>``).

Not part of the installed package: the runtime never imports them. They time with ``tools.harness``
(``qlinear.timing``, the harness ``qlinear bench`` uses) and reach into kernels only through their
public tuning hooks (e.g. the triton kernels' ``tile_for`` / ``pin_tile``).
"""
