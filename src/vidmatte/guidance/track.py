"""Subject tracking: which pixels are the marked subject, frame after frame, on real footage (issue 26).

The flow propagator (``propagate.FlowPropagator``) carries the keyframe's trimap through a similarity transform
and a smooth residual flow: precise on subjects that move as a whole (its band keeps hair-thin edges), but it
cannot follow a subject that turns, deforms or moves fast, and once off it never comes back (DAVIS-2016's agility
dog: J 0.13, lost by frame 8). Tracking and matting are two problems, so here they are split:

  1. **appearance**: RVM's pretrained MobileNetV3 encoder (the registry's ONNX weights, no torch) gives every 8x8
     cell a feature vector (``memory.FeatureEncoder``); two classifiers are fitted on the keyframe at run time
     (OSVOS's idea, without training a network): a ridge regression (balanced classes) and a nearest-neighbour
     reading (the best match among the keyframe's subject cells against the best among its background cells). The
     linear head generalises; the neighbours keep the subject's several looks apart (a bus's green side and white
     front, a rider and the bike);
  2. **place**: the previous frame's subject carried by DIS flow is the shape prior; cells far from it pay a
     penalty in units of the subject's size, relaxed by how fast the subject has been moving;
  3. **decision**: score minus penalty, upsampled to the frame and aligned to its edges by a guided filter, > 0;
     only parts touching the carried subject are kept (a look-alike elsewhere is not the subject). A subject that
     shrinks below a quarter of the last good one is lost (hidden, blurred): the search goes on around where it was
     last seen, wider each frame, and picks it up when it is seen again. Every 5th confident frame lends its cells
     to the neighbours' samples (the subject's new sides), the keyframe's always kept;
  4. **the matte's edge**: near the tracked outline the flow propagator's keyframe-anchored trimap decides (its
     band, its labels); away from it the tracker does. Where the flow stays on the subject nothing changes; where
     it has drifted, the tracker's outline with a band of the keyframe's width replaces it.

Each frame also gets a **confidence**, from how well the tracked subject agrees with the carried one and with
the keyframe's appearance; the guided matter reports the frames where it is low (``doubtful_frames``).
Chosen on 12 of the 18 DAVIS-2016 development clips (6 kept out, reported apart): docs/EVALUATION.md.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from .frame_memo import NO_MEMO
from .propagate import BG, FG, UNKNOWN, FlowPropagator, Propagated

TRACK_SIDE = 854  # the encoder's input, long side: 640 -> 854 raised J on the tuning clips 0.652 -> 0.674
# On frames whose long side is under this the tracker follows the subject and reports its confidence, but does not
# overrule the flow's trimap: its 8-pixel cells are too coarse there (tests/test_guided_matting.py's 256x144 clip:
# 9.7% wrong labels where the flow alone has under 3%). The composites (512x288) and DAVIS (854x480) are above it.
TRACK_MIN_SIDE = 512
FLOW_SIDE = 480  # DIS flow of the shape prior runs on a grey copy this size (long side)
RIDGE = 1e-3  # the ridge head's regulariser (features are unit length: scores come out near +-1)
NEIGHBOURS = 2000  # keyframe cells kept per class for the nearest-neighbour reading (bounded cost per frame)
KNN_WEIGHT = 5.0  # the neighbours' margin (a difference of cosine similarities, ~0.1) against the ridge score
DISTANCE_PENALTY = 4.0  # per subject size (square root of its area) away from the carried subject
SPEED_SLACK = 1.5  # the penalty starts this many frames' worth of the subject's recent motion away from it
EDGE_RADIUS, EDGE_EPS = 8, 1e-2  # the guided filter aligning the upsampled decision to the frame's edges
# A frame whose tracked subject is below this share of the last good one's area has lost it (occluded, blurred,
# out of view): the next frames search around that last good subject, the slack growing by the subject's recent
# speed each frame, instead of around what little is left (DAVIS-2016's soccer ball behind a leg).
LOST_SHARE = 0.25
# Every `every` frames a frame tracked with at least `confidence` lends its cells to the neighbours' samples; the
# last `frames` such frames are kept beside the keyframe.
REMEMBER = {"every": 5, "confidence": 0.8, "frames": 3}
# Below this confidence the tracker does not overrule the flow: an unsure tracker is no better a guide, and a
# subject that is nearly all band (guided_nonrigid's dandelion, its seed head) is one the tracker's 8-pixel cells
# cannot draw (MAD 48.0 with the flow alone, 61.6 when the tracker overruled it). The guided matter's DOUBT.
TRUST = 0.5
FLOW_AGREES = 0.97  # flow_agrees: the share of either subject the other must cover...
AGREE_REACH = 1.0  # ...within this many of the tracker's cells. 0.5 took DAVIS bear's J 0.864 -> 0.897 but
# left the flow's finer band too often on composites (tests/test_guided_api.py's soft-edged disc: MAD 0.047 > 0.03)


@dataclass
class Tracked:
    """One frame's tracked subject."""

    mask: np.ndarray  # bool [H,W]
    confidence: float  # 0..1: see SubjectTracker.step
    consistency: float  # IoU of the tracked subject with the previous one carried by flow
    appearance: float  # share of the tracked subject's cells the keyframe's classifiers call subject


