"""The built-in portraits: each documented with its source and licence, each with one face, and the
role that picks its face and voice."""

from __future__ import annotations

import numpy as np

from app_modules.config import Settings
from app_modules.media import load_image
from app_modules.ui import voices
from app_modules.ui.chat_tabs import ASSETS, AVATAR_ROLES, BUILTIN_AVATARS, avatar_for_role
from THG.face_mesh import FaceMesh


def test_every_portrait_is_listed_with_its_source_and_licence():
    readme = (ASSETS / "README.md").read_text(encoding="utf-8")
    shipped = sorted(p.name for p in ASSETS.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))
    assert shipped == sorted(p.name for p in BUILTIN_AVATARS.values())
    for name, path in BUILTIN_AVATARS.items():
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{path.name}` |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 5 and all(cells), row
        assert cells[2] == AVATAR_ROLES[name] and "public domain" in cells[4].lower()
        assert "wheel" in cells[3] and "version" in cells[3]


def test_every_portrait_has_exactly_one_face():
    mesh = FaceMesh()
    for path in BUILTIN_AVATARS.values():
        image = load_image(path)
        assert mesh(image) is not None, path
        # a second face would be animated by chance: the mesh must not find one beside the first
        import mediapipe as mp

        with mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5) as det:
            found = det.process(np.ascontiguousarray(image)).detections or []
        assert len(found) == 1, f"{path.name}: {len(found)} faces"


def test_the_role_picks_the_face_and_the_voice():
    for name, role in AVATAR_ROLES.items():
        assert role in voices.ROLES and avatar_for_role(role) == name
    # the voice follows the role with espeak-ng (what tts: auto speaks with when no Edge service and no Piper
    # voice is there; issue 14 made auto the default)
    settings = Settings(tts="espeak")
    voices_by_role = {r: voices.role_tts_options(settings, r)["voice"] for r in voices.ROLES}
    assert len(set(voices_by_role.values())) == len(voices.ROLES), voices_by_role
