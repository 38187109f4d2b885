"""Small real media files generated for tests (real codecs through PyAV; no mocks)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def moving_square_frames(n: int, width: int = 96, height: int = 64, seed: int = 0) -> list[np.ndarray]:
    """Frames with a bright square moving over a textured background: easy to check sizes, counts, orientation."""
    y, x = np.mgrid[0:height, 0:width]
    # Smooth gradients: 4:2:0 chroma subsampling keeps them nearly intact, so round trips can be compared.
    base = np.stack([40 + 80 * x / width, 40 + 80 * y / height, np.full_like(x, 60.0 + seed)], -1).astype(np.uint8)
    frames = []
    for i in range(n):
        f = base.copy()
        x = (i * 5) % max(width - 16, 1)
        f[8:24, x:x + 16] = (250, 240, 40)
        f[0:8, 0:8] = (255, 0, 0)  # a red corner marks the top-left, to check rotation
        frames.append(f)
    return frames


def write_video(path: Path, frames: list[np.ndarray], fps: Fraction | int = 24, codec: str = "libx264",
                pix_fmt: str = "yuv420p", pts: list[int] | None = None, time_base: Fraction | None = None,
                audio_seconds: float | None = None, audio_codec: str = "aac", faststart: bool = False) -> Path:
    """Encode ``frames`` (uint8 RGB) to ``path``; optional explicit pts (variable frame rate) and a sine tone."""
    options = {"movflags": "faststart"} if faststart else {}  # index first, as streaming sites deliver
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream(codec, rate=Fraction(fps))
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = pix_fmt
        if time_base is not None:
            stream.time_base = time_base
            stream.codec_context.time_base = time_base
        if codec == "libx264":
            stream.options = {"crf": "10", "preset": "ultrafast"}
        audio = None
        if audio_seconds:
            audio = container.add_stream(audio_codec, rate=48000)
            audio.layout = "stereo"
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            if pts is not None:
                frame.pts = pts[i]
                frame.time_base = time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        if audio is not None:
            _write_tone(container, audio, audio_seconds)
    return path


def _write_tone(container, stream, seconds: float) -> None:
    rate, chunk = 48000, 1024
    total = int(rate * seconds)
    t = np.arange(total) / rate
    tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    fmt = stream.format.name
    for start in range(0, total, chunk):
        piece = tone[start:start + chunk]
        data = np.stack([piece, piece])  # planar stereo
        if fmt in ("flt", "s16"):  # interleaved (libopus takes these)
            data = data.T.reshape(1, -1)
        if fmt == "s16":
            data = (data * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=fmt, layout="stereo")
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def decode_all(path: Path, fmt: str = "rgb24") -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format=fmt) for f in c.decode(video=0)]


def audio_seconds(path: Path) -> float:
    """Total duration of the decoded audio in seconds (0 when there is no audio stream)."""
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return 0.0
        return sum(f.samples / f.sample_rate for f in c.decode(audio=0))


def person_clip(path: Path, frames: int = 8, size: int = 192) -> list[np.ndarray]:
    """A short clip of a real photo of a person (the demo's source), written to ``path``; returns the frames."""
    import cv2

    from vidmatte import demo

    photo = cv2.cvtColor(cv2.imread(str(demo.find_sample_photo())), cv2.COLOR_BGR2RGB)
    images = demo.synthesise_frames(photo, frames=frames, size=size)
    write_video(path, images, fps=24)
    return images


def person_frames(count: int, width: int, height: int) -> list[np.ndarray]:
    """The demo's real photo of a person, moving, at any (also odd, non-square) size."""
    import cv2

    from vidmatte import demo

    photo = cv2.cvtColor(cv2.imread(str(demo.find_sample_photo())), cv2.COLOR_BGR2RGB)
    squares = demo.synthesise_frames(photo, frames=count, size=max(width, height))
    return [np.ascontiguousarray(cv2.resize(s, (width, height), interpolation=cv2.INTER_AREA)) for s in squares]


def person_batch(count: int, width: int, height: int) -> np.ndarray:
    """``person_frames`` as the networks take them: float32 [T,1,3,H,W] in 0..1 (the layout of
    ``vidmatte.backends.export.check_frames``, whose generated blob the pretrained model does not see as a person)."""
    frames = np.stack(person_frames(count, width, height)).astype(np.float32) / 255
    return np.ascontiguousarray(frames.transpose(0, 3, 1, 2)[:, None])


def _numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def assert_subject_and_background(pha, what: str = "alpha", share: float = 0.1) -> None:
    """The matte holds a subject and a background: at least ``share`` of its pixels above 0.5 and as many below.
    Parity tests call this on the reference first: two all-0 (or all-1) mattes agree whatever the code does."""
    pha = _numpy(pha)
    above, below = float((pha > 0.5).mean()), float((pha < 0.5).mean())
    assert above >= share and below >= share, (
        f"{what}: {above:.1%} of pixels > 0.5 and {below:.1%} < 0.5; a comparison needs both subject and background")


def assert_close(actual, expected, rel: float, what: str) -> float:
    """``max|actual - expected| <= rel * scale`` with ``scale = max(1, max|expected|)``; returns the max diff.

    float32 kernels (oneDNN, MLAS) round relative to the magnitude of the values, so bounds on their results are
    relative to it; the floor of 1 keeps alpha, foreground and the tanh-bounded recurrent states (all within [-1, 1])
    on an absolute scale, where an error near 0 is not inflated. ``rel`` carries the margin; callers say why."""
    actual, expected = _numpy(actual), _numpy(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    diff = float(np.abs(actual - expected).max(initial=0.0))
    assert diff <= rel * scale, f"{what}: max|diff| {diff:.3g} > {rel:g} x scale {scale:.3g}"
    return diff


def official_onnx(model_path, frames, ratio) -> list[tuple[np.ndarray, np.ndarray]]:
    """The reference: the official graph run by hand with ORT's default options, state threaded through, no
    vidmatte code involved. Returns (fgr [H,W,3], pha [H,W]) per frame."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    state = [np.zeros((1, 1, 1, 1), np.float32)] * 4
    results = []
    for image in frames:
        feed = {"src": (image.astype(np.float32) / 255).transpose(2, 0, 1)[None],
                "downsample_ratio": np.array([ratio], np.float32)}
        feed.update({f"r{i + 1}i": s for i, s in enumerate(state)})
        fgr, pha, *state = session.run(["fgr", "pha", "r1o", "r2o", "r3o", "r4o"], feed)
        results.append((fgr[0].transpose(1, 2, 0), pha[0, 0]))
    return results


def disc_over_plate(seed: int, frames: int = 6, blur: bool = False) -> tuple[np.ndarray, list, list]:
    """A red disc crossing a textured still scene, 128x96: (the plate RGB, frames RGB, true alphas float32)."""
    import cv2

    rng = np.random.default_rng(seed)
    plate = cv2.resize(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8), (128, 96), interpolation=cv2.INTER_CUBIC)
    pictures, truths = [], []
    for i in range(frames):
        alpha = np.zeros((96, 128), np.float32)
        cv2.circle(alpha, (30 + 12 * i, 48), 18, 1.0, -1)
        if blur:
            alpha = cv2.GaussianBlur(alpha, (5, 5), 1.0)
        pictures.append(np.rint(alpha[..., None] * [230, 50, 40] + (1 - alpha[..., None]) * plate).astype(np.uint8))
        truths.append(alpha)
    return plate, pictures, truths
