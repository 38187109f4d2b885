"""Wrong options are usage errors (one line, exit 2, nothing written), and no option is silently ignored. Issue 8."""

from __future__ import annotations

from pathlib import Path

import pytest

from media import moving_square_frames, write_video
from vidmatte.cli.main import main
from vidmatte.errors import UsageError


@pytest.fixture()
def clip(tmp_path):
    return write_video(tmp_path / "clip.mp4", moving_square_frames(3, 32, 24), fps=24)


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


BAD = [
    # (name, extra arguments after "convert CLIP", fragment of the message)
    ("negative start", ["--alpha", "a.mp4", "--start-frame", "-5"], "--start-frame must be 0 or more"),
    ("bogus preset", ["--alpha", "a.mp4", "--preset", "bogus"], "x264's presets"),
    ("negative fps", ["--alpha", "a.mp4", "--fps", "-5"], "--fps must be a positive number"),
    ("zero fps", ["--alpha", "a.mp4", "--fps", "0"], "--fps must be a positive number"),
    ("crf past x264", ["--alpha", "a.mp4", "--crf", "99"], "out of range for H.264 outputs (0..51)"),
    ("crf past vp9", ["--alpha", "a.webm", "--crf", "64"], "out of range for VP9 outputs (0..63)"),
    ("crf past x264 with vp9", ["--alpha", "a.webm", "--composition", "c.mp4", "--crf", "60"], "H.264"),
    ("missing background", ["--composition", "c.mp4", "--background", "missing.jpg"], "missing.jpg"),
    ("rgba twice", ["--rgba", "a.mov", "--rgba", "b.mov"], "--rgba given twice"),
    ("16-bit video alpha", ["--alpha", "a.mp4", "--bit-depth", "16"], "16-bit"),
    ("16-bit composition only", ["--composition", "c/", "--bit-depth", "16"], "applies to alpha, foreground and RGBA"),
]


@pytest.mark.parametrize("name, extra, fragment", BAD, ids=[b[0] for b in BAD])
def test_bad_option_is_one_line_exit_2_and_writes_nothing(tmp_path, clip, capsys, monkeypatch, name, extra,
                                                          fragment):
    monkeypatch.chdir(tmp_path)
    before = listing(tmp_path)
    code = exit_code(["convert", str(clip), *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("vidmatte convert: error: ") and len(err.splitlines()) == 1, err
    assert fragment in err
    assert listing(tmp_path) == before


def exit_code(argv: list[str]) -> int:
    """main's exit code, whether it returns it or argparse exits with it."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def test_crf_within_the_ranges_of_the_requested_encoders_is_accepted():
    from vidmatte.io.writers import check_encoding, parse_output

    assert check_encoding([parse_output("alpha", "a.webm")], 60, "superfast") is None
    assert "ignored" in check_encoding([parse_output("alpha", "a/")], 20, "superfast")
    with pytest.raises(UsageError):
        check_encoding([parse_output("alpha", "a.mp4")], -1, "superfast")


def test_fps_on_a_video_input_is_a_warning(tmp_path, clip, capsys, rvm_onnx_path):
    assert main(["convert", str(clip), "--alpha", f"{tmp_path}/a/", "--fps", "50", "--quiet"]) == 0
    assert "--fps is ignored" in capsys.readouterr().err


def test_api_says_overwrite_true(tmp_path, clip, rvm_onnx_path):
    import vidmatte

    target = tmp_path / "a.mp4"
    target.write_bytes(b"precious")
    with pytest.raises(UsageError) as info:
        vidmatte.convert_video(input_source=str(clip), output_alpha=str(target), progress=False)
    assert "overwrite=True" in str(info.value) and "--overwrite" not in str(info.value)
    assert target.read_bytes() == b"precious"


def test_no_keyframe_in_range_names_the_last_frame_processed(tmp_path, capsys, monkeypatch):
    """--end-frame is exclusive: frames 0..2 are processed for --end-frame 3, and the message says so."""
    import cv2
    import numpy as np

    write_video(tmp_path / "clip.mp4", moving_square_frames(6, 32, 24), fps=24)
    mask = np.zeros((24, 32), np.uint8)
    mask[8:16, 8:16] = 255
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    monkeypatch.chdir(tmp_path)
    before = listing(tmp_path)
    code = exit_code(["guided", "clip.mp4", "--keyframe", "5:mask.png", "--alpha", "a/", "--end-frame", "3"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "frames to process (0..2)" in err, err
    assert listing(tmp_path) == before
