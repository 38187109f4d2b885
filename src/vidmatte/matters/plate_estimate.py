"""``--plate auto``: the clean plate estimated from the footage itself (a static camera, a subject that moves on).

Per pixel, the background is the value the samples agree on most: over AUTO_SAMPLES frames spread across the clip
(compared at AUTO_SIDE px), each sample's support is how many samples lie within TOLERANCE of it; the best
supported value wins, and the plate is the full-size mean of the samples that agree with it. A subject that moves
on is outvoted wherever it does not stay for most of the clip; where RVM sees a person, that sample does not vote
(a person who sits still would otherwise become background). Pixels whose best support is below MIN_SUPPORT were
never seen empty: their share is reported, and above REFUSE_SHARE the estimate is refused. Two decoding passes over
the samples (small, then full size), so memory holds the small stack and two full-size sums, whatever the length.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import UsageError

AUTO_SAMPLES = 32
AUTO_SIDE = 480
TOLERANCE = 12  # grey levels: two samples agree
MIN_SUPPORT = 0.25  # share of the samples that must agree for a pixel to count as seen empty
REFUSE_SHARE = 0.03  # more pixels than this never seen empty: refused


@dataclass
class PlateEstimate:
    plate: np.ndarray  # uint8 [H,W,3]
    unseen_share: float  # share of pixels never seen empty (filled with their median)
    samples: int


def check_estimable(source, first: int, stop: int | None) -> int:
    """The frames an estimate would sample from; UsageError when there are too few (checked before any model
    loads)."""
    total = source.expected_frames(first, stop)
    if not total or total < 8:
        raise UsageError("--plate auto needs a clip of at least 8 frames where the subject moves on")
    return total


def estimate_plate(source, first: int, stop: int | None, prior=None, samples: int = AUTO_SAMPLES) -> PlateEstimate:
    """The plate of frames ``first <= i < stop`` of a ``FrameSource``; prior: RVM (a ``RecurrentMatter``) or None."""
    total = check_estimable(source, first, stop)
    picks = set(np.linspace(first, first + total - 1, min(samples, total)).round().astype(int).tolist())
    small, excluded = [], []
    for frame in _picked(source, first, stop, picks):
        shrunk = _shrink(frame)
        small.append(shrunk)
        excluded.append(_person(prior, shrunk))
    stack, excluded = np.stack(small).astype(np.int16), np.stack(excluded)
    support = np.stack([_agreeing(stack, excluded, stack[k], excluded[k]).sum(axis=0) for k in range(len(stack))])
    best = support.argmax(axis=0)  # [h, w]: the best supported sample
    seen = np.take_along_axis(support, best[None], 0)[0] >= MIN_SUPPORT * len(small)
    winner = np.take_along_axis(stack, best[None, ..., None], 0)[0]
    chosen = _agreeing(stack, excluded, winner, np.take_along_axis(excluded, best[None], 0)[0])
    plate = _full_size_mean(source, first, stop, picks, chosen)
    unseen = ~seen
    share = float(unseen.mean())
    if share > 0:
        size = plate.shape[1::-1]
        unseen_full = cv2.resize(unseen.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
        median = _full_size_median_fallback(stack, size)
        plate[unseen_full] = median[unseen_full]
    if share > REFUSE_SHARE:
        raise UsageError(f"--plate auto: {100 * share:.1f}% of the frame was never seen empty (the limit is "
                         f"{100 * REFUSE_SHARE:.0f}%): the subject does not move on enough; shoot a plate")
    return PlateEstimate(plate, share, len(small))


def _picked(source, first, stop, picks):
    for frame in source.frames(first, stop):
        if frame.index in picks:
            yield frame.image


def _shrink(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    scale = min(1.0, AUTO_SIDE / max(h, w))
    if scale == 1.0:
        return frame
    return cv2.resize(frame, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)


def _person(prior, small: np.ndarray) -> np.ndarray:
    """bool [h,w]: where RVM sees a person in this sample (grown a little), on a cold state: samples are far apart."""
    if prior is None:
        return np.zeros(small.shape[:2], bool)
    prior.reset()
    for _ in range(2):
        alpha = prior.step(small)[1]
    return cv2.dilate((alpha > 0.2).astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)


def _agreeing(stack: np.ndarray, excluded: np.ndarray, value: np.ndarray, value_excluded: np.ndarray) -> np.ndarray:
    """bool [K, h, w]: the samples within TOLERANCE of ``value`` [h,w,3] that may vote (none where the value
    itself comes from an excluded sample)."""
    return (np.abs(stack - value).max(axis=3) <= TOLERANCE) & ~excluded & ~value_excluded


def _full_size_mean(source, first, stop, picks, chosen: np.ndarray) -> np.ndarray:
    """Second pass: the mean of the chosen samples at full size."""
    total = count = None
    for k, frame in enumerate(_picked(source, first, stop, picks)):
        h, w = frame.shape[:2]
        weight = cv2.resize(chosen[k].astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        if total is None:
            total, count = np.zeros((h, w, 3), np.float32), np.zeros((h, w), np.float32)
        total += frame * weight[..., None]
        count += weight
    return np.clip(total / np.maximum(count, 1e-6)[..., None], 0, 255).round().astype(np.uint8)


def _full_size_median_fallback(stack: np.ndarray, size) -> np.ndarray:
    """Where no value won: the per-pixel median, brought up (the best there is; reported as unseen)."""
    return cv2.resize(np.median(stack, axis=0).astype(np.uint8), size, interpolation=cv2.INTER_LINEAR)
