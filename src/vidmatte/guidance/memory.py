"""Memory propagator: space-time memory reading that re-finds the subject, keyframe-anchored flow that places it.

Memory reading alone is coarse (issue 9 measured 102 MAD against 27 for the anchored flow: labels at 1/8 scale
cannot place a hair-thin edge), but it does not drift and it does not need the subject to have been visible in the
previous frame. So the two work together, one keyframe and one direction per instance, like ``FlowPropagator``:
  1. the flow propagator carries the keyframe's trimap as usual (``propagate.FlowPropagator``);
  2. the memory reads the frame: keys are the pretrained RVM MobileNetV3 encoder's features (1/8-scale map plus
     the LR-ASPP output, from the registry's ONNX weights: no torch), values are the guidance labels (fg, unknown,
     bg fractions per 8x8 cell); every query pixel takes a softmax over its top-k most similar memory pixels;
  3. agreement (IoU of the two coarse subject masks) decides: where it is high the flow's labels stand, and every
     ``mem_every`` frames the frame joins the memory (its confident cells only); where it is low the flow has lost
     the subject (occlusion, a jump, a fast move): the keyframe is re-anchored onto the memory's coarse mask (a
     similarity fitted to its moments, then the usual residual flow), kept if it agrees better, and labels far
     from anything the memory recognises become background; confidence drops where the two disagree.
The keyframe is always in memory; at most ``max_memory`` frames are kept, the oldest non-keyframe going first.
With ``finetune_steps`` (needs torch), small key and readout heads are trained on augmented copies of the keyframe
first (TCVOM's online fine-tuning): see ``finetune_heads``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import cv2
import numpy as np

from .propagate import BG, FG, UNKNOWN, FlowPropagator, Propagated

CELL = 8  # the keys' stride: one memory cell per 8x8 pixels of the encoder's input
MEM_EVERY = 5  # a propagated frame joins the memory every MEM_EVERY frames (TCVOM's README setting)
MAX_MEMORY = 6  # frames kept in memory, keyframes never forgotten


def require_torch() -> None:
    """--finetune-steps trains heads with PyTorch, an optional dependency: say so in one line when it is missing."""
    from ..extras import require

    require("torch", "--finetune-steps above 0")


# --- keys -------------------------------------------------------------------------------------------------------
class FeatureEncoder:
    """Frame -> keys: the RVM encoder's features, unit length per cell, float32 [h, w, 168] on a 1/8 grid.

    The encoder is cut out of the official ONNX graph (``models.rvm_graph.encoder_model``): onnxruntime runs it in
    about 11 ms at 384x216 on one core, and no torch is needed. Frames are shrunk to ``side`` pixels on the long side
    (a multiple of 16, so that the 1/16 map upsampled lines up with the 1/8 one)."""

    def __init__(self, model: str = "rvm-mobilenetv3", cache: str | None = None, side: int = 448,
                 threads: int | None = None, device="cpu"):
        from ..backends.onnx import model_file, open_session
        from ..errors import ModelError
        from ..models.rvm_graph import encoder_model

        serialized = encoder_model(model_file(model, cache))
        if serialized is None:
            raise ModelError(f"{model}: not an RVM MobileNetV3 graph; the memory propagator needs its encoder")
        self.session = open_session(serialized, threads, device)
        self.side = side
        self._ratio = np.ones(1, np.float32)

    def input_size(self, shape: tuple[int, int]) -> tuple[int, int]:
        h, w = shape
        scale = min(self.side, max(h, w)) / max(h, w)  # never enlarged: that only costs time
        return max(16, round(w * scale / 16) * 16), max(16, round(h * scale / 16) * 16)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        w, h = self.input_size(frame.shape[:2])
        small = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
        stride8, stride16 = self.session.run(None, {"src": small.transpose(2, 0, 1)[None], "downsample_ratio":
                                                    self._ratio})
        fine = stride8[0].transpose(1, 2, 0)
        coarse = cv2.resize(stride16[0].transpose(1, 2, 0), (fine.shape[1], fine.shape[0]),
                            interpolation=cv2.INTER_LINEAR)
        # Each part unit length, then the whole: texture (1/8) and context (1/16) count equally.
        return unit(np.concatenate([unit(fine), unit(coarse)], axis=2))


def unit(x: np.ndarray) -> np.ndarray:
    return x / (np.linalg.norm(x, axis=-1, keepdims=True) + 1e-6)


def cell_labels(trimap: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """uint8 trimap [H,W] -> float32 [h, w, 3]: the fraction of fg, unknown and bg pixels in each cell."""
    h, w = grid
    one_hot = np.dstack([trimap == FG, trimap == UNKNOWN, trimap == BG]).astype(np.float32)
    return cv2.resize(one_hot, (w, h), interpolation=cv2.INTER_AREA)


# --- the memory ---------------------------------------------------------------------------------------------------
@dataclass
class MemoryFrame:
    keys: np.ndarray  # float32 [n, C]: the cells kept (confident ones)
    values: np.ndarray  # float32 [n, 3]: fg / unknown / bg fractions
    keyframe: bool


class Memory:
    """Space-time memory: frames of (keys, label values); top-k softmax reading. Keyframes are never evicted."""

    def __init__(self, max_frames: int = 6, top_k: int = 20, temperature: float = 0.01):
        if max_frames < 1:
            raise ValueError("the memory must hold at least the keyframe")
        self.max_frames, self.top_k, self.temperature = max_frames, top_k, temperature
        self.frames: list[MemoryFrame] = []

    def add(self, keys: np.ndarray, values: np.ndarray, keyframe: bool = False) -> None:
        self.frames.append(MemoryFrame(keys.reshape(-1, keys.shape[-1]), values.reshape(-1, 3), keyframe))
        while len(self.frames) > self.max_frames:
            oldest = next((i for i, f in enumerate(self.frames) if not f.keyframe), None)
            if oldest is None:
                break  # only keyframes left: they stay, even above the bound
            del self.frames[oldest]

    def read(self, query: np.ndarray) -> np.ndarray:
        """query keys [h, w, C] -> label fractions [h, w, 3]: each cell's softmax over its top-k memory cells."""
        h, w, c = query.shape
        keys = np.concatenate([f.keys for f in self.frames])
        values = np.concatenate([f.values for f in self.frames])
        similarity = query.reshape(-1, c) @ keys.T
        k = min(self.top_k, len(keys))
        top = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        best = np.take_along_axis(similarity, top, axis=1) / self.temperature
        weights = np.exp(best - best.max(axis=1, keepdims=True))
        weights /= weights.sum(axis=1, keepdims=True)
        return np.einsum("nk,nkc->nc", weights, values[top]).reshape(h, w, 3).astype(np.float32)


