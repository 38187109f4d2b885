"""Alpha of one frame from a known (aligned) background: the compositing equation as the data term, the matting
Laplacian where that evidence is weak.

With the plate B known, I = a F + (1 - a) B gives, per pixel and for a foreground colour estimate F,

    a_data = clip((I - B) . (F - B) / |F - B|^2, 0, 1)   with confidence   |F - B|^2 / sigma^2,

sigma being the frame's background residual (noise, compression, what alignment left). Pixels that match the plate
become strong background constraints wherever F differs from B; where F is close to B the term fades and the
Laplacian carries alpha in from the neighbours (``solvers.trimap_alpha``: the band system over unknown pixels, the
data term as its per-pixel prior). Pixels far from anything that differs from the plate are not variables at all.

Everything hinges on F, chosen per region of difference (issue 11's open design problem):
- where RVM sees the region (it is sure of most of the region's clearly different pixels: a person; RVM covers
  glass, a mesh or a dandelion only partly or softly) F is RVM's foreground where RVM's alpha is solid, and RVM's
  alpha joins the data term (faces and hair are not "confidently different" from the plate); on the hair and
  edges, where RVM is not solid, the first solve's F is the solid subject's colour beside them (RVM's own colours
  there keep much of the background's) and F is then re-estimated from that solve as for objects;
- elsewhere (an object RVM misses, or a mesh, where RVM's F equals I inside the holes and would force alpha to 1)
  F is filled from the confidently different pixels, and re-estimated from a first solve (locally: the colour that
  best explains each pixel's neighbourhood given that alpha).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import cv2
import numpy as np

from .fill import push_pull
from .foreground import estimate_foreground, key_excess, solid_excess
from .trimap_alpha import solve_alpha

LAPLACIAN_BALANCE = 3e-3  # data-term weight per unit of confidence (the prototype's lambda)
MAX_DATA_WEIGHT = 5.0  # a confident data term need not outweigh the Laplacian by more than this
RVM_WEIGHT = 0.3  # RVM's alpha in person regions, beside the data term, where RVM is unsure (alpha near 0.5)
RVM_SURE_WEIGHT = 1.0  # ... and where it is sure (alpha near 0 or 1): the plate's evidence must be strong to win
RVM_SURE_POWER = 4
MIN_SIGMA = 4 / 255  # the residual never reads as cleaner than this (8-bit rounding, codecs)
DIFFERENT = 4.0  # |I - B| above DIFFERENT * sigma: clearly not the plate
SHOWS_SCREEN = 2.0  # on a screen, |I - B| below SHOWS_SCREEN * sigma where RVM is sure of a person: the screen seen
# through (a gap by the arm), not the person
RVM_SEES = 0.75  # share of a region's clearly different pixels RVM is sure of (alpha above RVM_SOLID) for the
# region to be a person's: RVM mattes a person solid; glass, a mesh or a dandelion it covers only partly or softly
RVM_SOLID = 0.95
MISALIGNMENT = 1.0  # px of alignment error the residual allows for on the plate's edges (see expected_residual)
SOLVE_SIDE = 640  # frames larger than this are solved at this longer side (see solve_with_plate)
LOCAL_F_SIGMA = 2.0  # px: the neighbourhood over which a re-estimated foreground colour is taken as constant
LOCAL_F_WEIGHT = 0.02  # ... and the sum of a^2 in it (Gaussian-weighted) under which it is filled in instead
SOLID_F = (0.9, 0.98)  # a re-estimated F is the pixel's own unmixed colour where the first solve's alpha rises
# from the first to the second (a thin handle or a rim: the local estimate mixes in a mesh's colours beside it)
REACH = 0.02  # unknown pixels reach this share of the frame's longer side beyond what differs from the plate


@dataclass
class PlateSolution:
    alpha: np.ndarray  # float32 [H,W] 0..1
    person_share: float  # share of the differing pixels that lie in regions decided as a person's (RVM's F)
    sigma: float  # the median expected background residual (0..1)
    estimate: np.ndarray = field(repr=False)  # float32 [h,w,3]: the F the solve used (at the solve's size)
    colours: Callable[[], np.ndarray] = field(repr=False)  # makes ``foreground``

    @cached_property
    def foreground(self) -> np.ndarray:
        """float32 [H,W,3] 0..1, the output colours: made when first asked for (as costly as the solve at 1080p,
        and not needed at all for alpha-only outputs)."""
        return self.colours()


def noise_level(frame: np.ndarray, plate: np.ndarray) -> float:
    """The background residual's scale (0..1): a robust spread of |I - B| over the frame, most of which is
    background."""
    diff = np.abs(frame[::2, ::2].astype(np.int16) - plate[::2, ::2]).max(axis=2)
    return max(MIN_SIGMA, 1.4826 * float(np.median(diff)) / 255)


def expected_residual(background: np.ndarray, noise: float) -> np.ndarray:
    """Per pixel, how far frame and aligned plate may differ on background: the noise, plus what a residual
    misalignment of MISALIGNMENT px makes of the plate's edges (blinds, leaves: a sharp texture shifted by half a
    pixel differs from itself by half its gradient). float32 [H,W], 0..1 units."""
    grey = cv2.cvtColor(background, cv2.COLOR_RGB2GRAY)
    gx, gy = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3) / 8, cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3) / 8
    gradient = cv2.dilate(np.sqrt(gx * gx + gy * gy), np.ones((3, 3), np.uint8))  # edges move: their neighbours too
    return np.sqrt(noise ** 2 + (MISALIGNMENT * gradient) ** 2)


def solve_with_plate(frame: np.ndarray, plate: np.ndarray, rvm: tuple[np.ndarray, np.ndarray] | None = None,
                     valid: np.ndarray | None = None, reestimate: bool = True,
                     work_side: int | None = None, key: np.ndarray | None = None) -> PlateSolution:
    """As ``solve_at_size``; frames whose longer side exceeds ``work_side`` (default SOLVE_SIDE) are solved at that
    size and alpha is brought up with a guided filter on the full frame (RVM's refinement: the fine edges follow
    the frame's), the foreground colours unmixed at full size."""
    side = SOLVE_SIDE if work_side is None else work_side
    h, w = frame.shape[:2]
    if max(h, w) <= side:
        return solve_at_size(frame, plate, rvm, valid, reestimate, key)
    size = (round(w * side / max(h, w)), round(h * side / max(h, w)))
    shrink = lambda a: cv2.resize(a, size, interpolation=cv2.INTER_AREA)  # noqa: E731
    small_rvm = None if rvm is None else (shrink(rvm[0]), shrink(rvm[1]))
    small_valid = None if valid is None else shrink(valid.astype(np.uint8)) > 0
    small = solve_at_size(shrink(frame), shrink(plate), small_rvm, small_valid, reestimate, key)
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255
    alpha = _guided_upsample(grey, small.alpha, shrink(grey))

    def colours() -> np.ndarray:
        fg = cv2.resize(small.estimate, (w, h), interpolation=cv2.INTER_LINEAR)
        return _foreground(frame.astype(np.float32) / 255, plate.astype(np.float32) / 255, alpha, fg)

    return PlateSolution(alpha, small.person_share, small.sigma, small.estimate, colours)


def _guided_upsample(grey: np.ndarray, alpha: np.ndarray, guide: np.ndarray, radius: int = 1,
                     eps: float = 1e-4) -> np.ndarray:
    """Fast guided filter (He & Sun 2015), grey guide: the linear coefficients of alpha on the frame's luminance
    (``guide`` at the solve's size) are fitted at the solve's size and applied to ``grey`` at full size."""
    box = lambda a: cv2.boxFilter(a, -1, (2 * radius + 1, 2 * radius + 1))  # noqa: E731
    mean_i, mean_p = box(guide), box(alpha)
    cov = box(guide * alpha) - mean_i * mean_p
    var = box(guide * guide) - mean_i * mean_i
    a = cov / (var + eps)
    b = mean_p - a * mean_i
    h, w = grey.shape
    a, b = (cv2.resize(box(c), (w, h), interpolation=cv2.INTER_LINEAR) for c in (a, b))
    return np.clip(a * grey + b, 0, 1).astype(np.float32)


def solve_at_size(frame: np.ndarray, plate: np.ndarray, rvm: tuple[np.ndarray, np.ndarray] | None = None,
                  valid: np.ndarray | None = None, reestimate: bool = True,
                  key: np.ndarray | None = None) -> PlateSolution:
    """frame, plate uint8 [H,W,3] RGB (the plate aligned); rvm: RVM's (foreground float [H,W,3], alpha float
    [H,W]) for this frame, or None (no person regions); valid: bool [H,W], where the plate saw the scene (None:
    everywhere). Elsewhere (the edges a pan uncovers) there is no evidence: RVM's alpha, or background. key: the
    screen's RGB (0..1) when the plate is a green or blue screen (see ``_without_screen_light``), else None."""
    image, background = frame.astype(np.float32) / 255, plate.astype(np.float32) / 255
    sigma = expected_residual(background, noise_level(frame, plate))
    if valid is not None:  # unseen pixels: as if they matched, with no confidence in it (see _solve)
        background = np.where(valid[..., None], background, image)
        sigma = np.where(valid, sigma, np.inf)
    distance = np.linalg.norm(image - background, axis=2)
    different = distance > DIFFERENT * sigma
    if not different.any():
        return PlateSolution(np.zeros(distance.shape, np.float32), 0.0, float(np.median(sigma)), image,
                             lambda: image)
    # RVM's subject joins the regions: a person's parts that happen to match the plate stay variables (and are
    # decided with the rest of their region), not fixed to background
    regions = _regions(different | (rvm is not None and rvm[1] > 0.5), distance.shape)
    person = _person_regions(regions, different, rvm)
    filled = _filled_foreground(image, different)
    if key is not None:
        filled = _without_screen_light(filled, key)
    fg = np.where(person[..., None], rvm[0], filled) if rvm is not None else filled
    if rvm is not None and person.any():
        # a person's hair and edges (RVM not solid): the first solve's F is the colour of the solid subject beside
        # them, not RVM's foreground there, which keeps much of the background's colour (F too near B reads as too
        # much alpha, and the re-estimate from that alpha stays there: on benchmarks/screen.py's child over a blue
        # screen, hair was 0.05-0.08 too high where the true alpha is 0.2-0.8, 0.16 without the spill)
        edges = person & (rvm[1] < RVM_SOLID)
        fg = np.where(edges[..., None], _filled_foreground(image, rvm[1] > RVM_SOLID), fg)
        if key is not None:
            # on a screen, what RVM is sure is the person but matches the screen (a gap between the arm and the
            # body: RVM fills it, its colour is the screen's) is the screen: its F is the solid person's colour
            # beside it, which the frame does not match there, and RVM's word there counts as unsure. A subject in
            # nearly the screen's colour (a green shirt) differs from the screen by more than the noise (within 4
            # sigma, not clearly different, took in up to a tenth of the shirt of benchmarks/screen.py over a
            # plate image of the screen) and keeps RVM's colours and certainty
            shows_screen = person & (distance < SHOWS_SCREEN * sigma) & (rvm[1] >= RVM_SOLID)
            solid = _filled_foreground(image, person & different & (rvm[1] > RVM_SOLID))
            fg = np.where(shows_screen[..., None], solid, fg)
            rvm = (rvm[0], np.where(shows_screen, 0.5, rvm[1]).astype(np.float32))
    alpha = _solve(frame, image, background, fg, sigma, regions > 0, person, rvm)
    if reestimate:
        # objects: F re-estimated everywhere; people: where RVM's own alpha is not solid (hair, edges), whose
        # foreground colours RVM guesses least well
        redo = ~person if rvm is None else ~person | (rvm[1] < RVM_SOLID)
        again = _reestimated_foreground(image, background, alpha)
        if key is not None:
            again = _without_screen_light(again, key, key_excess(image, key), alpha)
        fg = np.where(redo[..., None], again, fg)
        alpha = _solve(frame, image, background, fg, sigma, regions > 0, person, rvm, start=alpha)
    share = float(person[different].mean())
    return PlateSolution(alpha, share, float(np.median(sigma)), fg,
                         lambda: _foreground(image, background, alpha, fg))


def _regions(different: np.ndarray, shape) -> np.ndarray:
    """Connected regions (int32 labels, 0: none) of ``different``, grown by REACH."""
    reach = max(2, round(REACH * max(shape)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
    grown = cv2.dilate(different.astype(np.uint8), kernel)
    _, labels = cv2.connectedComponents(grown, connectivity=8)
    return labels


def _person_regions(regions: np.ndarray, different: np.ndarray, rvm) -> np.ndarray:
    """bool [H,W]: the regions RVM sees (its alpha covers most of their clearly different pixels)."""
    person = np.zeros(regions.shape, bool)
    if rvm is None:
        return person
    inside = regions[different]
    covered = rvm[1][different] > RVM_SOLID
    counts = np.bincount(inside, minlength=regions.max() + 1)
    hits = np.bincount(inside, weights=covered, minlength=regions.max() + 1)
    seen = hits > RVM_SEES * np.maximum(counts, 1)
    seen[0] = False
    return seen[regions]


def _filled_foreground(image: np.ndarray, confident: np.ndarray, colours: np.ndarray | None = None) -> np.ndarray:
    """F: ``colours`` (default the image) at the confident pixels, spread smoothly over the rest (push-pull)."""
    colours = image if colours is None else colours
    weight = cv2.erode(confident.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(np.float32)
    if weight.sum() == 0:
        weight = confident.astype(np.float32)
    filled = push_pull(colours * weight[..., None], weight)
    return np.where(weight[..., None] > 0, colours, filled)


def _reestimated_foreground(image: np.ndarray, background: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """F after a first solve: per pixel, the colour that best explains the frame over a small neighbourhood given
    alpha, argmin_F sum_w (I - (1 - a) B - a F)^2 = G*(a (I - (1 - a) B)) / G*(a^2) (G a Gaussian of LOCAL_F_SIGMA
    px). A mesh has few solid pixels: its F must come from its own mixed pixels, each weighted by how much of F it
    holds, not be filled in from the solid rim far away. Where alpha is faint everywhere around, the colours
    unmixed at solid pixels are filled in (push-pull) instead; where the first solve found the pixel solid (SOLID_F),
    its own unmixed colour is kept (a neighbourhood across a sieve's thin handle takes in the mesh beside it: 13%
    of the sieve's solid pixels, on its handles and rim, read 0.6 on average)."""
    a = alpha[..., None]
    num = cv2.GaussianBlur(a * (image - (1 - a) * background), (0, 0), LOCAL_F_SIGMA)
    den = cv2.GaussianBlur(alpha * alpha, (0, 0), LOCAL_F_SIGMA)[..., None]
    local = np.clip(num / np.maximum(den, 1e-6), 0, 1)
    filled = _filled_foreground(image, alpha > 0.9, _unmixed(image, background, alpha))
    trust = np.clip(den / LOCAL_F_WEIGHT, 0, 1)
    estimate = trust * local + (1 - trust) * filled
    solid = np.clip((alpha - SOLID_F[0]) / (SOLID_F[1] - SOLID_F[0]), 0, 1)[..., None]
    return solid * _unmixed(image, background, alpha) + (1 - solid) * estimate


def _without_screen_light(fg: np.ndarray, key: np.ndarray, excess: np.ndarray | None = None,
                          alpha: np.ndarray | None = None) -> np.ndarray:
    """F estimates on a screen: the screen's channel capped at the larger of the other two, plus the excess the
    subject's nearest solid pixels have (``excess`` of the image where ``alpha`` is solid: a green shirt's edge
    keeps its green; none when not given). Over a smooth screen the mixed pixels do not tell F from alpha (any F
    on the line from B through I explains them, at its own alpha), and F taken from those pixels holds the
    screen's light: too near B, it reads as too much alpha, and the re-estimate from that alpha keeps it there (a
    mesh, whose holes are finer than a pixel, came out 0.2 too opaque over a blue screen). The classical keying
    assumption, that the subject is not of the screen's colour beyond what its solid parts show, breaks the tie."""
    keep = 0.0 if excess is None else solid_excess(excess, alpha)
    out = fg.astype(np.float32, copy=True)
    out[..., int(np.argmax(key))] -= np.maximum(key_excess(out, key) - keep, 0)
    return out


def _unmixed(image: np.ndarray, background: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """F = (I - (1 - a) B) / a where alpha is solid enough for it to be stable."""
    a = np.maximum(alpha, 0.5)[..., None]
    return np.clip((image - (1 - a) * background) / a, 0, 1)


def _solve(frame, image, background, fg, sigma, near, person, rvm, start=None) -> np.ndarray:
    """The band solve: data term (plus RVM's alpha in person regions) as a per-pixel prior; pixels outside
    ``near`` are background, those whose data term is confidently 1 (and RVM agrees, in person regions) are fixed."""
    f_minus_b = fg - background
    contrast = np.maximum((f_minus_b ** 2).sum(axis=2), 1e-6)
    data = np.clip(((image - background) * f_minus_b).sum(axis=2) / contrast, 0, 1)
    weight = np.minimum(LAPLACIAN_BALANCE * contrast / sigma ** 2, MAX_DATA_WEIGHT)
    target, total = data * weight, weight.copy()
    if rvm is not None and person.any():
        sure = np.abs(2 * rvm[1] - 1) ** RVM_SURE_POWER
        rvm_weight = np.where(person, RVM_WEIGHT + RVM_SURE_WEIGHT * sure, 0.0)
        target += rvm_weight * rvm[1]
        total += rvm_weight
    prior = np.where(total > 0, target / np.maximum(total, 1e-9), 0.0)
    trimap = _trimap(near, data, weight, person, rvm)
    return solve_alpha(frame, trimap, init=start, prior=prior.astype(np.float32), prior_weight=total.astype(np.float32),
                       levels=0 if start is not None else 3)  # warm: no coarse start needed


def _trimap(near, data, weight, person, rvm) -> np.ndarray:
    """Variables only where they can matter: near a difference, and not already settled by a confident data term
    (in person regions RVM must agree as well: its alpha is part of the evidence there)."""
    solid = (data > 0.98) & (weight >= MAX_DATA_WEIGHT)
    clear = (data < 0.02) & (weight >= MAX_DATA_WEIGHT)
    if rvm is not None:
        solid &= ~person | (rvm[1] > 0.95)
        clear &= ~person | (rvm[1] < 0.05)
    kernel = np.ones((3, 3), np.uint8)
    solid = cv2.erode(solid.astype(np.uint8), kernel).astype(bool)  # edges stay variables
    clear = cv2.erode(clear.astype(np.uint8), kernel).astype(bool)
    trimap = np.full(near.shape, 128, np.uint8)
    trimap[~near | clear] = 0
    trimap[solid & near] = 255
    return trimap


def _foreground(image, background, alpha, fg) -> np.ndarray:
    """Output colours: the image where alpha is 1, unmixed from the plate where alpha is solid enough, the
    estimate where it is faint; computed on the subject's box only (elsewhere alpha is 0 and any colour is right:
    the image's)."""
    out = image.copy()
    rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    if rows.size == 0:
        return out
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    a = alpha[box]
    unmixed = _unmixed(image[box], background[box], a)
    solid = np.clip((a - 0.3) / 0.4, 0, 1)[..., None]
    out[box] = solid * unmixed + (1 - solid) * fg[box]
    return out


def plate_foreground(frame: np.ndarray, plate: np.ndarray, alpha: np.ndarray, valid: np.ndarray | None = None,
                     work_side: int | None = None) -> np.ndarray:
    """Output colours with the plate known (float32 [H,W,3] 0..1): unmixed exactly, F = (I - (1 - a) B) / a, where
    alpha is solid enough for that to be stable, and where it is faint the colours of multi-level foreground
    estimation (``solvers.foreground``: smooth where alpha is, so a hair's faint pixels take the colour of the
    hair beside them, not the screen's light they caught). The estimate runs at the solve's size (``work_side``,
    default SOLVE_SIDE) and is brought up; the unmixing is at full size."""
    side = SOLVE_SIDE if work_side is None else work_side
    h, w = frame.shape[:2]
    image, background = frame.astype(np.float32) / 255, plate.astype(np.float32) / 255
    if valid is not None:
        background = np.where(valid[..., None], background, image)
    rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    if rows.size == 0:
        return image
    # the subject's box (and a margin for the estimate's smoothing) only: elsewhere alpha is 0, any colour is right
    m = max(4, round(0.02 * max(h, w)))
    box = (slice(max(rows[0] - m, 0), min(rows[-1] + m + 1, h)), slice(max(cols[0] - m, 0), min(cols[-1] + m + 1, w)))
    sub_image, sub_alpha = image[box], alpha[box]
    bh, bw = sub_alpha.shape
    scale = min(1.0, side / max(h, w))
    if scale < 1.0:
        size = (max(1, round(bw * scale)), max(1, round(bh * scale)))
        estimate = estimate_foreground(cv2.resize(sub_image, size, interpolation=cv2.INTER_AREA),
                                       cv2.resize(sub_alpha, size, interpolation=cv2.INTER_AREA))[0]
        estimate = cv2.resize(estimate, (bw, bh), interpolation=cv2.INTER_LINEAR)
    else:
        estimate = estimate_foreground(sub_image, sub_alpha)[0]
    fg = image.copy()
    fg[box] = estimate
    return _foreground(image, background, alpha, fg)
