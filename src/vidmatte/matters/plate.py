"""Background-plate matting (``vidmatte background``): a clean plate of the scene as the evidence.

Per frame: the plate is aligned to the frame (``solvers.plate_align``: features + homography + ECC translation,
gain/bias when it pays; on the decoder's thread, so it overlaps the previous frame's solve), RVM gives its alpha
and foreground (the person prior), and alpha is solved with the compositing equation as the data term
(``solvers.plate_alpha``). One pass; RVM's recurrent state is warmed up as ``vidmatte convert`` does.

``--method neural`` (``NeuralPlateMatter``): BackgroundMattingV2 (or its ConvLSTM variant) mattes each frame against
the plate, aligned to every frame exactly as the classical method does it (``PlateMatter.prepare``: features,
homography, ECC translation, gain/bias when it pays, on the decoder's thread); the network sees frame and plate
together. The ConvLSTM variant's state is carried from frame to frame through the writing pass and cleared by
``reset``. Frames are padded (edge pixels repeated) to multiples of 4, as the refiner needs, and cropped back. Where
a pan leaves part of the frame outside the plate, the frame itself stands in for the plate there: no evidence of a
subject, so those pixels read as background. Checkpoints: an official BackgroundMattingV2 state dict (``.pth``;
backbone, refiner and ConvLSTMs recognised from its keys) or a training checkpoint of ours ({"model",
"model_args"}), read by ``models.loaders.load_bgmv2``. No weights are bundled.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..errors import UsageError
from ..matte import DenseMatte, SolvedMatte
from ..models.loaders import NO_WEIGHTS, load_bgmv2
from ..solvers.plate_align import Aligned, PlateAligner, PlateMismatch, _residual
from ..solvers.plate_alpha import solve_with_plate
from ..solvers.plate_screen import screen_key
from .base import Pass, Span, as_rgb_u8, writing_pass
from .recurrent import DEFAULT_WARMUP, open_prior

PLATE_VIDEO_FRAMES = 60  # a plate video's median is taken over at most this many frames, spread over it
PLATE_MOTION_SHARE = 0.02  # a plate video whose pixels stray from their median over more than this share: refused
PLATE_MOTION_LEVEL = 0.1  # what counts as straying: 10% of the range, in some frame of the sample
FOREGROUND_METHODS = ("auto", "none", "estimate", "despill")
RVM_SURE_PERSON = 0.95  # RVM's alpha above which a pixel is the person's, whatever its colour
SUBJECT_ON_SCREEN = 0.002  # share of the frame RVM is sure is a person but the screen's colour: the plate is remade


class PlateMatter:
    """Mattes whatever differs from ``plate`` (uint8 [H,W,3] RGB at the frames' size).

    prior: a ``RecurrentMatter`` (RVM) for person regions and their foreground colours, or None (no weights: every
    region is solved as an object). align: False for a locked-off camera (the plate is used as it is).
    screen: a ``solvers.plate_screen.Screen`` instead of a plate: each frame's plate is the screen estimated from
    that frame (``plate`` is then None). foreground: ``FOREGROUND_METHODS`` (auto: colours unmixed from the plate,
    despilled on a screen; none: the frame's colours; estimate: unmixed, no despill; despill: unmixed, then
    despilled against the screen's or the plain background's colour). source: what ``plate_source`` reports.
    """

    seq_chunk = 1

    def __init__(self, plate: np.ndarray | None, prior=None, align: bool = True, screen=None,
                 foreground: str = "auto", source: str = "file"):
        self.screen, self.foreground_method, self.source = screen, foreground, source
        self.plate = None if screen is not None else as_rgb_u8(plate)
        self.prior = prior
        self.aligner = None if screen is not None else PlateAligner(self.plate, align=align)
        self.key = screen_key(self.plate) if screen is None else None  # a plate image of a green or blue screen
        self.reset()

    def reset(self) -> None:
        if self.aligner is not None:
            self.aligner.reset()
        if self.screen is not None:
            self.screen.reset()
        if self.prior is not None:
            self.prior.reset()
        self._pass: Pass | None = None
        self._stats = {"frames": 0, "unmatched": 0, "gain": 0, "residual": 0.0, "person": 0.0, "remade": 0}

    def passes(self, span: Span) -> list[Pass]:
        if self.prior is None:
            return [writing_pass(span)]
        return self.prior.passes(span)  # RVM's warm-up (if any), then the writing pass

    def begin_pass(self, p: Pass) -> None:
        self._pass = p

    def prepare(self, frame: np.ndarray, index: int | None = None) -> tuple:
        frame = as_rgb_u8(frame)
        if self.screen is not None:
            if self._pass is not None and not self._pass.writes:
                return frame, None
            return frame, self._screen_plate(frame)
        if frame.shape != self.plate.shape:
            raise UsageError(f"the plate is {self.plate.shape[1]}x{self.plate.shape[0]} but the frames are "
                             f"{frame.shape[1]}x{frame.shape[0]}")
        if self._pass is not None and not self._pass.writes:
            return frame, None
        try:
            return frame, self.aligner.align(frame)
        except PlateMismatch as exc:
            raise UsageError(str(exc)) from None

    def matte(self, prepared: list) -> list[SolvedMatte | None]:
        if self._pass is not None and not self._pass.writes:
            for frame, _ in prepared:
                self.prior.step(frame)
            return [None] * len(prepared)
        return [self._matte_frame(frame, aligned) for frame, aligned in prepared]

    def summary(self) -> dict:
        """What the job reports: where the plate came from (``plate_source``: file, array, estimated, screen green
        / blue / #rrggbb, "detected screen ..." when --plate auto found one), how it was aligned
        (``plate_alignment``: features, pixels where the plate has too little texture for features, both, or none
        with --no-align or a screen), frames whose features did not match (their pixels were aligned), frames with
        a gain/bias correction, the mean background residual (grey levels), the share of differing pixels in
        person regions, and on a screen the frames whose plate was remade without what RVM is sure is a person
        (a subject in the screen's colour); ``plate_is_screen`` when a plate image shows a green or blue screen (its
        key then holds the solve's colours, as on a screen)."""
        n, unmatched = max(self._stats["frames"], 1), self._stats["unmatched"]
        aligning = self.aligner is not None and self.aligner.align_enabled
        alignment = "none" if not aligning else "features" if unmatched == 0 else \
            "pixels" if unmatched >= self._stats["frames"] else "features and pixels"
        summary = {"plate_source": self.source, "plate_alignment": alignment, "plate_unmatched_frames": unmatched,
                   "plate_gain_frames": self._stats["gain"], "plate_residual": round(self._stats["residual"] / n, 2),
                   "person_share": round(self._stats["person"] / n, 3)}
        if self.screen is not None:
            summary["screen_remade_frames"] = self._stats["remade"]
        elif self.key is not None:
            summary["plate_is_screen"] = True
        return summary

    def _screen_plate(self, frame: np.ndarray, subject: np.ndarray | None = None, refine: bool = True) -> Aligned:
        """The screen behind this frame as an aligned plate (nothing to align: it is made from the frame)."""
        made = self.screen.plate(frame, subject, refine=refine)
        return Aligned(made.plate, np.eye(3), None, _residual(frame, made.plate), True, screen=made.screen)

    def _matte_frame(self, frame: np.ndarray, aligned) -> SolvedMatte:
        rvm = self.prior.step(frame) if self.prior is not None else None
        if self.screen is not None and rvm is not None:
            # a subject in the screen's colour (a green shirt) read as screen: RVM, sure it is a person there, takes
            # those pixels out of the screen and the plate is remade under them
            sure = rvm[1] > RVM_SURE_PERSON
            if (sure & aligned.screen).mean() > SUBJECT_ON_SCREEN:
                aligned = self._screen_plate(frame, cv2.dilate(sure.astype(np.uint8), np.ones((5, 5), np.uint8))
                                             .astype(bool), refine=False)
                self._stats["remade"] += 1
        key = self.screen.key_rgb if self.screen is not None else self.key
        solution = solve_with_plate(frame, aligned.plate, rvm, aligned.valid, key=key)
        stats = self._stats
        stats["frames"] += 1
        stats["unmatched"] += not aligned.matched
        stats["gain"] += aligned.gain is not None
        stats["residual"] += aligned.residual
        stats["person"] += solution.person_share
        # colours made on the writer's thread, and only if an output needs them (as guided mode does)
        return SolvedMatte(frame, solution.alpha,
                           lambda frame, alpha: self._colours(frame, alpha, solution, aligned.plate, aligned.valid))

    def _colours(self, frame: np.ndarray, alpha: np.ndarray, solution, plate, valid) -> np.ndarray:
        """The output foreground by ``foreground_method`` (see the class): on an ordinary plate, auto keeps the
        solve's colours (unmixed, re-estimated locally where faint), which measured better there than multi-level
        estimation; on a screen (or a plate image of one), where faint pixels carry the screen's light, the
        multi-level estimate fills them and the despill follows (benchmarks/screen.py)."""
        from ..solvers.foreground import despill
        from ..solvers.plate_alpha import plate_foreground
        from ..solvers.plate_screen import background_key

        method = self.foreground_method
        if method == "none":
            return frame.astype(np.float32) / 255
        on_screen = self.screen is not None or self.key is not None
        if method == "auto" and not on_screen:
            return solution.foreground
        colours = plate_foreground(frame, plate, alpha, valid)
        if method == "estimate":
            return colours
        key = self.screen.key_rgb if self.screen is not None else self.key
        key = background_key(frame, alpha) if key is None else key
        return colours if key is None else despill(colours, alpha, key)


def pad_to_4(x, multiple: int = 4):
    """[N,C,H,W] -> padded with its edge pixels at the bottom and right to a multiple of 4."""
    import torch.nn.functional as F

    h, w = x.shape[-2:]
    return F.pad(x, (0, -w % multiple, 0, -h % multiple), mode="replicate")


class NeuralPlateMatter(PlateMatter):
    """Mattes whatever differs from ``plate`` with a BGMv2 network (``MattingRefine`` or ``MattingBase``)."""

    def __init__(self, plate: np.ndarray | None, model, align: bool = True, screen=None, source: str = "file",
                 device=None):
        self.device = None if device is None else device.torch()  # --device (backends.device.Device)
        self.model = model if self.device is None else model.to(self.device)
        super().__init__(plate, prior=None, align=align, screen=screen, source=source)
        self.key = None  # the network takes the plate as it is: no keying assumption to apply

    def reset(self) -> None:
        super().reset()
        self._state = None

    def _matte_frame(self, frame: np.ndarray, aligned) -> DenseMatte:
        import torch

        plate = aligned.plate if aligned.valid is None else np.where(aligned.valid[..., None], aligned.plate, frame)
        src, bgr = (pad_to_4(torch.from_numpy(a).permute(2, 0, 1)[None].to(self.device).float() / 255)
                    for a in (frame, plate))
        with torch.inference_mode():
            outputs = self.model(src, bgr, self._state) if self.model.convlstm else self.model(src, bgr)
        if self.model.convlstm:
            self._state = outputs[-1]
        h, w = frame.shape[:2]
        pha, fgr = outputs[0][0, 0, :h, :w].cpu().numpy(), outputs[1][0, :, :h, :w].cpu().numpy()
        self._count(aligned)
        return DenseMatte(np.ascontiguousarray(fgr), np.ascontiguousarray(pha))

    def _count(self, aligned) -> None:
        stats = self._stats
        stats["frames"] += 1
        stats["unmatched"] += not aligned.matched
        stats["gain"] += aligned.gain is not None
        stats["residual"] += aligned.residual

    def summary(self) -> dict:
        summary = super().summary()
        summary.pop("person_share")  # no person prior in this method
        return summary


def load_plate(path: str | Path, width: int, height: int, native: tuple[int, int] | None = None) -> np.ndarray:
    """A plate image, or a short video of the empty scene (its per-pixel temporal median), checked against the
    frames' size: uint8 [height, width, 3] RGB. UsageError when it is missing, of another size, or moves.
    native: the input's own size, when frames are resized (--input-resize): a plate of that size is resized too."""
    from ..errors import VidmatteError
    from ..io.source import open_source

    if not Path(path).exists():
        raise UsageError(f"plate not found: {path}")
    try:
        source = open_source(path)
    except VidmatteError as exc:
        raise UsageError(f"cannot read the plate {path}: {exc}") from None
    info = source.info
    resize = native is not None and (info.width, info.height) == native != (width, height)
    if (info.width, info.height) != (width, height) and not resize:
        raise UsageError(f"the plate {path} is {info.width}x{info.height} but the frames are {width}x{height}: "
                         f"shoot or export it at the video's size")
    frames = _sample(source, PLATE_VIDEO_FRAMES)
    plate = frames[0] if len(frames) == 1 else _still_median(frames, path)
    if resize:
        import cv2

        plate = cv2.resize(plate, (width, height), interpolation=cv2.INTER_AREA)
    return plate


def _sample(source, count: int) -> list[np.ndarray]:
    """Up to ``count`` frames spread over the source (every k-th, one decode pass)."""
    total = source.expected_frames() or count
    step = max(1, total // count)
    return [f.image for f in source.frames() if f.index % step == 0][:count]


def _still_median(frames: list[np.ndarray], path) -> np.ndarray:
    stack = np.stack(frames)
    median = np.median(stack, axis=0).astype(np.uint8)
    straying = (np.abs(stack.astype(np.int16) - median).max(axis=3) > PLATE_MOTION_LEVEL * 255).any(axis=0)
    if straying.mean() > PLATE_MOTION_SHARE:
        raise UsageError(f"the plate video {path} has motion in it ({100 * straying.mean():.0f}% of its pixels "
                         f"change): film the empty scene on a still camera, or give one image")
    return median


def plate_matter(job, plate: str | Path | np.ndarray, method: str = "classical", align: bool = True,
                 model: str = "rvm-mobilenetv3", cache: str | None = None, plate_out: str | Path | None = None,
                 overwrite: bool = False, warn=None, notify=None, runners=None, checkpoint: str | None = None,
                 foreground: str = "auto", **_options) -> PlateMatter:
    """The plate matter for a checked ``pipeline.Job``, as the CLI, the API (and batch runs) build it.

    plate: a path (image or plate video), "auto" (a green or blue screen when the first frame's border is mostly
    one saturated colour, else estimated from the job's frames: a static camera), "green", "blue" or "#RRGGBB" (a
    screen: each frame's plate made from the frame, ``solvers.plate_screen``), or an image array at the job's frame
    size. foreground: a ``FOREGROUND_METHODS`` name (the output colours). method: "classical", or "neural"
    (BackgroundMattingV2 from ``checkpoint``, ``NeuralPlateMatter``). RVM (``model``) is the classical method's person
    prior (and helps ``auto`` estimate the plate); offline without its weights the mode goes on without it and says so
    through ``warn``.
    plate_out: where to write the plate used (PNG/JPEG/TIFF), e.g. the ``auto`` estimate; notify: where to say how
    much of the frame an estimate never saw empty; runners: opens RVM's weights as ``backends.open_runner`` does
    (a batch worker passes one that loads them once).
    """
    if method not in ("classical", "neural"):
        raise UsageError(f"--method {method}: the methods are classical and neural")
    if method == "neural":
        from ..extras import require

        if not checkpoint:
            raise UsageError(NO_WEIGHTS)
        require("torch", "--method neural (BackgroundMattingV2)")
    if foreground not in FOREGROUND_METHODS:
        raise UsageError(f"--foreground-method must be one of {', '.join(FOREGROUND_METHODS)}, not {foreground!r}")
    out = _check_plate_out(plate_out, overwrite)
    auto = isinstance(plate, (str, Path)) and str(plate) == "auto"
    screen, source = _screen(job, plate, auto, notify)
    if screen is not None:
        auto = False
    image = None if auto or screen is not None else _given_plate(job, plate)  # a wrong plate is refused before
    if image is not None and align:  # the model loads, and so is a plate of another scene
        _check_matches_first_frame(job, image)
    if auto:
        _check_auto(job)
    network = load_bgmv2(checkpoint) if method == "neural" else None
    prior = open_prior("auto", model, cache, warn, runners) if network is None or auto else None
    if auto:
        image = _estimated(job, prior, notify)
    if out is not None:
        _write_plate(image if screen is None else _first_screen_plate(job, screen), out)
    if network is not None:
        return NeuralPlateMatter(image, network, align=align, screen=screen, source=source,
                                 device=_options.get("device"))
    if prior is not None:
        prior.warmup = DEFAULT_WARMUP
    return PlateMatter(image, prior=prior, align=align, screen=screen, foreground=foreground, source=source)


def _screen(job, plate, auto: bool, notify):
    """(a ``Screen`` or None, what ``plate_source`` reports): ``green``, ``blue``, ``#RRGGBB`` name a screen (a file
    of that name wins); --plate auto looks for one on the first frame's border."""
    from ..solvers.plate_screen import Screen, detect_screen, parse_screen

    if isinstance(plate, np.ndarray):
        return None, "array"
    if auto:
        first = _first_frame(job)
        found = None if first is None else detect_screen(first)
        if found is None:
            return None, "estimated"
        (notify or (lambda message: None))(f"--plate auto: the frame's border is one saturated colour; keyed as a "
                                           f"{found.name} screen")
        return found, f"detected screen {found.name}"
    if Path(plate).exists():
        return None, "file"
    try:
        named = parse_screen(str(plate))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if named is None:
        return None, "file"  # load_plate says it is missing
    return Screen(*named), f"screen {named[0]}"


def _first_frame(job) -> np.ndarray | None:
    if not job.span.seekable:
        return None
    first = next(iter(job.source.frames(job.span.first, job.span.first + 1)), None)
    return None if first is None else as_rgb_u8(first.image)


def _first_screen_plate(job, screen) -> np.ndarray:
    """--plate-out with a screen: the plate made from the first frame (each frame has its own)."""
    first = _first_frame(job)
    if first is None:
        raise UsageError("--plate-out with a screen writes the first frame's plate: record the camera to a file "
                         "first")
    if first.shape[:2] != (job.height, job.width):
        first = cv2.resize(first, (job.width, job.height), interpolation=cv2.INTER_AREA)
    made = screen.plate(first, refine=True).plate
    screen.reset()
    return made


def _given_plate(job, plate) -> np.ndarray:
    if isinstance(plate, np.ndarray):
        image = as_rgb_u8(plate)
        if image.shape[:2] != (job.height, job.width):
            raise UsageError(f"the plate is {image.shape[1]}x{image.shape[0]} but the frames are "
                             f"{job.width}x{job.height}")
        return image
    native = (job.source.info.width, job.source.info.height)
    return load_plate(plate, job.width, job.height, native)


def _check_matches_first_frame(job, image: np.ndarray) -> None:
    """UsageError unless the plate aligns to the job's first frame (the aligner's own check, made before the model
    loads or a weights fetch is tried; the writing pass aligns every frame again)."""
    if not job.span.seekable:
        return  # a live source cannot be read twice: the writing pass checks its first frame
    first = next(iter(job.source.frames(job.span.first, job.span.first + 1)), None)
    if first is None:
        return
    frame = as_rgb_u8(first.image)
    if frame.shape != image.shape:
        return  # --input-resize: the pipeline resizes frames; the writing pass makes the check at the job's size
    try:
        PlateAligner(image).align(frame)
    except PlateMismatch as exc:
        raise UsageError(str(exc)) from None


def _check_auto(job) -> None:
    """What --plate auto needs of the job, checked before the model loads."""
    from .plate_estimate import check_estimable

    if not job.span.seekable:
        raise UsageError("--plate auto reads the clip before matting it; record the camera to a file first")
    if (job.source.info.width, job.source.info.height) != (job.width, job.height):
        raise UsageError("--plate auto and --input-resize together are not supported yet")
    check_estimable(job.source, job.span.first, job.span.stop)


def _estimated(job, prior, notify) -> np.ndarray:
    from .plate_estimate import estimate_plate

    estimate = estimate_plate(job.source, job.span.first, job.span.stop, prior)
    (notify or (lambda message: None))(f"plate estimated from {estimate.samples} frames; "
                                       f"{100 * estimate.unseen_share:.1f}% of the frame was never seen empty")
    return estimate.plate


PLATE_OUT_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


def _check_plate_out(path, overwrite: bool) -> Path | None:
    if path is None:
        return None
    out = Path(path)
    if out.suffix.lower() not in PLATE_OUT_EXTENSIONS:
        raise UsageError(f"--plate-out must be an image ({', '.join(PLATE_OUT_EXTENSIONS)}), not {out.name}")
    if out.exists() and not overwrite:
        raise UsageError(f"{out} exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise UsageError(f"output folder does not exist: {out.parent}")
    return out


def _write_plate(image: np.ndarray, out: Path) -> None:
    """Under a temporary name in the same folder, renamed when complete."""
    import cv2

    from ..errors import OutputError
    from ..io.atomic import atomic_path

    with atomic_path(out) as temporary:
        if not cv2.imwrite(str(temporary), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
            raise OutputError(f"cannot write {out}")