# --- heads (fine-tuning) ------------------------------------------------------------------------------------------
@dataclass
class Heads:
    """Small heads on the frozen features, trained per clip: keys' = unit(k + k @ key_delta); the readout's
    logits log(p) + k @ readout_delta. Both start at zero (the identity), so zero steps is the plain reading."""

    key_delta: np.ndarray  # float32 [C, C]
    readout_delta: np.ndarray  # float32 [C, 3]

    def keys(self, keys: np.ndarray) -> np.ndarray:
        return unit(keys + _product(keys, self.key_delta))

    def readout(self, fractions: np.ndarray, keys: np.ndarray) -> np.ndarray:
        logits = np.log(fractions + 1e-4) + _product(keys, self.readout_delta)
        e = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)


def _product(x: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """[..., C] @ [C, D] as one 2-D product: numpy's stacked matmul skips BLAS (10x slower here)."""
    return (x.reshape(-1, x.shape[-1]) @ matrix).reshape(*x.shape[:-1], matrix.shape[1])


class MemoryPropagator:
    """Same interface as ``FlowPropagator``: ``start(frame, trimap)``, then ``step(frame)`` in the pass's order."""

    def __init__(self, encoder: FeatureEncoder, mem_every: int = MEM_EVERY, max_memory: int = MAX_MEMORY,
                 top_k: int = 20, finetune_steps: int = 0, lost_below: float = 0.4, flow_factory=FlowPropagator):
        if mem_every < 1:
            raise ValueError("mem_every must be at least 1")
        self.encoder, self.mem_every, self.finetune_steps = encoder, mem_every, finetune_steps
        self.lost_below = lost_below  # subject agreement (IoU of the cells) under which the flow is judged lost
        self.memory = Memory(max_memory, top_k)
        self.flow = flow_factory()
        self.heads: Heads | None = None
        self.log: list[dict] = []  # per frame: agreement, whether re-anchored (for benchmarks and tests)

    def start(self, frame: np.ndarray, trimap: np.ndarray) -> Propagated:
        result = self.flow.start(frame, trimap)
        keys = self.encoder(frame)
        self.grid = keys.shape[:2]
        values = cell_labels(trimap, self.grid)
        if self.finetune_steps > 0:
            self.heads = finetune_heads(self.encoder, frame, trimap, self.finetune_steps, self.memory.top_k,
                                        self.memory.temperature)
            keys = self.heads.keys(keys)
        self.memory.add(keys, values, keyframe=True)
        self.key_area = float(subject_share(values).sum())
        return result

    def step(self, frame: np.ndarray) -> Propagated:
        before = self.flow.transform
        result = self.flow.step(frame)
        keys = self.encoder(frame)
        if self.heads is not None:
            keys = self.heads.keys(keys)
        read = self.memory.read(keys)
        if self.heads is not None:
            read = self.heads.readout(read, keys)
        seen = subject_share(read)
        agreement = mask_iou(subject_share(cell_labels(result.trimap, self.grid)), seen)
        relocated = False
        if agreement < self.lost_below:
            result, agreement, relocated = self._reanchor(frame, result, agreement, seen, before)
        self.log.append({"distance": result.distance, "agreement": round(agreement, 3), "relocated": relocated})
        result = self._weigh(result, read, agreement)
        if result.distance % self.mem_every == 0 and agreement >= self.lost_below:
            self._remember(keys, result)
        return result

    # --- when the flow has lost the subject ----------------------------------------------------------------------
    def _reanchor(self, frame: np.ndarray, result: Propagated, agreement: float, seen: np.ndarray,
                  before: np.ndarray) -> tuple[Propagated, float, bool]:
        """Try the keyframe placed on the memory's coarse mask; keep it if it agrees better with the memory. Only
        then, or when the memory sees no subject at all (hidden), are labels far from what the memory recognises
        turned to background; a memory that merely disagrees leaves the flow's result alone (measured: gating on
        disagreement alone doubled the wrong labels on guided_nonrigid, where the coarse memory misses thin parts)."""
        transform = self._transform_onto(seen)
        if transform is not None:
            candidate = self.flow.carry(frame, transform)
            score = mask_iou(subject_share(cell_labels(candidate.trimap, self.grid)), seen)
            if score > agreement:
                self.flow.adopt(self.flow.work_grey(frame), transform, candidate.trimap)
                return replace(candidate, trimap=gate(candidate.trimap, seen)), score, True
        if largest_region(seen > 0.5).sum() < 0.2 * self.key_area:  # hidden: hold the last good placement
            self.flow.adopt(self.flow.work_grey(frame), before, result.trimap)
            return replace(result, trimap=gate(result.trimap, seen)), agreement, False
        return result, agreement, False

    def _transform_onto(self, seen: np.ndarray) -> np.ndarray | None:
        """Similarity (no rotation) from the keyframe's subject onto the largest region the memory sees as the
        subject, in the flow's work coordinates: matched centroids, scale from the areas."""
        found = largest_region(seen > 0.5)
        if found.sum() < 0.2 * self.key_area:
            return None  # hidden, or nothing trustworthy: no placement to offer
        work_h, work_w = self.flow.key_subject.shape
        per_cell_y, per_cell_x = work_h / self.grid[0], work_w / self.grid[1]
        ys, xs = np.nonzero(found)
        target = np.array([(xs.mean() + 0.5) * per_cell_x - 0.5, (ys.mean() + 0.5) * per_cell_y - 0.5])
        kys, kxs = np.nonzero(self.flow.key_subject > 0.5)
        if len(kys) == 0:
            return None
        origin = np.array([kxs.mean(), kys.mean()])
        scale = float(np.clip(np.sqrt(found.sum() * per_cell_x * per_cell_y / len(kys)), 0.5, 2.0))
        shift = target - scale * origin
        return np.array([[scale, 0.0, shift[0]], [0.0, scale, shift[1]], [0.0, 0.0, 1.0]])

    # --- confidence and the memory's updates ---------------------------------------------------------------------
    def _weigh(self, result: Propagated, read: np.ndarray, agreement: float) -> Propagated:
        """Confidence halves where the memory contradicts a definite label, and scales with the agreement."""
        h, w = result.trimap.shape
        seen = cv2.resize(subject_share(read), (w, h), interpolation=cv2.INTER_LINEAR)
        contradicted = ((result.trimap == FG) & (seen < 0.2)) | ((result.trimap == BG) & (seen > 0.8))
        factor = np.where(contradicted, 0.5, 1.0).astype(np.float32) * np.float32(0.5 + 0.5 * min(agreement, 1.0))
        return replace(result, confidence=result.confidence * factor)

    def _remember(self, keys: np.ndarray, result: Propagated) -> None:
        """The frame's own propagated labels, on the cells where they are confident, join the memory."""
        confidence = cv2.resize(result.confidence, (self.grid[1], self.grid[0]), interpolation=cv2.INTER_AREA)
        keep = confidence >= 0.5 * confidence.max()
        if keep.any():
            self.memory.add(keys[keep], cell_labels(result.trimap, self.grid)[keep])


def subject_share(fractions: np.ndarray) -> np.ndarray:
    """[h, w, 3] label fractions -> [h, w] share of the cell that is subject (fg plus half the unknown)."""
    return fractions[..., 0] + 0.5 * fractions[..., 1]


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two subject shares thresholded at one half (1 when both are empty: nothing to disagree on)."""
    a, b = a > 0.5, b > 0.5
    union = (a | b).sum()
    return float((a & b).sum() / union) if union > 0 else 1.0


def largest_region(mask: np.ndarray) -> np.ndarray:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return np.zeros_like(mask, bool)
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def gate(trimap: np.ndarray, seen: np.ndarray, reach: int = 1) -> np.ndarray:
    """Labels more than ``reach`` cells from what the memory sees as subject become background."""
    near = cv2.dilate((seen > 0.5).astype(np.uint8), np.ones((2 * reach + 1, 2 * reach + 1), np.uint8))
    h, w = trimap.shape
    near = cv2.resize(near, (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    gated = trimap.copy()
    gated[~near] = BG
    return gated


# --- TCVOM-style online fine-tuning -------------------------------------------------------------------------------
def finetune_heads(encoder: FeatureEncoder, frame: np.ndarray | list, trimap: np.ndarray | list, steps: int,
                   top_k: int, temperature: float, views: int = 8, seed: int = 0) -> Heads:
    """Train the key and readout heads on the clip's own keyframe (or keyframes: lists of frames and trimaps): the
    memory holds the keyframes as they are, the queries are augmented copies (affine jitter, colour changes) whose
    labels are the trimap moved the same way. The encoder stays frozen (its features are computed once per view
    with onnxruntime); only the heads learn."""
    require_torch()
    import torch

    torch.set_flush_denormal(True)  # tiny Adam updates otherwise leave denormals that slow every product 50x
    rng = np.random.default_rng(seed)
    frames, trimaps = (frame, trimap) if isinstance(frame, list) else ([frame], [trimap])
    keyframe_keys = [encoder(f) for f in frames]
    grid, channels = keyframe_keys[0].shape[:2], keyframe_keys[0].shape[-1]
    memory_keys = np.concatenate([k.reshape(-1, channels) for k in keyframe_keys])
    memory_values = np.concatenate([cell_labels(t, grid).reshape(-1, 3) for t in trimaps])
    queries, targets = [], []
    for v in range(views):
        view, view_trimap = augment(frames[v % len(frames)], trimaps[v % len(frames)], rng)
        queries.append(encoder(view).reshape(-1, channels))
        targets.append(cell_labels(view_trimap, grid).reshape(-1, 3))
    key_delta = torch.zeros(channels, channels, requires_grad=True)
    readout_delta = torch.zeros(channels, 3, requires_grad=True)
    optimiser = torch.optim.Adam([key_delta, readout_delta], lr=1e-3)
    mem_k = torch.from_numpy(memory_keys.reshape(-1, channels))
    mem_v = torch.from_numpy(memory_values)
    for step in range(steps):
        q = torch.from_numpy(queries[step % views])
        target = torch.from_numpy(targets[step % views])
        project = lambda k: torch.nn.functional.normalize(k + k @ key_delta, dim=1)  # noqa: E731
        similarity = project(q) @ project(mem_k).T
        best, top = similarity.topk(min(top_k, similarity.shape[1]), dim=1)
        weights = torch.softmax(best / temperature, dim=1)
        fractions = (weights[..., None] * mem_v[top]).sum(1)
        logits = torch.log(fractions + 1e-4) + project(q) @ readout_delta
        loss = -(target * torch.log_softmax(logits, dim=1)).sum(1).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return Heads(*(flush_denormals(p.detach().numpy()) for p in (key_delta, readout_delta)))


def flush_denormals(x: np.ndarray) -> np.ndarray:
    """Values below float32's normal range set to zero: numpy's products slow down 50x on denormals."""
    return np.where(np.abs(x) < np.finfo(np.float32).tiny, 0, x).astype(np.float32)


def augment(frame: np.ndarray, trimap: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One training view: a random similarity (rotation, scale, shift) applied to frame and trimap alike, and a
    colour change (per-channel gain, brightness) on the frame."""
    h, w = trimap.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-15, 15), rng.uniform(0.8, 1.2))
    m[:, 2] += rng.uniform(-0.15, 0.15, 2) * (w, h)
    view = cv2.warpAffine(frame, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    # Reflected borders for both: a mirrored part of the subject is labelled as the subject.
    view_trimap = cv2.warpAffine(trimap, m, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT)
    gain = rng.uniform(0.8, 1.2, 3) * rng.uniform(0.85, 1.15)
    view = np.clip(view.astype(np.float32) * gain + rng.uniform(-15, 15), 0, 255).astype(np.uint8)
    return view, view_trimap


# --- choosing a propagator (the CLI, the API, the benchmark) --------------------------------------------------------
PROPAGATORS = ("auto", "track", "flow", "memory")


def memory_settings(mem_every: int | None, max_memory: int | None) -> tuple[int, int]:
    """The memory propagator's ``mem_every`` and ``max_memory``, its defaults where the user gave none (None: the
    command line leaves them unset so that each ``--method`` network can keep its own)."""
    return (MEM_EVERY if mem_every is None else mem_every), (MAX_MEMORY if max_memory is None else max_memory)


def propagator_factory(kind: str = "auto", mem_every: int | None = None, max_memory: int | None = None,
                       finetune_steps: int = 0, model: str = "rvm-mobilenetv3", cache: str | None = None,
                       device="cpu", warn=None):
    """A no-argument callable making one propagator per keyframe and direction, as ``GuidedMatter`` wants.

    auto is the tracking propagator (``track.TrackPropagator``: it holds real subjects the flow loses,
    docs/EVALUATION.md), or the memory one when fine-tuning is asked for. The encoder is loaded once and shared by
    every instance."""
    from ..errors import UsageError

    mem_every, max_memory = memory_settings(mem_every, max_memory)
    if kind not in PROPAGATORS:
        raise UsageError(f"--propagator must be one of {', '.join(PROPAGATORS)}, not {kind!r}")
    if mem_every < 1 or max_memory < 1 or finetune_steps < 0:
        raise UsageError("--mem-every and --max-memory must be at least 1, --finetune-steps at least 0")
    if kind == "flow" and finetune_steps:
        raise UsageError("--finetune-steps trains the memory propagator's heads: use --propagator memory (or auto)")
    if kind == "flow":
        return FlowPropagator
    if kind == "track" or (kind == "auto" and not finetune_steps):
        from .track import TRACK_SIDE, TrackPropagator

        from ..errors import ModelError

        try:
            tracking = FeatureEncoder(model, cache, side=TRACK_SIDE, device=device)
        except ModelError as exc:
            if kind == "track":  # asked for by name: insist, as --prior rvm does
                raise
            # auto, offline without RVM's weights: the flow alone, as before the tracker, and say so
            (warn or logging.getLogger("vidmatte").warning)(
                f"no subject tracker ({exc}); the keyframes are carried by optical flow alone")
            return FlowPropagator
        return lambda: TrackPropagator(tracking)
    if finetune_steps:
        require_torch()
    encoder = FeatureEncoder(model, cache, device=device)
    return lambda: MemoryPropagator(encoder, mem_every, max_memory, finetune_steps=finetune_steps)
