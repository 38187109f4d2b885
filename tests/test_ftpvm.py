"""FTP-VM (``vidmatte.models.ftpvm``): the official parameter layout, the paper's interfaces and their agreement,
recurrent state, the downsample path, RVM's encoder as a start, and ``vidmatte guided --method ftpvm`` end to end."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ftpvm_official_layout import JSON_PATH, official_layout
from guided_network_checks import (assert_resumes_exactly, keyframe_clip, opaque_run, quarter_alpha_run,
                                   refused_weights, run_cli, scratch_config, smoke_training, state_from_layout,
                                   unusable_checkpoints)
from vidmatte.models.ftpvm import (FastTrimapPropagationVideoMatting, fuse_with_given_trimap,
                                   fuse_with_predicted_trimap, grey_guided_upsample, read_memory)


def official_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict built only from the official names and shapes (tests/ftpvm_official_state_dict.json), with
    random values: BatchNorm statistics away from identity so eval-mode BN does something."""
    return state_from_layout(JSON_PATH, seed)


@pytest.fixture(scope="module")
def model():
    net = FastTrimapPropagationVideoMatting().eval()
    net.load_state_dict(official_state(), strict=True)
    return net


def clip(b: int, t: int, h: int = 64, w: int = 96, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(b * t, 3, h // 8, w // 8, generator=gen)
    return torch.nn.functional.interpolate(coarse, (h, w), mode="bilinear").unflatten(0, (b, t))


def trimaps(b: int, t: int, h: int = 64, w: int = 96) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    r = torch.hypot(yy - h / 2, xx - w / 2)
    tri = torch.where(r < h / 5, 1.0, torch.where(r < h / 3, 0.5, 0.0))
    return tri.expand(b, t, 1, h, w).clone()


def max_diff(a, b) -> float:
    if isinstance(a, (list, tuple)):
        return max(max_diff(x, y) for x, y in zip(a, b))
    return (a - b).abs().max().item()


# --- the official layout -----------------------------------------------------------------------------------------

def test_the_layout_list_is_the_official_modules_read_from_their_definitions():
    written = json.loads(JSON_PATH.read_text())
    assert written == official_layout(), "regenerate with: python tests/ftpvm_official_layout.py"
    assert len(written) == 442
    assert written["backbone.backbone.blocks.4.1.se.conv_reduce.weight"]["shape"] == [168, 672, 1, 1]
    assert all(entry["from"] for entry in written.values())


def test_a_state_dict_in_the_official_layout_loads_strictly_and_is_used():
    net = FastTrimapPropagationVideoMatting()
    state = official_state(seed=3)
    net.load_state_dict(state, strict=True)
    assert torch.equal(net.bottleneck_fuse.project_key.conv.weight, state["bottleneck_fuse.project_key.conv.weight"])
    missing = dict(state)
    missing.pop("mat_decoder.decode2.gru.hh.0.bias")
    with pytest.raises(RuntimeError, match="decode2.gru.hh.0.bias"):
        net.load_state_dict(missing, strict=True)
    state["seg_project.conv.weight"] = torch.zeros(4, 16, 1, 1)
    with pytest.raises(RuntimeError, match="size mismatch"):
        net.load_state_dict(state, strict=True)


def test_the_default_constructor_downloads_nothing_and_needs_no_files(monkeypatch):
    import urllib.request

    def refuse(*args, **kwargs):
        raise AssertionError("network access")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    assert sum(p.numel() for p in FastTrimapPropagationVideoMatting().parameters()) > 1_000_000


# --- shapes, memory and recurrent state --------------------------------------------------------------------------

def test_forward_shapes_for_clips_and_several_memory_frames(model):
    q, m, tri = clip(2, 3), clip(2, 2, seed=2), trimaps(2, 2)
    with torch.no_grad():
        logits, boundary, full, (rec_seg, rec_mat) = model(q, m, tri)
    assert logits.shape == (2, 3, 3, 64, 96)
    assert boundary.shape == full.shape == (2, 3, 1, 64, 96)
    assert [r.shape for r in rec_seg] == [(2, 48, 8, 12), (2, 64, 4, 6)]
    assert [r.shape for r in rec_mat] == [(2, 8, 64, 96), (2, 16, 32, 48)]
    assert 0 <= boundary.min() and boundary.max() <= 1
    assert full.std() > 0


def test_forward_equals_encoding_the_memory_once_then_forward_with_memory(model):
    q, m, tri = clip(1, 3), clip(1, 2, seed=2), trimaps(1, 2)
    with torch.no_grad():
        for ratio in (1, 0.5):
            direct = model(q, m, tri, downsample_ratio=ratio)
            memory = model.encode_imgs_to_value(m, tri, downsample_ratio=ratio)
            assert memory[0].shape[:3] == (1, 2, 112) and memory[1].shape[:3] == (1, 112, 2)
            split = model.forward_with_memory(q, *memory, downsample_ratio=ratio)
            assert max_diff(direct, split) < 1e-5


def test_the_recurrent_state_carries_a_clip_across_calls(model):
    """T frames in one call == one frame per call with the state handed back in; starting afresh differs."""
    q, m, tri = clip(1, 3), clip(1, 1, seed=2), trimaps(1, 1)
    with torch.no_grad():
        whole = model(q, m, tri)
        rec, parts = None, []
        for t in range(3):
            out = model(q[:, t:t + 1], m, tri, *(rec or []))
            parts.append(out)
            rec = out[3]
        fresh = model(q[:, 2:3], m, tri)
    # Same sums batched otherwise (values within +-1.5): observed at most 1.2e-6 on ATEN_CPU_CAPABILITY=default/avx2/
    # avx512, 1 and 2 threads, 8x below the bound; a state not carried differs by > 1e-3 (below).
    for k in range(3):
        assert max_diff(whole[k], torch.cat([p[k] for p in parts], dim=1)) < 1e-5
    assert max_diff(whole[3], parts[-1][3]) < 1e-5
    assert max_diff(fresh[1], parts[2][1]) > 1e-3, "the state must change the result"


def test_the_memory_changes_what_the_query_reads(model):
    q, m = clip(1, 1), clip(1, 1, seed=2)
    with torch.no_grad():
        a = model(q, m, trimaps(1, 1))[1]
        b = model(q, m, 1 - trimaps(1, 1))[1]
    assert max_diff(a, b) > 1e-3


def test_memory_read_is_attention_over_every_memory_position():
    gen = torch.Generator().manual_seed(0)
    mk, qk, mv = (torch.randn(s, generator=gen) for s in ((1, 4, 2, 3, 3), (1, 4, 1, 3, 3), (1, 5, 2, 3, 3)))
    read = read_memory(mk, qk, mv)
    keys, values = mk.flatten(2)[0], mv.flatten(2)[0]  # [4, 18], [5, 18]
    for n in (0, 4, 8):
        weights = torch.softmax(keys.T @ qk.flatten(2)[0, :, n] / 2, dim=0)
        assert torch.allclose(read[0, 0].flatten(1)[:, n], values @ weights, atol=1e-6)


def test_segmentation_pass_returns_trimaps_and_their_state_only(model):
    with torch.no_grad():
        logits, rec_seg = model(clip(1, 2), clip(1, 1), trimaps(1, 1), segmentation_pass=True)
    assert logits.shape == (1, 2, 3, 64, 96) and len(rec_seg) == 2


# --- the full matte and the downsample path ----------------------------------------------------------------------

def test_the_full_matte_takes_the_boundary_matte_only_where_the_trimap_is_unknown():
    logits = torch.tensor([[5.0, 0, 0], [0, 5, 0], [0, 0, 5]]).T.reshape(1, 1, 3, 1, 3)
    boundary = torch.full((1, 1, 1, 1, 3), 0.3)
    assert fuse_with_predicted_trimap(logits, boundary).flatten().tolist() == pytest.approx([0, 0.3, 1])
    given = torch.tensor([0.0, 0.5, 1.0]).reshape(1, 1, 1, 1, 3)
    assert fuse_with_given_trimap(given, boundary).flatten().tolist() == pytest.approx([0, 0.3, 1])


def test_downsample_ratio_runs_small_and_returns_full_size_mattes(model):
    q, m, tri = clip(1, 2, 72, 104), clip(1, 1, 72, 104, seed=2), trimaps(1, 1, 72, 104)
    with torch.no_grad():
        logits, boundary, full, _ = model(q, m, tri, downsample_ratio=0.5)
    assert logits.shape[-2:] == boundary.shape[-2:] == (48, 64)  # 36x52 padded to multiples of 16
    assert full.shape == (1, 2, 1, 72, 104)


def test_the_guided_upsample_keeps_alpha_that_follows_the_grey_level():
    """Where alpha is a linear function of the grey frame, the fast guided filter reproduces it at full size."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 96), torch.linspace(0, 1, 128), indexing="ij")
    fine = torch.stack([0.2 + 0.6 * xx * yy, 0.1 + 0.5 * yy, 0.3 + 0.4 * xx])[None]
    grey = fine.mean(1, keepdim=True)
    base = torch.nn.functional.interpolate(fine, (24, 32), mode="bilinear", align_corners=False)
    alpha = 2 * base.mean(1, keepdim=True) - 0.4
    up = grey_guided_upsample(fine, base, alpha)
    truth = 2 * grey - 0.4
    inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))
    assert (up - truth)[inner].abs().max() < 2e-3
    naive = torch.nn.functional.interpolate(alpha, (96, 128), mode="nearest")
    assert (naive - truth)[inner].abs().max() > 10 * (up - truth)[inner].abs().max()


# --- RVM's encoder as a start --------------------------------------------------------------------------------------

def test_rvm_encoder_weights_map_onto_every_backbone_layer():
    from vidmatte.models.backbones.mobilenetv3_features import rvm_name_pairs
    from vidmatte.models.rvm import MattingNetwork

    rvm = MattingNetwork().eval()
    for p in rvm.backbone.parameters():
        p.data.normal_()
    net = FastTrimapPropagationVideoMatting().eval()
    net.init_backbone_from_rvm(rvm.state_dict())  # strict inside: every backbone tensor is set
    assert len(rvm_name_pairs()) == len({m for m, _ in rvm.backbone.named_modules() if "." in m and
                                         isinstance(_, (torch.nn.Conv2d, torch.nn.BatchNorm2d))})
    assert torch.equal(net.backbone.backbone.blocks[4][1].se.conv_reduce.weight,
                       rvm.backbone.features[12].block[2].fc1.weight)
    # Same function where the zero padding does not reach: RVM normalises its input, FTP-VM's stem absorbs that.
    x = torch.nn.functional.interpolate(clip(1, 1)[0], (64, 96), mode="bilinear")
    with torch.no_grad():
        ours = net.backbone.backbone(x)[0][..., 2:-2, 2:-2]  # stem and first depthwise: 2 px
        theirs = rvm.backbone(x)[0][..., 2:-2, 2:-2]
    assert (ours - theirs).abs().max() < 1e-3 * theirs.abs().max()


# --- vidmatte guided --method ftpvm -------------------------------------------------------------------------------

def constant_checkpoint(path: Path, classes: tuple[float, float, float], boundary: float) -> Path:
    """A tiny checkpoint whose trimap head always says one class and whose boundary matte is ``boundary``."""
    net = FastTrimapPropagationVideoMatting()
    state = net.state_dict()
    state["seg_project.conv.weight"].zero_()
    state["seg_project.conv.bias"].copy_(torch.tensor(classes))
    state["mat_project.conv.weight"].zero_()
    state["mat_project.conv.bias"].fill_(math.log(boundary / (1 - boundary)))
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory):
    return keyframe_clip(tmp_path_factory.mktemp("ftpvm"), 6)  # not multiples of 16: the matter pads


run = run_cli


def test_guided_method_ftpvm_end_to_end_with_a_checkpoint_made_here(short_clip, tmp_path):
    ckpt = constant_checkpoint(tmp_path / "tiny.pth", (0.0, 5.0, 0.0), 0.25)
    quarter_alpha_run("ftpvm", short_clip, tmp_path, ckpt, keyframe=3, frames=6)


def test_the_predicted_foreground_class_gives_opaque_alpha(short_clip, tmp_path):
    opaque_run("ftpvm", short_clip, tmp_path, constant_checkpoint(tmp_path / "fg.pth", (0.0, 0.0, 5.0), 0.25), 4)


@unusable_checkpoints("FTP-VM")
def test_ftpvm_without_usable_weights_is_a_one_line_error(short_clip, tmp_path, checkpoint, code, fragment):
    refused_weights("ftpvm", short_clip, tmp_path, checkpoint, code, fragment)


def test_a_state_dict_of_another_network_is_refused_in_one_line(short_clip, tmp_path):
    from vidmatte.models.rvm import MattingNetwork

    torch.save(MattingNetwork().state_dict(), tmp_path / "rvm.pth")
    proc = run("guided", short_clip / "clip.mp4", "--keyframe", f"0:{short_clip / 'key.png'}", "--method", "ftpvm",
               "--checkpoint", tmp_path / "rvm.pth", "--alpha", f"{tmp_path}/alpha/")
    assert proc.returncode == 1 and "is not an FTP-VM checkpoint" in proc.stderr
    assert "Traceback" not in proc.stderr


# --- the memory bank: --mem-every / --max-memory -------------------------------------------------------------------

def drive(matter, frames: list[np.ndarray]) -> list[np.ndarray]:
    """The pipeline's calls on a matter (``matters.base``), in memory: alpha of every frame of the writing pass."""
    from vidmatte.matters.base import Span

    matter.reset()
    alphas = []
    for p in matter.passes(Span(0, len(frames), True)):
        matter.begin_pass(p)
        for index in range(p.start, p.stop):
            mattes = matter.matte([matter.prepare(frames[index], index)])
            alphas += [m.pha for m in mattes] if p.writes else []
    return alphas


@pytest.fixture(scope="module")
def textured_frames():
    return [(f.permute(1, 2, 0).numpy() * 255).astype(np.uint8) for f in clip(1, 6, seed=4)[0]]


def test_mem_every_adds_the_networks_own_frames_and_max_memory_bounds_them(model, textured_frames):
    from vidmatte.matters.ftpvm import FtpvmMatter

    key = {0: (trimaps(1, 1)[0, 0, 0].numpy() * 255).round().astype(np.uint8)}
    alone = drive(FtpvmMatter(model, key), textured_frames)
    every_frame = drive(FtpvmMatter(model, key, memory_every=1, bank_size=5), textured_frames)
    one_kept = drive(FtpvmMatter(model, key, memory_every=1, bank_size=1), textured_frames)
    every_second = drive(FtpvmMatter(model, key, memory_every=2, bank_size=5), textured_frames)
    # Frame 1 joins the memory after its own matte: frames 0-1 read the keyframe alone, frame 2 reads frame 1 too.
    assert all(np.array_equal(a, b) for a, b in zip(alone[:2], every_frame[:2]))
    assert np.abs(alone[2] - every_frame[2]).max() > 1e-4
    # Keeping one frame forgets frame 1 when frame 2 joins: frame 3 reads [key, 2] instead of [key, 1, 2].
    assert all(np.array_equal(a, b) for a, b in zip(one_kept[:3], every_frame[:3]))
    assert np.abs(one_kept[3] - every_frame[3]).max() > 1e-4
    # Every second frame: frame 2 is the first to join, so frames 0-2 are those of the keyframe alone.
    assert all(np.array_equal(a, b) for a, b in zip(alone[:3], every_second[:3]))
    assert np.abs(alone[3] - every_second[3]).max() > 1e-4


def guided_job(short_clip, tmp_path, *flags):
    """The (job, matter) ``vidmatte guided`` builds from these flags, with a checkpoint in the official layout."""
    from vidmatte.cli.main import build_parser
    from vidmatte.job import JobControl
    from vidmatte.modes import MODES

    ckpt = tmp_path / "official.pth"
    torch.save(official_state(), ckpt)
    args = build_parser().parse_args(["guided", str(short_clip / "clip.mp4"), "--keyframe",
                                      f"0:{short_clip / 'key.png'}", "--alpha", f"{tmp_path}/a/", "--checkpoint",
                                      str(ckpt), *flags])
    mode = MODES["guided"]
    return mode.build(mode.settings_from(vars(args)), JobControl())


@pytest.mark.parametrize("flags, memory_every, bank_size", [
    ((), 0, 5),  # unset: the official inference's memory_save_iter -1 (off) and MemoryBank(top_k=5)
    (("--mem-every", "4"), 4, 5),
    (("--mem-every", "2", "--max-memory", "3"), 2, 3),
])
def test_the_bank_flags_reach_ftpvm_and_unset_ones_keep_the_official_defaults(short_clip, tmp_path, flags,
                                                                               memory_every, bank_size):
    _, matter = guided_job(short_clip, tmp_path, "--method", "ftpvm", *flags)
    assert (matter.memory_every, matter.bank_size) == (memory_every, bank_size)


@pytest.mark.weights  # the memory propagator reads RVM encoder features
def test_unset_bank_flags_keep_the_memory_propagators_own_defaults(short_clip, tmp_path):
    _, matter = guided_job(short_clip, tmp_path, "--propagator", "memory")
    assert (matter.settings["propagator"]["mem_every"], matter.settings["propagator"]["max_memory"]) == (5, 6)
    _, matter = guided_job(short_clip, tmp_path, "--propagator", "memory", "--mem-every", "3")
    assert (matter.settings["propagator"]["mem_every"], matter.settings["propagator"]["max_memory"]) == (3, 6)


@pytest.mark.parametrize("flags, fragment", [
    (("--mem-every", "0"), "--mem-every and --max-memory must be at least 1"),
    (("--max-memory", "0", "--mem-every", "2"), "--mem-every and --max-memory must be at least 1"),
    (("--finetune-steps", "3"), "--finetune-steps is not for --method ftpvm"),
])
def test_bad_bank_flags_for_ftpvm_are_one_line_errors(short_clip, tmp_path, flags, fragment):
    proc = run("guided", short_clip / "clip.mp4", "--keyframe", f"0:{short_clip / 'key.png'}", "--method", "ftpvm",
               "--checkpoint", "rvm-init", *flags, "--alpha", f"{tmp_path}/alpha/")
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0]
    assert not (tmp_path / "alpha").exists()


def test_max_memory_without_mem_every_says_it_does_nothing_for_ftpvm(short_clip, tmp_path):
    ckpt = constant_checkpoint(tmp_path / "tiny.pth", (0.0, 5.0, 0.0), 0.25)
    proc = run("guided", short_clip / "clip.mp4", "--keyframe", f"0:{short_clip / 'key.png'}", "--method", "ftpvm",
               "--checkpoint", ckpt, "--max-memory", "3", "--alpha", f"{tmp_path}/alpha/", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "--max-memory has no effect on --method ftpvm without --mem-every" in proc.stderr


# --- the Python API: convert_guided / convert_video with method="ftpvm" ------------------------------------------

def pngs(folder: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted(folder.glob("*.png"))]


def test_the_api_runs_ftpvm_as_the_cli_does(short_clip, tmp_path):
    import vidmatte

    ckpt = tmp_path / "official.pth"
    torch.save(official_state(), ckpt)
    key = short_clip / "key.png"
    proc = run("guided", short_clip / "clip.mp4", "--keyframe", f"1:{key}", "--method", "ftpvm", "--checkpoint",
               ckpt, "--mem-every", "2", "--alpha", f"{tmp_path}/cli/", "--quiet")
    assert proc.returncode == 0, proc.stderr
    result = vidmatte.convert_guided(str(short_clip / "clip.mp4"), {1: str(key)}, output_type="png_sequence",
                                     output_alpha=str(tmp_path / "api"), method="ftpvm", checkpoint=str(ckpt),
                                     mem_every=2, progress=False)
    assert result.frames == 6 and len(pngs(tmp_path / "cli")) == 6
    assert pngs(tmp_path / "api") == pngs(tmp_path / "cli")
    alpha = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in sorted((tmp_path / "api").glob("*.png"))]
    assert max(float(a.std()) for a in alpha) > 1  # mattes that vary, so equal files mean something
    # mem_every reached the network: without it, frames after the first remembered one (frame 0) differ.
    vidmatte.convert_guided(str(short_clip / "clip.mp4"), {1: str(key)}, output_type="png_sequence",
                            output_alpha=str(tmp_path / "alone"), method="ftpvm", checkpoint=str(ckpt),
                            progress=False)
    alone, remembering = pngs(tmp_path / "alone"), pngs(tmp_path / "api")
    assert alone[0] == remembering[0] and all(a != b for a, b in zip(alone[2:], remembering[2:]))
    # convert_video with keyframes= routes to the same call.
    vidmatte.convert_video(input_source=str(short_clip / "clip.mp4"), output_type="png_sequence",
                           output_alpha=str(tmp_path / "cv"), progress=False, keyframes={1: str(key)},
                           method="ftpvm", checkpoint=str(ckpt))
    assert pngs(tmp_path / "cv") == pngs(tmp_path / "alone")


@pytest.mark.parametrize("call, fragment", [
    ({"method": "nope"}, "method must be one of classical, ftpvm"),
    ({"method": "ftpvm"}, "no official FTP-VM weights are bundled"),
    ({"method": "ftpvm", "checkpoint": "rvm-init", "work": "w"}, "work= .* is for the classical method only"),
    ({"method": "ftpvm", "checkpoint": "rvm-init", "mem_every": 0}, "must be at least 1"),
    ({"mem_every": 3}, "mem_every= and max_memory= are for a network method"),
])
def test_api_method_errors_are_one_line_usage_errors_before_writing(short_clip, tmp_path, call, fragment):
    import vidmatte
    from vidmatte.errors import UsageError

    with pytest.raises(UsageError, match=fragment):
        vidmatte.convert_guided(str(short_clip / "clip.mp4"), {0: str(short_clip / "key.png")},
                                output_alpha=str(tmp_path / "a.mp4"), progress=False, **call)
    assert not (tmp_path / "a.mp4").exists()


def test_convert_video_refuses_a_method_without_keyframes(short_clip, tmp_path):
    import vidmatte
    from vidmatte.errors import UsageError

    with pytest.raises(UsageError, match="give keyframes= too"):
        vidmatte.convert_video(input_source=str(short_clip / "clip.mp4"), output_alpha=str(tmp_path / "a.mp4"),
                               method="ftpvm", checkpoint="x.pth", progress=False)


# --- ONNX export -----------------------------------------------------------------------------------------------------

def test_onnx_export_agrees_with_pytorch_over_frames_batches_and_memory_counts(model, tmp_path):
    import onnxruntime as ort

    from vidmatte.backends.export_ftpvm import export_ftpvm_onnx

    report = export_ftpvm_onnx(model, tmp_path / "ftpvm.onnx", height=96, width=128)  # 1/16: 6x8, pooled to 4x4
    assert report.agrees() and report.max_diff < 1e-4 and report.frames_checked == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ftpvm.encode.onnx", "ftpvm.onnx"]
    # The graphs compute what the network computes: a matte that depends on the memory's trimap.
    encode = ort.InferenceSession(str(report.encode_path), providers=["CPUExecutionProvider"])
    step = ort.InferenceSession(str(report.step_path), providers=["CPUExecutionProvider"])
    frame, memory = clip(1, 1, 96, 128).numpy(), clip(1, 1, 96, 128, seed=2).numpy()
    zeros = np.zeros((1, 1, 1, 1), np.float32)
    boundaries = []
    for tri in (trimaps(1, 1, 96, 128), 1 - trimaps(1, 1, 96, 128)):
        feat16, value = encode.run(None, {"memory_imgs": memory, "memory_trimaps": tri.numpy()})
        out = step.run(None, {"src": frame[:, 0], "memory_feat16": feat16, "memory_value": value,
                              "r8i": zeros, "r16i": zeros, "r1i": zeros, "r2i": zeros})
        boundaries.append(out[1])
    assert np.abs(boundaries[0] - boundaries[1]).max() > 1e-3


def test_onnx_export_refuses_a_size_off_the_16_grid(model, tmp_path):
    from vidmatte.backends.export_ftpvm import export_ftpvm_onnx
    from vidmatte.errors import UsageError

    with pytest.raises(UsageError, match="multiples of 16"):
        export_ftpvm_onnx(model, tmp_path / "x.onnx", height=100, width=128)
    assert list(tmp_path.iterdir()) == []


def test_an_export_that_disagrees_writes_nothing(model, tmp_path, monkeypatch):
    from vidmatte.backends import export_ftpvm
    from vidmatte.errors import ModelError

    monkeypatch.setattr(export_ftpvm, "TOLERANCE", 0.0)  # any float rounding now counts as disagreement
    with pytest.raises(ModelError, match="disagree"):
        export_ftpvm.export_ftpvm_onnx(model, tmp_path / "ftpvm.onnx", height=64, width=64)
    assert list(tmp_path.iterdir()) == []


# --- vidmatte export CHECKPOINT: the exporters table ------------------------------------------------------------------

def onnx_step(path: Path, frame: np.ndarray, memory: np.ndarray, tri: np.ndarray) -> list[np.ndarray]:
    """The exported graphs on one frame from zero state: [trimap logits, boundary, pha, states...]."""
    import onnxruntime as ort

    encode = ort.InferenceSession(str(path.with_name(path.stem + ".encode.onnx")), providers=["CPUExecutionProvider"])
    step = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feat16, value = encode.run(None, {"memory_imgs": memory, "memory_trimaps": tri})
    zeros = np.zeros((1, 1, 1, 1), np.float32)
    return step.run(None, {"src": frame, "memory_feat16": feat16, "memory_value": value,
                           "r8i": zeros, "r16i": zeros, "r1i": zeros, "r2i": zeros})


def export_cli(*args) -> subprocess.CompletedProcess:
    return run("export", *args)


def test_export_cli_writes_an_official_ftpvm_state_dict_as_its_two_checked_graphs(model, tmp_path):
    torch.save(official_state(), tmp_path / "ftpvm.pth")
    out = tmp_path / "out" / "ftpvm.onnx"
    out.parent.mkdir()
    proc = export_cli(tmp_path / "ftpvm.pth", "--format", "onnx", "--output", out, "--size", "128x96")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(out), str(out.with_name("ftpvm.encode.onnx"))]
    assert "max |diff|" in proc.stderr and sorted(p.name for p in out.parent.iterdir()) == [
        "ftpvm.encode.onnx", "ftpvm.onnx"]
    # The graphs hold the checkpoint's weights: they compute what the network loaded from it computes.
    frame, memory, tri = clip(1, 1, 96, 128), clip(1, 1, 96, 128, seed=2), trimaps(1, 1, 96, 128)
    got = onnx_step(out, frame[:, 0].numpy(), memory.numpy(), tri.numpy())
    with torch.inference_mode():
        want = model(frame, memory, tri)
    assert float(want[2].std()) > 1e-3  # a matte that varies, so the comparison has teeth
    assert max_diff(torch.from_numpy(got[2]), want[2][:, 0]) < 1e-4
    assert max_diff(torch.from_numpy(got[0]), want[0][:, 0]) < 1e-4


