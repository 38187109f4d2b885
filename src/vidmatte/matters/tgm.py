"""``vidmatte guided --method tgm``: TCVOM's trimap generation module gives every frame's trimap, the classical
solver (``solvers.trimap_solver.TrimapSolver``, as ``--method classical``) its alpha.

The official workflow (yunkezhang/TCVOM-TGM), on the pipeline's passes:
  1. "keyframe K" (one frame each): the keyframes are read at the processing size. With ``finetune_steps`` N > 0
     the generator is first trained N steps on them (``online_finetune_test.py``), then each keyframe is encoded
     into memory once.
  2. "trimaps forward", "trimaps backward": every keyframe starts a run in each direction (``test_mf_2.py``'s
     parts) that ends at the next keyframe, or at the clip's end; between two keyframes both are in the run's
     memory for good, beyond the outer ones only the starting one. Each run follows ``models.tgm.TrimapRun``'s
     memory rules (``mem_every``, ``max_memory``). Each frame's class probabilities are kept in a work folder as
     uint8 images (as the official script writes them), never in memory.
  3. "matting" (writes): the ensemble (``ensemble.py``): a frame reached from both sides takes the sum of the two
     directions' probabilities weighted by 1 - (distance from the run's keyframe) / (run length), so the nearer
     keyframe counts more; a frame reached from one side takes that side's; the argmax is its trimap. Keyframes
     keep their given trimap. Alpha is solved from the trimap at the frame's size.

Generators: with ``--checkpoint``, the STM network (``models.tgm``), official weights or a training checkpoint of
ours. Without one, a variant that needs no trained weights: the memory reads the pretrained RVM MobileNetV3
encoder's features with top-k softmax (``guidance.memory``: ``FeatureEncoder``, ``Memory``) and ``finetune_steps``
train that module's small key/readout heads on the keyframes (``finetune_heads``). That variant is not TCVOM's
network: its trimap is read at 1/8 of the encoder's input (448 px on the long side), so its unknown band is coarse.
"""

from __future__ import annotations

import bisect
import logging
import tempfile
from pathlib import Path

import cv2
import numpy as np

from ..errors import UsageError
from ..guidance.propagate import BG, FG, UNKNOWN
from ..guidance.memory import memory_settings
from ..matte import SolvedMatte
from ..models.loaders import load_tgm
from ..solvers.trimap_solver import TrimapSolver, foreground_colours
from .base import Pass, Span, as_rgb_u8, writing_pass
from .keyframe_network import keyframes_in_span
from ..backends.base import runners_on
from .recurrent import open_prior

TARGET_SIZE = 512  # longer side the generator runs at (the official finetuning crops 512; inference is full size)
LEVELS = np.array([BG, UNKNOWN, FG], np.uint8)  # class 0, 1, 2 -> trimap level


# --- generators -----------------------------------------------------------------------------------------------
class StmTrimaps:
    """The STM network as the matter's generator: frames and trimaps as [1,3,h,w] tensors."""

    name = "stm"

    def __init__(self, model, device=None):
        from ..models.tgm import StmGenerator

        self.device = None if device is None else device.torch()
        self.model = model if self.device is None else model.to(self.device)
        self._generator = StmGenerator(self.model)

    def frame_input(self, small: np.ndarray):
        import torch

        return torch.from_numpy(small).permute(2, 0, 1).float().div_(255)[None].to(self.device)

    def trimap_input(self, trimap: np.ndarray):
        import torch

        return torch.from_numpy(one_hot(trimap)).permute(2, 0, 1)[None].to(self.device)

    def encode(self, frame, trimap):
        import torch

        with torch.inference_mode():
            return self._generator.encode(frame, trimap)

    def read(self, frame, memory: list):
        import torch

        with torch.inference_mode():
            return self._generator.read(frame, memory)

    @staticmethod
    def probabilities(read) -> np.ndarray:
        return read[0].permute(1, 2, 0).cpu().numpy()

    def finetune(self, frames: list[np.ndarray], trimaps: list[np.ndarray], steps: int) -> list[float]:
        from ..train.tgm import online_finetune

        return online_finetune(self.model, frames, trimaps, steps)


