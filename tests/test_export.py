"""Exports: ONNX with the official interface (checked through ONNX Runtime), TorchScript, and refusal to write."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from media import assert_close, assert_subject_and_background, person_batch  # noqa: E402
from vidmatte.errors import ModelError  # noqa: E402

# Bounds, relative to max(1, max|value|) (media.assert_close). An export against the module it came from, run by
# another engine (ONNX Runtime, TorchScript): alpha and foreground within 1e-3, the tolerance export_onnx itself
# enforces (export.TOLERANCE["fp32"]); observed diffs are ~1e-6, so these bounds leave a wide margin while a
# wrong op, a dropped BatchNorm or a mishandled ratio moves values by > 1e-2. Two ONNX graphs of the same weights
# both run by ONNX Runtime (ours vs the official file): alpha within 1e-4, states within 1e-3.
EXPORT = 1e-3


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def random_model():
    """A randomly initialised network: unlike the pretrained one on generated frames, its alpha is not all 0."""
    from vidmatte.models.rvm import MattingNetwork

    torch.manual_seed(0)
    model = MattingNetwork("mobilenetv3", refine_always=True).eval()
    for m in model.modules():  # non-trivial BatchNorm statistics, so folding/constant-folding bugs would show
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model


@pytest.fixture(scope="module")
def exported_random(random_model, tmp_path_factory):
    from vidmatte.backends.export import export_onnx

    path = tmp_path_factory.mktemp("export") / "random.onnx"
    report = export_onnx(random_model, path, quiet=True)
    return path, report


def test_onnx_export_has_the_official_interface(exported_random):
    import onnx

    path, report = exported_random
    assert report.agrees() and report.fgr_max_diff <= EXPORT and report.pha_max_diff <= EXPORT
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["src", "r1i", "r2i", "r3i", "r4i", "downsample_ratio"]
    assert [o.name for o in graph.output] == ["fgr", "pha", "r1o", "r2o", "r3o", "r4o"]
    src_dims = [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert src_dims == ["batch_size", 3, "height", "width"]
    assert any(n.op_type == "Resize" for n in graph.node)
    assert not list(path.parent.glob(".*.vidmatte-*"))  # no temporary left (io.atomic names them so)


def test_onnx_export_runs_at_other_sizes_and_ratios(exported_random, random_model):
    import onnxruntime as ort

    path, _ = exported_random
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    src = rng.random((3, 3, 75, 101), dtype=np.float32)
    zeros = np.zeros((1, 1, 1, 1), np.float32)
    feed = {"src": src, "downsample_ratio": np.array([0.6], np.float32), **{f"r{i}i": zeros for i in range(1, 5)}}
    fgr, pha, *_ = session.run(None, feed)
    with torch.no_grad():
        fgr_t, pha_t, *_ = random_model(torch.from_numpy(src), downsample_ratio=0.6)
    assert pha.shape == (3, 1, 75, 101)
    assert float(pha_t.std()) > 1e-2  # alpha varies, so the comparison has teeth
    assert_close(pha, pha_t, EXPORT, "pha")
    assert_close(fgr, fgr_t, EXPORT, "fgr")


@pytest.mark.weights
def test_pretrained_export_matches_the_official_graph(rvm_onnx_path, tmp_path):
    """Our export of the converted weights and the shipped ONNX file agree on a real person, state carried."""
    import onnxruntime as ort

    from vidmatte.backends.export import export_onnx
    from vidmatte.models.convert_onnx import load_pretrained

    shutil.copy(rvm_onnx_path, tmp_path / rvm_onnx_path.name)
    model = load_pretrained("rvm-mobilenetv3", tmp_path, refine_always=True, quiet=True)
    out = tmp_path / "ours.onnx"
    export_onnx(model, out, opset=12, quiet=True)
    ours = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    official = ort.InferenceSession(str(rvm_onnx_path), providers=["CPUExecutionProvider"])
    states = {name: [np.zeros((1, 1, 1, 1), np.float32)] * 4 for name in ("ours", "official")}
    for t, frame in enumerate(person_batch(4, 160, 120)):
        results = {}
        for name, session in (("ours", ours), ("official", official)):
            feed = {"src": frame, "downsample_ratio": np.array([0.375], np.float32)}
            feed.update({f"r{i + 1}i": s for i, s in enumerate(states[name])})
            fgr, pha, *states[name] = session.run(["fgr", "pha", "r1o", "r2o", "r3o", "r4o"], feed)
            results[name] = pha
        assert_subject_and_background(results["official"], f"frame {t}")
        assert_close(results["ours"], results["official"], 1e-4, f"pha, frame {t}")
        for i, (a, b) in enumerate(zip(states["ours"], states["official"])):
            assert_close(a, b, 1e-3, f"state r{i + 1}, frame {t}")


@pytest.mark.weights
@pytest.mark.shared_data
def test_export_check_on_real_frames(rvm_onnx_path, shared_data, tmp_path, capsys):
    """On real footage the pretrained alpha is far from 0, so the export check compares real mattes."""
    from vidmatte.backends.export import read_check_clip
    from vidmatte.cli.main import main

    video = shared_data / "video_people" / "sam2" / "05_default_juggle.mp4"
    clip = read_check_clip(video)
    assert clip.shape == (3, 1, 3, 360, 640)
    shutil.copy(rvm_onnx_path, tmp_path / rvm_onnx_path.name)
    out = tmp_path / "checked.onnx"
    assert main(["export", "rvm-mobilenetv3", "--format", "onnx", "--output", str(out), "--cache-dir", str(tmp_path),
                 "--check-video", str(video)]) == 0
    err = capsys.readouterr().err
    pha_diff = float(err.split("|pha diff| ")[1].split(",")[0])
    assert out.exists() and pha_diff <= EXPORT
    import onnxruntime as ort

    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    zeros = np.zeros((1, 1, 1, 1), np.float32)
    pha = session.run(["pha"], {"src": clip[0], "downsample_ratio": np.array([0.375], np.float32),
                                **{f"r{i}i": zeros for i in range(1, 5)}})[0]
    assert float(pha.mean()) > 0.02  # the person is matted: the check compared real alpha


def test_export_refuses_to_write_on_disagreement(random_model, tmp_path, monkeypatch):
    from vidmatte.backends import export

    monkeypatch.setitem(export.TOLERANCE, "fp32", 0.0)
    monkeypatch.setitem(export.STATE_TOLERANCE, "fp32", 0.0)
    out = tmp_path / "model.onnx"
    with pytest.raises(ModelError, match="nothing written"):
        export.export_onnx(random_model, out, quiet=True)
    assert list(tmp_path.iterdir()) == []


def test_torchscript_export_is_dynamic_in_size_and_ratio(random_model, tmp_path):
    from vidmatte.backends.export import export_torchscript

    out = tmp_path / "model.pt"
    report = export_torchscript(random_model, out, quiet=True)
    assert report.agrees()
    loaded = torch.jit.load(str(out))
    src = torch.rand(2, 3, 70, 90)
    zeros = [torch.zeros(1, 1, 1, 1)] * 4
    for ratio in (0.5, 0.3):
        with torch.no_grad():
            fgr, pha, *state = loaded(src, *zeros, torch.tensor([ratio]))
            _, pha_ref, *state_ref = random_model(src, downsample_ratio=ratio)
        assert pha.shape == (2, 1, 70, 90)
        assert state[0].shape == state_ref[0].shape  # the ratio really changed the internal resolution
        assert float(pha_ref.std()) > 1e-2  # alpha varies, so the comparison has teeth
        assert_close(pha, pha_ref, EXPORT, f"pha, ratio {ratio}")


def test_export_cli_errors_are_one_line(tmp_path, capsys):
    from vidmatte.cli.main import main

    existing = tmp_path / "exists.onnx"
    existing.write_bytes(b"keep me")
    assert main(["export", "rvm-mobilenetv3", "--format", "onnx", "--output", str(existing)]) == 1
    err = capsys.readouterr().err
    assert "exists; pass --force" in err and "Traceback" not in err and err.count("\n") == 1
    assert existing.read_bytes() == b"keep me"
    assert main(["export", "no-such-model", "--format", "onnx", "--output", str(tmp_path / "x.onnx")]) == 2
    assert "unknown model" in capsys.readouterr().err
    assert main(["export", "rvm-mobilenetv3", "--format", "onnx", "--opset", "9",
                 "--output", str(tmp_path / "y.onnx")]) == 2
    assert not (tmp_path / "x.onnx").exists() and not (tmp_path / "y.onnx").exists()


@pytest.mark.weights
def test_export_cli_writes_a_checked_file(rvm_onnx_path, tmp_path, capsys):
    from vidmatte.cli.main import main

    shutil.copy(rvm_onnx_path, tmp_path / rvm_onnx_path.name)
    out = tmp_path / "rvm.onnx"
    code = main(["export", "rvm-mobilenetv3", "--format", "onnx", "--output", str(out),
                 "--cache-dir", str(tmp_path)])
    assert code == 0 and out.exists()
    assert "max |fgr diff|" in capsys.readouterr().err


def test_exports_take_the_fast_path(exported_random):
    """vidmatte's own exports are cut like the official graph, and the fast path agrees with running them whole.
    Both run the same graph's ops in ONNX Runtime, the tail in vidmatte's code: 1e-4 (observed ~1e-6)."""
    from vidmatte.backends.onnx import SplitOnnxRunner, OnnxRunner
    from vidmatte.matters import RecurrentMatter

    path, _ = exported_random
    fast = SplitOnnxRunner.from_model(str(path))
    assert isinstance(fast, SplitOnnxRunner)
    frames = np.random.default_rng(2).integers(0, 256, (3, 75, 101, 3), dtype=np.uint8)
    cut, whole = RecurrentMatter(fast, 0.6), RecurrentMatter(OnnxRunner(path), 0.6)
    for frame in frames:
        (fgr_a, pha_a), (fgr_b, pha_b) = cut.step(frame), whole.step(frame)
        assert float(pha_b.std()) > 1e-2  # alpha varies, so the comparison has teeth
        assert_close(pha_a, pha_b, 1e-4, "pha")
        assert_close(fgr_a, fgr_b, 1e-4, "fgr")
