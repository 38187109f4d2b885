"""Round trips through real codecs: frame count, size, fps/timestamps, rotation, audio and alpha survive."""

from __future__ import annotations

import subprocess
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from media import audio_seconds, decode_all, moving_square_frames, write_video
from vidmatte.errors import InputError, UsageError
from vidmatte.io.probe import probe
from vidmatte.io.readers import iter_rgba, open_reader
from vidmatte.io.writers import check_writable, open_writer, parse_output


def _write(spec_path: str, kind: str, images, fps=24, time_base=Fraction(1, 24), pts=None, **kw):
    spec = parse_output(kind, spec_path, kw.pop("bit_depth", 8))
    h, w = images[0].shape[:2]
    writer = open_writer(spec, w, h, time_base, fps, **kw)
    for i, image in enumerate(images):
        writer.write(image, i if pts is None else pts[i])
    writer.close()
    return spec.path


def test_video_reader_counts_sizes_and_range(tmp_path):
    frames = moving_square_frames(20, 96, 64)
    clip = write_video(tmp_path / "in.mp4", frames, fps=25)
    info = probe(clip)
    assert (info.kind, info.width, info.height, info.frames, info.fps) == ("video", 96, 64, 20, 25.0)
    got = list(open_reader(clip, start_frame=5, end_frame=12))
    assert [f.index for f in got] == list(range(5, 12))
    assert np.abs(got[0].image.astype(int) - frames[5].astype(int)).mean() < 3  # crf 10: nearly lossless


def test_image_folder_reader_natural_sort_and_size_check(tmp_path):
    for i in (10, 2, 1):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), np.full((8, 6, 3), i, np.uint8))
    frames = list(open_reader(tmp_path))
    assert [int(f.image[0, 0, 0]) for f in frames] == [1, 2, 10]
    cv2.imwrite(str(tmp_path / "f11.png"), np.zeros((9, 6, 3), np.uint8))
    with pytest.raises(InputError, match="all images must have one size"):
        list(open_reader(tmp_path))


def test_glob_pattern_is_an_image_sequence(tmp_path):
    for cam in ("cam1", "cam2"):
        for i in (10, 2, 1):
            cv2.imwrite(str(tmp_path / f"{cam}_{i}.png"), np.full((8, 6, 3), i + (100 if cam == "cam2" else 0),
                                                                   np.uint8))
    info = probe(tmp_path / "cam1_*.png")
    assert (info.kind, info.frames, info.width, info.height) == ("images", 3, 6, 8)
    assert [int(f.image[0, 0, 0]) for f in open_reader(tmp_path / "cam1_*.png")] == [1, 2, 10]
    with pytest.raises(InputError, match="no images .* match the pattern"):
        probe(tmp_path / "cam3_*.png")


@pytest.mark.parametrize("ext", [".mp4", ".mov", ".mkv", ".webm"])
def test_video_writer_keeps_count_size_and_fps(tmp_path, ext):
    frames = moving_square_frames(12, 96, 64)
    out = _write(str(tmp_path / f"out{ext}"), "composition", frames, fps=30, time_base=Fraction(1, 30))
    info = probe(out)
    assert (info.width, info.height) == (96, 64)
    assert len(decode_all(out)) == 12
    assert info.fps == pytest.approx(30, rel=0.01)


def test_variable_frame_rate_timestamps_survive(tmp_path):
    tb = Fraction(1, 1000)
    times_ms = [0, 40, 120, 130, 300, 333]
    out = _write(str(tmp_path / "vfr.mkv"), "composition", moving_square_frames(6), fps=20, time_base=tb,
                 pts=times_ms)
    with av.open(str(out)) as c:
        got = [round(float(f.time) * 1000) for f in c.decode(video=0)]
    assert got == times_ms


def test_odd_sizes_are_padded_for_420_codecs(tmp_path):
    frames = moving_square_frames(4, 95, 63)
    out = _write(str(tmp_path / "odd.mp4"), "composition", frames)
    assert (probe(out).width, probe(out).height) == (96, 64)
    png = _write(str(tmp_path / "odd") + "/", "composition", frames)
    assert cv2.imread(str(png / "00000.png")).shape == (63, 95, 3)  # PNG keeps the exact size


@pytest.mark.parametrize("ext, tolerance", [(".mov", 2), (".webm", 10), (".mkv", 0)])
def test_rgba_containers_carry_alpha(tmp_path, ext, tolerance):
    rgb = moving_square_frames(6, 64, 48)
    ramp = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (48, 1))
    images = [np.dstack([f, ramp]) for f in rgb]
    out = _write(str(tmp_path / f"rgba{ext}"), "rgba", images)
    decoded = list(iter_rgba(out))
    assert len(decoded) == 6
    err = np.abs(decoded[2][..., 3].astype(int) - ramp.astype(int))
    assert err.mean() <= tolerance / 2 and err.max() <= max(tolerance * 3, 1)


