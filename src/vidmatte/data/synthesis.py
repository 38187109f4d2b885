"""Benchmark composition (DVM/RVM style): a real foreground + alpha moving smoothly over a real background video or
image, with exact ground truth.

Everything is decided by a seeded random generator per clip, so a definition + seed gives byte-identical output.
Layers are quantised to 8 bits *before* they are blended, so the stored ``com`` equals the alpha blend of the stored
``fgr``/``bgr``/``pha`` to within half a level (the composition identity the tests check).
Noise is added as one field to both layers: alpha*(F+n) + (1-alpha)*(B+n) = composite + n, i.e. sensor noise on the
composite that still keeps the identity exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy.interpolate import CubicSpline

from ..errors import InputError
from ..io.images import read_rgb, read_unchanged


@dataclass
class Source:
    """A foreground, one entry per source frame (a still image has one): alphas float32 [h,w] 0..1 and
    fgs float32 [h,w,3] 0..1 (the true foreground colour, or estimated from image + alpha)."""

    name: str
    alphas: list[np.ndarray]
    fgs: list[np.ndarray]
    fg_estimated: bool

    def frame(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """(alpha, fg) for output frame t; a foreground video shorter than the clip plays back and forth."""
        n = len(self.alphas)
        i = t % (2 * n - 2) if n > 1 else 0
        i = i if i < n else 2 * n - 2 - i
        return self.alphas[i], self.fgs[i]


def read_alpha(path: Path) -> np.ndarray:
    """uint8 [H,W] from any image: an RGB GT alpha uses blue, the channel OpenCV stores first (all three are
    equal)."""
    image = read_unchanged(path)
    return image if image.ndim == 2 else image[..., 2]


def read_rgba_frames(path: Path, count: int) -> list[np.ndarray]:
    """Up to ``count`` uint8 [H,W,4] RGBA frames from a folder of RGBA images or a video with an alpha plane."""
    if path.is_dir():
        from ..io.probe import list_images

        frames = []
        for file in list_images(path)[:count]:
            try:
                image = read_unchanged(file)
            except InputError:
                image = None
            if image is None or image.ndim != 3 or image.shape[2] != 4:
                raise InputError(f"{file} is not an RGBA image")
            frames.append(image)
        if not frames:
            raise InputError(f"{path} holds no images")
        return frames
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if "a" not in stream.codec_context.pix_fmt.replace("gray", ""):
                raise InputError(f"{path}: the video has no alpha plane (pixel format {stream.codec_context.pix_fmt})")
            frames = []
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgba"))
                if len(frames) == count:
                    break
    except av.error.FFmpegError as exc:
        raise InputError(f"cannot read video {path}: {exc}") from None
    return frames


def read_video_frames(path: Path, count: int) -> list[np.ndarray]:
    """Up to ``count`` uint8 RGB frames of a video or image folder (the project's reader)."""
    from ..io.readers import open_reader

    return [f.image for f in open_reader(path, 0, count)]


def _shrink(images: list[np.ndarray | None], max_side: int) -> list[np.ndarray | None]:
    h, w = next(i for i in images if i is not None).shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale == 1:
        return images
    size = (round(w * scale), round(h * scale))
    return [None if i is None else cv2.resize(i, size, interpolation=cv2.INTER_AREA) for i in images]


def _layer(image: np.ndarray, alpha: np.ndarray, fg: np.ndarray | None, label: str):
    """float32 (alpha, fg) for one frame; fg estimated from image + alpha when the source has none."""
    from ..solvers import estimate_foreground

    if image.shape[:2] != alpha.shape:
        raise InputError(f"{label}: image is {image.shape[1]}x{image.shape[0]} but its alpha is "
                         f"{alpha.shape[1]}x{alpha.shape[0]}")
    alpha_f = alpha.astype(np.float32) / 255
    if fg is not None:
        return alpha_f, fg.astype(np.float32) / 255
    return alpha_f, estimate_foreground(image.astype(np.float32) / 255, alpha_f)[0]


def load_foreground(spec: dict, root: Path, max_side: int, frames: int = 1) -> Source:
    """Read a foreground named by a definition entry, shrunk so its longer side is at most ``max_side``.

    spec (paths relative to ``root``), one of:
      {"image", "alpha", optional "fg"}             a still image and its GT alpha (e.g. comp1k, alphamatting)
      {"video", "alpha_video", optional "fg_video"}  a colour video and its alpha video (first channel)
      {"rgba"}                                       a video with an alpha plane, or a folder of RGBA images
    Without a true foreground layer ("fg", "fg_video", or the colour of an RGBA source), the foreground colour is
    estimated from image + alpha (multi-level foreground estimation), as the field does. Videos contribute at most
    ``frames`` frames."""
    if "rgba" in spec:
        rgba = _shrink(read_rgba_frames(root / spec["rgba"], frames), max_side)
        layers = [(f[..., 3].astype(np.float32) / 255, f[..., :3].astype(np.float32) / 255) for f in rgba]
        return Source(Path(spec["rgba"]).stem, [a for a, _ in layers], [f for _, f in layers], False)
    if "video" in spec:
        images = read_video_frames(root / spec["video"], frames)
        alphas = [f[..., 0] for f in read_video_frames(root / spec["alpha_video"], frames)]
        fgs = read_video_frames(root / spec["fg_video"], frames) if spec.get("fg_video") else [None] * len(images)
        n = min(len(images), len(alphas), len(fgs))
        shrunk = _shrink(images[:n] + alphas[:n] + fgs[:n], max_side)
        images, alphas, fgs = shrunk[:n], shrunk[n:2 * n], shrunk[2 * n:]
        layers = [_layer(i, a, f, spec["video"]) for i, a, f in zip(images, alphas, fgs)]
        return Source(Path(spec["alpha_video"]).stem, [a for a, _ in layers], [f for _, f in layers],
                      not spec.get("fg_video"))
    image, alpha = read_rgb(root / spec["image"]), read_alpha(root / spec["alpha"])
    fg = read_rgb(root / spec["fg"]) if spec.get("fg") else None
    if image.shape[:2] != alpha.shape:  # checked before shrinking, so the message gives the files' own sizes
        _layer(image, alpha, fg, spec["image"])
    image, alpha, fg = _shrink([image, alpha, fg], max_side)
    a, f = _layer(image, alpha, fg, spec["image"])
    return Source(Path(spec["alpha"]).stem, [a], [f], fg is None)


def read_background_frames(spec: dict, root: Path, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``count`` uint8 RGB frames: consecutive frames of a video from a seeded start (played back and forth when
    the video is shorter), or one image repeated (camera motion then makes it move)."""
    if "image" in spec:
        return [read_rgb(root / spec["image"])] * count
    from ..io.readers import open_reader

    path = root / spec["video"]
    frames = [f.image for f in open_reader(path)]
    if not frames:
        raise InputError(f"{path}: no frames")
    cycle = frames + frames[-2:0:-1] if len(frames) > 1 else frames  # ping-pong, no repeated end frames
    start = int(rng.integers(0, len(frames)))
    return [cycle[(start + i) % len(cycle)] for i in range(count)]


def smooth_track(rng: np.random.Generator, frames: int, every: int, low: float, high: float) -> np.ndarray:
    """Seeded keyframe values every ``every`` frames, joined by a natural cubic spline: float64 [frames]."""
    keys = np.arange(0, frames + every, every)
    values = rng.uniform(low, high, len(keys))
    if len(keys) < 2:
        return np.full(frames, values[0])
    return CubicSpline(keys, values, bc_type="natural")(np.arange(frames))


def _bspline_weights(f: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The four uniform cubic B-spline basis functions at fractional offsets ``f`` in [0, 1) (they sum to 1)."""
    g = 1 - f
    f2, f3 = f * f, f * f * f
    return g * g * g / 6, (3 * f3 - 6 * f2 + 4) / 6, (-3 * f3 + 3 * f2 + 3 * f + 1) / 6, f3 / 6


class Deformation:
    """A smooth, seeded non-rigid warp of a foreground, attached to the subject (source pixel coordinates).

    A lattice of control displacements with square cells of ``max(box) / grid`` source pixels covers the subject's
    bounding box plus one cell on each side. Every ``every`` frames each control point draws a displacement
    (x and y) uniform in +-``amplitude * max(box)``; the keyframes are joined in time by a natural cubic spline (as
    ``smooth_track``) and the lattice is interpolated in space by a uniform cubic B-spline (free-form deformation),
    so the field is C2 in space and time. Beyond the lattice the field is held constant.

    ``displacement(t, x, y)`` gives the field at source points; the backward map of a frame is
    ``s + D(s)`` with ``s`` the source point the affine motion brings to an output pixel, so alpha and foreground
    are pulled through the same map. Spatial slope of the field is at most ``2 * amplitude * grid`` (the B-spline's
    derivative is bounded by its neighbouring control differences; the temporal spline may overshoot slightly),
    which is why ``amplitude * grid`` is limited to ``MAX_SLOPE``: the map stays far from folding."""

    MAX_SLOPE = 0.25

    def __init__(self, rng: np.random.Generator, frames: int, center: tuple[float, float],
                 box: tuple[float, float], amplitude: float, grid: int, every: int):
        if amplitude < 0 or grid < 1 or every < 1:
            raise InputError(f"deform: amplitude must be >= 0, grid and keyframe_every >= 1 "
                             f"(got {amplitude}, {grid}, {every})")
        if amplitude * grid > self.MAX_SLOPE:
            raise InputError(f"deform: amplitude x grid = {amplitude * grid:.3g} > {self.MAX_SLOPE} could fold "
                             f"the warp; lower the amplitude or use a coarser grid")
        size = float(max(box))
        self.cell = size / grid
        self.nx = max(1, math.ceil(box[0] / self.cell)) + 2  # lattice cells, one cell of margin on each side
        self.ny = max(1, math.ceil(box[1] / self.cell)) + 2
        self.x0 = center[0] - self.nx * self.cell / 2  # lattice origin (knot 0), centred on the subject
        self.y0 = center[1] - self.ny * self.cell / 2
        self.amplitude_px = amplitude * size
        keys = np.arange(0, frames + every, every)
        values = rng.uniform(-1, 1, (len(keys), self.ny + 3, self.nx + 3, 2)) * self.amplitude_px
        if len(keys) < 2:
            self.control = np.repeat(values[:1], frames, axis=0)
        else:
            self.control = CubicSpline(keys, values, axis=0, bc_type="natural")(np.arange(frames))

    def displacement(self, t: int, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(dx, dy) in source pixels at source points (x, y) for frame ``t``."""
        u = np.clip((np.asarray(x, np.float64) - self.x0) / self.cell, 0, self.nx - 1e-9)
        v = np.clip((np.asarray(y, np.float64) - self.y0) / self.cell, 0, self.ny - 1e-9)
        iu, iv = u.astype(np.int64), v.astype(np.int64)
        wu, wv = _bspline_weights(u - iu), _bspline_weights(v - iv)
        stride = self.nx + 3
        base = iv * stride + iu  # flat index of the 4x4 block's corner in the control lattice
        cx, cy = self.control[t, ..., 0].ravel(), self.control[t, ..., 1].ravel()
        dx, dy = np.zeros(u.shape), np.zeros(u.shape)
        for j in range(4):
            rx, ry = np.zeros(u.shape), np.zeros(u.shape)
            for i in range(4):
                index = base + (j * stride + i)
                rx += wu[i] * np.take(cx, index)
                ry += wu[i] * np.take(cy, index)
            dx += wv[j] * rx
            dy += wv[j] * ry
        return dx, dy

    def maps(self, t: int, m: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """float32 (map_x, map_y) for ``cv2.remap``: output pixel -> source point, the affine ``m`` (source ->
        output) undone, then the deformation applied."""
        inv = cv2.invertAffineTransform(m)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
        sx = inv[0, 0] * xx + inv[0, 1] * yy + inv[0, 2]
        sy = inv[1, 0] * xx + inv[1, 1] * yy + inv[1, 2]
        dx, dy = self.displacement(t, sx, sy)
        return (sx + dx).astype(np.float32), (sy + dy).astype(np.float32)


def min_jacobian(map_x: np.ndarray, map_y: np.ndarray, m: np.ndarray) -> float:
    """The smallest local area ratio of a backward map relative to its affine part (1 = rigid, <= 0 = folded)."""
    jx_y, jx_x = np.gradient(map_x.astype(np.float64))
    jy_y, jy_x = np.gradient(map_y.astype(np.float64))
    det = jx_x * jy_y - jx_y * jy_x
    affine_det = np.linalg.det(cv2.invertAffineTransform(m)[:, :2])
    return float(det.min() / affine_det)


def affine(cx: float, cy: float, tx: float, ty: float, angle_deg: float, scale: float, shear: float,
           src_cx: float, src_cy: float) -> np.ndarray:
    """2x3 matrix: move (src_cx, src_cy) to (cx + tx, cy + ty) after scale, shear and rotation about it."""
    a = math.radians(angle_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    lin = rot @ np.array([[1.0, shear], [0.0, 1.0]]) * scale
    offset = np.array([cx + tx, cy + ty]) - lin @ np.array([src_cx, src_cy])
    return np.hstack([lin, offset[:, None]])


def cover(image: np.ndarray, width: int, height: int, margin: float) -> np.ndarray:
    """Resize so the image covers (width, height) times ``margin``, centre-cropped to that size."""
    w, h = round(width * margin), round(height * margin)
    s = max(w / image.shape[1], h / image.shape[0])
    size = (max(w, round(image.shape[1] * s)), max(h, round(image.shape[0] * s)))
    resized = cv2.resize(image, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    y0, x0 = (size[1] - h) // 2, (size[0] - w) // 2
    return resized[y0:y0 + h, x0:x0 + w]


def trimap_from_alpha(alpha_u8: np.ndarray, band: int) -> np.ndarray:
    """uint8 trimap (0 bg, 128 unknown, 255 fg): definite regions are alpha 255 / 0 eroded by ``band`` pixels, so
    every fractional pixel and a band of ``band`` pixels around the edge are unknown."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1)) if band > 0 else None
    fg = alpha_u8 == 255
    bg = alpha_u8 == 0
    if kernel is not None:
        fg = cv2.erode(fg.astype(np.uint8), kernel).astype(bool)
        bg = cv2.erode(bg.astype(np.uint8), kernel, borderValue=1).astype(bool)
    trimap = np.full(alpha_u8.shape, 128, np.uint8)
    trimap[fg] = 255
    trimap[bg] = 0
    return trimap


def to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.asarray(x) * 255), 0, 255).astype(np.uint8)


def blend_u8(pha: np.ndarray, fgr: np.ndarray, bgr: np.ndarray) -> np.ndarray:
    """The composite of 8-bit layers: pha uint8 [H,W], fgr/bgr uint8 [H,W,3] -> uint8 [H,W,3]."""
    a = pha.astype(np.float32)[..., None] / 255
    return to_u8(a * (fgr.astype(np.float32) / 255) + (1 - a) * (bgr.astype(np.float32) / 255))


@dataclass
class ClipFrames:
    """One composed clip; every list has one uint8 array per frame."""

    com: list[np.ndarray]
    pha: list[np.ndarray]
    fgr: list[np.ndarray]
    bgr: list[np.ndarray]
    params: dict


def compose_clip(source: Source, backgrounds: list[np.ndarray], width: int, height: int,
                 rng: np.random.Generator, motion: dict, camera: dict, augment: dict, deform: dict | None = None,
                 deform_rng: np.random.Generator | None = None) -> ClipFrames:
    """Move ``source`` over the background frames with smooth seeded motion; returns 8-bit layers + composite.

    ``deform`` {``amplitude`` (fraction of the subject's size), ``grid``, ``keyframe_every``} adds a non-rigid
    warp (``Deformation``) on top of the affine motion; its random numbers come from ``deform_rng`` only (by
    default a child of ``rng`` that leaves ``rng``'s stream untouched), so every other draw, and with amplitude 0
    (or no ``deform``) every output byte, is the same as for the rigid clip."""
    n = len(backgrounds)
    every = int(motion.get("keyframe_every", 8))
    fill = float(motion.get("fill", 0.85))  # the foreground's bounding box fills this much of the frame height
    t_max = float(motion.get("translate", 0.1))
    tracks = {
        "tx": smooth_track(rng, n, every, -t_max * width, t_max * width),
        "ty": smooth_track(rng, n, every, -t_max * height / 2, t_max * height / 2),
        "angle": smooth_track(rng, n, every, -motion.get("rotate_deg", 5), motion.get("rotate_deg", 5)),
        "scale": smooth_track(rng, n, every, *motion.get("scale", [0.9, 1.1])),
        "shear": smooth_track(rng, n, every, -motion.get("shear", 0.03), motion.get("shear", 0.03)),
    }
    c_max = float(camera.get("translate", 0.0))
    cam = {
        "tx": smooth_track(rng, n, every, -c_max * width, c_max * width),
        "ty": smooth_track(rng, n, every, -c_max * height, c_max * height),
        "zoom": smooth_track(rng, n, every, 1.0, 1.0 + float(camera.get("zoom", 0.0))),
    }
    noise_sigma = float(rng.uniform(0, augment.get("noise_max", 0.0)))
    blur_sigma = float(rng.uniform(0, augment.get("bg_blur_max", 0.0))) if rng.random() < augment.get(
        "bg_blur_prob", 0.0) else 0.0

    # Base placement: the alpha's bounding box scaled to `fill` of the height (and to fit the width), centred.
    # the union over the source's frames, so that a moving foreground video stays in view
    ys, xs = np.nonzero(np.max(np.stack(source.alphas), axis=0) > 0.01)
    if len(ys) == 0:
        raise InputError(f"foreground {source.name}: its alpha is empty")
    box_h, box_w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
    base = min(fill * height / box_h, 0.9 * width / box_w)
    src_cx, src_cy = (xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2
    margin = 1.0 + 2 * c_max + float(camera.get("zoom", 0.0))

    out = ClipFrames([], [], [], [], {
        "foreground": source.name, "fg_estimated": source.fg_estimated, "noise_sigma": round(noise_sigma, 5),
        "bg_blur_sigma": round(blur_sigma, 4), "base_scale": round(float(base), 5)})
    noise_rng = np.random.default_rng(rng.integers(0, 2 ** 63))
    warp = None
    if deform and float(deform.get("amplitude", 0.0)) != 0:
        warp = Deformation(deform_rng if deform_rng is not None else rng.spawn(1)[0], n, (src_cx, src_cy),
                           (box_w, box_h), float(deform["amplitude"]), int(deform.get("grid", 4)),
                           int(deform.get("keyframe_every", every)))
        worst = math.inf
    for t in range(n):
        m = affine(width / 2, height / 2, tracks["tx"][t], tracks["ty"][t], tracks["angle"][t],
                   base * tracks["scale"][t], tracks["shear"][t], src_cx, src_cy)
        src_alpha, src_fg = source.frame(t)
        if warp is None:
            alpha = cv2.warpAffine(src_alpha, m, (width, height), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            fg = cv2.warpAffine(src_fg, m, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        else:  # the same backward map for alpha and foreground, so the truth stays exact and aligned
            map_x, map_y = warp.maps(t, m, width, height)
            worst = min(worst, min_jacobian(map_x, map_y, m))
            if worst <= 0:
                raise InputError(f"foreground {source.name}: the deformation folds at frame {t}; lower its amplitude")
            alpha = cv2.remap(src_alpha, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                              borderValue=0)
            fg = cv2.remap(src_fg, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        bg = camera_frame(backgrounds[t], width, height, margin, cam["tx"][t], cam["ty"][t], cam["zoom"][t])
        if blur_sigma > 0:
            bg = cv2.GaussianBlur(bg, (0, 0), blur_sigma)
        if noise_sigma > 0:
            noise = noise_rng.normal(0, noise_sigma, (height, width, 1)).astype(np.float32)
            fg, bg = fg + noise, bg + noise
        pha_u8, fgr_u8, bgr_u8 = to_u8(alpha), to_u8(fg), to_u8(bg)
        out.pha.append(pha_u8)
        out.fgr.append(fgr_u8)
        out.bgr.append(bgr_u8)
        out.com.append(blend_u8(pha_u8, fgr_u8, bgr_u8))
    if warp is not None:
        out.params["deform"] = {"amplitude_px": round(float(warp.amplitude_px * base), 3),
                                "cell_px": round(float(warp.cell * base), 2), "min_jacobian": round(worst, 4)}
    return out


def camera_frame(frame: np.ndarray, width: int, height: int, margin: float, tx: float, ty: float,
                 zoom: float) -> np.ndarray:
    """float32 [height,width,3] 0..1: the background covering a margin-enlarged frame, viewed through a camera that
    pans by (tx, ty) pixels and zooms by ``zoom`` about the centre."""
    big = cover(frame, width, height, margin).astype(np.float32) / 255
    bh, bw = big.shape[:2]
    m = affine(width / 2, height / 2, -tx, -ty, 0.0, zoom, 0.0, bw / 2, bh / 2)
    return cv2.warpAffine(big, m, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
