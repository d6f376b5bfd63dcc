"""Optional face enhancers that a talking-head backend can run on the faces it renders.

A backend needs only ``maybe_enhancer``; with no enhancer asked for it returns None without
importing torch or loading anything::

    from THG.enhancer import maybe_enhancer

    self.enhancer = maybe_enhancer(opts.enhancer, checkpoints, device=opts.device, fp16=opts.fp16)
    ...
    if self.enhancer is not None:
        frames = self.enhancer.enhance_many(frames, boxes)        # frames + (x1, y1, x2, y2) face boxes
        # or, for square face crops of ``enhancer.face_size`` (512):
        faces = self.enhancer.enhance_faces(faces)               # (N, 512, 512, 3) RGB uint8

See ``THG.enhancer.gfpgan.GFPGANEnhancer`` for the options and the box conventions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app_modules.checkpoints import CheckpointManager
    from THG.enhancer.gfpgan import GFPGANEnhancer

ENHANCERS = ("none", "gfpgan")  # the names ``maybe_enhancer`` accepts, for settings and UI choices


def maybe_enhancer(name: str | None, checkpoints: CheckpointManager | None = None,
                   **options) -> GFPGANEnhancer | None:
    """The face enhancer called ``name`` (case-insensitive), or None for "" / "none" / None.

    ``options`` are ``GFPGANEnhancer.Options`` fields (checkpoint, device, fp16, weight, batch_size,
    random_noise); a backend passes its own device and fp16 so that both run in the same place.
    Raises ``BackendUnavailableError`` for an unknown name, ``TalkerError`` for a bad option and
    ``MissingWeightsError`` (naming the download command) when GFPGANv1.4.pth is not on disk."""
    key = (name or "").strip().lower()
    if key in ("", "none"):
        return None
    from dataclasses import fields

    from app_modules.errors import BackendUnavailableError, TalkerError
    from THG.enhancer.gfpgan import GFPGANEnhancer

    if key != "gfpgan":
        raise BackendUnavailableError(f"unknown face enhancer {name!r}; valid enhancers = {', '.join(ENHANCERS)}")
    valid = {f.name for f in fields(GFPGANEnhancer.Options)}
    unknown = sorted(set(options) - valid)
    if unknown:
        raise TalkerError(f"unknown enhancer option(s) {', '.join(unknown)}; "
                          f"valid options = {', '.join(sorted(valid))}")
    return GFPGANEnhancer(GFPGANEnhancer.Options(**options), checkpoints)
