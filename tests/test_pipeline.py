"""The pipeline against a direct ONNX Runtime run, and its behaviour on ranges, backgrounds and errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from media import assert_subject_and_background, decode_all, moving_square_frames, official_onnx, person_frames, \
    write_video
from vidmatte.errors import InputError, PartialInputError, UsageError
from vidmatte.io.writers import parse_output
from vidmatte.matters.recurrent import auto_downsample_ratio
from vidmatte.pipeline import ConvertOptions, convert


@pytest.fixture(scope="module")
def matter(rvm_onnx_path):
    import vidmatte

    return vidmatte.load("rvm-mobilenetv3")


@pytest.mark.parametrize("width,height,ratio", [(192, 192, None), (320, 180, 0.25)])
def test_pipeline_alpha_equals_direct_onnx_runtime(tmp_path, rvm_onnx_path, width, height, ratio):
    import vidmatte

    clip = write_video(tmp_path / "person.mp4", person_frames(10, width, height), fps=24)
    out = tmp_path / "alpha/"
    matter = vidmatte.load("rvm-mobilenetv3", downsample_ratio=ratio)
    result = convert(clip, matter, ConvertOptions([parse_output("alpha", str(out) + "/")]))
    assert result.frames == 10
    frames = decode_all(clip)
    # The default warm-up runs the state over frames 8..1 (backward) before the writing pass starts at frame 0.
    assert matter.warmup == 8
    warmed = frames[8:0:-1] + frames
    reference = [pha for _, pha in official_onnx(rvm_onnx_path, warmed, ratio or auto_downsample_ratio(height, width))]
    reference = reference[len(warmed) - len(frames):]
    for i, ref in enumerate(reference):
        got = cv2.imread(str(out / f"{i:05d}.png"), cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255
        assert np.abs(got - ref).max() <= 1 / 255 + 1e-6, f"frame {i}"
    # The person is found: a real matte, not an empty or full one.
    assert 0.15 < reference[-1].mean() < 0.85


def test_step_stream_and_reset_share_one_state_machine(matter):
    frames = person_frames(4, 160, 120)
    matter.reset()
    stepped = [matter.step(f)[1] for f in frames]
    for i, pha in enumerate(stepped):
        assert_subject_and_background(pha, f"frame {i}")  # equal all-0 mattes would prove nothing
    matter.reset()
    streamed = [pha for _, pha in matter.stream(frames)]
    for a, b in zip(stepped, streamed):
        np.testing.assert_array_equal(a, b)
    matter.reset()
    first_again = matter.step(frames[0])[1]
    np.testing.assert_array_equal(first_again, stepped[0])
    assert np.abs(stepped[0] - stepped[3]).max() > 0.1  # the state (and the person) moved on


def test_all_outputs_and_frame_range(tmp_path, matter):
    clip = write_video(tmp_path / "in.mp4", moving_square_frames(12, 64, 48), fps=24)
    outputs = [parse_output("composition", str(tmp_path / "c.mp4")), parse_output("alpha", str(tmp_path / "a") + "/"),
               parse_output("foreground", str(tmp_path / "f.mkv")), parse_output("rgba", str(tmp_path / "r.mov"))]
    result = convert(clip, matter, ConvertOptions(outputs, start_frame=3, end_frame=9,
                                                  background="#FF0000"))
    assert result.frames == 6
    for name in ("c.mp4", "f.mkv", "r.mov"):
        assert len(decode_all(tmp_path / name)) == 6
    assert len(list((tmp_path / "a").glob("*.png"))) == 6
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp files left


def test_composition_over_image_background_is_the_alpha_blend(tmp_path, matter):
    clip = write_video(tmp_path / "in.mp4", person_frames(3, 160, 120), fps=24)
    background = np.zeros((30, 40, 3), np.uint8)
    background[:, :, 2] = 200
    cv2.imwrite(str(tmp_path / "bg.png"), background)  # BGR on disk: a red background
    outputs = [parse_output("composition", str(tmp_path / "c") + "/"), parse_output("alpha", str(tmp_path / "a") + "/"),
               parse_output("foreground", str(tmp_path / "f") + "/")]
    convert(clip, matter, ConvertOptions(outputs, background=str(tmp_path / "bg.png")))
    comp = cv2.imread(str(tmp_path / "c/00001.png")).astype(np.float32)
    fgr = cv2.imread(str(tmp_path / "f/00001.png")).astype(np.float32)
    alpha = cv2.imread(str(tmp_path / "a/00001.png"), cv2.IMREAD_GRAYSCALE).astype(np.float32)[..., None] / 255
    assert_subject_and_background(alpha)  # both terms of the blend matter
    bg = np.zeros_like(comp)
    bg[..., 2] = 200  # read back as BGR too; scaled to cover 160x120 it is still uniform
    expected = fgr * alpha + bg * (1 - alpha)
    # Each picture is rounded to 8 bits on its own: the composition by up to 0.5, and blending the rounded foreground
    # and alpha instead of the exact ones moves the result by up to 0.5 * alpha + 0.5 / 255 * |fgr - bg|.
    bound = 0.5 + 0.5 * alpha + 0.5 / 255 * np.abs(fgr - bg) + 1e-3
    excess = np.abs(comp - expected) - bound
    assert excess.max() <= 0, f"composition off the blend by {excess.max():.3f} beyond 8-bit rounding"


def test_truncated_input_keeps_what_decodes(tmp_path, matter):
    """Index first (faststart): the frames before the cut decode; we keep them, say where it broke, exit non-zero."""
    clip = write_video(tmp_path / "long.mp4", moving_square_frames(120, 160, 96), fps=24, faststart=True)
    data = clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 2 // 3])
    out = tmp_path / "a.mp4"
    # Depending on where the cut falls in the last packet FFmpeg reports an error or just stops: both are named.
    with pytest.raises(PartialInputError, match=r"(ended at frame \d+ of 120|broke at frame \d+)") as info:
        convert(cut, matter, ConvertOptions([parse_output("alpha", str(out))]))
    assert 0 < info.value.frames_ok < 120
    assert len(decode_all(out)) == info.value.frames_ok  # kept what decoded, under the final name
    result = convert(cut, matter, ConvertOptions([parse_output("alpha", str(tmp_path / "b.mp4"))],
                                                 allow_partial=True))
    assert result.warning and result.frames == info.value.frames_ok


def damaged_copy(clip, tmp_path):
    """A copy of ``clip`` with a few bytes overwritten mid-stream where FFmpeg conceals the damage (every frame still
    decodes) and flags the frames; returns it with the flagged frame indices, as PyAV itself reports them."""
    import av

    data = clip.read_bytes()
    for seed in range(40):
        rng = np.random.default_rng(seed)
        damaged = bytearray(data)
        start = int(len(data) * (0.3 + 0.4 * rng.random()))
        damaged[start:start + 40] = rng.integers(0, 256, 40, dtype=np.uint8).tobytes()
        path = tmp_path / "damaged.mp4"
        path.write_bytes(bytes(damaged))
        try:
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                flags = [f.is_corrupt for f in container.decode(stream)]
        except av.error.FFmpegError:
            continue
        if len(flags) == 48 and any(flags):
            return path, [i for i, bad in enumerate(flags) if bad]
    pytest.fail("no concealed corruption found in 40 tries")


def test_corrupt_data_mid_stream_is_reported(tmp_path, matter):
    """FFmpeg conceals corrupt data (the frames come out smeared): all frames are kept, the damaged ones are named,
    and the exit is non-zero unless --allow-partial."""
    clip = write_video(tmp_path / "clean.mp4", moving_square_frames(48, 320, 240), fps=24)
    damaged, flagged = damaged_copy(clip, tmp_path)
    out = tmp_path / "a.mp4"
    with pytest.raises(PartialInputError, match=rf"corrupt data in frames? {flagged[0]}\b") as info:
        convert(damaged, matter, ConvertOptions([parse_output("alpha", str(out))]))
    assert info.value.frames_ok == 48 and len(decode_all(out)) == 48
    result = convert(damaged, matter, ConvertOptions([parse_output("alpha", str(tmp_path / "b.mp4"))], allow_partial=True))
    assert result.frames == 48 and "corrupt data" in result.warning
    # The clean original passes without a word.
    assert convert(clip, matter, ConvertOptions([parse_output("alpha", str(tmp_path / "c.mp4"))])).warning is None


def test_truncated_input_without_index_is_a_clear_error(tmp_path, matter):
    """Index last (the default mp4 layout): nothing can be decoded; nothing is written."""
    clip = write_video(tmp_path / "long.mp4", moving_square_frames(30, 160, 96), fps=24)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[:-2000])
    with pytest.raises(InputError, match="not a readable video"):
        convert(cut, matter, ConvertOptions([parse_output("alpha", str(tmp_path / "a.mp4"))]))
    assert not (tmp_path / "a.mp4").exists()


def test_no_outputs_and_start_past_end(tmp_path, matter):
    clip = write_video(tmp_path / "in.mp4", moving_square_frames(4, 64, 48), fps=24)
    with pytest.raises(UsageError):
        convert(clip, matter, ConvertOptions([]))
    with pytest.raises(InputError, match="past the end"):
        convert(clip, matter, ConvertOptions([parse_output("alpha", str(tmp_path / "a.mp4"))], start_frame=10))
    assert not (tmp_path / "a.mp4").exists()
