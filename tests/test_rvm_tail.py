"""The fast ONNX path (graph cut before its full-resolution tail + vidmatte.models.rvm_tail) against the official
graph."""

from __future__ import annotations

import numpy as np
import pytest

from media import assert_close, assert_subject_and_background, official_onnx, person_frames
from vidmatte.models import rvm_tail
from vidmatte.backends.onnx import SplitOnnxRunner, OnnxRunner
from vidmatte.matte import DenseMatte, CoefficientMatte
from vidmatte.matters import RecurrentMatter


# The fast path runs the same graph's ops in ONNX Runtime up to the cut and vidmatte's own code for the tail: float
# results within 1e-4 of the official graph (relative to max(1, max|value|); values in [0, 1]), well above the
# <= 2e-5 rounding seen here and far below a wrong coefficient or resampling (> 1e-2). 8-bit pictures: 1 level.
FAST_PATH = 1e-4


@pytest.fixture(scope="module")
def fast_runner(rvm_onnx_path):
    runner = SplitOnnxRunner.from_model(str(rvm_onnx_path))
    assert isinstance(runner, SplitOnnxRunner), "the official graph must be cut, not run whole"
    return runner


# Sizes and ratios where the two resamplings are not simple multiples: odd sizes, a ratio that does not divide the
# size, ratio 1 (the network at full size, where the guided filter is an identity resample), a tiny frame.
@pytest.mark.parametrize("width,height,ratio", [(320, 180, 0.25), (333, 211, 0.37), (192, 192, 1.0), (97, 61, 0.5)])
def test_fast_path_equals_the_official_graph(rvm_onnx_path, fast_runner, width, height, ratio):
    frames = person_frames(4, width, height)
    matter = RecurrentMatter(fast_runner, ratio)
    # At 97x61 the network sees 48x30 and keeps less of the person (~9 % of the pixels above 0.5): still a matte.
    share = 0.05 if width < 100 else 0.1
    for i, ((fgr_ref, pha_ref), frame) in enumerate(zip(official_onnx(rvm_onnx_path, frames, ratio), frames)):
        fgr, pha = matter.step(frame)
        assert_subject_and_background(pha_ref, f"frame {i}", share)  # a real matte of the person, not all 0
        assert_close(pha, pha_ref, FAST_PATH, f"pha, frame {i}")
        assert_close(fgr, fgr_ref, FAST_PATH, f"fgr, frame {i}")


def test_pictures_equal_the_blend_of_the_official_outputs(rvm_onnx_path, fast_runner):
    frames = person_frames(2, 256, 144)
    (fgr_ref, pha_ref), = official_onnx(rvm_onnx_path, frames[:1], 0.5)
    assert_subject_and_background(pha_ref)  # the blend has both terms
    matter = RecurrentMatter(fast_runner, 0.5)
    matte = matter.matte([matter.prepare(frames[0])])[0]
    assert isinstance(matte, CoefficientMatte)
    background = np.random.default_rng(0).integers(0, 256, (144, 256, 3), dtype=np.uint8)
    pictures = matte.pictures(background, foreground=True, alpha=True)
    a = pha_ref[..., None]
    expected = fgr_ref * 255 * a + background * (1 - a)
    assert np.abs(pictures.composition - expected).max() <= 1.0
    assert np.abs(pictures.foreground - fgr_ref * 255).max() <= 1.0
    assert np.abs(pictures.alpha_u8 - pha_ref * 255).max() <= 1.0
    assert_close(pictures.alpha, pha_ref, FAST_PATH, "alpha")
    # A solid colour given as one pixel gives the same composition as the full-size colour image.
    green = np.array([120, 255, 155], np.uint8)
    one_pixel = matte.pictures(green.reshape(1, 1, 3)).composition
    np.testing.assert_array_equal(one_pixel, matte.pictures(np.broadcast_to(green, (144, 256, 3)).copy()).composition)
    # The dense result (official outputs) makes the same pictures within rounding.
    dense = DenseMatte(np.ascontiguousarray(fgr_ref.transpose(2, 0, 1)), pha_ref).pictures(background, True, True)
    assert np.abs(dense.composition.astype(int) - pictures.composition).max() <= 1
    assert np.abs(dense.foreground.astype(int) - pictures.foreground).max() <= 1


