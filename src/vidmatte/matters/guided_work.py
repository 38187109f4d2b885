"""The guided matter's work folder: what each pass left there, and which of it a later run may reuse.

Layout (``--work DIR``)::

    manifest.json                 what the files below hold (written by every update, atomically)
    confidence.json               the subject tracker's confidence of each kept propagated frame (once a run)
    forward/NNNNN.png             the forward pass's trimap of frame N, and its confidence (NNNNN_confidence.png)
    backward/NNNNN.png            the same for the backward pass
    solved/NNNNN_alpha.npy.gz     the writing pass's alpha (float32, exact) and NNNNN_trimap.png (the trimap
                                  solved from); foreground colours are remade from the frame and this alpha

Beside the solved frames' tokens the manifest lists those whose two directions contradicted each other
(``contradicted``): the fused trimaps are not kept, and a correction run reports the whole clip's contradictions,
not only those of the frames it solved.

Every file records its *provenance*, a token naming the keyframes it was made from: a forward trimap depends only
on the last keyframe at or before its frame (index and content), a backward one on the next keyframe at or after
it, a solved frame on both plus whether RVM's prior was used. A later run recomputes exactly the frames whose token
changed, which for an added, changed or removed keyframe are the frames between its neighbouring keyframes (DVM's
interactive trimap propagation). The manifest stores the tokens as runs of frames; anything that changes every
frame (another input, frame size, guidance reading, prior, solver, range: ``settings``) starts the folder afresh.

Crash safety: a frame's entry is dropped from the manifest before its files are replaced, each file is written
under a temporary name and renamed, and the entry is recorded only after its files are in place. A run cancelled
or killed at any point leaves a manifest that claims only complete files; the next run reuses those.
Nothing here deletes a file it did not write: stale frames are overwritten when recomputed, or left unclaimed.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
from pathlib import Path

import cv2
import numpy as np

from ..errors import UsageError
from ..io.atomic import TEMPORARY_NAME, process_alive, write_atomic
from ..io.images import read_gray

MANIFEST = "manifest.json"
# The tracker's confidence of each kept propagated frame, with the token it was made under: written once per run
# (before the writing pass), not with every frame's record, so that a long clip's manifest stays small to rewrite.
CONFIDENCE = "confidence.json"
FORMAT = 3  # 2: propagated trimaps keep their band (guidance.propagate.Propagated.band); 3: "contradicted"
WRITER = "vidmatte guided"
KINDS = ("forward", "backward", "solved")


def keyframe_token(index: int, trimap: np.ndarray) -> str:
    """``"index:hash"``: a keyframe as the frames it reaches depend on it (where it is and what it marks)."""
    digest = hashlib.sha256(f"{trimap.shape}".encode() + np.ascontiguousarray(trimap).tobytes()).hexdigest()
    return f"{index}:{digest[:16]}"


class WorkFolder:
    """The manifest and files of one work folder. ``valid[kind]`` maps frame index -> the token its files hold."""

    def __init__(self, folder: str | os.PathLike, settings: dict):
        self.folder = Path(folder)
        self.settings = json.loads(json.dumps(settings, sort_keys=True))  # as it reads back from the manifest
        self.valid: dict[str, dict[int, str]] = {kind: {} for kind in KINDS}
        self.prior_decision: dict | None = None  # {"keyframe": token, "uses": bool}: --prior auto's last decision
        self.contradicted: set[int] = set()  # valid solved frames whose two directions contradicted each other

    # --- opening -------------------------------------------------------------------------------------------
    def open(self) -> str | None:
        """Read the manifest. Returns why nothing can be reused (None: the folder is new, or some may be)."""
        self._check_ours()
        for kind in KINDS:
            (self.folder / kind).mkdir(parents=True, exist_ok=True)
            self._remove_dead_temporaries(self.folder / kind)
        data = self._read_manifest()
        if data is None:
            self.save()
            return None
        why = self._why_stale(data)
        if why is None:
            self.valid = {kind: _expand(data.get(kind, [])) for kind in KINDS}
            self.prior_decision = data.get("prior")
            self.contradicted = set(_expand([[*run, True] for run in data.get("contradicted", [])]))
        self.save()  # under the new settings at once: files of the old ones are never claimed by them
        return why

    def _check_ours(self) -> None:
        """A folder without our manifest is used only if it is empty (or holds the empty kind folders a run killed
        before its first save left): files in it would be written over, and they are not ours."""
        if not self.folder.is_dir() or (self.folder / MANIFEST).exists():
            return
        foreign = sorted(p.name for p in self.folder.iterdir()
                         if not (p.name in KINDS and p.is_dir() and not p.is_symlink() and not any(p.iterdir())))
        if foreign:
            raise UsageError(f"work folder {self.folder} holds {', '.join(foreign[:3])}"
                             f"{f' and {len(foreign) - 3} more' if len(foreign) > 3 else ''}, and no {MANIFEST} of "
                             "vidmatte guided: it was left untouched; give a new or empty folder")

    def _read_manifest(self) -> dict | None:
        path = self.folder / MANIFEST
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = None
        if not isinstance(data, dict) or data.get("written_by") != WRITER:
            raise UsageError(f"work folder {self.folder} holds a {MANIFEST} that vidmatte guided did not write; "
                             "give another folder")
        return data

    def _why_stale(self, data: dict) -> str | None:
        if data.get("format") != FORMAT:
            return "it was written by another version"
        old = data.get("settings", {})
        changed = sorted(key for key in set(old) | set(self.settings) if old.get(key) != self.settings.get(key))
        return f"{', '.join(changed)} changed" if changed else None

    @staticmethod
    def _remove_dead_temporaries(folder: Path) -> None:
        """Half-written files of a killed run (ours by name, their process gone)."""
        for path in folder.iterdir():
            match = TEMPORARY_NAME.fullmatch(path.name)
            if match and path.is_file() and not process_alive(int(match.group(1))):
                path.unlink(missing_ok=True)

    # --- what is valid -------------------------------------------------------------------------------------
    def holds(self, kind: str, index: int, token: str | None) -> bool:
        return token is not None and self.valid[kind].get(index) == token and self.path(kind, index).exists()

    def path(self, kind: str, index: int, part: str = "") -> Path:
        """The file of ``kind`` for frame ``index``; ``part`` names a second file beside it ("confidence"...)."""
        if kind == "solved":
            part = part or "alpha"
            return self.folder / kind / f"{index:05d}_{part}{'.npy.gz' if part == 'alpha' else '.png'}"
        return self.folder / kind / f"{index:05d}{'_' + part if part else ''}.png"

    def forget(self, kind: str, indices) -> None:
        """No longer claim these frames' files (before they are overwritten)."""
        gone = [i for i in indices if self.valid[kind].pop(i, None) is not None]
        if kind == "solved":
            self.contradicted.difference_update(gone)
        if gone:
            self.save()

    def record(self, kind: str, index: int, token: str, contradicted: bool = False) -> None:
        """Frame ``index``'s files of ``kind`` are complete and were made from ``token``; ``contradicted`` (solved
        frames): its two directions' guidance contradicted each other."""
        self.valid[kind][index] = token
        if kind == "solved":
            (self.contradicted.add if contradicted else self.contradicted.discard)(index)
        self.save()

    def decide_prior(self, keyframe: str, uses: bool) -> None:
        self.prior_decision = {"keyframe": keyframe, "uses": uses}
        self.save()

    def save(self) -> None:
        data = {"written_by": WRITER, "format": FORMAT, "settings": self.settings, "prior": self.prior_decision}
        data.update({kind: _runs(self.valid[kind]) for kind in KINDS})
        data["contradicted"] = [run[:2] for run in _runs(dict.fromkeys(self.contradicted, True))]
        write_atomic(self.folder / MANIFEST, json.dumps(data, indent=1).encode())

    # --- the tracker's confidence ------------------------------------------------------------------------
    def read_confidence(self) -> dict[str, dict[int, float]]:
        """Per direction, the tracker's confidence of the propagated frames whose files are still valid (made under
        the token it was kept with): a correction run reports doubtful frames over the whole clip, not only over the
        frames it propagated again."""
        try:
            data = json.loads((self.folder / CONFIDENCE).read_text())
        except (OSError, ValueError):
            data = {}
        kept = {}
        for kind in ("forward", "backward"):
            entries = data.get(kind, {}) if isinstance(data, dict) else {}
            kept[kind] = {int(i): float(entry[1]) for i, entry in entries.items()
                          if isinstance(entry, list) and len(entry) == 2 and self.valid[kind].get(int(i)) == entry[0]}
        return kept

    def keep_confidence(self, confidence: dict[str, dict[int, float]]) -> None:
        """Keep ``confidence`` (per direction, frame -> 0..1) for the frames whose files are valid now."""
        data = {kind: {str(i): [self.valid[kind][i], round(float(c), 4)] for i, c in sorted(values.items())
                       if i in self.valid[kind]}
                for kind, values in confidence.items()}
        write_atomic(self.folder / CONFIDENCE, json.dumps(data).encode())

    # --- frame files ---------------------------------------------------------------------------------------
    def write_trimap(self, kind: str, index: int, trimap: np.ndarray, confidence: np.ndarray,
                     band: np.ndarray) -> None:
        write_atomic(self.path(kind, index), _png(trimap))
        write_atomic(self.path(kind, index, "confidence"), _png(np.rint(confidence * 255).astype(np.uint8)))
        write_atomic(self.path(kind, index, "band"), _png(band.astype(np.uint8) * 255))

    def read_trimap(self, kind: str, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(trimap uint8 [H,W], confidence float32 [H,W] 0..1, band bool [H,W]: see ``Propagated``)."""
        trimap = read_gray(self.path(kind, index), what="", error=OSError)
        confidence = read_gray(self.path(kind, index, "confidence"), what="", error=OSError)
        band = read_gray(self.path(kind, index, "band"), what="", error=OSError) > 127
        return trimap, confidence.astype(np.float32) / 255, band

    def write_solved(self, index: int, alpha: np.ndarray, trimap: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(alpha, np.float32))
        write_atomic(self.path("solved", index), gzip.compress(buffer.getvalue(), compresslevel=1))
        write_atomic(self.path("solved", index, "trimap"), _png(trimap))

    def read_solved(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(alpha float32 [H,W], trimap uint8 [H,W]) exactly as written."""
        with gzip.open(self.path("solved", index), "rb") as f:
            alpha = np.load(io.BytesIO(f.read()))
        return alpha, read_gray(self.path("solved", index, "trimap"), what="", error=OSError)

def _png(image: np.ndarray) -> bytes:
    # Level 1: these are read back once or twice; at 1080p level 3 (the default) takes twice as long to write.
    ok, encoded = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise OSError(f"cannot encode a {image.shape} image as PNG")
    return encoded.tobytes()


def _runs(tokens: dict[int, str]) -> list[list]:
    """{index: token} -> [[start, stop, token], ...]: consecutive frames with one token as one run."""
    runs: list[list] = []
    for index in sorted(tokens):
        if runs and runs[-1][1] == index and runs[-1][2] == tokens[index]:
            runs[-1][1] = index + 1
        else:
            runs.append([index, index + 1, tokens[index]])
    return runs


def _expand(runs: list) -> dict[int, str]:
    return {index: token for start, stop, token in runs for index in range(start, stop)}
