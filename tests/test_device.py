"""--device for every mode (issue 24): one place picks the provider, an unusable GPU is a one-line exit 2 naming what
is missing (never a silent CPU fallback), the run says its device in --json, and the I/O-bound ONNX loop (the state
kept on the device between frames) gives the plain loop's alphas, tested through the CPU provider. Tests marked
``gpu`` run only where a CUDA device can be used."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from media import moving_square_frames, write_video
from vidmatte.backends.device import (CPU, Device, check_device, ort_cuda_problem, parse_device, resolve_ort,
                                      resolve_torch)
from vidmatte.cli.main import main
from vidmatte.errors import UsageError

CUDA_USABLE = ort_cuda_problem(0) is None
no_cuda_here = pytest.mark.skipif(CUDA_USABLE, reason="this machine can run ONNX Runtime on CUDA")
gpu = pytest.mark.gpu
needs_gpu = pytest.mark.skipif(not CUDA_USABLE, reason="no usable CUDA device (ONNX Runtime's CUDA provider)")
REAL_CLIP = "video_people/matanyone_test-sample0/test-sample0.mp4"


@pytest.fixture()
def clip(tmp_path):
    return write_video(tmp_path / "clip.mp4", moving_square_frames(3, 32, 24), fps=24)


def run_cli(args, capsys) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- the device's text ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, parsed", [("auto", ("auto", None)), ("cpu", ("cpu", None)), ("CUDA", ("cuda", None)),
                                          ("cuda:1", ("cuda", 1)), (None, ("auto", None))])
def test_device_text_is_parsed(text, parsed):
    assert parse_device(text) == parsed


@pytest.mark.parametrize("text", ["tpu", "cuda:", "cuda:x", "gpu", "cuda:-1", "cpu:0"])
def test_bad_device_text_is_a_one_line_usage_error(text):
    with pytest.raises(UsageError, match=r"--device must be auto, cpu, cuda or cuda:N"):
        check_device(text)


def test_cpu_device_runs_ort_on_the_cpu_provider_only():
    assert resolve_ort("cpu") == CPU and CPU.providers() == ["CPUExecutionProvider"] and CPU.name == "cpu"
    cuda = Device("cuda", 1)
    assert cuda.name == "cuda:1" and cuda.providers()[0] == ("CUDAExecutionProvider", {"device_id": 1})
    with pytest.raises(UsageError, match="--backend torch"):
        resolve_ort("mps")


# --- CPU-only machines: auto picks the CPU, cuda says why it cannot ---------------------------------------------
@no_cuda_here
def test_auto_picks_the_cpu_without_a_usable_gpu():
    assert resolve_ort("auto") == CPU


@no_cuda_here
@pytest.mark.parametrize("text", ["cuda", "cuda:0", "cuda:3"])
def test_asking_for_cuda_without_it_names_what_is_missing(text):
    import onnxruntime as ort

    with pytest.raises(UsageError) as info:
        resolve_ort(text)
    message = str(info.value)
    assert message.startswith(f"--device {text}: ") and "\n" not in message
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert "onnxruntime-gpu" in message and "pip install" in message  # the package is what is missing first
    else:
        assert any(word in message for word in ("driver", "CUDA device", "cuDNN"))


def test_torch_device_without_cuda_says_why():
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this PyTorch can use CUDA")
    assert resolve_torch("cpu") == CPU and resolve_torch("auto").kind in ("cpu", "mps")
    with pytest.raises(UsageError, match=r"^--device cuda: .*(without CUDA|driver|device)"):
        resolve_torch("cuda")


@no_cuda_here
@pytest.mark.parametrize("mode, extra", [
    ("convert", []),
    ("guided", ["--keyframe", "0:KEY", "--prior", "none"]),
    ("background", ["--plate", "PLATE"]),
])
def test_cuda_on_a_machine_without_it_exits_2_with_the_reason(tmp_path, clip, capsys, mode, extra):
    """Every mode's command: exit 2, one line naming what is missing, no traceback, nothing written."""
    import cv2

    key, plate = tmp_path / "key.png", tmp_path / "plate.png"
    cv2.imwrite(str(key), np.pad(np.full((8, 8), 255, np.uint8), ((8, 8), (12, 12))))
    cv2.imwrite(str(plate), np.zeros((24, 32, 3), np.uint8))
    extra = [f"0:{key}" if a == "0:KEY" else str(plate) if a == "PLATE" else a for a in extra]
    out = tmp_path / "out"
    code, stdout, err = run_cli([mode, clip, "--alpha", f"{out}.mp4", "--device", "cuda", *extra], capsys)
    assert code == 2, err
    assert err.startswith(f"vidmatte {mode}: error: --device cuda: ") and len(err.splitlines()) == 1, err
    assert "Traceback" not in err and stdout == ""
    assert not list(tmp_path.glob("out*"))


