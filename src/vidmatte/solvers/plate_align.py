"""A clean plate brought onto each frame of hand-held footage: homography from features, translation refinement,
and a gain/bias colour correction only where it pays.

1. Features on the plate (ORB, found once) matched to the frame's and a homography fitted with RANSAC, at a working
   size of about 640 px: the subject's features do not fit the background's motion and fall out as outliers. Where
   the plate has too little texture for features (a plain wall, a paper backdrop, a screen), the pixels themselves
   are aligned: ECC (rotation and translation), coarse to fine, from the previous frame's warp (the first frame:
   from none).
2. Sub-pixel refinement on the pixels that already agree with the frame: corners of the warped plate tracked into
   the frame (Lucas-Kanade) fit a residual homography, then ECC (translation). Feature homographies are a little
   noisy (tenths of a pixel at the working size, about a pixel at 1080p: the test's corners were 0.95 px off
   without tracking) and a 1 px misalignment on textured backgrounds reads as "subject". Measured in the
   prototype (issue 11): ECC alone took the residual from 1.35 to 0.50 grey levels.
3. A per-channel gain and bias, fitted on the same pixels, kept only if it lowers their residual by GAIN_PAYS:
   on footage without exposure change it fits noise and made mattes slightly worse.

Whether the plate shows this scene is decided on the first frame from the pixels, after the best alignment: too
small a share of the frame looking like the plate (``MIN_AGREEMENT``) is ``PlateMismatch``, whatever the features
said.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

WORK_SIDE = 640  # features are found at this longer side
REFINE_SIDE = 960  # sub-pixel refinement at this longer side: a tenth of a pixel there is a fifth at 1080p
MIN_INLIERS = 20  # fewer RANSAC inliers than this: the plate does not match the frame
MIN_INLIER_SHARE = 0.2
GAIN_PAYS = 0.9  # gain/bias kept only if it brings the background residual below this share of what it was
AGREE = 0.08  # |frame - plate| (0..1, grey) under which a pixel counts as background for refinement and gain
# After the best alignment (and a gain and bias), a first frame of which less than MIN_AGREEMENT equals the plate
# within SAME (0..1 grey, about 6 grey levels: noise and compression) shows another scene. Unrelated textured scenes
# agree on 8-20% of their pixels; the same scene on all but the subject's.
SAME = 0.025
MIN_AGREEMENT = 0.3
DENSE_SIDES = (240, REFINE_SIDE)  # the coarse-to-fine sizes of the dense (pixel) alignment
DENSE_STEP = 0.05  # the largest move a dense step may make, as a share of the longer side (jitter, not a pan)


class PlateMismatch(ValueError):
    """The plate's features match nothing in the frame."""


@dataclass
class Aligned:
    """The plate on one frame: uint8 [H,W,3], the homography used (plate -> frame pixels), the colour correction
    (gain [3], bias [3] in 0..255 units, or None) and the background residual after alignment (grey levels)."""

    plate: np.ndarray
    homography: np.ndarray
    gain: tuple[np.ndarray, np.ndarray] | None
    residual: float
    matched: bool  # False: this frame's features did not match; its pixels were aligned instead (``dense``)
    valid: np.ndarray | None = None  # bool [H,W]: pixels the plate covers (None: all); a pan leaves the rest unseen
    screen: np.ndarray | None = None  # bool [H,W]: a screen's plate: the pixels taken as clearly screen


