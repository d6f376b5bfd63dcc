"""Wav2Lip, reimplemented: the generator, its S3FD face detector, the mel front end and loaders.

The backend that uses them is ``THG.wav2lip_thg.Wav2LipTHG``.
"""

from THG.wav2lip.audio import chunk_starts, mel_windows, melspectrogram
from THG.wav2lip.loading import load_s3fd, load_wav2lip, read_state_dict
from THG.wav2lip.model import Wav2Lip
from THG.wav2lip.s3fd import S3FD, FaceDetector

__all__ = ["S3FD", "FaceDetector", "Wav2Lip", "chunk_starts", "load_s3fd", "load_wav2lip", "mel_windows",
           "melspectrogram", "read_state_dict"]