def test_export_cli_recognises_a_training_checkpoint_of_ours(tmp_path):
    from vidmatte.backends.exporters import recognise
    from vidmatte.train.loop import Trainer

    trainer = Trainer(ftpvm_config(tmp_path, steps=1))
    trainer.run()
    ckpt = trainer.save_checkpoint(tmp_path / "last.pt")
    assert recognise(ckpt)[0] == "ftpvm"
    out = tmp_path / "trained.onnx"
    proc = export_cli(ckpt, "--format", "onnx", "--output", out, "--size", "64x48")
    assert proc.returncode == 0, proc.stderr
    frame, memory, tri = clip(1, 1, 48, 64), clip(1, 1, 48, 64, seed=2), trimaps(1, 1, 48, 64)
    got = onnx_step(out, frame[:, 0].numpy(), memory.numpy(), tri.numpy())
    trainer.model.eval()
    with torch.inference_mode():
        want = trainer.model(frame, memory, tri)
    assert max_diff(torch.from_numpy(got[2]), want[2][:, 0]) < 1e-4


def test_other_files_are_left_to_rvms_export(tmp_path):
    from vidmatte.backends.exporters import recognise
    from vidmatte.models.rvm import MattingNetwork

    torch.save(MattingNetwork().state_dict(), tmp_path / "rvm.pth")
    (tmp_path / "notes.pth").write_text("not a checkpoint")
    assert recognise(tmp_path / "rvm.pth") is None and recognise(tmp_path / "notes.pth") is None
    assert recognise("rvm-mobilenetv3") is None and recognise(tmp_path / "missing.pt") is None


