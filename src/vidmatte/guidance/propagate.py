"""Keyframe-anchored trimap propagation with optical flow: no weights, one direction, one frame at a time.

What a prototype measured (issue 9) decides the design: propagating the previous frame's trimap or alpha to the
next frame drifts and collapses (the band grows to the whole frame, or the subject is lost within 30 frames).
Everything here is therefore anchored to the keyframe:
  1. frame-to-frame DIS flow, kept only where it is consistent both ways and on the subject (reliable pixels);
  2. a similarity transform fitted to those pixels (RANSAC), composed into keyframe -> current frame;
  3. a smooth residual flow from the current frame to the keyframe warped by that transform (non-rigid motion);
  4. the keyframe's trimap pulled through both in one remap (nearest), so labels are never re-derived from
     solved alphas;
  5. a colour check: a carried foreground pixel whose colour no longer matches its keyframe source becomes
     unknown, and so do parts of the subject the keyframe never saw (sources outside the keyframe), near it.
Each result says which of its unknown pixels are the keyframe's own band, carried (``Propagated.band``), and which
are doubts (steps 4-5, or two directions that disagree): the solver trusts RVM's alpha more on the doubts.
Flow runs on a small grey copy (``work_side`` pixels on the long side); the trimap is warped at full size.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from .frame_memo import NO_MEMO

FG, UNKNOWN, BG = 255, 128, 0
_OUTSIDE = 64  # a remap border value no trimap holds: "the keyframe never saw this pixel"
# The frame-to-frame fit runs on the subject's solid pixels (definite foreground, eroded by one pixel) unless it has
# fewer than this many at work size: then on the whole subject, band included. A dandelion's seed head is nearly all
# band (13-30 solid pixels of the stem at 512x288); on those alone the fit fell back to no motion and the trimap
# stayed put while the subject moved, 50 px off by frame 30 (guided_nonrigid: MAD 129.0 -> 126.3, dtSSD 13.19 ->
# 12.91; the other five clips have thousands of solid pixels and do not change).
MIN_SOLID_PIXELS = 200


@dataclass
class Propagated:
    """One frame's propagated guidance from one keyframe, in one direction."""

    trimap: np.ndarray  # uint8 [H,W] {0, 128, 255}
    confidence: np.ndarray  # float32 [H,W] 0..1: how far this direction's labels can be trusted here
    distance: int  # frames from the keyframe
    # bool [H,W]: unknown pixels that carry the keyframe's own unknown band; the other unknown pixels are doubts.
    # None: every unknown pixel is band (a trimap with nothing else to say).
    band: np.ndarray | None = None
    # Fused guidance only: the share of the subject the two directions contradicted each other on (``fuse``).
    contradicted: float = 0.0

    def band_mask(self) -> np.ndarray:
        """The unknown pixels that are band (bool [H,W])."""
        unknown = self.trimap == UNKNOWN
        return unknown if self.band is None else unknown & self.band


def _similarity_to_3x3(m: np.ndarray) -> np.ndarray:
    return np.vstack([m, [0.0, 0.0, 1.0]])