class RvmMemoryTrimaps:
    """The no-checkpoint variant: ``guidance.memory``'s reading over RVM encoder features. Frames are uint8 arrays;
    a trimap is float32 [h,w,3] probabilities (background, unknown, foreground) at the processing size."""

    name = "rvm-memory"

    def __init__(self, encoder, top_k: int = 20, temperature: float = 0.01):
        self.encoder, self.top_k, self.temperature = encoder, top_k, temperature
        self.heads = None
        self._last: tuple[np.ndarray, np.ndarray] | None = None  # (frame, its keys)

    def frame_input(self, small: np.ndarray) -> np.ndarray:
        return small

    def trimap_input(self, trimap: np.ndarray) -> np.ndarray:
        return one_hot(trimap)

    def _keys(self, frame: np.ndarray) -> np.ndarray:
        """The frame's keys; the last frame's are kept (a frame is read, then encoded as the previous one)."""
        if self._last is None or self._last[0] is not frame:
            keys = self.encoder(frame)
            self._last = (frame, keys if self.heads is None else self.heads.keys(keys))
        return self._last[1]

    def encode(self, frame: np.ndarray, trimap: np.ndarray):
        from ..guidance.memory import MemoryFrame

        keys = self._keys(frame)
        cells = cv2.resize(trimap, (keys.shape[1], keys.shape[0]), interpolation=cv2.INTER_AREA)
        return MemoryFrame(keys.reshape(-1, keys.shape[-1]), cells[..., ::-1].reshape(-1, 3).copy(), False)

    def read(self, frame: np.ndarray, memory: list) -> np.ndarray:
        from ..guidance.memory import Memory

        keys = self._keys(frame)
        bank = Memory(len(memory), self.top_k, self.temperature)
        bank.frames = list(memory)
        fractions = bank.read(keys)
        if self.heads is not None:
            fractions = self.heads.readout(fractions, keys)
        h, w = frame.shape[:2]
        return cv2.resize(np.ascontiguousarray(fractions[..., ::-1]), (w, h), interpolation=cv2.INTER_LINEAR)

    @staticmethod
    def probabilities(read: np.ndarray) -> np.ndarray:
        return read

    def finetune(self, frames: list[np.ndarray], trimaps: list[np.ndarray], steps: int) -> list[float]:
        from ..guidance.memory import finetune_heads

        self.heads, self._last = finetune_heads(self.encoder, frames, trimaps, steps, self.top_k,
                                                self.temperature), None
        return []


def one_hot(trimap: np.ndarray) -> np.ndarray:
    """uint8 trimap {0,128,255} -> float32 [H,W,3] (background, unknown, foreground)."""
    return np.dstack([trimap == BG, trimap == UNKNOWN, trimap == FG]).astype(np.float32)


def as_image(probabilities: np.ndarray) -> np.ndarray:
    """Class probabilities -> uint8 [h,w,3], truncated as the official script writes them."""
    return (np.clip(probabilities, 0, 1) * 255).astype(np.uint8)


def ensemble(parts: list[tuple[np.ndarray, float]], size: tuple[int, int]) -> np.ndarray:
    """The official ensemble: ``parts`` are (uint8 probabilities [h,w,3], confidence) of one frame from each
    direction that reached it; one part counts as it is, several are summed weighted by their confidence. The sum
    is brought to ``size`` (w, h) and its argmax is the trimap, uint8 {0,128,255}."""
    if len(parts) == 1:
        total = parts[0][0].astype(np.float32)
    else:
        total = sum(image.astype(np.float32) * confidence for image, confidence in parts)
    if (total.shape[1], total.shape[0]) != tuple(size):
        total = cv2.resize(total, size, interpolation=cv2.INTER_LINEAR)
    return LEVELS[np.argmax(total, axis=2)]


def processing_size(height: int, width: int, target: int) -> tuple[int, int]:
    """(w, h): the frame scaled so its longer side is at most ``target``, each side a multiple of 16."""
    scale = min(1.0, target / max(height, width))
    return max(16, round(width * scale / 16) * 16), max(16, round(height * scale / 16) * 16)


