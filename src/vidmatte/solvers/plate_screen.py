"""A green or blue screen as its own plate: the unevenly lit screen estimated per frame from the pixels that are
clearly screen, then matted with the same solver as a shot plate (``solvers.plate_alpha``).

Per frame:
1. The key: the screen's chromaticity (r, g, b) / (r + g + b), which light falloff and soft shadows leave nearly
   unchanged. Named colours (green, blue, #RRGGBB) only pick the candidates (chromaticity within KEY_REACH of the
   named colour's, its strongest channel dominant); the key is their median, so a screen lit a little yellow or a
   stock green that is not #00b140
   still keys.
2. Clearly screen: chromaticity within ``tolerance`` of the key (three robust spreads of the candidates', bounded
   by TOLERANCE), bright enough for its chromaticity to mean something, and not within FRINGE of anything else
   (hair and motion blur carry the screen's colour faintly: they must not become plate). Pixels the caller knows
   are the subject (RVM solid: a green shirt) are taken out too.
3. The plate: those pixels lightly smoothed (normalised convolution, SMOOTH px: the camera's noise stays in the
   frame, not in the plate). Under the subject: the screen as an earlier frame of the clip saw it clearly there
   (the subject moves; a crease or shadow it hides now was seen before), scaled by the light's change since, as
   long as that memory fits the frame (a moved camera drops it); elsewhere a smooth surface fitted to the clear
   screen (a key light's peak behind the subject) plus its residual inpainted from the screen around the subject
   (creases and shadows carried in from the boundary). An inpainting alone flattened a hidden peak; a fitted
   polynomial alone missed the creases (no better than the inpainting); the sum was better under the benchmark's
   sieve and no worse under the child.

Detection (``--plate auto``): a frame whose border band is mostly (BORDER_SHARE) one saturated chromaticity is a
screen shot; anything else goes on to the plate estimated from the footage.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from .fill import push_pull

NAMED = {"green": (0x00, 0xB1, 0x40), "blue": (0x00, 0x47, 0xBB)}  # the usual chroma-key paints
KEY_REACH = 0.3  # chromaticity distance from the named colour within which a pixel may be screen at all...
DOMINANCE = 1.15  # ... with the named colour's strongest channel this much above the others
BORDER_REACH = 0.07  # detection: chromaticity distance from the border's median counted as the same colour
TOLERANCE = (0.025, 0.06)  # clearly screen: within this chromaticity distance of the key (from the spread; at
# least what a codec's blocks and chroma subsampling do to a sharp crease's chromaticity)
CHROMA_BLUR = 0.7  # px: chromaticity is read on the frame blurred this much (a codec's speckle is not a subject)
MIN_SATURATION = 0.12  # chromaticity distance from grey (1/3, 1/3, 1/3) under which a colour is not a screen's
MIN_BRIGHTNESS = 0.06  # r + g + b (0..3) under which chromaticity is noise
FRINGE = 0.008  # share of the longer side: distance kept from anything that is not clearly screen
SMOOTH = 0.8  # px: the plate's smoothing where the screen is seen
BORDER = 0.05  # share of the frame's sides: the border band detection looks at
BORDER_SHARE = 0.7  # ... which must be this much clearly one saturated colour
FILL_SIDE = 480  # the fill under the subject is made at this longer side (smooth there; inpainting is slow)
MIN_SCREEN = 0.05  # frames with less clearly-screen area than this share: the previous key is kept
SURFACE_DEGREE = 4  # the light's smooth shape under the subject (see _filled)
SURFACE_MIN_SHARE = 0.2  # ... fitted only when this share of the frame is clearly screen
SURFACE_MARGIN = 0.25  # ... and kept within the colours seen there, give or take this share of their range
MEMORY_FRAMES = 8  # the screen remembered where it was last seen clearly: a running mean over at most this many
# sightings (the camera's noise averages out; a few frames, so a slow change of light is followed)
MEMORY_STALE = 0.05  # 90th percentile of |frame - memory x gain| over the screen seen now (0..1) above which the
# memory no longer fits the frame (the light changed more than the gain explains): it is dropped
MEMORY_EDGES = 0.03  # the share of the screen, its steepest, where a moved camera shows...
MEMORY_SHIFT = 0.004  # ... where the memory may be off by this share of the frame's longer side (2 px at 512: a
# hand-held camera's jitter)...
MEMORY_NOISE = 0.02  # ... plus the camera's noise (0..1)
MEMORY_FLAT = 0.004  # a memory whose steepest parts change less than this per px is flat: nothing to misplace
GAIN_SIDE = 16  # the light's change since the memory (a ratio field) is smooth: made at this longer side (finer, it
# would take up a crease the camera moved)


def parse_screen(text: str) -> tuple[str, np.ndarray] | None:
    """``green`` / ``blue`` / ``#RRGGBB`` -> (its name, RGB float32 0..1); None for anything that is not a colour
    word or a ``#`` colour (a plate path). ValueError for a malformed ``#`` colour or one too grey to be a screen."""
    word = text.strip().lower()
    if word in NAMED:
        return word, np.array(NAMED[word], np.float32) / 255
    if not word.startswith("#"):
        return None
    digits = word[1:]
    if len(digits) != 6 or any(c not in "0123456789abcdef" for c in digits):
        raise ValueError(f"--plate {text}: a screen colour is green, blue or #RRGGBB (six hex digits)")
    rgb = np.array([int(digits[i:i + 2], 16) for i in (0, 2, 4)], np.float32) / 255
    if _saturation(_chroma(rgb[None, None]))[0, 0] < MIN_SATURATION:
        raise ValueError(f"--plate {text}: that colour is too grey for a screen (a green or blue screen's colour)")
    return word, rgb


