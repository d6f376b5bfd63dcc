"""S3FD face detector (the network in ``s3fd-619a316812.pth``) and its box post-processing.

The post-processing is the one Wav2Lip inherits from face-alignment's ``sfd`` detector:
softmax over the two classes, anchors of side 4*stride at strides 4..128, SSD box decoding with
variances (0.1, 0.2), candidates above 0.05, NMS at IoU 0.3 (with the +1 pixel area
convention), keep scores above 0.5, take the best box. Here it is vectorised instead of a Python
loop over anchors; the kept set is the same.

Colour order: the network gets the frame in RGB minus (104, 117, 123), the order of Wav2Lip's
pipeline, whose crops Wav2Lip was trained on: inference.py reads BGR frames with OpenCV, its
``face_detection`` API flips them to RGB (``images[..., ::-1]``), and ``sfd/detect.py`` subtracts
those means, written in BGR order for the Caffe VGG, from the RGB pixels.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

MEAN = (104.0, 117.0, 123.0)  # subtracted per channel from the RGB frame, as Wav2Lip's pipeline does


class L2Norm(nn.Module):
    """Channel-wise L2 normalisation with a learned per-channel scale (``weight``)."""

    def __init__(self, channels: int, scale: float):
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), float(scale)))
        self.eps = 1e-10

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = x.pow(2).sum(dim=1, keepdim=True).sqrt() + self.eps
        return x / norm * self.weight.view(1, -1, 1, 1)


def _conv(cin: int, cout: int, k: int = 3, stride: int = 1, padding: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride, padding)


class S3FD(nn.Module):
    """VGG16 trunk + extra layers + six detection heads. ``forward`` returns
    ``[cls1, reg1, ..., cls6, reg6]``, raw (no softmax), as the original does."""

    # (name, in, out) of the VGG trunk; a 2x2 max-pool follows the last conv of each stage.
    _TRUNK = (("conv1_1", 3, 64), ("conv1_2", 64, 64),
              ("conv2_1", 64, 128), ("conv2_2", 128, 128),
              ("conv3_1", 128, 256), ("conv3_2", 256, 256), ("conv3_3", 256, 256),
              ("conv4_1", 256, 512), ("conv4_2", 512, 512), ("conv4_3", 512, 512),
              ("conv5_1", 512, 512), ("conv5_2", 512, 512), ("conv5_3", 512, 512))
    _POOL_AFTER = ("conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3")

    def __init__(self):
        super().__init__()
        for name, cin, cout in self._TRUNK:
            setattr(self, name, _conv(cin, cout))
        self.fc6 = _conv(512, 1024, 3, 1, 3)
        self.fc7 = _conv(1024, 1024, 1, 1, 0)
        self.conv6_1 = _conv(1024, 256, 1, 1, 0)
        self.conv6_2 = _conv(256, 512, 3, 2, 1)
        self.conv7_1 = _conv(512, 128, 1, 1, 0)
        self.conv7_2 = _conv(128, 256, 3, 2, 1)
        self.conv3_3_norm = L2Norm(256, 10)
        self.conv4_3_norm = L2Norm(512, 8)
        self.conv5_3_norm = L2Norm(512, 5)
        # conv3_3 predicts 4 class maps: 3 background + 1 face ("max-out background", S3FD paper).
        heads = (("conv3_3_norm", 256, 4), ("conv4_3_norm", 512, 2), ("conv5_3_norm", 512, 2),
                 ("fc7", 1024, 2), ("conv6_2", 512, 2), ("conv7_2", 256, 2))
        for name, cin, ncls in heads:
            setattr(self, f"{name}_mbox_conf", _conv(cin, ncls))
            setattr(self, f"{name}_mbox_loc", _conv(cin, 4))
        self._heads = tuple(h[0] for h in heads)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = {}
        h = x
        for name, _, _ in self._TRUNK:
            h = F.relu(getattr(self, name)(h))
            if name in self._POOL_AFTER:
                taps[name] = h
                h = F.max_pool2d(h, 2, 2)
        h = F.relu(self.fc7(F.relu(self.fc6(h))))
        taps["fc7"] = h
        h = F.relu(self.conv6_2(F.relu(self.conv6_1(h))))
        taps["conv6_2"] = h
        h = F.relu(self.conv7_2(F.relu(self.conv7_1(h))))
        taps["conv7_2"] = h
        feats = {"conv3_3_norm": self.conv3_3_norm(taps["conv3_3"]),
                 "conv4_3_norm": self.conv4_3_norm(taps["conv4_3"]),
                 "conv5_3_norm": self.conv5_3_norm(taps["conv5_3"]),
                 "fc7": taps["fc7"], "conv6_2": taps["conv6_2"], "conv7_2": taps["conv7_2"]}
        out = []
        for name in self._heads:
            f = feats[name]
            cls = getattr(self, f"{name}_mbox_conf")(f)
            if cls.shape[1] == 4:
                bg = torch.max(torch.max(cls[:, 0:1], cls[:, 1:2]), cls[:, 2:3])
                cls = torch.cat((bg, cls[:, 3:4]), dim=1)
            out += [cls, getattr(self, f"{name}_mbox_loc")(f)]
        return out


def decode_detections(outputs: list[torch.Tensor], threshold: float = 0.05) -> list[np.ndarray]:
    """Raw head outputs -> per image an (N, 5) array of x1, y1, x2, y2, score (score > threshold)."""
    batch = outputs[0].shape[0]
    per_image: list[list[np.ndarray]] = [[] for _ in range(batch)]
    for level in range(len(outputs) // 2):
        cls = F.softmax(outputs[2 * level].float(), dim=1)[:, 1]  # (B, H, W) face probability
        reg = outputs[2 * level + 1].float()
        stride = 2 ** (level + 2)
        b_idx, ys, xs = torch.nonzero(cls > threshold, as_tuple=True)
        if b_idx.numel() == 0:
            continue
        loc = reg[b_idx, :, ys, xs]  # (N, 4)
        centre = torch.stack((xs, ys), dim=1).to(loc.dtype) * stride + stride / 2
        size = float(stride * 4)
        cxy = centre + loc[:, :2] * 0.1 * size
        wh = size * torch.exp(loc[:, 2:] * 0.2)
        boxes = torch.cat((cxy - wh / 2, cxy + wh / 2, cls[b_idx, ys, xs][:, None]), dim=1).cpu().numpy()
        b_np = b_idx.cpu().numpy()
        for b in range(batch):
            per_image[b].append(boxes[b_np == b])
    return [np.concatenate(p).astype(np.float64) if p else np.zeros((0, 5)) for p in per_image]


def nms(dets: np.ndarray, thresh: float = 0.3) -> list[int]:
    """Greedy NMS, highest score first; areas count the end pixel (+1) as the original does."""
    if len(dets) == 0:
        return []
    x1, y1, x2, y2, scores = dets.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.argsort()[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(int(i))
        xx1, yy1 = np.maximum(x1[i], x1[order[1:]]), np.maximum(y1[i], y1[order[1:]])
        xx2, yy2 = np.minimum(x2[i], x2[order[1:]]), np.minimum(y2[i], y2[order[1:]])
        inter = np.maximum(0.0, xx2 - xx1 + 1) * np.maximum(0.0, yy2 - yy1 + 1)
        ovr = inter / (areas[i] + areas[order[1:]] - inter)
        order = order[np.where(ovr <= thresh)[0] + 1]
    return keep


def best_face(dets: np.ndarray) -> tuple[int, int, int, int] | None:
    """The kept box with the highest score as integer (x1, y1, x2, y2), or None (no face)."""
    dets = dets[nms(dets, 0.3)]
    dets = dets[dets[:, 4] > 0.5]
    if len(dets) == 0:
        return None
    x1, y1, x2, y2 = np.clip(dets[0, :4], 0, None)
    return int(x1), int(y1), int(x2), int(y2)


class FaceDetector:
    """Runs S3FD on batches of RGB uint8 frames and returns one box (or None) per frame: the
    ``get_detections_for_batch`` of Wav2Lip's ``face_detection`` (``max_side=0`` for its full resolution)."""

    def __init__(self, net: S3FD, device: torch.device, max_side: int = 640, batch_size: int = 8):
        self.net = net.eval().to(device)
        self.device = device
        self.max_side = max_side  # 0: full resolution, as the original
        self.batch_size = batch_size
        self._mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)

    @torch.inference_mode()
    def detect(self, frames: list[np.ndarray]) -> list[tuple[int, int, int, int] | None]:
        import cv2

        h, w = frames[0].shape[:2]
        scale = 1.0
        if self.max_side and max(h, w) > self.max_side:
            scale = self.max_side / max(h, w)  # faces in portraits are large: fine at 640
        boxes: list[tuple[int, int, int, int] | None] = []
        for start in range(0, len(frames), self.batch_size):
            chunk = frames[start:start + self.batch_size]
            if scale != 1.0:
                chunk = [cv2.resize(f, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
                         for f in chunk]
            x = torch.from_numpy(np.stack(chunk)).to(self.device)
            x = x.permute(0, 3, 1, 2).float() - self._mean  # RGB, as in the Wav2Lip pipeline (see top)
            for dets in decode_detections(self.net(x)):
                box = best_face(dets)
                if box is not None and scale != 1.0:
                    box = tuple(int(v / scale) for v in box)
                boxes.append(box)
        return boxes