class PlateAligner:
    """Aligns ``plate`` (uint8 [H,W,3] RGB, the frames' size) to frames; ``align=False``: a locked-off camera."""

    def __init__(self, plate: np.ndarray, align: bool = True):
        self.plate, self.align_enabled = plate, align
        h, w = plate.shape[:2]
        self.scale = min(1.0, WORK_SIDE / max(h, w))
        self._orb = cv2.ORB_create(nfeatures=1200, fastThreshold=10)  # matching is quadratic in this
        self._matcher = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)
        self._plate_keys, self._plate_desc = self._features(plate)
        self._refine_scale = min(1.0, REFINE_SIDE / max(h, w))
        self._plate_greys: dict[float, np.ndarray] = {}  # the plate's grey at each working scale, made once
        self.reset()

    def reset(self) -> None:
        self.previous: np.ndarray | None = None  # the last good homography (full-size pixels)

    def align(self, frame: np.ndarray) -> Aligned:
        if not self.align_enabled:
            return Aligned(self.plate, np.eye(3), None, _residual(frame, self.plate), True)
        homography, matched = self._feature_homography(frame)
        homography = self._refine(frame, homography)
        if not matched:  # the pixels' alignment, or the refinement alone from the last frame's warp or from none
            starts = [np.eye(3)] + ([] if self.previous is None else [self.previous])
            homography = min([homography] + [self._refine(frame, start) for start in starts],
                             key=lambda h: self._difference(frame, h))
        if self.previous is None:
            self._check_same_scene(frame, homography)
        self.previous = homography
        warped = self._warp(homography)
        f, p = _background_pixels(frame, warped)
        residual = float(np.abs(f - p).mean()) if len(f) else float("inf")
        gain = _gain_bias(f, p)
        valid = self._coverage(homography)
        if gain is not None:
            after = float(np.abs(f - (p * gain[0] + gain[1])).mean())  # on the same sample: is it worth it?
            if after < GAIN_PAYS * residual:
                return Aligned(_apply_gain(warped, gain), homography, gain, after, matched, valid)
        return Aligned(warped, homography, None, residual, matched, valid)

    # --- features ------------------------------------------------------------------------------------------
    def _small_grey(self, image: np.ndarray) -> np.ndarray:
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        if self.scale == 1.0:
            return grey
        h, w = grey.shape
        return cv2.resize(grey, (round(w * self.scale), round(h * self.scale)), interpolation=cv2.INTER_AREA)

    def _features(self, image: np.ndarray):
        keys, desc = self._orb.detectAndCompute(self._small_grey(image), None)
        return keys, desc

    def _feature_homography(self, frame: np.ndarray) -> tuple[np.ndarray, bool]:
        found = self._match(frame)
        if found is not None:
            return found, True
        return self._dense(frame, np.eye(3) if self.previous is None else self.previous), False

    def _difference(self, frame: np.ndarray, homography: np.ndarray) -> float:
        """How far the warped plate is from the frame, each pixel's difference capped at AGREE (the subject's pixels
        all count the same, whatever the warp): the lower, the better the alignment."""
        scale = self._refine_scale
        return float(np.minimum(np.abs(_grey(frame, scale) - self._small_warp(homography, scale)), AGREE).mean())

    def _check_same_scene(self, frame: np.ndarray, homography: np.ndarray) -> None:
        """``PlateMismatch`` unless enough of the aligned first frame equals the plate within noise, after a grey
        gain and bias (an exposure change) fitted on the pixels that roughly agree."""
        scale = self._refine_scale
        f, p = _grey(frame, scale).ravel(), self._small_warp(homography, scale).ravel()
        rough = np.abs(f - p) < AGREE
        if rough.mean() > 0.05:
            gain, bias = _line(p[rough], f[rough], 2 / 255)
            p = p * gain + bias
        agreement = float((np.abs(f - p) < SAME).mean())
        if agreement < MIN_AGREEMENT:
            raise PlateMismatch(f"the plate matches nothing in the first frame (aligned as well as it goes, "
                                f"{agreement:.0%} of the frame equals it): is it a plate of this scene? (a "
                                "locked-off camera can skip the check with --no-align)")

    def _dense(self, frame: np.ndarray, start: np.ndarray) -> np.ndarray:
        """The plate aligned to the frame by its pixels, coarse to fine: at each size ECC first for a translation,
        then for rotation and translation, on the pixels that already look like the plate (on a plain background the
        subject would otherwise be all ECC sees). A step is kept only if it is a camera's jitter (``DENSE_STEP``) and
        lowers the difference on those pixels: on a nearly featureless plate ECC can slide along a gradient."""
        h, w = self.plate.shape[:2]
        homography = start
        for side in DENSE_SIDES:
            scale = min(1.0, side / max(h, w))
            to_small = np.diag([scale, scale, 1.0])
            f = _grey(frame, scale)
            for motion in (cv2.MOTION_TRANSLATION, cv2.MOTION_EUCLIDEAN):
                p = self._small_warp(homography, scale)
                mask = np.abs(f - p) < AGREE
                if mask.mean() < 0.05:
                    return homography
                warp = np.eye(2, 3, dtype=np.float32)
                try:
                    _, warp = cv2.findTransformECC(f, p, warp, motion,
                                                   (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-5),
                                                   mask.astype(np.uint8), 5)
                except cv2.error:  # no convergence (nothing to hold on to): keep what there is
                    continue
                step = np.linalg.inv(to_small) @ np.vstack([warp, [0, 0, 1]]) @ to_small  # full-size pixels
                if not _jitter(step, max(h, w)):
                    continue
                # p(W x) = f(x) with p = plate(H^-1 .): the plate -> frame map becomes W^-1 H
                candidate = np.linalg.inv(step) @ homography
                before = np.abs(f - p)[mask].mean()
                if np.abs(f - self._small_warp(candidate, scale))[mask].mean() < before:
                    homography = candidate
        return homography

    def _match(self, frame: np.ndarray) -> np.ndarray | None:
        keys, desc = self._features(frame)
        if desc is None or self._plate_desc is None:
            return None
        matches = self._matcher.match(self._plate_desc, desc)
        if len(matches) < MIN_INLIERS:
            return None
        src = np.float32([self._plate_keys[m.queryIdx].pt for m in matches])
        dst = np.float32([keys[m.trainIdx].pt for m in matches])
        small, inliers = cv2.findHomography(src, dst, cv2.RANSAC, 2.0)
        if small is None:
            return None
        count = int(inliers.sum())
        if count < MIN_INLIERS or count < MIN_INLIER_SHARE * len(matches) or not _plausible(small):
            return None
        to_small = np.diag([self.scale, self.scale, 1.0])
        return np.linalg.inv(to_small) @ small @ to_small

    # --- refinement ----------------------------------------------------------------------------------------
    def _refine(self, frame: np.ndarray, homography: np.ndarray) -> np.ndarray:
        """Sub-pixel correction of the feature homography: corners of the warped plate tracked into the frame
        (Lucas-Kanade) fit a residual homography, then ECC (translation) on the pixels that agree."""
        scale = self._refine_scale
        frame_grey = _grey(frame, scale)
        homography = self._tracked(frame_grey, homography, scale)
        return self._ecc_translation(frame_grey, homography, scale)

    def _small_warp(self, homography: np.ndarray, scale: float) -> np.ndarray:
        """The plate's grey at ``scale``, warped by ``homography`` (full-size pixels)."""
        if scale not in self._plate_greys:
            self._plate_greys[scale] = _grey(self.plate, scale)
        grey = self._plate_greys[scale]
        to_small = np.diag([scale, scale, 1.0])
        return cv2.warpPerspective(grey, to_small @ homography @ np.linalg.inv(to_small), grey.shape[::-1],
                                   flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def _tracked(self, f: np.ndarray, homography: np.ndarray, scale: float) -> np.ndarray:
        p = self._small_warp(homography, scale)
        mask = (np.abs(f - p) < AGREE).astype(np.uint8)  # corners on the subject would track the subject
        corners = cv2.goodFeaturesToTrack(p, 800, 0.01, 6, mask=mask)
        if corners is None or len(corners) < MIN_INLIERS:
            return homography
        moved, status, _ = cv2.calcOpticalFlowPyrLK((p * 255).astype(np.uint8), (f * 255).astype(np.uint8),
                                                    corners, None, winSize=(15, 15), maxLevel=2)
        kept = status.ravel() == 1
        if kept.sum() < MIN_INLIERS:
            return homography
        correction, inliers = cv2.findHomography(corners[kept], moved[kept], cv2.RANSAC, 1.0)
        if correction is None or inliers.sum() < MIN_INLIERS or not _plausible(correction):
            return homography
        to_small = np.diag([scale, scale, 1.0])
        return np.linalg.inv(to_small) @ correction @ to_small @ homography

    def _ecc_translation(self, f: np.ndarray, homography: np.ndarray, scale: float) -> np.ndarray:
        """ECC translation between the warped plate and the frame on the pixels that already agree."""
        p = self._small_warp(homography, scale)
        mask = (np.abs(f - p) < AGREE).astype(np.uint8)
        if mask.mean() < 0.05:
            return homography
        warp = np.eye(2, 3, dtype=np.float32)
        try:
            _, warp = cv2.findTransformECC(f, p, warp, cv2.MOTION_TRANSLATION,
                                           (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-4), mask, 5)
        except cv2.error:  # did not converge: the feature homography stands
            return homography
        shift = warp[:, 2] / scale
        if np.abs(shift).max() > 8:  # a jump, not a refinement
            return homography
        # aligned(x) = warped(x + t) = plate(H^-1 (x + t)): the plate -> frame map becomes T(-t) H
        return np.array([[1, 0, -shift[0]], [0, 1, -shift[1]], [0, 0, 1]]) @ homography

    def _coverage(self, homography: np.ndarray) -> np.ndarray | None:
        """Where the warped plate comes from inside the plate (2 px in from its border, where bilinear reads are
        whole); None when that is everywhere."""
        h, w = self.plate.shape[:2]
        inside = np.zeros((h, w), np.uint8)
        inside[2:-2, 2:-2] = 1
        covered = cv2.warpPerspective(inside, homography, (w, h), flags=cv2.INTER_NEAREST,
                                      borderMode=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)
        return None if covered[2:-2, 2:-2].all() else covered

    def _warp(self, homography: np.ndarray) -> np.ndarray:
        h, w = self.plate.shape[:2]
        if np.allclose(homography, np.eye(3)):
            return self.plate
        return cv2.warpPerspective(self.plate, homography, (w, h), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REPLICATE)


def _jitter(step: np.ndarray, side: int) -> bool:
    """A hand-held camera's move between plate and frame: under DENSE_STEP of the longer side and 2 degrees."""
    angle = np.degrees(np.arctan2(step[1, 0], step[0, 0]))
    return abs(angle) < 2 and np.abs(step[:2, 2]).max() < DENSE_STEP * side


def _plausible(homography: np.ndarray) -> bool:
    """A camera shake or pan, not a fold: the linear part keeps orientation and scales by less than 2x."""
    det = np.linalg.det(homography[:2, :2])
    return 0.5 < det < 2.0 and np.abs(homography[2, :2]).max() < 0.01


def _grey(image: np.ndarray, scale: float) -> np.ndarray:
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255
    if scale == 1.0:
        return grey
    h, w = grey.shape
    return cv2.resize(grey, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)


def _background_pixels(frame: np.ndarray, plate: np.ndarray, step: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """A sample (every ``step``-th row and column) of the pixels where frame and plate agree: float [N,3] each."""
    f = frame[::step, ::step].reshape(-1, 3).astype(np.float32)
    p = plate[::step, ::step].reshape(-1, 3).astype(np.float32)
    agree = np.abs(f - p).mean(axis=1) < AGREE * 255
    return f[agree], p[agree]


def _residual(frame: np.ndarray, plate: np.ndarray) -> float:
    """Mean absolute difference on the background (grey levels, 0..255)."""
    f, p = _background_pixels(frame, plate)
    return float(np.abs(f - p).mean()) if len(f) else float("inf")


def _gain_bias(f: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Per channel frame ~ gain * plate + bias, least squares on the background sample (float [N,3] each)."""
    if len(f) < 100:
        return None
    gain, bias = np.empty(3), np.empty(3)
    for c in range(3):
        gain[c], bias[c] = _line(p[:, c], f[:, c], 2.0)
    return gain, bias


def _line(x: np.ndarray, y: np.ndarray, flat: float) -> tuple[float, float]:
    """y ~ gain * x + bias, least squares; where x hardly varies (spread under ``flat``: a plain wall, a paper
    backdrop) the gain cannot be told from the bias: a bias alone (gain 1)."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    spread = x.std()
    if spread < flat:
        return 1.0, float((y - x).mean())
    gain = float(((x - x.mean()) * (y - y.mean())).mean() / spread ** 2)
    return gain, float(y.mean() - gain * x.mean())


def _apply_gain(plate: np.ndarray, gain: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    g, b = gain
    return np.clip(plate.astype(np.float32) * g.astype(np.float32) + b.astype(np.float32), 0, 255).astype(np.uint8)