def _chroma(image: np.ndarray) -> np.ndarray:
    """float [..., 3] -> chromaticity (r, g, b) / (r + g + b)."""
    return image / np.maximum(image.sum(axis=-1, keepdims=True), 1e-6)


def _saturation(chroma: np.ndarray) -> np.ndarray:
    return np.linalg.norm(chroma - 1 / 3, axis=-1)


@dataclass
class ScreenPlate:
    plate: np.ndarray  # uint8 [H,W,3]
    screen: np.ndarray  # bool [H,W]: the pixels taken as clearly screen
    key: np.ndarray  # float32 [3]: the screen's chromaticity


class Screen:
    """The screen of one clip: ``colour`` RGB 0..1 (a named or given colour, or a detected one)."""

    def __init__(self, name: str, colour: np.ndarray):
        self.name, self.colour = name, np.asarray(colour, np.float32)
        self.reset()

    def reset(self) -> None:
        self.key = _chroma(self.colour[None, None])[0, 0]  # refined from each frame's screen
        self.tolerance = TOLERANCE[1]
        self.memory: np.ndarray | None = None  # float32 [H,W,3]: the screen where it was seen clearly before
        self.memory_count: np.ndarray | None = None  # float32 [H,W]: sightings averaged there (0: never seen)

    @property
    def key_rgb(self) -> np.ndarray:
        """The key as a colour of full brightness (for despill): RGB 0..1, its largest channel 1."""
        return (self.key / self.key.max()).astype(np.float32)

    def plate(self, frame: np.ndarray, subject: np.ndarray | None = None, refine: bool = True) -> ScreenPlate:
        """frame uint8 [H,W,3] RGB -> the screen behind it; subject: bool [H,W] known not to be screen (or None);
        refine: False keeps the key as it is (a plate remade for the same frame)."""
        # per-channel planes throughout: numpy's reductions over a last axis of 3 were most of the time at 1080p
        image = frame.astype(np.float32) * np.float32(1 / 255)
        planes = cv2.split(cv2.GaussianBlur(image, (0, 0), CHROMA_BLUR))
        brightness = planes[0] + planes[1] + planes[2]
        bright = brightness > MIN_BRIGHTNESS
        inverse = 1 / np.maximum(brightness, 1e-6)
        chroma = [p * inverse for p in planes]
        distance = lambda key: np.sqrt(sum((c - np.float32(k)) ** 2 for c, k in zip(chroma, key)))  # noqa: E731
        nominal = _chroma(self.colour[None, None])[0, 0]
        strongest = int(np.argmax(self.colour))
        others = np.maximum(*[planes[c] for c in range(3) if c != strongest])
        candidates = bright & (distance(nominal) < KEY_REACH) & (planes[strongest] > DOMINANCE * others)
        step = max(1, round((candidates.size / 40000) ** 0.5))  # medians on a sample: slow over a 1080p frame
        sampled = candidates[::step, ::step]
        if refine and sampled.mean() > MIN_SCREEN:
            # the key and its spread from this frame's candidates
            sample = np.stack([c[::step, ::step][sampled] for c in chroma], axis=1)
            key = np.median(sample, axis=0)
            spread = 1.4826 * np.median(np.linalg.norm(sample - key, axis=1))
            self.key, self.tolerance = key.astype(np.float32), float(np.clip(3 * spread, *TOLERANCE))
        # noise moves a darker pixel's chromaticity further: the tolerance grows as the screen darkens (shadows,
        # creases, falloff), relative to the screen's typical brightness
        typical = float(np.median(brightness[::step, ::step][sampled])) if sampled.any() else 1.0
        tolerance = self.tolerance * np.clip(typical * inverse, 1, 4)
        screen = bright & (distance(self.key) < tolerance)
        if subject is not None:
            screen &= ~subject
        loose = screen.copy()  # screen-coloured, before the fringe is kept away
        h, w = screen.shape
        reach = max(1, round(FRINGE * max(h, w)))
        other = cv2.dilate((~screen).astype(np.uint8), cv2.getStructuringElement(
            cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1)))
        screen &= other == 0
        weight = screen.astype(np.float32)
        if weight.sum() == 0:  # no screen seen at all: nothing differs from it
            return ScreenPlate(frame.copy(), screen, self.key)
        blur = lambda a: cv2.GaussianBlur(a, (0, 0), SMOOTH)  # noqa: E731
        seen_w = blur(weight)
        seen = blur(image * weight[..., None]) / np.maximum(seen_w, 1e-6)[..., None]
        seen = np.where(screen[..., None], seen, 0)
        # the fill reads every screen-coloured pixel, those near the subject too (a mesh's holes, the gaps in
        # hair: the light behind the subject; 0.42x -> 0.34x RVM's MAD on the benchmark's sieve, the child 0.47x ->
        # 0.48x), while the plate is the frame itself only away from the subject
        filled = _filled(image * loose[..., None], loose, screen)
        behind = self._remembered(seen, screen, filled)
        if refine:
            self._remember(seen, screen)
        plate = np.where(screen[..., None], seen, behind)
        return ScreenPlate(np.clip(plate * 255 + 0.5, 0, 255).astype(np.uint8), screen, self.key)

    def _remembered(self, seen: np.ndarray, screen: np.ndarray, filled: np.ndarray) -> np.ndarray:
        """The screen behind the subject: where an earlier frame saw it clearly, that sighting (a crease, a shadow
        behind a moving subject are its own, which no fill from around the subject can know; a mesh's holes are
        never clearly screen in any frame, but the mesh moves), scaled by the light's change since (a smooth ratio
        field from the screen seen in both); elsewhere ``filled``. A memory that no longer fits the frame (a moving
        camera, a change of light the ratio does not explain) is dropped. The checks and the ratio are made at
        FILL_SIDE at most (1080p: full size was most of the screen plate's time)."""
        memory, count = self.memory, self.memory_count
        if memory is None or memory.shape != seen.shape:
            self.memory = self.memory_count = None
            return filled
        both = screen & (count > 0)
        if both.mean() < MIN_SCREEN:
            return filled
        h, w = screen.shape
        scale = min(1.0, FILL_SIDE / max(h, w))
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        shrink = lambda a: cv2.resize(a, size, interpolation=cv2.INTER_AREA)  # noqa: E731
        cover = shrink(both.astype(np.float32))
        inside = cover > 0.99  # wholly in the screen seen now and remembered
        mask = both.astype(np.float32)[..., None]
        now = shrink(seen * mask) / np.maximum(cover, 1e-6)[..., None]
        then = shrink(memory * mask) / np.maximum(cover, 1e-6)[..., None]
        ratio = np.where(inside[..., None], now / np.maximum(then, 1e-3), 0).astype(np.float32)
        gain_size = (max(1, round(size[0] * GAIN_SIDE / max(size))), max(1, round(size[1] * GAIN_SIDE / max(size))))
        small_gain = push_pull(cv2.resize(ratio, gain_size, interpolation=cv2.INTER_AREA),
                                cv2.resize(inside.astype(np.float32), gain_size, interpolation=cv2.INTER_AREA))
        gain = cv2.resize(small_gain, size, interpolation=cv2.INTER_LINEAR)
        if self._stale(np.abs(then * gain - now).max(axis=2), then, now, inside):
            self.memory = self.memory_count = None
            return filled
        gain = cv2.resize(small_gain, (w, h), interpolation=cv2.INTER_LINEAR)
        return np.where((count > 0)[..., None], memory * gain, filled)

    @staticmethod
    def _stale(residual: np.ndarray, memory: np.ndarray, seen: np.ndarray, both: np.ndarray) -> bool:
        """Whether the memory no longer fits the frame: over the screen seen now, a light change the smooth gain
        does not explain (the residual's 90th percentile above MEMORY_STALE), or the camera moved: where the memory
        has structure (its steepest MEMORY_EDGES share: creases, shadows' edges; a flat screen cannot be misplaced)
        the residual exceeds what a misalignment of MEMORY_SHIFT of the frame's side would make there."""
        if np.percentile(residual[both], 90) > MEMORY_STALE:
            return True
        slope = np.maximum(_slope(memory), _slope(seen))  # a crease the memory holds, or one only the frame does
        inner = cv2.erode(both.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0  # not the steps to the zeros
        slope, residual = slope[inner], residual[inner]
        if slope.size == 0:
            return False
        edges = slope >= np.percentile(slope, 100 * (1 - MEMORY_EDGES))
        if slope[edges].mean() < MEMORY_FLAT:
            return False
        shift = MEMORY_SHIFT * max(both.shape)  # px at this size
        return residual[edges].mean() > shift * slope[edges].mean() + MEMORY_NOISE

    def _remember(self, seen: np.ndarray, screen: np.ndarray) -> None:
        """The clearly seen screen joins the memory (a running mean of at most MEMORY_FRAMES sightings a pixel)."""
        if self.memory is None:
            self.memory = np.zeros(seen.shape, np.float32)
            self.memory_count = np.zeros(screen.shape, np.float32)
        count = np.where(screen, np.minimum(self.memory_count + 1, MEMORY_FRAMES), self.memory_count)
        step = np.where(screen, 1 / np.maximum(count, 1), 0).astype(np.float32)
        change = seen - self.memory
        change *= step[..., None]
        self.memory += change
        self.memory_count = count


def _slope(image: np.ndarray) -> np.ndarray:
    """|gradient| of an image's luminance, per px (0..1 units)."""
    grey = cv2.cvtColor(np.ascontiguousarray(image, np.float32), cv2.COLOR_RGB2GRAY)
    return np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)) / 8


