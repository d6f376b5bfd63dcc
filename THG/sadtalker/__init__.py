"""SadTalker (OpenTalker/SadTalker) re-implemented for the published checkpoints.

The networks keep the published parameter names so that ``SadTalker_V0.0.2_256.safetensors`` and
``mapping_00229-model.pth.tar`` load strictly (see ``loaders``). The backend that strings them together
is ``THG.sadtalker_thg.SadTalkerTHG``.

Modules: ``blocks`` (shared layers), ``keypoint_detector``, ``generator``, ``mapping`` (MappingNet and the
keypoint transformation), ``audio2exp``, ``audio2pose``, ``face_recon`` (the 3DMM ResNet-50),
``mel`` (the audio front end), ``face`` (landmarks, crops, paste-back), ``loaders``.
"""