# --- the matter -------------------------------------------------------------------------------------------------
class TgmMatter:
    """Mattes the subject of ``keyframes`` ({index: trimap uint8 [H,W] in {0,128,255}}) with trimaps from
    ``generator`` (``StmTrimaps`` or ``RvmMemoryTrimaps``) and alpha from ``solver``."""

    seq_chunk = 1

    def __init__(self, generator, keyframes: dict[int, np.ndarray], solver: TrimapSolver | None = None,
                 target_size: int = TARGET_SIZE, mem_every: int = 5, max_memory: int | None = None,
                 finetune_steps: int = 0):
        if not keyframes:
            raise ValueError("the trimap generation module needs at least one keyframe")
        self.generator, self.keyframes = generator, dict(sorted(keyframes.items()))
        self._indices = list(self.keyframes)
        self.solver = solver or TrimapSolver(prior_mode="none")
        self.target_size, self.mem_every, self.max_memory = target_size, mem_every, max_memory
        self.finetune_steps = finetune_steps
        self.finetune_losses: list[float] = []
        self._temporary = None
        self.reset()

    # --- matters.base.Matter ------------------------------------------------------------------------------------
    def reset(self) -> None:
        if self._temporary is not None:
            self._temporary.cleanup()
        self._temporary = tempfile.TemporaryDirectory(prefix="vidmatte-tgm-")
        self.work = Path(self._temporary.name)
        self._small: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # keyframe -> (frame, trimap) at the size
        self._encoded: dict[int, object] | None = None
        self._pass: Pass | None = None
        self._run = None
        self.solver.restart()

    def passes(self, span: Span) -> list[Pass]:
        if not span.seekable:
            raise ValueError("the trimap generation module reads the clip four times; a live source cannot be "
                             "re-read")
        self.span = span
        first, last = self._indices[0], self._indices[-1]
        return ([Pass(f"keyframe {i}", i, i + 1) for i in self._indices]
                + [Pass("trimaps forward", first, span.stop),
                   Pass("trimaps backward", span.first, last + 1, reverse=True), writing_pass(span)])

    def begin_pass(self, p: Pass) -> None:
        self._pass, self._run = p, None
        if p.name.startswith("trimaps") and self._encoded is None:
            self._learn_keyframes()
        if p.writes:
            self.solver.begin_sequence()

    def prepare(self, frame: np.ndarray, index: int | None = None) -> tuple:
        frame = as_rgb_u8(frame)
        if self._pass is not None and self._pass.writes:
            return index, frame, self._trimap(index, frame)
        size = processing_size(*frame.shape[:2], self.target_size)
        small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        return index, frame, small

    def matte(self, prepared: list) -> list[SolvedMatte | None]:
        if self._pass.writes:
            return [self._matte_frame(*item) for item in prepared]
        for index, frame, small in prepared:
            if self._pass.name.startswith("keyframe"):
                self._keep_keyframe(index, frame, small)
            else:
                self._propagate(index, small)
        return [None] * len(prepared)

    def summary(self) -> dict:
        return {"trimap_generator": self.generator.name, "finetune_steps": len(self.finetune_losses)}

    # --- keyframes ----------------------------------------------------------------------------------------------
    def _keep_keyframe(self, index: int, frame: np.ndarray, small: np.ndarray) -> None:
        trimap = self.keyframes[index]
        if trimap.shape != frame.shape[:2]:
            raise ValueError(f"keyframe {index} is {trimap.shape[1]}x{trimap.shape[0]} but the frames are "
                             f"{frame.shape[1]}x{frame.shape[0]}")
        size = (small.shape[1], small.shape[0])
        self._small[index] = (small, cv2.resize(trimap, size, interpolation=cv2.INTER_NEAREST))
        if index == self._indices[0] and self.solver.decides:
            self.solver.decide(frame, trimap)

    def _learn_keyframes(self) -> None:
        """Online fine-tuning on the keyframes (if asked), then each keyframe encoded once."""
        frames = [self._small[i][0] for i in self._indices]
        trimaps = [self._small[i][1] for i in self._indices]
        if self.finetune_steps > 0:
            self.finetune_losses = self.generator.finetune(frames, trimaps, self.finetune_steps) or \
                [float("nan")] * self.finetune_steps
        gen = self.generator
        self._encoded = {i: gen.encode(gen.frame_input(f), gen.trimap_input(t))
                         for i, f, t in zip(self._indices, frames, trimaps)}

    # --- propagation passes -------------------------------------------------------------------------------------
    def _neighbour(self, index: int, direction: str) -> int | None:
        """The keyframe a run from keyframe ``index`` ends at in ``direction`` (None: the clip's end)."""
        at = self._indices.index(index) + (1 if direction == "forward" else -1)
        return self._indices[at] if 0 <= at < len(self._indices) else None

    def _propagate(self, index: int, small: np.ndarray) -> None:
        from ..models.tgm import TrimapRun

        direction = "backward" if self._pass.reverse else "forward"
        gen = self.generator
        if index in self.keyframes:
            neighbour = self._neighbour(index, direction)
            fixed = [self._encoded[index]] + ([self._encoded[neighbour]] if neighbour is not None else [])
            self._run = TrimapRun(gen, fixed, self.mem_every, self.max_memory)
            self._run.start(gen.frame_input(small), gen.trimap_input(self._small[index][1]))
            return
        if self._run is None:
            return  # before the first keyframe of this direction: the other direction reaches it
        image = as_image(gen.probabilities(self._run.step(gen.frame_input(small))))
        path = self.work / direction / f"{index:06d}.png"
        path.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(path), image)  # three channels, written and read back in the same order

    # --- the writing pass ---------------------------------------------------------------------------------------
    def _confidence(self, index: int, direction: str) -> tuple[Path, float] | None:
        """Where this direction's probabilities of frame ``index`` are and how much they count (None: no run of
        this direction reached it): 1 at the run's keyframe, falling linearly over the run to the next one."""
        if direction == "forward":
            at = bisect.bisect_right(self._indices, index) - 1
            if at < 0:
                return None
        else:
            at = bisect.bisect_left(self._indices, index)
            if at >= len(self._indices):
                return None
        start = self._indices[at]
        end = self._neighbour(start, direction)
        confidence = 1.0 if end is None else 1.0 - abs(index - start) / abs(end - start)
        return self.work / direction / f"{index:06d}.png", confidence

    def _trimap(self, index: int, frame: np.ndarray) -> np.ndarray:
        if index in self.keyframes:
            return self.keyframes[index]
        found = [self._confidence(index, d) for d in ("forward", "backward")]
        parts = [(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), c) for path, c in filter(None, found)]
        if not parts or any(image is None for image, _ in parts):
            raise ValueError(f"frame {index} has no propagated trimap")
        return ensemble(parts, (frame.shape[1], frame.shape[0]))

    def _matte_frame(self, index: int, frame: np.ndarray, trimap: np.ndarray) -> SolvedMatte:
        alpha, trimap = self.solver.solve(frame, trimap, given=index in self.keyframes,
                                          distance=min(abs(index - key) for key in self.keyframes))
        return SolvedMatte(frame, alpha, foreground_colours, trimap)


