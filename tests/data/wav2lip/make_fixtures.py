"""Writes ``s3fd_pipeline_boxes.json``: the face boxes the ORIGINAL Wav2Lip pipeline finds on real photos.

Not run by the tests (they only read what it wrote). Run once, by hand, outside the repository:

    python tests/data/wav2lip/make_fixtures.py /tmp/scratch-i21/Rudrabha+Wav2Lip ../shared/reference

The first argument is a checkout of Rudrabha/Wav2Lip (5c90fa9, 2025-04-19); this script writes the seeded
S3FD weights (``reference/seeded.py`` over ``reference/s3fd.json``) to the path its ``SFDDetector`` loads by
default (``face_detection/detection/sfd/s3fd.pth``) in that checkout, imports its ``inference.py`` (with a
command line, since it parses one at import) and calls ``inference.face_detect(frames)`` unchanged: frames read
with ``cv2.imread`` (BGR), ``FaceAlignment.get_detections_for_batch`` (flip to RGB, ``batch_detect``, NMS 0.3,
scores > 0.5, first box), the default pads (0, 10, 0, 0) and the 5-frame box smoothing. Nothing of Wav2Lip is
copied into this repository.

Cases, with the images from the wheels (matplotlib ``mpl-data/sample_data/grace_hopper.jpg``, 512x600, and
scikit-image ``skimage/data/astronaut.png``, 512x512):

* ``grace_hopper``, ``astronaut``: the photo as a still (``face_detect([frame])``, the static-image path);
* ``grace_hopper_pan``: a 7-frame "video", frame i = ``grace[6*i : 6*i + 540, 4*i : 4*i + 480]`` (one batch of
  16 in the original), so the box smoothing over frames is part of the check.

For each: ``rects``, what the detector returned per frame (x1, y1, x2, y2), and ``coords``, the final
(y1, y2, x1, x2) crops of ``face_detect``. ``coords_if_fed_bgr`` is the same pipeline given RGB frames, so
that the network sees BGR minus the means (what this repository did before): it shows the check can fail.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

HERE = Path(__file__).resolve().parent


def photos() -> dict[str, list[np.ndarray]]:
    import matplotlib
    import skimage

    grace = cv2.imread(str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"))
    astronaut = cv2.imread(str(Path(skimage.__file__).parent / "data" / "astronaut.png"))
    pan = [grace[6 * i:6 * i + 540, 4 * i:4 * i + 480] for i in range(7)]
    return {"grace_hopper": [grace], "astronaut": [astronaut], "grace_hopper_pan": pan}


def main(upstream: Path, reference: Path) -> None:
    spec = importlib.util.spec_from_file_location("seeded", reference / "seeded.py")
    seeded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(seeded)
    weights = seeded.seeded_state_dict(json.loads((reference / "s3fd.json").read_text()))
    torch.save(weights, upstream / "face_detection/detection/sfd/s3fd.pth")

    torch.set_num_threads(2)
    os.chdir(upstream)
    sys.path.insert(0, str(upstream))
    sys.argv = ["inference.py", "--checkpoint_path", "unused.pth", "--face", "unused.mp4", "--audio", "unused.wav"]
    import face_detection
    import inference

    detector = face_detection.FaceAlignment(face_detection.LandmarksType._2D, flip_input=False, device="cpu")
    out = {}
    for name, frames in photos().items():
        rects = detector.get_detections_for_batch(np.array(frames))
        coords = [list(map(int, c)) for _, c in inference.face_detect(frames)]
        flipped = [np.ascontiguousarray(f[..., ::-1]) for f in frames]
        coords_bgr = [list(map(int, c)) for _, c in inference.face_detect(flipped)]
        out[name] = {"frames": len(frames), "size": list(frames[0].shape[:2]),
                     "rects": [list(map(int, r)) for r in rects], "coords": coords, "coords_if_fed_bgr": coords_bgr}
        print(name, out[name])
    out["_made_with"] = {"wav2lip": "Rudrabha/Wav2Lip 5c90fa9b4a2c2a37d0b4ebf7633ac41534eb9941",
                         "torch": torch.__version__, "numpy": np.__version__, "opencv": cv2.__version__,
                         "weights": "reference/seeded.py over reference/s3fd.json", "threads": 2}
    (HERE / "s3fd_pipeline_boxes.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve())