@pytest.mark.parametrize("extra, code, fragment", [
    (("--format", "torchscript", "--force"), 2, "exports to fp32 ONNX only"),
    (("--format", "onnx", "--precision", "fp16", "--force"), 2, "exports to fp32 ONNX only"),
    (("--format", "onnx", "--size", "100x7a", "--force"), 2, "--size must look like"),
    (("--format", "onnx", "--size", "100x72", "--force"), 2, "multiples of 16"),  # refused before writing
    (("--format", "onnx"), 1, "ftpvm.encode.onnx exists; pass --force"),
])
def test_export_cli_errors_for_ftpvm_are_one_line_and_keep_files(tmp_path, extra, code, fragment):
    torch.save(official_state(), tmp_path / "ftpvm.pth")
    (tmp_path / "ftpvm.encode.onnx").write_bytes(b"keep me")
    proc = export_cli(tmp_path / "ftpvm.pth", "--output", tmp_path / "ftpvm.onnx", *extra)
    assert proc.returncode == code, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in proc.stderr
    assert (tmp_path / "ftpvm.encode.onnx").read_bytes() == b"keep me" and not (tmp_path / "ftpvm.onnx").exists()


def test_size_is_refused_for_rvms_dynamic_graph(tmp_path):
    proc = export_cli("rvm-mobilenetv3", "--format", "onnx", "--size", "64x64", "--output", tmp_path / "r.onnx")
    assert proc.returncode == 2 and "RVM's graph takes any frame size" in proc.stderr


