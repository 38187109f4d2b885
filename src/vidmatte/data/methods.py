"""Methods `bench run` can compare, each writing ``<out>/<clip>/pha/<frame>.png`` (and ``fgr/``) for a built
benchmark clip. A method sees only what a user would give it: the composite frames, plus the guidance it is
named after (the oracle reads the true trimap of every frame, which is why it is an upper bound, not a method).
Every method is a matter run by ``pipeline.convert``, the same frame loop (and output safety) as the CLI's."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from ..guidance.formats import read_trimap
from ..io.images import read_gray, read_rgb
from ..matte import DenseMatte
from ..matters.base import Pass, Span, writing_pass
from ..metrics.layout import find_track

METHODS = {
    "rvm": "RVM MobileNetV3 (ONNX Runtime), no guidance, recurrent state warmed up on the first frames (the default)",
    "rvm-cold": "RVM MobileNetV3 as published: the recurrent state starts empty at frame 0 (--warmup 0)",
    "guided": "vidmatte guided: the benchmark's keyframe trimaps (tcvom/*_trimap.png) propagated both ways, alpha "
              "solved (closed form), RVM's alpha as a prior where RVM sees the keyframe's subject (--prior auto)",
    "guided-first": "vidmatte guided with the trimap of frame 0 only",
    "guided-flow": "vidmatte guided --propagator flow: the keyframe-anchored flow alone (the default before the "
                   "subject tracker, issue 26)",
    "guided-memory": "vidmatte guided --propagator memory: the flow re-anchored by a space-time memory of RVM encoder "
                     "features where it loses the subject",
    "guided-memory-ft": "vidmatte guided --propagator memory --finetune-steps 50: the memory's heads first trained on "
                        "augmented keyframes (needs torch)",
    "background": "vidmatte background: the clip's plate.png (the background at frame 0) aligned to every frame, alpha "
                  "from the compositing equation with the plate (classical method), RVM's foreground and alpha where "
                  "RVM sees the subject",
    "background-auto": "vidmatte background --plate auto --no-align: the plate estimated from the clip itself (a "
                       "locked-off camera), no plate.png",
    "ftpvm": "vidmatte guided --method ftpvm: the FTP-VM network (weights: bench run --checkpoint) with the "
             "benchmark's keyframe trimaps (tcvom/*_trimap.png) as its memory",
    "oracle": "closed-form matting (Levin et al.) with the TRUE trimap of every frame + multi-level foreground",
}


class OracleMatter:
    """Closed-form alpha from the true trimap, frame by frame: what a perfect trimap propagation would reach."""

    seq_chunk = 1

    def __init__(self, trimaps: list[Path]):
        self.trimaps = trimaps  # frame i's true trimap, read when the frame is

    def reset(self) -> None:
        pass

    def passes(self, span: Span) -> list[Pass]:
        return [writing_pass(span)]

    def begin_pass(self, p: Pass) -> None:
        pass

    def prepare(self, frame: np.ndarray, index: int | None = None) -> tuple:
        if index is None:
            raise ValueError("the oracle needs each frame's index to find its true trimap")
        return frame, read_trimap(self.trimaps[index])

    def matte(self, prepared: list) -> list[DenseMatte]:
        from ..solvers import closed_form_alpha, estimate_foreground

        mattes = []
        for frame, trimap in prepared:
            image = frame.astype(np.float64) / 255
            alpha = closed_form_alpha(image, trimap.astype(np.float64) / 255)
            fgr, _ = estimate_foreground(image, alpha)
            mattes.append(DenseMatte(np.ascontiguousarray(fgr.transpose(2, 0, 1), np.float32),
                                     alpha.astype(np.float32)))
        return mattes


def _rvm_matter(state: dict | None, warmup: int | None):
    """One loaded model for all clips of a run (``state`` carries it between calls)."""
    if state is not None and "rvm" in state:
        matter = state["rvm"]
    else:
        import vidmatte

        matter = vidmatte.load("rvm-mobilenetv3", downsample_ratio=None)
        if state is not None:
            state["rvm"] = matter
    from ..matters.recurrent import DEFAULT_WARMUP

    matter.warmup = DEFAULT_WARMUP if warmup is None else warmup
    return matter


NEEDS_CHECKPOINT = {"ftpvm"}  # methods whose weights ``bench run --checkpoint`` names


def _true_trimaps(clip_dir: Path) -> list[Path]:
    """The clip's ``trimap/`` images, frame i's at position i (as its ``com/`` frames are numbered)."""
    track = find_track(clip_dir, "trimap")
    if track is None or track.files is None:
        raise InputError(f"{clip_dir} has no trimap/ folder: the oracle needs the true trimap of every frame")
    return track.files


def _keyframes(clip_dir: Path) -> dict[int, np.ndarray]:
    """The keyframes a user of the benchmark's TCVOM layout would give: its ``NNNNN_trimap.png`` files."""
    files = sorted((clip_dir / "tcvom").glob("*_trimap.png"))
    return {int(f.name.split("_")[0]): read_gray(f) for f in files}