class SubjectTracker:
    """Follows a binary subject from its keyframe: ``start(frame, mask)``, then ``step(frame)`` for each following
    frame in the pass's order. frame: uint8 [H,W,3] RGB; mask: bool [H,W]."""

    def __init__(self, encoder, knn_weight: float = KNN_WEIGHT, distance_penalty: float = DISTANCE_PENALTY,
                 speed_slack: float = SPEED_SLACK):
        self.encoder = encoder
        self.knn_weight, self.distance_penalty, self.speed_slack = knn_weight, distance_penalty, speed_slack
        self._flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        self.memo = NO_MEMO  # guidance.frame_memo: shared with other subjects' trackers over the same frames

    def start(self, frame: np.ndarray, mask: np.ndarray) -> None:
        h, w = mask.shape
        self.size = (h, w)
        self.flow_scale = min(1.0, FLOW_SIDE / max(h, w))
        keys = self._keys(frame)
        grid = keys.shape[:2]
        share = cv2.resize(mask.astype(np.float32), (grid[1], grid[0]), interpolation=cv2.INTER_AREA).reshape(-1)
        flat = keys.reshape(-1, keys.shape[-1])
        subject, background = share > 0.8, share < 0.2
        if not subject.any():  # a subject smaller than a cell: its cells are the ones it covers most
            subject = share >= max(share.max() * 0.5, 1e-6)
        self.head = _ridge(flat, subject, background)
        rng = np.random.default_rng(0)
        self.subject_keys = _sample(flat[subject], rng)
        self.background_keys = _sample(flat[background], rng)
        self.key_samples = (self.subject_keys, self.background_keys)  # the keyframe's, always kept
        self.recent: list[tuple[np.ndarray, np.ndarray]] = []  # confident frames' samples (REMEMBER)
        self.stepped, self.rng = 0, rng
        self.previous = mask.copy()
        self.previous_grey = self._grey(frame)
        work_h, work_w = self.previous_grey.shape
        self.grid_y, self.grid_x = np.mgrid[0:work_h, 0:work_w].astype(np.float32)
        self.centre = _centroid(mask)
        self.speed = 0.0
        self.anchor, self.lost_for = mask.copy(), 0  # the last good subject, frames since

    def scores(self, keys: np.ndarray) -> np.ndarray:
        """The keyframe's classifiers on a frame's cells: > 0 looks like the subject (float32 [h, w])."""
        flat = keys.reshape(-1, keys.shape[-1])
        score = flat @ self.head[:-1] + self.head[-1]
        if self.knn_weight and len(self.subject_keys) and len(self.background_keys):
            nearest = (flat @ self.subject_keys.T).max(1) - (flat @ self.background_keys.T).max(1)
            score = score + self.knn_weight * nearest
        return score.reshape(keys.shape[:2]).astype(np.float32)

    def step(self, frame: np.ndarray) -> Tracked:
        h, w = self.size
        grey = self._grey(frame)
        carried = self._carried(grey)
        anchor_area = max(int(np.count_nonzero(self.anchor)), 1)
        reference, slack = carried, self.speed_slack * self.speed
        if np.count_nonzero(carried) < LOST_SHARE * anchor_area:  # lost: search around the last good subject
            reference, slack = self.anchor, self.speed_slack * self.speed * (2 + self.lost_for)
        keys = self._keys(frame)
        score = self.scores(keys)
        decision = cv2.resize(score, (w, h), interpolation=cv2.INTER_LINEAR)
        area = max(int(np.count_nonzero(reference)), 100)
        away = cv2.distanceTransform((~reference).astype(np.uint8), cv2.DIST_L2, 3)
        decision -= self.distance_penalty * np.maximum(away - slack, 0) / np.sqrt(area)
        luma = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255
        mask = guided_filter(luma, decision, EDGE_RADIUS, EDGE_EPS) > 0
        mask = _touching(mask, reference | (away <= slack))
        consistency = _iou(mask, carried)
        cells = cv2.resize(mask.astype(np.float32), (score.shape[1], score.shape[0]),
                           interpolation=cv2.INTER_AREA) > 0.5
        appearance = float(np.mean(score[cells] > 0)) if cells.any() else 0.0
        centre = _centroid(mask)
        if centre is not None and self.centre is not None:
            self.speed = 0.5 * self.speed + 0.5 * float(np.hypot(*(centre - self.centre)))
        self.centre = centre if centre is not None else self.centre
        if np.count_nonzero(mask) >= LOST_SHARE * anchor_area:
            self.anchor, self.lost_for = mask, 0
        else:
            self.lost_for += 1
        self.previous, self.previous_grey = mask, grey
        self.stepped += 1
        confidence = min(consistency, appearance)
        if REMEMBER["every"] and self.stepped % REMEMBER["every"] == 0 and confidence >= REMEMBER["confidence"]:
            self._remember(keys, mask)
        return Tracked(mask, confidence, consistency, appearance)

    def _remember(self, keys: np.ndarray, mask: np.ndarray) -> None:
        """A confident frame's cells join the neighbours' samples (the subject's new looks: a turn, a new side);
        only cells well inside or well outside the tracked subject, the keyframe's kept, the oldest frame dropped."""
        grid = keys.shape[:2]
        share = cv2.resize(mask.astype(np.float32), (grid[1], grid[0]), interpolation=cv2.INTER_AREA).reshape(-1)
        flat = keys.reshape(-1, keys.shape[-1])
        inner = cv2.erode((share.reshape(grid) > 0.99).astype(np.uint8), np.ones((3, 3), np.uint8)).reshape(-1) > 0
        outer = cv2.dilate((share.reshape(grid) > 0.01).astype(np.uint8), np.ones((5, 5), np.uint8)).reshape(-1) == 0
        if not inner.any() or not outer.any():
            return
        self.recent = (self.recent + [(_sample(flat[inner], self.rng, NEIGHBOURS // 2),
                                       _sample(flat[outer], self.rng, NEIGHBOURS // 2))])[-int(REMEMBER["frames"]):]
        self.subject_keys = np.concatenate([self.key_samples[0]] + [s for s, _ in self.recent])
        self.background_keys = np.concatenate([self.key_samples[1]] + [b for _, b in self.recent])

    def _carried(self, grey: np.ndarray) -> np.ndarray:
        """The previous subject carried to this frame by flow (this frame -> previous, then a pull)."""
        h, w = self.size
        previous = self.previous_grey
        flow = self.memo("dis-medium", (grey, previous), lambda: self._flow.calc(grey, previous, None))
        s = self.flow_scale
        map_x = cv2.resize((self.grid_x + flow[..., 0] + 0.5) / s - 0.5, (w, h), interpolation=cv2.INTER_LINEAR)
        map_y = cv2.resize((self.grid_y + flow[..., 1] + 0.5) / s - 0.5, (w, h), interpolation=cv2.INTER_LINEAR)
        return cv2.remap(self.previous.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0) > 0.5

    def _keys(self, frame: np.ndarray) -> np.ndarray:
        return self.memo(("keys", self.encoder.side), (frame,), lambda: self.encoder(frame))

    def _grey(self, frame: np.ndarray) -> np.ndarray:
        return self.memo(("grey", self.flow_scale), (frame,), lambda: self._make_grey(frame))

    def _make_grey(self, frame: np.ndarray) -> np.ndarray:
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        if self.flow_scale >= 1.0:
            return grey
        h, w = grey.shape
        return cv2.resize(grey, (max(1, round(w * self.flow_scale)), max(1, round(h * self.flow_scale))),
                          interpolation=cv2.INTER_AREA)


class TrackPropagator:
    """The propagator interface (``start(frame, trimap)``, ``step(frame)`` -> ``Propagated``) over a
    ``SubjectTracker`` that decides the subject and a ``FlowPropagator`` that keeps the keyframe's band.

    ``log`` holds one entry per frame stepped: its distance from the keyframe and the tracker's confidence,
    consistency and appearance (the guided matter reports doubtful frames from it; benchmarks read it)."""

    def __init__(self, encoder, flow_factory=FlowPropagator, **tracker_options):
        self.tracker = SubjectTracker(encoder, **tracker_options)
        self.flow = flow_factory()
        self.log: list[dict] = []

    def share(self, memo) -> None:
        """Both parts read their subject-independent per-frame results through ``memo`` (guidance.frame_memo)."""
        self.tracker.memo = memo
        if hasattr(self.flow, "share"):
            self.flow.share(memo)

    def start(self, frame: np.ndarray, trimap: np.ndarray) -> Propagated:
        result = self.flow.start(frame, trimap)
        subject = trimap == FG
        if not subject.any():  # a keyframe with only a band: its band is the subject's best guess
            subject = trimap != BG
        self.tracker.start(frame, subject | ((trimap == UNKNOWN) & _half_inside(trimap)))
        self.band = _band_width(trimap)
        self.cell = 8 * max(trimap.shape) / min(self.tracker.encoder.side, max(trimap.shape))  # pixels a cell
        self.distance = 0
        return result

    def step(self, frame: np.ndarray) -> Propagated:
        self.distance += 1
        flowed = self.flow.step(frame)
        tracked = self.tracker.step(frame)
        self.log.append({"distance": self.distance, "confidence": round(float(tracked.confidence), 3),
                         "consistency": round(float(tracked.consistency), 3),
                         "appearance": round(float(tracked.appearance), 3)})
        if max(frame.shape[:2]) < TRACK_MIN_SIDE:
            return flowed  # the flow's guidance as it is (see TRACK_MIN_SIDE); the confidence is still logged
        return merge(flowed, tracked, self.band, self.cell)


def merge(flowed: Propagated, tracked: Tracked, band: float, cell: float) -> Propagated:
    """The tracked subject as a trimap, with the flow's keyframe-anchored band near its outline; the flow's trimap
    whole where the tracker is unsure (confidence below TRUST) or the flow still lies on the tracked subject.

    The tracker decides foreground and background; within ``band + cell`` pixels of its outline (it is sure of
    the outline only to a cell), the flow's unknown pixels stay unknown: where the flow is still on the subject,
    that is the keyframe's own band (hair, fur) carried. Where the flow's band covers less than half of the
    tracked outline (the flow has drifted or lost the subject), the outline gets a band of the keyframe's width
    instead. The flow's definite labels are not used: on DAVIS-2016's agility dog they cut its legs off (J of the
    definite foreground 0.85 -> 0.64 when they stood near the outline)."""
    mask = tracked.mask
    confidence = (flowed.confidence * np.float32(max(tracked.confidence, 0.05) ** 0.5)).astype(np.float32)
    if tracked.confidence < TRUST or flow_agrees(flowed.trimap, mask, cell):
        return replace(flowed, confidence=confidence)
    inside = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
    outside = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 3)
    near_outline = np.where(mask, inside, outside)
    trimap = np.where(mask, FG, BG).astype(np.uint8)
    flow_band = (flowed.trimap == UNKNOWN) & (near_outline <= band + cell)
    edge = near_outline <= max(band / 2, 1.0)
    carried = cv2.dilate(flow_band.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    own_band = np.count_nonzero(edge & carried) < 0.5 * np.count_nonzero(edge)
    trimap[flow_band] = UNKNOWN
    if own_band:
        trimap[edge] = UNKNOWN
    kept_band = flow_band if not own_band else flow_band & ~edge
    return Propagated(trimap, confidence, flowed.distance, kept_band)


def flow_agrees(trimap: np.ndarray, mask: np.ndarray, cell: float) -> bool:
    """Whether the flow's trimap is still on the tracked subject, to the tracker's precision (a cell): nearly all
    of the tracked subject lies within the flow's subject grown by a cell, and nearly all of the flow's definite
    foreground shrunk by a cell lies within the tracked subject. Then the flow's trimap is used whole: its
    keyframe-anchored band is finer than anything the tracker's 8-pixel cells can draw (hair, fur, a soft edge)."""
    reach = max(1, int(round(AGREE_REACH * cell)))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
    wide = cv2.dilate((trimap != BG).astype(np.uint8), disc).astype(bool)
    core = cv2.erode((trimap == FG).astype(np.uint8), disc).astype(bool)
    tracked, solid = np.count_nonzero(mask), np.count_nonzero(core)
    if tracked == 0 or solid == 0:
        return tracked == 0 and solid == 0
    return (np.count_nonzero(mask & wide) >= FLOW_AGREES * tracked
            and np.count_nonzero(core & mask) >= FLOW_AGREES * solid)


def guided_filter(guide: np.ndarray, image: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He et al.'s guided filter (grey guide, box windows): ``image`` smoothed along ``guide``'s edges."""
    size = (2 * radius + 1, 2 * radius + 1)
    mean = lambda a: cv2.boxFilter(a, -1, size)  # noqa: E731
    mean_guide, mean_image = mean(guide), mean(image)
    a = (mean(guide * image) - mean_guide * mean_image) / (mean(guide * guide) - mean_guide ** 2 + eps)
    b = mean_image - a * mean_guide
    return mean(a) * guide + mean(b)


def _ridge(keys: np.ndarray, subject: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Weights (and a last bias term) of a ridge regression to +1 on subject cells, -1 on background ones, each
    class weighing half (a small subject is not drowned by its background)."""
    x = np.concatenate([keys, np.ones((len(keys), 1), np.float32)], axis=1)
    weight = np.where(subject, 0.5 / max(subject.sum(), 1), np.where(background, 0.5 / max(background.sum(), 1),
                                                                         0.0)).astype(np.float32)
    target = np.where(subject, 1.0, -1.0).astype(np.float32)
    weighted = x * weight[:, None]
    return np.linalg.solve(weighted.T @ x + RIDGE * np.eye(x.shape[1], dtype=np.float32), weighted.T @ target)


def _sample(keys: np.ndarray, rng, count: int = NEIGHBOURS) -> np.ndarray:
    return keys if len(keys) <= count else keys[rng.choice(len(keys), count, replace=False)]


def _centroid(mask: np.ndarray) -> np.ndarray | None:
    ys, xs = np.nonzero(mask)
    return None if len(xs) == 0 else np.array([xs.mean(), ys.mean()])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


def _touching(mask: np.ndarray, carried: np.ndarray) -> np.ndarray:
    """The parts of ``mask`` that touch the carried subject (all of it when none does: the subject jumped)."""
    count, labels = cv2.connectedComponents(mask.astype(np.uint8))
    if count <= 2:
        return mask
    keep = np.unique(labels[mask & carried])
    keep = keep[keep > 0]
    return np.isin(labels, keep) if len(keep) else mask


def _half_inside(trimap: np.ndarray) -> np.ndarray:
    """Unknown pixels nearer the foreground than the background (the band's inner half: the subject's outline)."""
    to_fg = cv2.distanceTransform((trimap != FG).astype(np.uint8), cv2.DIST_L2, 3)
    to_bg = cv2.distanceTransform((trimap != BG).astype(np.uint8), cv2.DIST_L2, 3)
    return to_fg <= to_bg


def _band_width(trimap: np.ndarray) -> float:
    """The keyframe band's mean width in pixels (its area over the length of the subject's outline), at least 2."""
    unknown = int(np.count_nonzero(trimap == UNKNOWN))
    outline = cv2.findContours((trimap != BG).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)[0]
    length = sum(len(c) for c in outline)
    return max(2.0, unknown / max(length, 1))