def test_png_alpha_16_bit(tmp_path):
    alpha = (np.linspace(0, 1, 40 * 30).reshape(30, 40) * 65535).astype(np.uint16)
    out = _write(str(tmp_path / "a16") + "/", "alpha", [alpha], bit_depth=16)
    back = cv2.imread(str(out / "00000.png"), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16 and np.array_equal(back, alpha)


def test_writer_abort_leaves_nothing(tmp_path):
    spec = parse_output("composition", str(tmp_path / "gone.mp4"))
    writer = open_writer(spec, 64, 48, Fraction(1, 24), 24)
    writer.write(moving_square_frames(1, 64, 48)[0], 0)
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_existing_output_is_refused_and_untouched(tmp_path):
    target = tmp_path / "keep.mp4"
    target.write_bytes(b"precious")
    with pytest.raises(UsageError, match="--overwrite"):
        check_writable(parse_output("alpha", str(target)), overwrite=False)
    assert target.read_bytes() == b"precious"


def test_unsupported_extension_and_alpha_in_mp4_are_usage_errors():
    with pytest.raises(UsageError, match="unsupported output extension"):
        parse_output("alpha", "x.avi")
    with pytest.raises(UsageError, match="cannot carry alpha"):
        parse_output("rgba", "x.mp4")


def _ffmpeg() -> str:
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    return imageio_ffmpeg.get_ffmpeg_exe()


def test_rotated_phone_video_is_read_upright(tmp_path):
    """A clip whose display matrix says 'rotate 90': we must see what FFmpeg's autorotate shows."""
    ffmpeg = _ffmpeg()
    plain = write_video(tmp_path / "plain.mp4", moving_square_frames(3, 96, 64))
    rotated = tmp_path / "rotated.mp4"
    subprocess.run([ffmpeg, "-v", "error", "-display_rotation", "90", "-i", str(plain), "-c", "copy", str(rotated)],
                   check=True)
    reference = tmp_path / "ref.png"
    subprocess.run([ffmpeg, "-v", "error", "-i", str(rotated), "-frames:v", "1", str(reference)], check=True)
    want = cv2.cvtColor(cv2.imread(str(reference)), cv2.COLOR_BGR2RGB)
    info = probe(rotated)
    assert info.rotation in (90, 270) and (info.width, info.height) == (64, 96)
    got = next(iter(open_reader(rotated))).image
    assert got.shape == want.shape
    assert np.abs(got.astype(int) - want.astype(int)).mean() < 3


def test_audio_is_carried_into_the_composition(tmp_path):
    from vidmatte.io.audio import AudioTrack

    src = write_video(tmp_path / "talk.mp4", moving_square_frames(24), fps=24, audio_seconds=1.0)
    for ext in (".mp4", ".webm"):  # stream copy (aac in mp4) and re-encode (aac -> opus in webm)
        out = _write(str(tmp_path / f"comp{ext}"), "composition", decode_all(src), audio=AudioTrack(src))
        assert audio_seconds(out) == pytest.approx(1.0, abs=0.1)


def test_audio_is_trimmed_with_the_frame_range(tmp_path):
    from vidmatte.io.audio import AudioTrack

    src = write_video(tmp_path / "talk.mp4", moving_square_frames(48), fps=24, audio_seconds=2.0)
    out = _write(str(tmp_path / "cut.mp4"), "composition", decode_all(src)[12:36], audio=AudioTrack(src, 0.5, 1.5))
    assert audio_seconds(out) == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize("ext, codec, pix_fmt", [
    (".avi", "mpeg4", "yuv420p"),
    (".gif", "gif", "rgb8"),
    (".mkv", "libx264", "yuv420p10le"),  # 10-bit
    (".webm", "libvpx-vp9", "yuv420p"),
    (".mov", "prores_ks", "yuv422p10le"),
])
def test_reader_decodes_common_containers_and_pixel_formats(tmp_path, ext, codec, pix_fmt):
    frames = moving_square_frames(5, 96, 64)
    clip = write_video(tmp_path / f"in{ext}", frames, fps=10, codec=codec, pix_fmt=pix_fmt)
    got = list(open_reader(clip))
    assert len(got) == 5
    assert got[0].image.shape == (64, 96, 3) and got[0].image.dtype == np.uint8
    # the red top-left marker survives any of these codecs
    assert got[3].image[2:6, 2:6, 0].mean() > 180 and got[3].image[2:6, 2:6, 1].mean() < 90


def test_h264_colours_and_alpha_levels_survive(tmp_path):
    """The fast RGB/gray -> I420 path keeps colours and alpha levels (what a player or an alpha reader sees)."""
    y, x = np.mgrid[0:64, 0:96]
    image = np.stack([x * 2.5, y * 3.5, 200 - x], -1).clip(0, 255).astype(np.uint8)
    out = _write(str(tmp_path / "c.mp4"), "composition", [image] * 3)
    back = decode_all(out)[1].astype(int)
    assert np.abs(back - image.astype(int)).mean() < 2.0
    alpha = np.tile(np.linspace(0, 255, 96).astype(np.uint8), (64, 1))
    out = _write(str(tmp_path / "a.mp4"), "alpha", [alpha] * 3)
    gray = decode_all(out, "gray")[1].astype(int)
    assert np.abs(gray - alpha.astype(int)).max() <= 3