def test_only_the_pictures_asked_for_are_made():
    frame = np.full((8, 12, 3), 100, np.uint8)
    coefficients = np.zeros((8, 2, 3), np.float32)  # A = 0, b = 0: fgr = the frame, alpha = 0
    made = rvm_tail.apply(frame, coefficients, alpha_u8=True)
    assert set(made) == {"alpha_u8"} and made["alpha_u8"].max() == 0
    made = rvm_tail.apply(frame, coefficients, background=np.zeros((1, 1, 3), np.uint8), composition=True,
                        foreground_u8=True)
    assert set(made) == {"composition", "foreground_u8"}
    np.testing.assert_array_equal(made["foreground_u8"], frame)
    np.testing.assert_array_equal(made["composition"], 0)  # alpha 0: all background
    with pytest.raises(ValueError):
        rvm_tail.apply(frame, coefficients, composition=True)


def test_a_graph_without_the_guided_filter_tail_runs_whole(tmp_path):
    """Another model with RVM's inputs and outputs but no guided filter: the runner falls back, results intact."""
    from onnx import TensorProto, helper, save

    def value(name, shape):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)

    nodes = [helper.make_node("Identity", ["src"], ["fgr"]),
             helper.make_node("ReduceMean", ["src"], ["pha"], axes=[1], keepdims=1),
             *[helper.make_node("Identity", [f"r{i}i"], [f"r{i}o"]) for i in range(1, 5)]]
    graph = helper.make_graph(
        nodes, "not_rvm",
        [value("src", [1, 3, "h", "w"]), *[value(f"r{i}i", [1, 1, 1, 1]) for i in range(1, 5)],
         value("downsample_ratio", [1])],
        [value("fgr", [1, 3, "h", "w"]), value("pha", [1, 1, "h", "w"]),
         *[value(f"r{i}o", [1, 1, 1, 1]) for i in range(1, 5)]])
    path = tmp_path / "plain.onnx"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # what every ONNX Runtime release reads
    save(model, str(path))
    runner = SplitOnnxRunner.from_model(str(path))
    assert type(runner) is OnnxRunner
    frame = np.random.default_rng(1).integers(0, 256, (6, 10, 3), dtype=np.uint8)
    fgr, pha = RecurrentMatter(runner, 0.5).step(frame)
    np.testing.assert_allclose(fgr, frame / 255, atol=1e-6)
    np.testing.assert_allclose(pha, frame.mean(axis=2) / 255, atol=1e-5)


def test_step_matte_pictures_match_step(fast_runner):
    """The app-facing calls agree: step's float outputs and step_matte's uint8 pictures describe one result."""
    frames = person_frames(2, 160, 96)
    first, second = RecurrentMatter(fast_runner, 0.5), RecurrentMatter(fast_runner, 0.5)
    for frame in frames:
        fgr, pha = first.step(frame)
        assert_subject_and_background(pha)
        pictures = second.step_matte(frame).pictures(np.zeros((1, 1, 3), np.uint8), foreground=True, alpha=True)
        np.testing.assert_array_equal(pictures.alpha, pha)
        assert np.abs(pictures.foreground - fgr * 255).max() <= 0.5 + 1e-3
        assert np.abs(pictures.composition - fgr * pha[..., None] * 255).max() <= 1.0


def test_without_numba_the_graph_runs_whole(rvm_onnx_path, monkeypatch):
    """numba lags new Python releases; where it cannot be imported, the official graph runs whole, same results."""
    import sys

    monkeypatch.setitem(sys.modules, "numba", None)  # makes `import numba` raise ImportError
    runner = SplitOnnxRunner.from_model(str(rvm_onnx_path))
    assert type(runner) is OnnxRunner
    frame = person_frames(1, 160, 120)[0]
    fgr, pha = RecurrentMatter(runner, 0.5).step(frame)
    (fgr_ref, pha_ref), = official_onnx(rvm_onnx_path, [frame], 0.5)
    assert_subject_and_background(pha_ref)
    # The very graph both times, by ONNX Runtime; only session options (threads) differ: 1e-5 (seen: 3e-6).
    assert_close(pha, pha_ref, 1e-5, "pha")
    assert_close(fgr, fgr_ref, 1e-5, "fgr")
