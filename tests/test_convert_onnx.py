"""ONNX -> PyTorch conversion of the official RVM weights, and parity with ONNX Runtime on real frames."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("safetensors")

from media import assert_close, assert_subject_and_background, person_batch, person_frames  # noqa: E402
from vidmatte.errors import ModelError  # noqa: E402

REAL_CLIP = "video_people/sam2/05_default_juggle.mp4"
PARITY_FRAMES = 32

# Bounds, relative to max(1, max|value|) (media.assert_close; alpha, foreground and the tanh-bounded states all lie
# in [-1, 1], so the scale is 1). Between two implementations (PyTorch modules vs ONNX Runtime's kernels, other
# summation orders through ~50 layers and the recurrence) this machine shows alpha within 1e-5 and the foreground
# within 3e-5: 1e-4 and 1e-3 leave 10x and more for other CPUs' kernels. The same PyTorch model called with T
# frames at once or one at a time picks other convolution blockings and rounds differently: up to 1.6e-5 here
# (AVX2 EPYC, BatchNorm folded), so 1e-4 leaves ~6x. A wrong state or frame order moves alpha by > 1e-2
# (checked in test_torch_runner_clip_call_equals_frame_calls), 100x these bounds.
PARITY_PHA, PARITY_FGR = 1e-4, 1e-3
SAME_MODEL = 1e-4


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def torch_cache(rvm_onnx_path, tmp_path_factory):
    """A private cache holding a copy of the verified ONNX file, so conversion is exercised from scratch."""
    cache = tmp_path_factory.mktemp("cache")
    shutil.copy(rvm_onnx_path, cache / rvm_onnx_path.name)
    return cache


@pytest.fixture(scope="module")
def pretrained(torch_cache):
    from vidmatte.models.convert_onnx import load_pretrained

    return load_pretrained("rvm-mobilenetv3", torch_cache, refine_always=True, quiet=True)


@pytest.fixture(scope="module")
def ort_runner(rvm_onnx_path):
    from vidmatte.backends.onnx import OnnxRunner

    return OnnxRunner(rvm_onnx_path, threads=1)


def test_every_onnx_conv_maps_to_a_module(rvm_onnx_path):
    from vidmatte.models.convert_onnx import conv_layout, read_onnx_convs
    from vidmatte.models.rvm import MattingNetwork

    convs = read_onnx_convs(rvm_onnx_path)
    layout = conv_layout(MattingNetwork())
    assert len(convs) == len(layout) == 82  # 85 Conv nodes; the box filter weight is used by 4 of them
    for onnx_conv, (name, module, _) in zip(convs, layout):
        assert tuple(onnx_conv.weight.shape) == tuple(module.weight.shape), (onnx_conv.node, name)
    # Folded BatchNorm: the first conv's BN is identity and carries the graph's bias.
    with_bn = [bn for _, _, bn in layout if bn]
    assert "backbone.features.0.1" in with_bn and "refiner.conv.1" in with_bn


def test_conversion_refuses_a_model_that_does_not_fit(rvm_onnx_path):
    from vidmatte.models.convert_onnx import convert_state_dict
    from vidmatte.models.rvm import MattingNetwork

    with pytest.raises(ModelError, match="Conv weights in the graph"):
        convert_state_dict(rvm_onnx_path, MattingNetwork("resnet50"))


def test_converted_weights_are_cached_with_provenance(torch_cache, pretrained):
    from vidmatte.models.convert_onnx import ensure_torch_weights, load_weights
    from vidmatte.models.registry import get_spec

    path = ensure_torch_weights("rvm-mobilenetv3", torch_cache, quiet=True)
    mtime = path.stat().st_mtime_ns
    assert ensure_torch_weights("rvm-mobilenetv3", torch_cache, quiet=True).stat().st_mtime_ns == mtime
    state, meta = load_weights(path)
    assert meta["source_sha256"] == get_spec("rvm-mobilenetv3").sha256
    assert "torch" in get_spec("rvm-mobilenetv3").formats
    assert not list(torch_cache.glob(".*.vidmatte-*"))  # no temporary left (io.atomic names them so)
    assert set(state) == set(pretrained.state_dict())


def test_corrupt_cached_weights_give_a_clear_error(tmp_path, rvm_onnx_path):
    from vidmatte.models.convert_onnx import ensure_torch_weights, torch_weights_path

    shutil.copy(rvm_onnx_path, tmp_path / rvm_onnx_path.name)
    torch_weights_path("rvm-mobilenetv3", tmp_path).write_bytes(b"not a safetensors file")
    with pytest.raises(ModelError, match="not a readable safetensors file"):
        ensure_torch_weights("rvm-mobilenetv3", tmp_path, quiet=True)


def _read_frames(path, count):
    av = pytest.importorskip("av")
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == count:
                break
    return [np.ascontiguousarray(f.transpose(2, 0, 1)[None], dtype=np.float32) / 255 for f in frames]


def _max_diffs(model, ort_runner, frames, ratio, subject=True):
    """Run both backends over consecutive frames with their own state carried, asserting each frame within the
    parity bounds; returns max |diff| of pha, fgr and the largest mean alpha seen. ``subject``: every reference
    alpha must show subject and background (the generated person clips; real footage is checked by its caller)."""
    ort_state, torch_state = ort_runner.initial_state(), [torch.zeros(1, 1, 1, 1)] * 4
    pha_diff = fgr_diff = 0.0
    alpha_seen = 0.0
    for i, src in enumerate(frames):
        fgr_o, pha_o, ort_state = ort_runner(src, ort_state, ratio)
        with torch.inference_mode():
            fgr_t, pha_t, *torch_state = model(torch.from_numpy(src), *torch_state, downsample_ratio=ratio)
        if subject:
            assert_subject_and_background(pha_o, f"ratio {ratio}, frame {i}")
        pha_diff = max(pha_diff, assert_close(pha_t, pha_o, PARITY_PHA, f"pha, ratio {ratio}, frame {i}"))
        fgr_diff = max(fgr_diff, assert_close(fgr_t, fgr_o, PARITY_FGR, f"fgr, ratio {ratio}, frame {i}"))
        alpha_seen = max(alpha_seen, float(pha_o.mean()))
    return pha_diff, fgr_diff, alpha_seen


@pytest.mark.weights
@pytest.mark.shared_data
def test_parity_with_onnxruntime_on_real_frames(pretrained, ort_runner, shared_data):
    frames = _read_frames(shared_data / REAL_CLIP, PARITY_FRAMES)
    assert len(frames) == PARITY_FRAMES
    # A full-body person is a few percent of this 16:9 frame: the share check is on the mean alpha instead.
    pha_diff, fgr_diff, alpha_seen = _max_diffs(pretrained, ort_runner, frames, ratio=0.375, subject=False)
    print(f"\nparity over {len(frames)} real 1280x720 frames at ratio 0.375: "
          f"alpha max|diff| {pha_diff:.2e}, fgr max|diff| {fgr_diff:.2e}")
    assert alpha_seen > 0.02  # the person is actually matted, so the comparison covers real alpha


@pytest.mark.weights
@pytest.mark.shared_data
def test_torch_runner_with_fused_batchnorm_matches_onnxruntime(torch_cache, ort_runner, shared_data):
    """The runner folds BatchNorm into the convolutions for speed; it must still match the ONNX graph."""
    from vidmatte.backends.torch_runner import TorchRunner

    runner = TorchRunner.from_model("rvm-mobilenetv3", device="cpu", cache=str(torch_cache))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in runner.model.modules())
    torch_state, ort_state = runner.initial_state(), ort_runner.initial_state()
    alpha_seen = 0.0
    for i, src in enumerate(_read_frames(shared_data / REAL_CLIP, 8)):
        fgr_t, pha_t, torch_state = runner(src, torch_state, 0.375)
        fgr_o, pha_o, ort_state = ort_runner(src, ort_state, 0.375)
        assert_close(pha_t, pha_o, PARITY_PHA, f"pha, frame {i}")
        assert_close(fgr_t, fgr_o, PARITY_FGR, f"fgr, frame {i}")
        alpha_seen = max(alpha_seen, float(pha_o.mean()))
    assert alpha_seen > 0.02  # the person is matted (a few percent of the frame)


@pytest.mark.weights
def test_parity_with_onnxruntime_on_generated_frames_any_ratio(pretrained, ort_runner):
    """Always runs (no shared data): a real person at an odd size, ratio 1 (the refiner still runs, as in the ONNX
    graph) and 0.6; every reference alpha holds subject and background (checked in _max_diffs)."""
    clip = person_batch(4, 131, 97)
    for ratio in (1.0, 0.6):
        _max_diffs(pretrained, ort_runner, list(clip), ratio)


@pytest.mark.weights
@pytest.mark.shared_data
def test_real_clip_in_one_call_equals_frame_by_frame(pretrained, shared_data):
    frames = _read_frames(shared_data / REAL_CLIP, 6)
    clip = torch.from_numpy(np.concatenate(frames))[None]  # [1,T,3,720,1280]
    with torch.inference_mode():
        _, pha_all, *_ = pretrained(clip, downsample_ratio=0.25)
        state = [None] * 4
        for t in range(clip.shape[1]):
            _, pha, *state = pretrained(clip[:, t], *state, downsample_ratio=0.25)
            assert_close(pha, pha_all[:, t], SAME_MODEL, f"pha, frame {t}")
    assert float(pha_all.mean()) > 0.02  # the person is matted (a few percent of the frame)


@pytest.mark.weights
def test_torch_backend_through_the_public_api(torch_cache):
    import vidmatte

    matter = vidmatte.load(backend="torch", device="cpu", cache=str(torch_cache))
    onnx_matter = vidmatte.load(backend="onnxruntime", cache=str(torch_cache))
    for i, frame in enumerate(person_frames(2, 120, 90)):  # odd-ish size; the second frame uses the state
        fgr, pha = matter.step(frame)
        assert fgr.shape == (90, 120, 3) and pha.shape == (90, 120) and pha.dtype == np.float32
        _, pha_onnx = onnx_matter.step(frame)
        assert_subject_and_background(pha_onnx, f"frame {i}")
        assert_close(pha, pha_onnx, PARITY_PHA, f"pha, frame {i}")


@pytest.mark.weights
def test_torch_runner_clip_call_equals_frame_calls(torch_cache):
    from vidmatte.backends.torch_runner import TorchRunner

    runner = TorchRunner.from_model("rvm-mobilenetv3", device="cpu", cache=str(torch_cache))
    clip = person_batch(4, 160, 120)[:, 0]  # [T,3,H,W]
    fgr_all, pha_all, state_all = runner.run_clip(clip, runner.initial_state(), 0.5)
    state = runner.initial_state()
    for t in range(len(clip)):
        fgr, pha, state = runner(clip[t:t + 1], state, 0.5)
        assert_subject_and_background(pha_all[t], f"frame {t}")
        assert_close(pha[0], pha_all[t], SAME_MODEL, f"pha, frame {t}")
        assert_close(fgr[0], fgr_all[t], SAME_MODEL, f"fgr, frame {t}")
    for i, (a, b) in enumerate(zip(state, state_all)):
        assert_close(a, b, SAME_MODEL, f"state r{i + 1}")
    # The bound has teeth: dropping the state (the last frame run fresh) moves alpha far beyond it.
    _, fresh, _ = runner(clip[-1:], runner.initial_state(), 0.5)
    assert float(np.abs(fresh[0] - pha_all[-1]).max()) > 100 * SAME_MODEL


@pytest.mark.weights
@pytest.mark.shared_data
def test_convert_cli_with_torch_backend_matches_onnxruntime(shared_data, rvm_onnx_path, tmp_path):
    """`vidmatte convert --backend torch --device cpu --end-frame N` writes N alpha frames equal (to 8-bit
    rounding) to the default onnxruntime backend's."""
    from PIL import Image

    from vidmatte.cli.main import main

    shutil.copy(rvm_onnx_path, tmp_path / rvm_onnx_path.name)
    outputs = {}
    for backend in ("onnxruntime", "torch"):
        out = tmp_path / backend
        code = main(["convert", str(shared_data / REAL_CLIP), "--alpha", f"{out}/", "--backend", backend,
                     "--device", "cpu", "--end-frame", "3", "--input-resize", "480x270", "--threads", "1",
                     "--downsample-ratio", "0.5", "--cache-dir", str(tmp_path), "--quiet"])
        assert code == 0
        outputs[backend] = [np.asarray(Image.open(p), np.int16) for p in sorted(out.glob("*.png"))]
    assert len(outputs["torch"]) == len(outputs["onnxruntime"]) == 3
    for a, b in zip(outputs["torch"], outputs["onnxruntime"]):
        assert int(np.abs(a - b).max()) <= 1
    assert max(float(a.mean()) for a in outputs["torch"]) > 5  # a person was matted


def test_unknown_device_is_a_usage_error():
    from vidmatte.backends.torch_runner import pick_device
    from vidmatte.errors import UsageError

    with pytest.raises(UsageError, match="--device must be auto, cpu, cuda"):
        pick_device("tpu")