@pytest.mark.parametrize("mode", ["convert", "guided", "background"])
def test_bad_device_exits_2_on_every_mode(tmp_path, clip, capsys, mode):
    extra = {"guided": ["--keyframe", "0:k.png"], "background": ["--plate", "p.png"]}.get(mode, [])
    code, _, err = run_cli([mode, clip, "--alpha", tmp_path / "a.mp4", "--device", "tpu", *extra], capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "--device must be auto, cpu, cuda or cuda:N, not 'tpu'" in err


def test_batch_refuses_a_bad_device_before_any_item_runs(tmp_path, clip, capsys):
    code, _, err = run_cli(["batch", clip, "--output-dir", tmp_path / "out", "--device", "tpu", "--quiet"], capsys)
    assert code == 2 and "--device must be" in err, err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_batch_manifest_device_column_is_checked():
    from vidmatte.cli.batch import _coercer

    coerce = _coercer()
    assert coerce("device", "cuda:1") == ("device", "cuda:1")
    with pytest.raises(ValueError, match="--device must be"):
        coerce("device", "tpu")


def test_page_settings_carry_a_checked_device(tmp_path):
    pytest.importorskip("pydantic")
    from vidmatte.web.runs import _mode_settings, check_settings

    assert check_settings({})["device"] == "auto"
    settings = check_settings({"device": "cuda:0"})
    assert settings["device"] == "cuda:0"
    with pytest.raises(UsageError, match="device must be auto, cpu, cuda or cuda:N"):
        check_settings({"device": "tpu"})
    (tmp_path / "input.mp4").write_bytes(b"")
    run = _mode_settings({"settings": settings, "keyframes": {}}, "convert", tmp_path, "m", None, None)
    assert run["device"] == "cuda:0"  # the page's choice reaches the mode's settings


def test_every_mode_shares_the_device_setting():
    from vidmatte.modes import MODES

    for mode in MODES.values():
        assert mode.settings(input="x").device == "auto"
        assert mode.settings_from({"input": "x", "device": "cpu"}).device == "cpu"


# --- the run says where it ran ------------------------------------------------------------------------------------
def test_guided_json_says_the_device(tmp_path, clip, capsys):
    """No weights needed: the classical method with the flow propagator and no prior."""
    import cv2

    key = tmp_path / "key.png"
    cv2.imwrite(str(key), np.pad(np.full((8, 8), 255, np.uint8), ((8, 8), (12, 12))))
    code, out, err = run_cli(["guided", clip, "--keyframe", f"0:{key}", "--prior", "none", "--alpha",
                              tmp_path / "a.mp4", "--device", "cpu", "--json", "--quiet"], capsys)
    assert code == 0, err
    assert json.loads(out)["device"] == "cpu"


def test_convert_json_and_debug_say_the_device(tmp_path, clip, capsys, rvm_onnx_path):
    code, out, err = run_cli(["convert", clip, "--alpha", tmp_path / "a.mp4", "--json", "--quiet", "--debug",
                              "--model", rvm_onnx_path], capsys)
    assert code == 0, err
    expected = "cpu" if not CUDA_USABLE else "cuda:0"
    assert json.loads(out)["device"] == expected
    assert f"device: auto -> {expected}" in err


def test_api_reports_and_refuses_devices(tmp_path, clip, rvm_onnx_path):
    from vidmatte import api

    result = api.convert_video(str(rvm_onnx_path), str(clip), output_alpha=str(tmp_path / "a.mp4"), device="cpu",
                               progress=False)
    assert result.details["device"] == "cpu" and result.to_json()["device"] == "cpu"
    if not CUDA_USABLE:
        with pytest.raises(UsageError, match="^--device cuda: "):
            api.convert_video(str(rvm_onnx_path), str(clip), output_alpha=str(tmp_path / "b.mp4"), device="cuda",
                              progress=False)
        assert not (tmp_path / "b.mp4").exists()


# --- I/O binding: the state kept on the device, the same alphas as the plain loop ----------------------------------
def _alphas(runner, frames) -> list[np.ndarray]:
    from vidmatte.matters.recurrent import RecurrentMatter

    matter = RecurrentMatter(runner, 0.25, warmup=0)
    return [matter.step(frame)[1] for frame in frames]


def _real_frames(shared_data: Path, count: int) -> list[np.ndarray]:
    import av

    with av.open(str(shared_data / REAL_CLIP)) as container:
        return [f.to_ndarray(format="rgb24") for _, f in zip(range(count), container.decode(video=0))]


@pytest.mark.parametrize("whole", [False, True], ids=["split", "whole"])
def test_io_bound_loop_equals_the_plain_loop_on_the_cpu_provider(shared_data, rvm_onnx_path, whole):
    """The binding path (state as OrtValues between frames, frames bound once, only the needed outputs fetched) is
    the CUDA path; on the CPU provider it must give the plain session.run loop's alphas on a real 1080p clip."""
    import onnxruntime as ort

    from vidmatte.backends.onnx import OnnxRunner, SplitOnnxRunner

    frames = _real_frames(shared_data, 5)
    cls = OnnxRunner if whole else SplitOnnxRunner
    plain = cls.from_model(str(rvm_onnx_path), threads=2, device="cpu", io_binding=False)
    bound = cls.from_model(str(rvm_onnx_path), threads=2, device="cpu", io_binding=True)
    assert type(plain) is cls and plain._bound is None and bound._bound is not None
    expected, got = _alphas(plain, frames), _alphas(bound, frames)
    assert len(got) == 5
    for a, b in zip(expected, got):
        assert a.shape == (1080, 1920)
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-6)
    # the bound path really carried the state as OrtValues, not numpy arrays
    state = bound.initial_state()
    if whole:
        _, _, state = bound(np.zeros((1, 3, 64, 64), np.float32), state, 0.5)
    else:
        _, state = bound.coarse(np.zeros((1, 3, 64, 64), np.float32), state)
    assert all(isinstance(s, ort.OrtValue) for s in state)


