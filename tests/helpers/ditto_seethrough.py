"""Ditto files whose networks are built to be readable, so motion can be measured on rendered frames.

Seeded weights render faces that look like nothing in particular: nobody can tell from such frames
whether the head moved or an eye closed. These files keep every published container, key and shape and
run through exactly the same code, but their values are set by hand (starting from the seeded ones) so
that each network does something simple and visible:

* appearance extractor: the (avg-pooled) RGB image itself, copied into every depth slice;
* motion extractor: constant heads: 21 canonical keypoints on the portrait's eyelids, lips, brows,
  cheeks and jaw (found with MediaPipe in the crop), neutral pose, no expression, scale 1;
* warping network: each region follows the keypoint moving into it (the mixing logit of keypoint k is
  proportional to its driving-minus-source heat map, which the hourglass passes through), so a moving
  keypoint drags the image around it; the middle depth slices are read back as the image;
* decoder: the image through the SPADE blocks' shortcuts (the residual branches switched off by a zero
  modulation), instance-normalised and mapped back to the crop's own colour range;
* stitching: no correction;
* LMDM: one cross-attention head whose rotary query/key pattern makes frame i attend to condition i,
  reading a loudness feature (column 0 of the tiny HuBERT here) into the lower-lip keypoints'
  expression; a second, broader head (lower rotary frequencies) reads a smoothed loudness into the head
  translation. Guidance and a single DDIM step keep those values (the unconditional pass reads zeros).

The settings carry a blink template that closes the eyelid keypoints. So: the mouth opens with the
speech, the head sways with it, and the eyes close at the planned blinks, in the pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tests.helpers.ditto_files import (
    CONFIG_NAME,
    HUBERT_NAME,
    MODELS_DIR,
    ditto_config,
    write_ditto_config,
    write_tiny_hubert,
)
from tests.helpers.seeded_checkpoints import DITTO_MODELS, ditto_state, write_ditto_model

RENDER = 128  # the backend's render_size the files are made for
CROP_SCALE = 1.6  # a tighter crop than the published 2.3: more of the 32x32 feature volume is face
BLINK_FRAMES = 8
# canonical keypoint -> face-mesh index. Eyes 11/13 (left upper/lower lid), 16/18 (right), 15 between
# the eyes; lips 6 (upper), 12 and 19 (lower lip and its edge), 14/17 corners, 20 chin.
KP_MESH = {0: 10, 1: 50, 2: 280, 3: 1, 4: 172, 5: 397, 6: 13, 7: 21, 8: 251, 9: 105, 10: 334, 11: 159,
           12: 14, 13: 145, 14: 61, 15: 168, 16: 386, 17: 291, 18: 374, 19: 17, 20: 152}
LIP_OUT = 300  # model-width feature holding the loudness after the cross-attention
POSE_OUT = 301  # ... and the smoothed loudness
LOUD = 150  # condition-token feature holding the loudness (the rotary patterns use 0-127)


@dataclass(frozen=True)
class SeeThrough:
    folder: Path  # laid out as the hub repo: pass as --checkpoint
    kp: np.ndarray  # (21, 3) canonical keypoints, crop-normalised
    eyes: list[tuple[int, int, int, int]]  # x0, y0, x1, y1 around each eye in the photo
    mouth: tuple[int, int, int, int]  # around the lips in the photo
    face: tuple[int, int, int, int]


def _identity_bn(sd: dict, prefix: str) -> None:
    if prefix + "running_var" in sd:
        sd[prefix + "running_var"].fill_(1 - 1e-5)  # BN divides by sqrt(var + eps): exactly 1
        sd[prefix + "running_mean"].zero_()
        sd[prefix + "weight"].fill_(1)
        sd[prefix + "bias"].zero_()


def _zeros_like(sd: dict) -> dict:
    out = {k: torch.zeros_like(v) for k, v in sd.items()}
    for k in out:
        if k.endswith("running_var"):
            _identity_bn(out, k[:-len("running_var")])
    return out


def appearance_state(sd: dict) -> dict:
    sd = _zeros_like(sd)
    for conv in ("first.conv", "down_blocks.0.conv", "down_blocks.1.conv"):
        for c in range(3):
            sd[f"{conv}.weight"][c, c, 1, 1] = 1
    for c in range(3):
        sd["second.weight"][c * 16:(c + 1) * 16, c, 0, 0] = 1  # channel c of every depth slice
    return sd  # the 3-D residual blocks add zero (conv2 is zero)


def motion_state(sd: dict, kp: np.ndarray) -> dict:
    sd = {k: v.clone() for k, v in sd.items()}
    for head in ("kp", "scale", "pitch", "yaw", "roll", "t", "exp"):
        sd[f"detector.fc_{head}.weight"].zero_()
        sd[f"detector.fc_{head}.bias"].zero_()  # uniform pose bins: 0 degrees
    sd["detector.fc_kp.bias"] = torch.from_numpy(kp.reshape(-1).astype(np.float32))
    sd["detector.fc_scale.bias"].fill_(1)
    return sd


def warp_state(sd: dict, sharpness: float = 300.0) -> dict:
    sd = _zeros_like(sd)
    p = "dense_motion_network."
    skip = 32  # the hourglass output ends with its 110 input channels: keypoint k's heat map at 32 + 5k
    for k in range(22):
        sd[p + "hourglass.decoder.conv.weight"][skip + 5 * k, skip + 5 * k, 1, 1, 1] = 1
    for k in range(1, 22):
        sd[p + "mask.weight"][k, skip + 5 * k, 3, 3, 3] = sharpness
    sd[p + "occlusion.bias"].fill_(12)  # nothing occluded
    for c in range(3):  # the middle depth slices are where the keypoints (z = 0) act
        sd["third.conv.weight"][c, c * 16 + 7, 1, 1] = 0.5
        sd["third.conv.weight"][c, c * 16 + 8, 1, 1] = 0.5
        sd["fourth.weight"][c, c, 0, 0] = 1
    return sd


def decoder_state(sd: dict, mean: np.ndarray, std: np.ndarray, lift: float = 3.0) -> dict:
    sd = {k: v.clone() for k, v in sd.items()}
    sd["fc.weight"].zero_()
    sd["fc.bias"].zero_()
    for c in range(3):
        sd["fc.weight"][c, c, 1, 1] = 1
    blocks = [f"G_middle_{i}" for i in range(6)] + ["up_0", "up_1"]
    for b in blocks:
        # residual branch off: its second modulation multiplies by (1 + gamma) = 0
        sd[f"{b}.norm_1.mlp_gamma.weight"].zero_()
        sd[f"{b}.norm_1.mlp_gamma.bias"].fill_(-1)
        sd[f"{b}.norm_1.mlp_beta.weight"].zero_()
        sd[f"{b}.norm_1.mlp_beta.bias"].zero_()
        sd[f"{b}.conv_1.bias"].zero_()
        if f"{b}.conv_s.weight_orig" in sd:  # learned shortcut: instance norm + lift, then identity
            w = sd[f"{b}.conv_s.weight_orig"]
            w.zero_()
            for c in range(3):
                w[c, c, 0, 0] = 1
            for uv in ("weight_u", "weight_v"):  # sigma = u . (W v) = 1: the weight is used as is
                sd[f"{b}.conv_s.{uv}"].zero_()
                sd[f"{b}.conv_s.{uv}"][0] = 1
            sd[f"{b}.norm_s.mlp_gamma.weight"].zero_()
            sd[f"{b}.norm_s.mlp_gamma.bias"].zero_()
            sd[f"{b}.norm_s.mlp_beta.weight"].zero_()
            sd[f"{b}.norm_s.mlp_beta.bias"].fill_(lift)  # keeps the leaky ReLU on its linear side
    w, bias = sd["conv_img.0.weight"], sd["conv_img.0.bias"]
    w.zero_()
    for c in range(3):
        mu = float(np.clip(mean[c], 0.05, 0.95))
        a = float(std[c]) / (mu * (1 - mu))  # sigmoid(a z + logit(mu)) ~ mu + std z
        w[4 * c:4 * c + 4, c, 1, 1] = a
        bias[4 * c:4 * c + 4] = np.log(mu / (1 - mu)) - lift * a
    return sd


def stitch_state(sd: dict) -> dict:
    sd = {k: v.clone() for k, v in sd.items()}
    sd["mlp.6.weight"].zero_()
    sd["mlp.6.bias"].zero_()
    return sd


def lmdm_state(sd: dict, lip: float, sway: float, loud_in: float = 8.0) -> dict:
    out = {k: torch.zeros_like(v) for k, v in sd.items()}
    for k, v in sd.items():
        if k.endswith("rotary.freqs"):
            out[k] = v.clone()
        elif k.endswith(".weight") and v.ndim == 1 and "norm" in k.split(".")[-2]:
            out[k].fill_(1)  # every LayerNorm scale
    out["non_attn_cond_projection.0.weight"].fill_(1)
    sharp, broad = torch.full((64,), 16 / 8), torch.full((64,), 6 / 8)  # rotary pattern amplitudes
    # queries: layer 0's cross-attention sees norm2(0) = its bias; keys: the condition tokens' pattern
    q = "seqTransDecoder.stack.0."
    out[q + "norm2.bias"][:64], out[q + "norm2.bias"][64:128] = sharp, broad
    out["norm_cond.weight"][:128] = 0
    out["norm_cond.bias"][:64], out["norm_cond.bias"][64:128] = sharp, broad
    out["cond_projection.weight"][LOUD, 0] = loud_in  # loudness (audio feature 0) -> token feature LOUD
    out["cond_projection.bias"][200:] = torch.tensor([10.0, -10.0]).repeat(156)  # fixed spread for the norm
    w = out[q + "multihead_attn.in_proj_weight"]
    for i in range(128):
        w[i, i] = 1  # queries
        w[512 + i, i] = 1  # keys
    w[1024 + 0, LOUD] = 1  # head 0 (sharp) value: the loudness of the frame it attends to
    w[1024 + 64, LOUD] = 1  # head 1 (broad): a loudness averaged over neighbouring frames
    out[q + "multihead_attn.out_proj.weight"][LIP_OUT, 0] = 1
    out[q + "multihead_attn.out_proj.weight"][POSE_OUT, 64] = 1
    f = out["final_layer.weight"]
    exp = 202
    f[exp + 12 * 3 + 1, LIP_OUT] = lip  # lower lip down
    f[exp + 19 * 3 + 1, LIP_OUT] = lip
    f[exp + 6 * 3 + 1, LIP_OUT] = -0.3 * lip  # upper lip a little up
    f[199, POSE_OUT] = sway  # head translation x
    f[200, POSE_OUT] = 0.5 * sway  # and y
    return out


def blink(kp: np.ndarray, frames: int = BLINK_FRAMES) -> np.ndarray:
    """(frames, 63): the upper lids move down and the lower lids up until they meet, and back."""
    curve = np.sin(np.linspace(0, np.pi, frames)) ** 2
    arr = np.zeros((frames, 21, 3), np.float32)
    for upper, lower in ((11, 13), (16, 18)):
        gap = kp[lower, 1] - kp[upper, 1]
        arr[:, upper, 1] = 0.6 * gap * curve
        arr[:, lower, 1] = -0.6 * gap * curve
    return arr.reshape(frames, 63)


def write_see_through(reference_dir: Path, folder: Path, portrait: np.ndarray) -> SeeThrough:
    """All Ditto files for ``portrait`` into ``folder`` (the hub layout), plus where to look."""
    import cv2

    from THG.ditto.face import crop, crop_matrix, face_points
    from THG.face_mesh import FaceMesh

    mesh = FaceMesh(refine_landmarks=True)
    lm = mesh(portrait)
    mesh.close()
    if lm is None:
        raise ValueError("no face in the portrait")
    dsize = 2 * RENDER
    m = crop_matrix(face_points(lm), dsize, CROP_SCALE)
    pts = lm[:, :2] @ m[:2, :2].T + m[:2, 2]  # crop pixels
    kp = np.zeros((21, 3), np.float32)
    for k, i in KP_MESH.items():
        kp[k, :2] = pts[i] / dsize * 2 - 1
    face = cv2.resize(crop(portrait, m, dsize), (RENDER, RENDER), interpolation=cv2.INTER_AREA) / 255.0
    mean, std = face.reshape(-1, 3).mean(0), face.reshape(-1, 3).std(0)
    states = {
        "appearance_extractor.pth": appearance_state(ditto_state(reference_dir, "appearance_extractor.pth")),
        "motion_extractor.pth": motion_state(ditto_state(reference_dir, "motion_extractor.pth"), kp),
        "warp_network.pth": warp_state(ditto_state(reference_dir, "warp_network.pth")),
        "decoder.pth": decoder_state(ditto_state(reference_dir, "decoder.pth"), mean, std),
        "stitch_network.pth": stitch_state(ditto_state(reference_dir, "stitch_network.pth")),
        "lmdm_v0.4_hubert.pth": lmdm_state(ditto_state(reference_dir, "lmdm_v0.4_hubert.pth"), lip=0.02, sway=0.02),
    }
    models = Path(folder) / MODELS_DIR
    models.mkdir(parents=True, exist_ok=True)
    for name in DITTO_MODELS:
        write_ditto_model(reference_dir, models, name, state=states[name])
    (Path(folder) / HUBERT_NAME).parent.mkdir(parents=True, exist_ok=True)
    write_tiny_hubert(Path(folder) / HUBERT_NAME, loudness=10.0)
    (Path(folder) / CONFIG_NAME).parent.mkdir(parents=True, exist_ok=True)
    write_ditto_config(Path(folder) / CONFIG_NAME, ditto_config(emo=4, blink=blink(kp), extra={
        "crop_scale": CROP_SCALE}))

    def box(idx, pad):
        p = lm[list(idx)]
        (x0, y0), (x1, y1) = p.min(0) - pad, p.max(0) + pad
        return int(x0), int(y0), int(np.ceil(x1)), int(np.ceil(y1))

    return SeeThrough(Path(folder), kp, eyes=[box((33, 133, 159, 145), 4), box((263, 362, 386, 374), 4)],
                      mouth=box((61, 291, 0, 17), 4), face=box((234, 454, 10, 152), 0))