# --- building it (the CLI's --method tgm, the API) ----------------------------------------------------------------
def ort_side(device):
    """Where this method's ONNX parts (RVM's prior, the variant's encoder) run beside the network's ``device``."""
    from ..backends.device import CPU, ort_beside

    return CPU if device is None else ort_beside(device)


def open_generator(checkpoint: str | None, cache: str | None = None, warn=None, device=None):
    """The STM network from ``checkpoint``, or (None) the no-checkpoint variant on RVM's encoder; on ``device`` (a
    ``backends.device.Device``; the variant's ONNX encoder goes there when ONNX Runtime can use it, else the CPU)."""
    if checkpoint:
        return StmTrimaps(load_tgm(checkpoint), device)
    from ..guidance.memory import FeatureEncoder

    (warn or logging.getLogger("vidmatte").warning)(
        "--method tgm without --checkpoint: trimaps come from a memory of RVM encoder features (the no-checkpoint "
        "variant), not from TCVOM's trained network")
    return RvmMemoryTrimaps(FeatureEncoder("rvm-mobilenetv3", cache, device=ort_side(device)))


def tgm_method(job, keyframes, checkpoint: str | None, *, cache=None, warn=None, options: dict) -> TgmMatter:
    """``--method tgm`` (``networks.GUIDED_NETWORKS``): options ``mem_every``, ``max_memory``, ``finetune_steps``
    and, when given, ``prior`` (the classical solver's RVM prior: auto, rvm, none) and ``model`` (its weights)."""
    # Unset flags (None) take the memory propagator's defaults: a bounded memory, unlike the official unbounded one.
    mem_every, max_memory = memory_settings(options.get("mem_every"), options.get("max_memory"))
    steps = int(options.get("finetune_steps", 0))
    if mem_every < 1 or max_memory < 1 or steps < 0:
        raise UsageError("--mem-every and --max-memory must be at least 1, --finetune-steps at least 0")
    inside = keyframes_in_span(job.span, keyframes)
    device = options.get("device")
    generator = open_generator(checkpoint, cache, warn, device)
    prior_mode = options.get("prior", "none")
    runners = None if device is None else runners_on(None, ort_side(device))
    prior = open_prior(prior_mode, options.get("model", "rvm-mobilenetv3"), cache, warn, runners)
    return TgmMatter(generator, inside, TrimapSolver(prior=prior, prior_mode=prior_mode), mem_every=mem_every,
                     max_memory=max_memory, finetune_steps=steps)
