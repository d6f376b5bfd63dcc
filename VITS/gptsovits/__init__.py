"""A from-scratch reimplementation of the GPT-SoVITS v2 inference path (RVC-Boss/GPT-SoVITS).

``t2s``: the autoregressive text-to-semantic GPT. ``sovits``: the VITS synthesizer that turns semantic
tokens plus phonemes into a 32 kHz waveform, timbre taken from a reference spectrogram.
``loaders`` reads the published checkpoint containers. ``text`` is the phoneme front end.
Module and parameter names follow the original so that its checkpoints load strictly.
"""