def _guided_matter(clip_dir: Path, first_only: bool, prior, propagators=None):
    from ..matters.guided import GuidedMatter

    keyframes = _keyframes(clip_dir)
    if first_only:
        keyframes = {min(keyframes): keyframes[min(keyframes)]}
    if propagators is None:
        return GuidedMatter(keyframes, prior=prior, prior_mode="auto")
    return GuidedMatter(keyframes, prior=prior, prior_mode="auto", propagator_factory=propagators)


def _ftpvm_matter(clip_dir: Path, state: dict | None, checkpoint: str | None):
    """FTP-VM with the clip's keyframes as its memory; the network is loaded once per run (``state``)."""
    from ..matters.ftpvm import FtpvmMatter
    from ..models.loaders import load_ftpvm

    key = ("ftpvm", checkpoint)
    model = state.get(key) if state is not None else None
    if model is None:
        model = load_ftpvm(checkpoint)
        if state is not None:
            state[key] = model
    return FtpvmMatter(model, _keyframes(clip_dir))


def _plate_matter(clip_dir: Path, prior):
    """The plate a user would have shot: the clip's ``plate.png``."""
    from ..matters.plate import PlateMatter

    plate = read_rgb(clip_dir / "plate.png")
    return PlateMatter(plate, prior=prior)


def _estimated_plate_matter(clip_dir: Path, prior):
    """The plate ``--plate auto`` estimates from the clip's frames (RVM's people do not vote), not aligned."""
    from ..io.source import open_source
    from ..matters.plate import PlateMatter
    from ..matters.plate_estimate import estimate_plate

    estimate = estimate_plate(open_source(find_track(clip_dir, "com").files[0].parent), 0, None, prior)
    return PlateMatter(estimate.plate, prior=prior, align=False)


def run_method(method: str, clip_dir: Path, out_dir: Path, progress=None, state: dict | None = None,
               checkpoint: str | None = None) -> None:
    """Run ``method`` on one built clip (``clip_dir`` holds com/, trimap/) and write its pha/ and fgr/ as 8-bit PNGs.

    ``progress`` is advanced once per written frame; ``state`` (a dict kept by the caller) lets clips share a
    loaded model; ``checkpoint``: the weights of a method in ``NEEDS_CHECKPOINT``."""
    from ..io.writers import parse_output
    from ..job import JobControl
    from ..pipeline import ConvertOptions, convert

    if method in ("rvm", "rvm-cold"):
        matter = _rvm_matter(state, 0 if method == "rvm-cold" else None)
    elif method in ("guided", "guided-first"):
        if "tracking" not in state:  # the tracker's encoder, loaded once per run
            from ..guidance.memory import propagator_factory

            state["tracking"] = propagator_factory("auto")
        matter = _guided_matter(clip_dir, first_only=method == "guided-first", prior=_rvm_matter(state, 0),
                                propagators=state["tracking"])
    elif method == "guided-flow":
        matter = _guided_matter(clip_dir, False, prior=_rvm_matter(state, 0))
    elif method in ("guided-memory", "guided-memory-ft"):
        from ..guidance.memory import propagator_factory

        steps = 50 if method == "guided-memory-ft" else 0
        matter = _guided_matter(clip_dir, False, _rvm_matter(state, 0),
                                propagator_factory("memory", finetune_steps=steps))
    elif method == "background":
        matter = _plate_matter(clip_dir, _rvm_matter(state, None))
    elif method == "background-auto":
        matter = _estimated_plate_matter(clip_dir, _rvm_matter(state, None))
    elif method == "ftpvm":
        matter = _ftpvm_matter(clip_dir, state, checkpoint)
    elif method == "oracle":
        matter = OracleMatter(_true_trimaps(clip_dir))
    else:
        raise ValueError(f"unknown method {method!r} (known: {', '.join(METHODS)})")
    out_dir.mkdir(parents=True, exist_ok=True)
    options = ConvertOptions(outputs=[parse_output("alpha", f"{out_dir / 'pha'}/"),
                                      parse_output("foreground", f"{out_dir / 'fgr'}/")],
                             sequence_fps=25)
    convert(find_track(clip_dir, "com").files[0].parent, matter, options, JobControl(on_progress=_writing(progress)))


def _writing(progress):
    """A progress callback that advances ``progress`` by the frames of the writing pass only."""
    seen = [0]

    def on_progress(event) -> None:
        if progress is None or event.pass_index != event.passes - 1:
            return
        progress.update(event.done - seen[0])
        seen[0] = event.done

    return on_progress
