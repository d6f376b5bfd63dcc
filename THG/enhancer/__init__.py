"""Optional face enhancers that a talking-head backend can run on its rendered faces.

``maybe_enhancer(name, checkpoints)`` is the one entry point a THG backend needs; see ``THG.enhancer.gfpgan``.
"""