class FlowPropagator:
    """Carries one keyframe's trimap along consecutive frames (forward or backward: the caller decides the order).

    ``start(frame, trimap)`` at the keyframe, then ``step(frame)`` for each following frame in the pass's order.
    frame: uint8 [H,W,3] RGB; trimap: uint8 [H,W] {0,128,255} at the frame's size.
    """

    def __init__(self, work_side: int = 640, colour_tolerance: float = 24.0, decay_frames: float = 60.0,
                 residual_sigma: float = 0.1):
        self.work_side = work_side
        # Mean |RGB difference| (0..255) above which a carried foreground pixel turns unknown (a doubt). MAD x1e3 with
        # keyframe 0, 48 -> 24: the flowers 15.6 -> 9.0 (rigid set 6.39 -> 4.74), the glass bulb 37.4 -> 38.2 (rigid
        # 33.4 -> 34.8), the boy, fur, plush toy and the six `people` clips within 0.05; 32 was in between.
        self.colour_tolerance = colour_tolerance
        self.decay_frames = decay_frames  # confidence halves roughly every this many frames from the keyframe
        # Residual flow smoothing, as a fraction of the subject's size. Wrong definite labels over 59 frames from
        # frame 0 (share of the subject, mean of 6 clips): guided_nonrigid 0.015: 4.85%, 0.03: 4.47%, 0.06: 3.71%,
        # 0.1: 3.35%, 0.2: 3.71%; checked on guided_rigid (not used to choose): 0.06: 3.21%, 0.1: 2.77%.
        self.residual_sigma = residual_sigma
        self._flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        self.memo = NO_MEMO

    def share(self, memo) -> None:
        """Read the subject-independent per-frame results (grey copies, frame-to-frame flow) through ``memo``
        (``guidance.frame_memo``): several subjects over the same frames compute them once."""
        self.memo = memo

    # --- public ------------------------------------------------------------------------------------------
    def start(self, frame: np.ndarray, trimap: np.ndarray) -> Propagated:
        h, w = trimap.shape
        self.size = (h, w)
        self.scale = min(1.0, self.work_side / max(h, w))
        self.key_trimap = trimap
        self.key_rgb = frame
        self.key_grey = self.work_grey(frame)
        self.transform = np.eye(3)  # keyframe work coordinates -> current frame work coordinates
        self.previous = self.key_grey
        self.previous_fit = self._fit_pixels(trimap)
        # Per-keyframe constants, made once rather than on every frame.
        self.key_subject = (self._small(trimap) != BG).astype(np.float32)
        work_h, work_w = self.key_grey.shape
        self.grid_y, self.grid_x = np.mgrid[0:work_h, 0:work_w].astype(np.float32)
        self.distance = 0
        return Propagated(trimap.copy(), np.ones((h, w), np.float32), 0, trimap == UNKNOWN)

    def step(self, frame: np.ndarray) -> Propagated:
        grey = self.work_grey(frame)
        transform = self._frame_to_frame(self.previous, grey, self.previous_fit) @ self.transform
        self.distance += 1
        result = self.carry(frame, transform, grey)
        self.adopt(grey, transform, result.trimap)
        return result

    def carry(self, frame: np.ndarray, transform: np.ndarray, grey: np.ndarray | None = None) -> Propagated:
        """The keyframe's trimap carried to ``frame`` through ``transform`` (3x3, keyframe -> frame, work
        coordinates) and the residual flow; changes no state (the memory propagator tries other transforms)."""
        grey = self.work_grey(frame) if grey is None else grey
        source_x, source_y = self._source_map(grey, transform)
        trimap = cv2.remap(self.key_trimap, source_x, source_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=_OUTSIDE)
        band = trimap == UNKNOWN
        trimap = self._unseen_parts(trimap)
        matches = self._colour_matches(frame, source_x, source_y)
        trimap[(trimap == FG) & ~matches] = UNKNOWN
        confidence = np.where(matches, 1.0, 0.5).astype(np.float32) * np.float32(
            0.5 ** (self.distance / self.decay_frames))
        return Propagated(trimap, confidence, self.distance, band)

    def adopt(self, grey: np.ndarray, transform: np.ndarray, trimap: np.ndarray) -> None:
        """The current frame's outcome (work-size grey, transform, trimap) becomes the base of the next step."""
        self.transform, self.previous, self.previous_fit = transform, grey, self._fit_pixels(trimap)

    def _fit_pixels(self, trimap: np.ndarray) -> np.ndarray:
        """The work-size pixels whose motion the next frame-to-frame fit follows (see MIN_SOLID_PIXELS)."""
        small = self._small(trimap)
        solid = cv2.erode((small == FG).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        if solid.sum() >= MIN_SOLID_PIXELS:
            return solid
        return cv2.erode((small != BG).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)

    # --- steps ---------------------------------------------------------------------------------------------
    def _frame_to_frame(self, before: np.ndarray, after: np.ndarray, subject: np.ndarray) -> np.ndarray:
        """Similarity transform (3x3) from ``before`` to ``after`` work coordinates, fitted on reliable pixels:
        ``subject`` ones (``_fit_pixels``) whose flow is consistent both ways. Falls back to the median motion, then
        to no motion."""
        forward = self.memo("dis-medium", (before, after), lambda: self._flow.calc(before, after, None))
        backward = self.memo("dis-medium", (after, before), lambda: self._flow.calc(after, before, None))
        ys, xs = self.grid_y, self.grid_x
        # Where each pixel lands, and whether the backward flow brings it home (within a pixel).
        land_x, land_y = xs + forward[..., 0], ys + forward[..., 1]
        back = cv2.remap(backward, land_x, land_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=(1e3, 1e3))
        consistent = np.hypot(forward[..., 0] + back[..., 0], forward[..., 1] + back[..., 1]) < 1.0
        reliable = consistent & subject
        if reliable.sum() < 30:
            return np.eye(3)
        src = np.stack([xs[reliable], ys[reliable]], 1)
        dst = src + forward[reliable]
        if len(src) > 4000:  # RANSAC on a sample: the fit is as good, the cost bounded
            pick = np.random.default_rng(len(src)).choice(len(src), 4000, replace=False)
            src, dst = src[pick], dst[pick]
        fit, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=1.5)
        if fit is None:
            shift = np.median(dst - src, axis=0)
            fit = np.array([[1.0, 0.0, shift[0]], [0.0, 1.0, shift[1]]])
        return _similarity_to_3x3(fit)

    def _source_map(self, grey: np.ndarray, transform: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each full-size pixel of the current frame, where it comes from in the keyframe (float maps)."""
        h, w = grey.shape
        warped_key = cv2.warpAffine(self.key_grey, transform[:2], (w, h), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REPLICATE)
        residual = self._flow.calc(grey, warped_key, None)  # current -> warped keyframe: the non-rigid part
        residual = self._smooth_on_subject(residual, warped_key.shape, transform)
        ys, xs = self.grid_y, self.grid_x
        inverse = np.linalg.inv(transform)
        px, py = xs + residual[..., 0], ys + residual[..., 1]
        kx = inverse[0, 0] * px + inverse[0, 1] * py + inverse[0, 2]
        ky = inverse[1, 0] * px + inverse[1, 1] * py + inverse[1, 2]
        full_h, full_w = self.size
        # Work coordinates -> full-size coordinates (pixel centres), maps upsampled to the full frame.
        factor = 1.0 / self.scale
        kx = cv2.resize((kx + 0.5) * factor - 0.5, (full_w, full_h), interpolation=cv2.INTER_LINEAR)
        ky = cv2.resize((ky + 0.5) * factor - 0.5, (full_w, full_h), interpolation=cv2.INTER_LINEAR)
        return kx.astype(np.float32), ky.astype(np.float32)

    def _smooth_on_subject(self, flow: np.ndarray, shape: tuple[int, int], transform: np.ndarray) -> np.ndarray:
        """A smooth residual field: flow averaged over the subject (normalised convolution), so background motion
        seen through semi-transparent pixels does not drag the labels along."""
        h, w = shape
        weight = cv2.warpAffine(self.key_subject, transform[:2], (w, h), flags=cv2.INTER_LINEAR)
        ys, xs = np.nonzero(weight > 0.5)
        if len(ys) < 10:
            return np.zeros_like(flow)
        size = max(np.ptp(ys), np.ptp(xs), 8)
        sigma = max(1.0, self.residual_sigma * size)
        blur = lambda a: cv2.GaussianBlur(a, (0, 0), sigma)  # noqa: E731
        norm = blur(weight) + 1e-3
        smooth = np.dstack([blur(flow[..., c] * weight) / norm for c in range(2)])
        # Far from the subject the field fades to zero rather than extrapolating.
        return smooth * np.minimum(norm / (norm.max() + 1e-6) * 4, 1.0)[..., None]

    def _unseen_parts(self, trimap: np.ndarray) -> np.ndarray:
        """Pixels whose source lies outside the keyframe: unknown near the subject (a head entering the frame),
        background elsewhere (a pan revealing new background)."""
        outside = trimap == _OUTSIDE
        if not outside.any():
            return trimap
        subject = (trimap != BG) & ~outside
        near = grown(subject, max(3, round(0.02 * max(self.size)))) if subject.any() else np.zeros_like(outside)
        trimap = trimap.copy()
        trimap[outside] = BG
        trimap[outside & near] = UNKNOWN
        return trimap

    def _colour_matches(self, frame: np.ndarray, source_x: np.ndarray, source_y: np.ndarray) -> np.ndarray:
        """Whether each pixel's colour matches its keyframe source (blurred a little against noise)."""
        carried = cv2.remap(self.key_rgb, source_x, source_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        difference = cv2.absdiff(cv2.blur(carried, (3, 3)), cv2.blur(frame, (3, 3)))
        return np.add.reduce(difference, axis=2, dtype=np.uint16) <= 3 * self.colour_tolerance  # mean of 3

    # --- helpers -------------------------------------------------------------------------------------------
    def work_grey(self, frame: np.ndarray) -> np.ndarray:
        """The work-size grey copy flow runs on."""
        return self.memo(("grey", self.scale), (frame,),
                         lambda: self._small(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), cv2.INTER_AREA))

    def _small(self, image: np.ndarray, interpolation=cv2.INTER_NEAREST) -> np.ndarray:
        if self.scale >= 1.0:
            return image
        h, w = image.shape[:2]
        return cv2.resize(image, (max(1, round(w * self.scale)), max(1, round(h * self.scale))),
                          interpolation=interpolation)


def grown(mask: np.ndarray, reach: float) -> np.ndarray:
    """``mask`` (bool [H,W]) grown by ``reach`` pixels (Euclidean), approximately: on a grid 4x coarser (a cell
    counts if any of its pixels does) by distance transform, so the cost does not grow with the reach. At 1080p a
    60-px dilation at full size took a third of a second a frame; this agrees with it to within two cells (8 px)."""
    h, w = mask.shape
    cell = 4 if min(h, w) >= 64 else 1
    if cell > 1:
        mask = cv2.resize(mask.astype(np.uint8) * 255, ((w + cell - 1) // cell, (h + cell - 1) // cell),
                          interpolation=cv2.INTER_AREA) > 0
    distance = cv2.distanceTransform(np.where(mask, 0, 255).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    near = (distance <= reach / cell + (1 if cell > 1 else 0)).astype(np.uint8)  # a cell centre is <= 1 cell off
    return cv2.resize(near, (w, h), interpolation=cv2.INTER_NEAREST).astype(bool) if cell > 1 else near.astype(bool)


# Two directions that contradict each other (foreground against background) over more than this share of the
# subject are following different things: one of them, or both, lost it. Without RVM's prior nothing decides a
# doubt but closed form, and doubting every contradicted pixel left no foreground and an empty matte (sam2's dog
# with keyframes 0 and 119: nothing at all in the middle), so the nearer keyframe's guidance is used whole instead.
# With the prior RVM decides the doubts, which it does better than either direction (the non-rigid dandelion with
# keyframes 0 and 59: 47.15 as doubts, 47.25 taking the nearer direction on the frames concerned). Either way the
# guided matter reports the frames.
LOST_TRACK_SHARE = 0.5


def contradiction(a: Propagated, b: Propagated) -> float:
    """Share of the subject (foreground in either direction) that one direction calls foreground and the other
    background, where both are still fairly confident (0..1)."""
    fg_a, fg_b = a.trimap == FG, b.trimap == FG
    subject = int(np.count_nonzero(fg_a | fg_b))
    if subject == 0:
        return 0.0
    contradicted = ((fg_a & (b.trimap == BG)) | (fg_b & (a.trimap == BG))) & _both_confident(a, b)
    return np.count_nonzero(contradicted) / subject


def _both_confident(a: Propagated, b: Propagated) -> np.ndarray:
    return np.minimum(a.confidence, b.confidence) > 0.25


def fuse(a: Propagated | None, b: Propagated | None, doubts: str = "any") -> Propagated:
    """Two directions' guidance for one frame -> one: each pixel takes the label (and band) of the more confident
    direction; where both are fairly confident and disagree, it is unknown (let the solver decide), a doubt. Where
    they contradict each other over most of the subject (``LOST_TRACK_SHARE``) and nothing but closed form would
    decide the doubts (doubts="any"), the nearer direction is taken whole. The result's ``contradicted`` says how
    much of the subject they contradicted each other on.

    doubts: which disagreements become doubts. "any": every one (a label against the band too); "contradictions":
    only definite foreground against definite background, where the other disagreements keep the chosen
    direction's label. The guided matter picks "contradictions" when RVM's alpha is its prior, because there a doubt
    is decided by RVM, and a band placed a few pixels apart by the two directions is not a failure RVM should
    decide: guided_nonrigid with keyframes 0 and 59, MAD x1e3 "any" -> "contradictions": fur 5.69 -> 5.09, plush
    6.90 -> 6.52, dandelion 50.8 -> 48.2, the boy 7.49 -> 7.56. Without the prior a doubt is solved by closed
    form alone, and a wider unknown region costs little: the flowers 8.21 with "any", 11.0 without."""
    if a is None or b is None:
        return a or b
    if doubts not in ("any", "contradictions"):
        raise ValueError(f"doubts must be any or contradictions, not {doubts!r}")
    contradicted = contradiction(a, b)
    if contradicted > LOST_TRACK_SHARE and doubts == "any":
        return replace(_nearer(a, b), contradicted=contradicted)
    pick_a = a.confidence >= b.confidence
    trimap = np.where(pick_a, a.trimap, b.trimap)
    band = np.where(pick_a, a.band_mask(), b.band_mask())
    if doubts == "any":
        differ = a.trimap != b.trimap
    else:
        differ = ((a.trimap == FG) & (b.trimap == BG)) | ((a.trimap == BG) & (b.trimap == FG))
    disagree = differ & _both_confident(a, b)
    trimap[disagree] = UNKNOWN
    band[disagree] = False
    return Propagated(trimap, np.maximum(a.confidence, b.confidence), min(a.distance, b.distance), band,
                      contradicted)


def _nearer(a: Propagated, b: Propagated) -> Propagated:
    """The direction from the nearer keyframe (the more confident one on the whole frame at equal distances)."""
    if a.distance != b.distance:
        return a if a.distance < b.distance else b
    return a if a.confidence.mean() >= b.confidence.mean() else b
