"""MattingNetwork: shapes and ranges for both variants, statelessness, clip == frame-by-frame, official key layout."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from media import assert_close  # noqa: E402
from vidmatte.models.rvm import ConvGRU, MattingNetwork, resize_by  # noqa: E402

# The same model called with T frames at once or one at a time: other convolution blockings round differently
# (up to ~1.6e-5 on values within [-1, 1] on an AVX2 EPYC). 1e-4, relative to max(1, max|value|), leaves ~6x;
# a state threaded wrongly or frames out of order move the outputs by > 1e-2.
SAME_MODEL = 1e-4


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module", params=["mobilenetv3", "resnet50"])
def model(request):
    torch.manual_seed(0)
    return MattingNetwork(request.param).eval()


def test_shapes_and_ranges_single_frame(model):
    src = torch.rand(2, 3, 72, 88)
    with torch.no_grad():
        fgr, pha, r1, r2, r3, r4 = model(src, downsample_ratio=0.5)
    assert fgr.shape == (2, 3, 72, 88) and pha.shape == (2, 1, 72, 88)
    assert 0 <= float(fgr.min()) and float(fgr.max()) <= 1 and 0 <= float(pha.min()) and float(pha.max()) <= 1
    # States: half the decoder channels at 1/2, 1/4, 1/8, 1/16 of the downsampled (36x44) input.
    half = {"mobilenetv3": (16, 20, 40, 64), "resnet50": (16, 32, 64, 128)}[model.variant]
    assert [tuple(r.shape) for r in (r1, r2, r3, r4)] == [
        (2, half[0], 18, 22), (2, half[1], 9, 11), (2, half[2], 5, 6), (2, half[3], 3, 3)]


def test_shapes_time_series_and_segmentation(model):
    src = torch.rand(1, 3, 3, 64, 64)
    with torch.no_grad():
        fgr, pha, *rec = model(src)
        seg, *_ = model(src, downsample_ratio=0.5, segmentation_pass=True)
    assert fgr.shape == (1, 3, 3, 64, 64) and pha.shape == (1, 3, 1, 64, 64)
    assert seg.shape == (1, 3, 1, 32, 32)
    assert len(rec) == 4 and rec[0].ndim == 4


def test_clip_in_one_call_equals_frame_by_frame(model):
    torch.manual_seed(1)
    clip = torch.rand(2, 3, 3, 48, 64)
    with torch.no_grad():
        fgr_all, pha_all, *state_all = model(clip, downsample_ratio=0.5)
        state = [None] * 4
        for t in range(clip.shape[1]):
            fgr, pha, *state = model(clip[:, t], *state, downsample_ratio=0.5)
            assert_close(pha, pha_all[:, t], SAME_MODEL, f"pha, frame {t}")
            assert_close(fgr, fgr_all[:, t], SAME_MODEL, f"fgr, frame {t}")
    assert float(pha_all.std()) > 1e-2  # the random network's alpha varies, so the comparison has teeth
    for i, (a, b) in enumerate(zip(state, state_all)):
        assert_close(a, b, SAME_MODEL, f"state r{i + 1}")


def test_state_changes_output_and_module_keeps_none(model):
    """The network is stateless: calling twice with the same inputs gives the same result, and the carried state
    actually matters (a second frame with state differs from the same frame without)."""
    src = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        first = model(src, downsample_ratio=0.5)
        again = model(src, downsample_ratio=0.5)
        with_state = model(src, *first[2:], downsample_ratio=0.5)
    torch.testing.assert_close(first[1], again[1])
    assert float((with_state[2] - first[2]).abs().max()) > 1e-4


def test_gru_none_state_equals_onnx_style_zero_state():
    gru = ConvGRU(4)
    x = torch.rand(2, 4, 6, 7)
    out_none, _ = gru(x, None)
    out_zero, _ = gru(x, torch.zeros(1, 1, 1, 1))
    torch.testing.assert_close(out_none, out_zero)


def test_resize_matches_interpolate_closely_and_sizes_floor():
    x = torch.rand(1, 3, 101, 203)
    ours = resize_by(x, 0.375)
    ref = torch.nn.functional.interpolate(x, scale_factor=0.375, mode="bilinear", align_corners=False,
                                          recompute_scale_factor=False)
    assert ours.shape == ref.shape == (1, 3, 37, 76)
    # Two bilinear kernels (ours exports to ONNX Resize): same weights, other summation order; values in [0, 1].
    assert_close(ours, ref, 1e-4, "resize")


# Facts about the official checkpoints' key layout (torchvision names + RVM module names), written out by hand
# from the published architecture, so the check does not just compare the model with itself.
OFFICIAL_KEYS = {
    "mobilenetv3": {
        "backbone.features.0.0.weight": (16, 3, 3, 3),
        "backbone.features.0.1.running_var": (16,),
        "backbone.features.1.block.0.0.weight": (16, 1, 3, 3),
        "backbone.features.4.block.2.fc1.weight": (24, 72, 1, 1),
        "backbone.features.13.block.1.0.weight": (672, 1, 5, 5),
        "backbone.features.16.0.weight": (960, 160, 1, 1),
        "aspp.aspp1.0.weight": (128, 960, 1, 1),
        "aspp.aspp2.1.weight": (128, 960, 1, 1),
        "decoder.decode4.gru.ih.0.weight": (128, 128, 3, 3),
        "decoder.decode3.conv.0.weight": (80, 128 + 40 + 3, 3, 3),
        "decoder.decode0.conv.3.weight": (16, 16, 3, 3),
        "project_mat.conv.weight": (4, 16, 1, 1),
        "project_seg.conv.bias": (1,),
        "refiner.box_filter.weight": (4, 1, 3, 3),
        "refiner.conv.6.bias": (4,),
    },
    "resnet50": {
        "backbone.conv1.weight": (64, 3, 7, 7),
        "backbone.layer1.0.downsample.0.weight": (256, 64, 1, 1),
        "backbone.layer4.0.conv2.weight": (512, 512, 3, 3),
        "backbone.layer4.2.conv3.weight": (2048, 512, 1, 1),
        "aspp.aspp1.0.weight": (256, 2048, 1, 1),
        "decoder.decode3.conv.0.weight": (128, 256 + 512 + 3, 3, 3),
        "decoder.decode1.gru.hh.0.weight": (16, 32, 3, 3),
        "refiner.conv.0.weight": (16, 24, 1, 1),
    },
}


@pytest.mark.parametrize("variant", ["mobilenetv3", "resnet50"])
def test_official_key_layout_loads_strictly(variant, tmp_path):
    from vidmatte.backends.torch_runner import load_model_file
    from vidmatte.errors import ModelError

    model = MattingNetwork(variant)
    state = model.state_dict()
    for key, shape in OFFICIAL_KEYS[variant].items():
        assert key in state, key
        assert tuple(state[key].shape) == shape, key
    assert not any(k.startswith(("backbone.classifier", "backbone.fc", "backbone.avgpool")) for k in state)
    # An official-style .pth is a bare state dict; it loads strictly and the variant is recognised from its keys.
    path = tmp_path / f"rvm_{variant}.pth"
    torch.save({k: v.clone() for k, v in state.items()}, path)
    loaded = load_model_file(path)
    assert loaded.variant == variant
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, state[key]), key
    # One renamed key: strict loading refuses, with a one-line error.
    broken = dict(state)
    broken["aspp.aspp1.0.weights"] = broken.pop("aspp.aspp1.0.weight")
    torch.save(broken, path)
    with pytest.raises(ModelError, match="does not match"):
        load_model_file(path)


def test_bad_arguments_raise_value_error():
    with pytest.raises(ValueError, match="unknown variant"):
        MattingNetwork("mobilenetv2")
    with pytest.raises(ValueError, match="src must be"):
        MattingNetwork().eval()(torch.rand(1, 4, 32, 32))


def test_fast_guided_filter_variant_and_constant_reproduction():
    from vidmatte.models.rvm import FastGuidedFilterRefiner

    model = MattingNetwork("mobilenetv3", refiner="fast_guided_filter").eval()
    with torch.no_grad():
        fgr, pha, *_ = model(torch.rand(1, 3, 64, 96), downsample_ratio=0.5)
    assert fgr.shape == (1, 3, 64, 96) and pha.shape == (1, 1, 64, 96)
    # A guided filter maps a constant target to the same constant, whatever the guide looks like (away from the
    # border: like the original, the box filter pads with zeros, which pulls the means down at the edge).
    refiner = FastGuidedFilterRefiner()
    fine = torch.rand(1, 3, 40, 40)
    base = torch.nn.functional.interpolate(fine, size=(20, 20), mode="bilinear", align_corners=False)
    out_fgr, out_pha = refiner(fine, base, torch.full((1, 3, 20, 20), 0.3), torch.full((1, 1, 20, 20), 0.7), None)
    inner = (..., slice(4, -4), slice(4, -4))
    # Exact in arithmetic; float32 box means and the eps-regularised division leave ~1e-6 (margin 100x).
    assert_close(out_fgr[inner], torch.full_like(out_fgr[inner], 0.3), 1e-4, "fgr of a constant")
    assert_close(out_pha[inner], torch.full_like(out_pha[inner], 0.7), 1e-4, "pha of a constant")
