"""Ditto (antgroup/ditto-talkinghead): LivePortrait's renderer driven by a motion-space diffusion model.

    speech -> HuBERT features (hubert.py) -> conditions + LMDM windows (lmdm.py, scheduler.py)
        -> relative stitching onto the photo (motion.py) -> warp + SPADE decoder (networks.py)
        -> paste-back (face.py)

The networks load the published ``ditto_pytorch/models/*.pth`` files (loaders.py); the settings and
data arrays of ``ditto_cfg/v0.4_hubert_cfg_pytorch.pkl`` are read without running pickled code
(cfg.py). The backend is ``THG/ditto_thg.py``.
"""