# --- training with the project's loop -------------------------------------------------------------------------------

def ftpvm_config(tmp_path, steps: int, **train):
    return scratch_config(tmp_path, "ftpvm", [48, 48], {"steps": steps, "batch_size": 2, "seq_length": 3,
                                                        "size": [32, 32], "lr": {"backbone": 1e-3, "decoder": 1e-3},
                                                        **train})


def test_true_trimap_marks_partial_alpha_and_a_band_around_it_unknown():
    from vidmatte.train.ftpvm import true_trimap

    pha = torch.zeros(1, 1, 1, 20, 20)
    pha[..., 5:15, 5:15] = 1.0
    pha[..., 5:15, 14] = 0.5
    classes = true_trimap(pha, band=2)[0, 0, 0]
    assert classes[10, 9] == 2 and classes[0, 0] == 0 and classes[10, 14] == 1
    assert classes[10, 12] == 1 and classes[10, 16] == 1, "2 px either side of the edge are unknown"
    assert classes[10, 11] == 2 and classes[10, 17] == 0


def test_a_training_smoke_run_lowers_the_loss_and_its_checkpoint_serves_the_matter(tmp_path):
    from vidmatte.models.loaders import load_ftpvm

    # Observed over ATEN_CPU_CAPABILITY=default/avx2/avx512, 1 and 2 threads: fixed batches x0.46..0.47 (bound 0.9),
    # step means x0.60..0.61 (bound 1).
    trainer = smoke_training(ftpvm_config(tmp_path, steps=16), 16, "FTP-VM", {"trimap_ce", "boundary_l1"})
    path = trainer.save_checkpoint(tmp_path / "last.pt")
    loaded = load_ftpvm(str(path))
    assert torch.equal(loaded.mat_project.conv.weight, trainer.model.mat_project.conv.weight)


def test_ftpvm_training_resumes_exactly(tmp_path):
    assert_resumes_exactly(ftpvm_config, tmp_path, steps=4, stop=2)


def test_ftpvm_training_config_is_checked_in_one_line():
    from vidmatte.train.config import ConfigError, load_config

    base = {"model": {"kind": "ftpvm"}, "data": {"mattes": [{}], "backgrounds": [{}]},
            "train": {"size": [40, 40], "seg_every": 0}}
    with pytest.raises(ConfigError, match="multiples of 16"):
        load_config(None, [], base=base)
    with pytest.raises(ConfigError, match="seg_every"):
        load_config(None, ["train.size=[32,32]", "train.seg_every=2"], base=base)