def test_cpu_keeps_the_plain_loop_by_default(rvm_onnx_path):
    from vidmatte.backends import open_runner

    runner = open_runner(str(rvm_onnx_path), device="cpu")
    assert runner.device == CPU and runner.io_binding is False and str(runner.device) == "cpu"


# --- on a GPU (skipped without one) ---------------------------------------------------------------------------------
@gpu
@needs_gpu
def test_cuda_alpha_matches_the_cpu_within_one_level(shared_data, rvm_onnx_path):
    from vidmatte.backends import open_runner

    frames = _real_frames(shared_data, 8)
    cpu = _alphas(open_runner(str(rvm_onnx_path), device="cpu"), frames)
    cuda_runner = open_runner(str(rvm_onnx_path), device="cuda")
    assert cuda_runner.device.kind == "cuda" and cuda_runner.io_binding
    assert "CUDAExecutionProvider" in cuda_runner.coarse_session.get_providers()
    for a, b in zip(cpu, _alphas(cuda_runner, frames)):
        assert float(np.abs(a - b).max()) <= 1 / 255


@gpu
@needs_gpu
def test_auto_picks_cuda_where_it_loads():
    assert resolve_ort("auto") == Device("cuda", 0)


@pytest.mark.parametrize("mode, extra", [
    ("guided", ["--keyframe", "0:KEY", "--method", "ftpvm", "--checkpoint", "missing.pth"]),
    ("background", ["--plate", "PLATE", "--method", "neural", "--checkpoint", "missing.pth"]),
])
def test_pytorch_networks_refuse_an_unusable_cuda_before_loading(tmp_path, clip, capsys, mode, extra):
    """The PyTorch methods ask PyTorch (not ONNX Runtime) whether CUDA can be used, before their weights load."""
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this PyTorch can use CUDA")
    import cv2

    key, plate = tmp_path / "key.png", tmp_path / "plate.png"
    cv2.imwrite(str(key), np.pad(np.full((8, 8), 255, np.uint8), ((8, 8), (12, 12))))
    cv2.imwrite(str(plate), np.zeros((24, 32, 3), np.uint8))
    extra = [f"0:{key}" if a == "0:KEY" else str(plate) if a == "PLATE" else a for a in extra]
    code, _, err = run_cli([mode, clip, "--alpha", tmp_path / "a.mp4", "--device", "cuda", *extra], capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"vidmatte {mode}: error: --device cuda: ") and "PyTorch" in err
