"""The Python API of guided matting: convert_guided (and convert_video with keyframes=) equal the CLI's output on the
same input; the streaming form carries the latest keyframe forward and takes a new one mid-stream."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from test_guided_matting import _cli, clip_fixtures, key_trimap

import vidmatte
from vidmatte.errors import GuidanceError, UsageError

FRAMES = 12


clip, frames = clip_fixtures(FRAMES)


def alphas(folder) -> list[bytes]:
    return [(folder / f"{i:05d}.png").read_bytes() for i in range(FRAMES)]


def test_convert_guided_equals_the_cli(tmp_path, frames, clip):
    mask = clip[0][1] > 0.5  # a boolean mask array, as an app holds it; the CLI reads the same mask from a file
    cv2.imwrite(str(tmp_path / "mask.png"), mask.astype(np.uint8) * 255)
    proc = _cli(frames, "--keyframe", f"0:{tmp_path / 'mask.png'}", "--band", "4", "--alpha", f"{tmp_path}/cli/",
                "--trimaps", f"{tmp_path}/cli_tri/")
    assert proc.returncode == 0, proc.stderr
    result = vidmatte.convert_guided(str(frames), {0: mask}, output_type="png_sequence",
                                     output_alpha=str(tmp_path / "api"), output_trimaps=str(tmp_path / "api_tri"),
                                     band=4, prior="none", progress=False)
    assert result.details.pop("device") in ("cpu", "cuda:0")  # where its networks would run (--device auto)
    confidence = result.details.pop("confidence")  # the subject tracker's, per frame after the keyframe
    assert set(confidence) == {str(i) for i in range(1, FRAMES)} and all(0 <= c <= 1 for c in confidence.values())
    assert result.frames == FRAMES and result.details == {"reused_frames": 0, "rvm_prior": False,
                                                          "contradicting_frames": [], "jumping_frames": [],
                                                          "doubtful_frames": [], "suggested_keyframe": None}
    assert alphas(tmp_path / "api") == alphas(tmp_path / "cli")
    assert alphas(tmp_path / "api_tri") == alphas(tmp_path / "cli_tri")
    got = cv2.imread(str(tmp_path / "api" / "00011.png"), cv2.IMREAD_GRAYSCALE) / 255.0
    assert np.abs(got - clip[11][1]).mean() < 0.03  # and it is a matte of the subject, not just equal files

    # convert_video with keyframes= is the same call (RVM's name, guided matting's options)
    vidmatte.convert_video(input_source=str(frames), output_type="png_sequence", output_alpha=str(tmp_path / "cv"),
                           progress=False, keyframes={0: str(tmp_path / "mask.png")}, band=4, prior="none")
    assert alphas(tmp_path / "cv") == alphas(tmp_path / "cli")


@pytest.mark.parametrize("keyframes, error, fragment", [
    ({}, GuidanceError, "no keyframe"),
    ({FRAMES: np.zeros((144, 256), np.uint8)}, GuidanceError, "outside the clip"),
    ({0: np.zeros((144, 256), np.uint8)}, GuidanceError, "foreground"),
    ({0: np.zeros((50, 50), np.uint8)}, GuidanceError, "not the same picture"),
    ({-1: "x.png"}, GuidanceError, "not a frame number"),
    ({0: np.zeros((144, 256), np.complex64)}, GuidanceError, "must hold"),
])
def test_convert_guided_refuses_bad_guidance_before_writing(tmp_path, frames, keyframes, error, fragment):
    with pytest.raises(error, match=fragment):
        vidmatte.convert_guided(str(frames), keyframes, output_alpha=str(tmp_path / "a.mp4"), prior="none",
                                progress=False)
    assert not (tmp_path / "a.mp4").exists()
    with pytest.raises(UsageError, match="prior"):
        vidmatte.convert_guided(str(frames), {0: "x.png"}, output_alpha=str(tmp_path / "a.mp4"), prior="maybe")


def test_streaming_follows_the_latest_keyframe(clip):
    g = vidmatte.load_guided(keyframe=key_trimap(clip[0][1]), prior="none")
    results = [g.step(frame) for frame, _ in clip[:6]]
    fgr, pha = results[-1]
    assert fgr.shape == (144, 256, 3) and pha.shape == (144, 256) and pha.dtype == np.float32
    assert np.abs(pha - clip[5][1]).mean() < 0.03

    # A new keyframe mid-stream replaces the anchor: from there on, the same as a stream started at that frame.
    restarted = vidmatte.load_guided(prior="none")
    later = [g.step(clip[6][0], keyframe=key_trimap(clip[6][1]))] + [g.step(f) for f, _ in clip[7:]]
    fresh = [restarted.step(clip[6][0], keyframe=key_trimap(clip[6][1]))] + [restarted.step(f) for f, _ in clip[7:]]
    for (_, a), (_, b) in zip(later, fresh):
        assert np.array_equal(a, b)
    assert np.abs(later[-1][1] - clip[FRAMES - 1][1]).mean() < 0.03
    assert set(np.unique(g.trimap)) <= {0, 128, 255}

    g.reset()  # the construction's keyframe applies again after a reset
    assert np.array_equal(g.step(clip[0][0])[1], results[0][1])


def test_streaming_needs_a_keyframe_first_and_frames_of_its_size(clip):
    g = vidmatte.load_guided(prior="none")
    with pytest.raises(GuidanceError, match="no keyframe yet"):
        g.step(clip[0][0])
    g.step(clip[0][0], keyframe=key_trimap(clip[0][1]))
    with pytest.raises(GuidanceError, match="give a new keyframe"):
        g.step(clip[1][0][:100])
