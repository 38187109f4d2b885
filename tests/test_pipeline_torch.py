"""The pipeline on the PyTorch backend: RVM-style calls with a module, and --seq-chunk through the time axis."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import vidmatte  # noqa: E402
from media import assert_subject_and_background, person_clip  # noqa: E402


@pytest.fixture(scope="module")
def pretrained(rvm_onnx_path, tmp_path_factory):
    from vidmatte.models.convert_onnx import load_pretrained

    cache = tmp_path_factory.mktemp("cache")
    shutil.copy(rvm_onnx_path, cache / rvm_onnx_path.name)
    torch.set_num_threads(1)
    return load_pretrained("rvm-mobilenetv3", cache, refine_always=True, quiet=True).eval()


def _alphas(folder):
    return [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE).astype(np.int16) for p in sorted(folder.glob("*.png"))]


def test_rvm_script_with_a_module_and_seq_chunk(tmp_path, pretrained):
    """RVM's README call: convert_video(model, ...) with a MattingNetwork; seq_chunk 4 == frame by frame."""
    clip = tmp_path / "person.mp4"
    person_clip(clip, frames=6, size=128)
    for chunk in (1, 4):
        vidmatte.convert_video(pretrained, input_source=str(clip), output_type="png_sequence",
                               output_alpha=str(tmp_path / f"pha{chunk}"), downsample_ratio=0.5, seq_chunk=chunk,
                               progress=False, device="cpu")
    one, four = _alphas(tmp_path / "pha1"), _alphas(tmp_path / "pha4")
    assert len(one) == len(four) == 6  # 4 + a last chunk of 2
    for i, a in enumerate(one):
        assert_subject_and_background(a / 255, f"frame {i}")  # the person is matted, not an all-0 matte
    assert max(int(np.abs(a - b).max()) for a, b in zip(one, four)) <= 1  # 8-bit PNGs: one rounding level


def test_torch_backend_matches_onnx_in_the_pipeline(tmp_path, rvm_onnx_path, pretrained):
    clip = tmp_path / "person.mp4"
    person_clip(clip, frames=4, size=128)
    vidmatte.convert_video("rvm-mobilenetv3", input_source=str(clip), output_type="png_sequence",
                           output_alpha=str(tmp_path / "ort"), downsample_ratio=0.5, progress=False)
    vidmatte.convert_video(pretrained, input_source=str(clip), output_type="png_sequence",
                           output_alpha=str(tmp_path / "pt"), downsample_ratio=0.5, progress=False, device="cpu")
    ort, pt = _alphas(tmp_path / "ort"), _alphas(tmp_path / "pt")
    assert len(ort) == len(pt) == 4
    for i, a in enumerate(ort):
        assert_subject_and_background(a / 255, f"frame {i}")  # the person is matted, not an all-0 matte
    # 8-bit PNGs: the float results differ by ~1e-5, which can flip a rounding by one level, never more.
    assert max(int(np.abs(a - b).max()) for a, b in zip(ort, pt)) <= 1