def _filled(seen: np.ndarray, screen: np.ndarray, clear: np.ndarray | None = None) -> np.ndarray:
    """``seen``: the screen's colours where ``screen`` (zeros elsewhere). The screen under the subject: the light's
    smooth shape (a degree SURFACE_DEGREE surface fitted to the ``clear`` screen, bounded by the colours seen: a key
    light's peak hidden behind the subject is carried over it, which a fill from the boundary flattens) plus what
    the surface misses (creases, shadows, the light seen through a mesh's holes) inpainted from the screen around it
    (Navier-Stokes, OpenCV, which carries the boundary's values smoothly inwards: half the error of a pyramid
    average at the subject's edge, where alpha is fractional and the plate matters most), at FILL_SIDE at most;
    where no screen is seen at all, push-pull."""
    h, w = screen.shape
    scale = min(1.0, FILL_SIDE / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    weight = cv2.resize(screen.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    small = cv2.resize(seen, size, interpolation=cv2.INTER_AREA) / np.maximum(weight, 1e-6)[..., None]
    known = weight > 0.99
    if known.mean() < 0.01:
        filled = push_pull(cv2.resize(seen, size, interpolation=cv2.INTER_AREA), weight)
    else:
        surface = None if clear is None else _surface(small, cv2.resize(clear.astype(np.uint8), size,
                                                                        interpolation=cv2.INTER_NEAREST) > 0)
        base = 0.5 if surface is None else surface - 0.5  # the residual, offset into 8 bits' range
        small_u8 = np.clip((small - base) * 255 + 0.5, 0, 255).astype(np.uint8)
        filled = cv2.inpaint(small_u8, (~known).astype(np.uint8), 3, cv2.INPAINT_NS).astype(np.float32) / 255 + base
    return cv2.resize(filled, (w, h), interpolation=cv2.INTER_LINEAR)


@lru_cache(maxsize=4)
def _basis(h: int, w: int) -> np.ndarray:
    """The surface's terms u^i v^j (i + j <= SURFACE_DEGREE, u and v -1..1 across the frame): float32 [h,w,terms]
    (made once per size: they were a fifth of the screen plate's time)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    u, v = 2 * x / w - 1, 2 * y / h - 1
    powers = [(i, j) for i in range(SURFACE_DEGREE + 1) for j in range(SURFACE_DEGREE + 1 - i)]
    return np.stack([u ** i * v ** j for i, j in powers], axis=-1)


def _surface(image: np.ndarray, clear: np.ndarray) -> np.ndarray | None:
    """A smooth surface per channel (polynomial of degree SURFACE_DEGREE in x, y) fitted by least squares to the
    clear screen, clipped to the range of the colours seen there; None when too little is clear to fit it."""
    if clear.mean() < SURFACE_MIN_SHARE:
        return None
    h, w = clear.shape
    step = max(1, round((clear.size / 8000) ** 0.5))
    basis = _basis(h, w)
    powers = basis.shape[-1]
    sample = clear[::step, ::step]
    a = basis[::step, ::step][sample]
    b = image[::step, ::step][sample]
    # a light ridge: terms the clear screen barely constrains stay near 0 instead of swinging
    coef = np.linalg.solve(a.T @ a + 1e-6 * len(a) * np.eye(powers), a.T @ b)
    low, high = b.min(axis=0), b.max(axis=0)
    margin = SURFACE_MARGIN * (high - low)
    return np.clip(basis @ coef, low - margin, high + margin).astype(np.float32)


def detect_screen(frame: np.ndarray) -> Screen | None:
    """A ``Screen`` when the frame's border band is mostly one saturated colour (a screen shot), else None."""
    image = frame.astype(np.float32) / 255
    h, w = image.shape[:2]
    band = max(2, round(BORDER * min(h, w)))
    border = np.concatenate([image[:band].reshape(-1, 3), image[-band:].reshape(-1, 3),
                             image[:, :band].reshape(-1, 3), image[:, -band:].reshape(-1, 3)])
    border = border[border.sum(axis=1) > MIN_BRIGHTNESS]
    if len(border) == 0:
        return None
    chroma = _chroma(border)
    key = np.median(chroma, axis=0)
    if _saturation(key) < 2 * MIN_SATURATION:  # a grey wall, a paper backdrop: not a screen
        return None
    close = np.linalg.norm(chroma - key, axis=1) < BORDER_REACH
    if close.mean() < BORDER_SHARE:
        return None
    colour = np.median(border[close], axis=0)
    name = "green" if colour[1] > max(colour[0], colour[2]) * 1.2 else \
        "blue" if colour[2] > max(colour[0], colour[1]) * 1.2 else \
        "#" + "".join(f"{round(c * 255):02x}" for c in colour)
    return Screen(name, colour)


def screen_key(plate: np.ndarray | None) -> np.ndarray | None:
    """A plate image (uint8 [H,W,3] RGB, or None) that shows a green or blue screen (``detect_screen``: its border
    mostly one saturated colour): the screen's key as ``Screen.key_rgb``, else None. A clean plate shot of a screen
    is as much a screen as the one behind the subject: the solve's colours are held to the keying assumption there
    too (``solvers.plate_alpha``, which reads only the key's strongest channel: the border's colour is enough)."""
    screen = None if plate is None else detect_screen(plate)
    return None if screen is None else screen.key_rgb


def background_key(frame: np.ndarray, alpha: np.ndarray) -> np.ndarray | None:
    """The colour of the clear background (alpha below 1%) when it is one saturated colour (a screen shot matted
    without a plate), as RGB 0..1 with its largest channel 1; None otherwise (nothing to despill against)."""
    clear = alpha[::2, ::2] < 0.01
    if clear.mean() < MIN_SCREEN:
        return None
    pixels = frame[::2, ::2][clear].astype(np.float32) / 255
    pixels = pixels[pixels.sum(axis=1) > MIN_BRIGHTNESS]
    if len(pixels) == 0:
        return None
    chroma = _chroma(pixels)
    key = np.median(chroma, axis=0)
    if _saturation(key) < 2 * MIN_SATURATION or (np.linalg.norm(chroma - key, axis=1) < BORDER_REACH).mean() < 0.5:
        return None
    return (key / key.max()).astype(np.float32)
