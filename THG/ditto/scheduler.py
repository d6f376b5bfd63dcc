"""Motion for audio of any length from the LMDM's 80-frame windows, frame by frame as features arrive.

Windows overlap by ``overlap`` frames; each new window is conditioned on the motion frame just before
its new part, its first frames are blended into the end of what exists (a linear cross-fade) and the
pose is smoothed over 3 frames around the seams (upstream ``Audio2Motion``). Two schedules, as upstream:

* offline (``stream_pipeline_offline``): windows start at frame 0 and advance by ``80 - overlap``; at
  the end every frame is smoothed once more. Here a frame leaves as soon as no later window can change
  it, which gives exactly upstream's result for the whole audio.
* online (``stream_pipeline_online``): the first window is ``overlap`` frames of silence then speech,
  its motion sets the reference frame and nothing of it is shown; every later window releases the
  ``80 - overlap`` frames it finished. A frame therefore waits for ``min(overlap, 80 - overlap)``
  frames of audio after it (the look-ahead).

Either way the frames do not depend on how the features were cut into pieces: a stream fed chunk by
chunk emits what one fed everything at once emits.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from THG.ditto.motion import POSE_DIM, Conditions

Sample = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (1, 265) last frame, (1, 80, C) -> (1, 80, 265)
_KEEP = 2 * 80 + 2  # frames of motion kept behind the newest window (fusing reads at most 80 back)


def smooth_pose(res: np.ndarray, start: int, stop: int, k: int) -> None:
    """In place: pose dims of frames ``start..stop-1`` -> mean over ``k`` frames around each, read from
    the values before this call (upstream ``_smo``)."""
    if k <= 1:
        return
    before = res[:, :POSE_DIM].copy()
    n, half = len(res), k // 2
    for i in range(max(start, 0), min(stop, n)):
        res[i, :POSE_DIM] = before[max(0, i - half):min(n, i + half + 1)].mean(axis=0)


class WindowSampler:
    """Upstream ``Audio2Motion``: samples windows and fuses them into one motion sequence ``res``."""

    def __init__(self, sample: Sample, first_frame: np.ndarray, overlap: int, online: bool, smooth: int = 3,
                 fix_kp_cond: int = 0, fix_kp_cond_dim: tuple[int, int] | None = None, seq_frames: int = 80):
        if not 0 < overlap < seq_frames:
            raise ValueError(f"overlap must be in 1..{seq_frames - 1}, got {overlap}")
        self.sample, self.seq, self.overlap, self.smooth = sample, seq_frames, overlap, smooth
        self.valid = seq_frames - overlap
        self.fuse = min(overlap, self.valid) if online else overlap
        self.alpha = (np.arange(self.fuse, dtype=np.float32) / self.fuse).reshape(-1, 1)
        self.first = np.asarray(first_frame, np.float32).reshape(1, -1)
        self.kp_cond = self.first.copy()
        self.fix, self.fix_dim = fix_kp_cond, fix_kp_cond_dim
        self.res: np.ndarray | None = None  # (frames, 265), frame 0 at ``self.base``
        self.base = 0
        self.windows = 0
        self.log: list[tuple[np.ndarray, np.ndarray]] = []  # (kp_cond, cond) of every window, if wanted
        self.keep_log = False

    @property
    def end(self) -> int:
        """Absolute index one past the last frame of motion so far."""
        return self.base + (0 if self.res is None else len(self.res))

    def __call__(self, cond: np.ndarray) -> None:
        if self.keep_log:
            self.log.append((self.kp_cond.copy(), cond.copy()))
        pred = self.sample(self.kp_cond, cond[None])[0]
        if self.res is None:
            self.res = pred.copy()
            smooth_pose(self.res, 0, len(self.res), self.smooth)
        else:
            start = len(self.res) - self.fuse
            mid = self.seq - self.valid
            self.res[start:] = self.res[start:] * (1 - self.alpha) + pred[mid - self.fuse:mid] * self.alpha
            self.res = np.concatenate([self.res, pred[mid:]])
            n = len(self.res)
            smooth_pose(self.res, n - self.valid - self.fuse, n - self.valid + 1, self.smooth)
        self.windows += 1
        last = self.res[len(self.res) - self.overlap - 1]
        if self.fix > 0 and (self.windows - 1) % self.fix == 0:
            self.kp_cond = self.first.copy()
            if self.fix_dim is not None:
                a, b = self.fix_dim
                self.kp_cond[:, a:b] = last[a:b]
        else:
            self.kp_cond = last[None].copy()

    def frames(self, start: int, stop: int) -> np.ndarray:
        return self.res[start - self.base:stop - self.base]

    def trim(self, keep_from: int) -> None:
        """Forget frames before absolute index ``keep_from`` (never the last ``_KEEP``)."""
        cut = min(keep_from, self.end - _KEEP) - self.base
        if self.res is not None and cut > 0:
            self.res = self.res[cut:]
            self.base += cut


class MotionStream:
    """Audio features in (any number of frames at a time), final motion frames out.

    ``push`` returns the (k, 265) frames that became final; ``finish(n)`` the rest, so that ``n`` frames
    came out in all. ``d0`` is the reference frame of relative motion once known: the first frame of
    the first window (the silence before the speech, online; the first frame of speech, offline)."""

    def __init__(self, sample: Sample, conditions: Conditions, first_frame: np.ndarray, *, overlap: int,
                 online: bool, silence: np.ndarray | None = None, smooth: int = 3, fix_kp_cond: int = 0,
                 fix_kp_cond_dim: tuple[int, int] | None = None, seq_frames: int = 80):
        self.windows = WindowSampler(sample, first_frame, overlap, online, smooth, fix_kp_cond, fix_kp_cond_dim,
                                     seq_frames)
        self.conditions, self.online, self.seq, self.smooth = conditions, online, seq_frames, smooth
        if online:
            if overlap < seq_frames // 2:
                # upstream releases from frame 80 - min(overlap, 80 - overlap) of the first window: with a
                # shorter overlap the first frames of speech would never be shown
                raise ValueError(f"online motion needs an overlap of at least {seq_frames // 2}, got {overlap}")
            if silence is None or len(silence) != overlap:
                raise ValueError(f"online motion needs the features of {overlap} frames of silence")
            self.feats = np.asarray(silence, np.float32)
            self.lead = overlap  # feature rows before the first frame of audio
        else:
            self.feats = np.zeros((0, 0), np.float32)
            self.lead = 0
        self.feat_base = 0  # absolute row of ``self.feats[0]``
        self.pos = 0  # absolute row where the next window starts
        self.valid_start: int | None = None if online else 0  # absolute motion index of the next output
        self.d0: np.ndarray | None = None
        self.out: list[np.ndarray] = []
        self.emitted = 0

    @property
    def available(self) -> int:
        return self.feat_base + len(self.feats)

    def push(self, features: np.ndarray) -> np.ndarray:
        features = np.asarray(features, np.float32)
        if len(features):
            self.feats = features.copy() if self.feats.size == 0 else np.concatenate([self.feats, features])
        self._run(end=False)
        return self._take()

    def finish(self, frames: int) -> np.ndarray:
        """Run the last windows (padded) and return what is left of ``frames`` frames in all."""
        self._run(end=True, total=frames)
        short = frames - self.emitted - sum(map(len, self.out))
        if self.online and short > 0 and self.valid_start is not None:
            # audio shorter than one window's new part: upstream releases nothing after its first (and
            # only) window; the frames are there, so they are released rather than lost
            w = self.windows
            self.out.append(w.frames(self.valid_start, min(self.valid_start + short, w.end)).copy())
        out = self._take()
        if self.emitted > frames:
            out = out[:len(out) - (self.emitted - frames)]
            self.emitted = frames
        return out

    def _take(self) -> np.ndarray:
        out = np.concatenate(self.out) if self.out else np.zeros((0, self.windows.first.shape[1]), np.float32)
        self.out = []
        self.emitted += len(out)
        return out

    def _window(self, start: int, end: bool) -> np.ndarray | None:
        rows = self.feats[start - self.feat_base:start - self.feat_base + self.seq]
        if len(rows) == 0 or (len(rows) < self.seq and not end):
            return None
        return rows

    def _run(self, end: bool, total: int | None = None) -> None:
        if self.online:
            self._run_online(end)
        else:
            self._run_offline(end, total)
        self.windows.trim(min(self.pos, self.emitted_motion_index()) - 2)
        drop = self.pos - self.feat_base - self.seq
        if drop > 0:
            self.feats = self.feats[drop:]
            self.feat_base += drop

    def emitted_motion_index(self) -> int:
        return self.valid_start if self.valid_start is not None else 0

    def _run_online(self, end: bool) -> None:
        """upstream ``StreamSDK._audio2motion_worker`` with ``online_mode``."""
        w = self.windows
        while True:
            rows = self._window(self.pos, end)
            if rows is None:
                return
            real = w.valid
            if len(rows) < self.seq:
                real = len(rows)
                rows = np.concatenate([rows, np.repeat(rows[-1:], self.seq - len(rows), axis=0)])
            w(self.conditions(rows, self.pos - self.lead))
            if self.valid_start is None:
                self.valid_start = w.end - w.fuse
                self.d0 = w.frames(0, 1)[0].copy()
            else:
                self.out.append(w.frames(self.valid_start, min(self.valid_start + real, w.end)).copy())
                self.valid_start += real
            self.pos += real
            if self.pos >= self.available:
                return

    def _run_offline(self, end: bool, total: int | None) -> None:
        """upstream ``StreamSDK._audio2motion_offline``, releasing frames as they become final."""
        w = self.windows
        n = total if end else None
        while n is None or self.pos < n:
            rows = self._window(self.pos, end)
            if rows is None:
                break
            cond = self.conditions(rows, self.pos)
            if len(cond) < self.seq:  # offline pads the conditions, not the features
                cond = np.concatenate([cond, np.repeat(cond[-1:], self.seq - len(cond), axis=0)])
            w(cond)
            self.pos += w.valid
        if end:
            stop = n
        else:  # later windows still cross-fade into the last ``fuse`` frames; smoothing reads one more
            stop = min(w.end - w.fuse - 1, self.available)
        if stop > self.valid_start and w.res is not None:
            self.out.append(self._final(self.valid_start, stop, n))
            if self.d0 is None:
                self.d0 = self.out[-1][0].copy()
            self.valid_start = stop

    def _final(self, start: int, stop: int, n: int | None) -> np.ndarray:
        """Frames ``start..stop-1`` after upstream's last smoothing pass over the whole sequence
        (cut at ``n`` frames when the end is known)."""
        w = self.windows
        lo, hi = max(start - 1, w.base), min(stop + 1, w.end if n is None else n)
        block = w.frames(lo, hi).copy()
        smooth_pose(block, start - lo, stop - lo, self.smooth)
        return block[start - lo:stop - lo]
