"""The memory propagator (guided matting): the memory's reading and bounds, re-finding a subject that was hidden
and came back elsewhere (where the flow propagator alone loses it), the CLI flags, and the missing-torch error."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from test_guided_matting import _texture, key_trimap, label_errors

from vidmatte.guidance.memory import (Memory, MemoryPropagator, cell_labels, propagator_factory, require_torch,
                                      subject_share)
from vidmatte.guidance.propagate import BG, FG, FlowPropagator

H, W = 144, 256
HIDDEN = (10, 15)  # frames without the subject; it comes back 120 px away from where it left


def jump_clip(frames: int = 26) -> list[tuple[np.ndarray, np.ndarray]]:
    """(frame, true alpha): a textured disc drifts right, vanishes for a few frames, reappears far to the right and
    drifts left, over a panning background of another texture."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    layer_alpha = np.clip(0.5 - (np.hypot((xx - W / 2) / 1.4, yy - H / 2) - 30) / 2, 0, 1).astype(np.float32)
    layer_rgb = np.minimum(_texture(H, W, 2).astype(np.int16) + 40, 255).astype(np.uint8)
    background = _texture(H + 40, W + 80, 1) // 2
    clip = []
    for t in range(frames):
        cx = W / 2 - 60 + 2 * t if t < HIDDEN[0] else W / 2 + 60 - 2 * (t - HIDDEN[1])
        move = np.float32([[1, 0, cx - W / 2], [0, 1, 0]])
        alpha = cv2.warpAffine(layer_alpha, move, (W, H)) * (not HIDDEN[0] <= t < HIDDEN[1])
        rgb = cv2.warpAffine(layer_rgb, move, (W, H), borderMode=cv2.BORDER_REFLECT)
        bg = background[20:20 + H, t:t + W]
        clip.append((np.rint(rgb * alpha[..., None] + bg * (1 - alpha[..., None])).astype(np.uint8), alpha))
    return clip


@pytest.fixture(scope="module")
def clip():
    return jump_clip()


@pytest.fixture(scope="module")
def encoder(rvm_onnx_path):
    from vidmatte.guidance.memory import FeatureEncoder

    return FeatureEncoder(str(rvm_onnx_path), threads=1)


def _errors_after_return(propagator, clip) -> list[float]:
    propagator.start(clip[0][0], key_trimap(clip[0][1]))
    errors = []
    for t, (frame, alpha) in enumerate(clip[1:], 1):
        result = propagator.step(frame)
        if t >= HIDDEN[1]:
            errors.append(label_errors(result.trimap, alpha))
    return errors


def test_memory_refinds_a_shape_after_it_was_hidden_and_jumped(clip, encoder):
    flow = _errors_after_return(FlowPropagator(), clip)
    memory = MemoryPropagator(encoder, mem_every=3, max_memory=4)
    found = _errors_after_return(memory, clip)
    assert min(flow) > 0.5, "the case must defeat the flow propagator alone (it stays where the subject left)"
    assert np.mean(found) < 0.1 and max(found) < 0.25, found
    assert any(entry["relocated"] for entry in memory.log), "re-finding must come from re-anchoring"
    assert len(memory.memory.frames) <= 4 and memory.memory.frames[0].keyframe


def test_memory_reading_takes_the_labels_of_the_most_similar_cells():
    rng = np.random.default_rng(0)
    keys = rng.normal(size=(4, 5, 16)).astype(np.float32)
    keys /= np.linalg.norm(keys, axis=2, keepdims=True)
    values = np.zeros((4, 5, 3), np.float32)
    values[:2, ..., 0] = 1  # top half fg
    values[2:, ..., 2] = 1  # bottom half bg
    memory = Memory(max_frames=2, top_k=1)
    memory.add(keys, values, keyframe=True)
    query = keys[::-1].copy()  # the same cells, upside down
    read = memory.read(query)
    assert np.allclose(subject_share(read), subject_share(values[::-1]), atol=1e-4)


def test_memory_bounds_keep_every_keyframe():
    keys, values = np.ones((2, 2, 4), np.float32), np.ones((2, 2, 3), np.float32) / 3
    memory = Memory(max_frames=3)
    memory.add(keys, values, keyframe=True)
    for _ in range(5):
        memory.add(keys * 2, values)
    assert [f.keyframe for f in memory.frames] == [True, False, False]
    assert memory.frames[-1].keys[0, 0] == 2
    only_keys = Memory(max_frames=1)
    for _ in range(2):
        only_keys.add(keys, values, keyframe=True)
    only_keys.add(keys, values)
    assert [f.keyframe for f in only_keys.frames] == [True, True], "keyframes stay even above the bound"
    with pytest.raises(ValueError):
        Memory(max_frames=0)


def test_cell_labels_are_label_fractions():
    trimap = np.full((16, 16), BG, np.uint8)
    trimap[:8, :8] = FG
    labels = cell_labels(trimap, (2, 2))
    assert labels[0, 0].tolist() == [1, 0, 0] and labels[1, 1].tolist() == [0, 0, 1]


def test_finetuning_needs_torch_and_says_so_in_one_line(monkeypatch):
    from vidmatte.errors import UsageError

    monkeypatch.setitem(sys.modules, "torch", None)  # what an install without torch looks like to `import torch`
    with pytest.raises(UsageError, match=r"needs PyTorch, from the 'torch' extra: .*'\.\[torch\]'"):
        require_torch()
    with pytest.raises(UsageError, match="needs PyTorch"):
        propagator_factory("memory", finetune_steps=5)


def test_bad_propagator_options_are_usage_errors():
    from vidmatte.errors import UsageError

    for kwargs in ({"mem_every": 0}, {"max_memory": 0}, {"finetune_steps": -1}):
        with pytest.raises(UsageError):
            propagator_factory("memory", **kwargs)
    with pytest.raises(UsageError, match="--propagator memory"):
        propagator_factory("flow", finetune_steps=3)
    assert propagator_factory("flow") is FlowPropagator
    from vidmatte.guidance.track import TrackPropagator

    assert isinstance(propagator_factory("auto")(), TrackPropagator)  # the default since issue 26


def test_finetuned_heads_change_the_reading(clip, encoder):
    pytest.importorskip("torch")
    propagator = MemoryPropagator(encoder, finetune_steps=5)
    propagator.start(clip[0][0], key_trimap(clip[0][1]))
    assert propagator.heads is not None and np.abs(propagator.heads.key_delta).max() > 0
    assert label_errors(propagator.step(clip[1][0]).trimap, clip[1][1]) < 0.1


# --- the command line, end to end on a video file -------------------------------------------------------------------
@pytest.fixture
def video(tmp_path, clip):
    from vidmatte.data.benchmark import write_mp4

    path = tmp_path / "jump.mp4"
    write_mp4([frame for frame, _ in clip], path, 25.0)
    cv2.imwrite(str(tmp_path / "key0.png"), key_trimap(clip[0][1]))
    return path


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "vidmatte.cli.main", "guided", "--prior", "none", *map(str, args)],
                          capture_output=True, text=True, timeout=600)


@pytest.mark.weights
def test_cli_memory_propagator_end_to_end(tmp_path, video, clip, rvm_onnx_path):
    proc = _cli(video, "--keyframe", f"0:{tmp_path / 'key0.png'}", "--propagator", "memory", "--mem-every", "3",
                "--max-memory", "4", "--model", rvm_onnx_path, "--alpha", f"{tmp_path}/pha/", "--trimaps",
                f"{tmp_path}/tri/", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["frames"] == len(clip)
    last = len(clip) - 1
    trimap = cv2.imread(str(tmp_path / "tri" / f"{last:05d}.png"), cv2.IMREAD_GRAYSCALE)
    assert label_errors(trimap, clip[last][1]) < 0.25
    alpha = cv2.imread(str(tmp_path / "pha" / f"{last:05d}.png"), cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255
    assert np.abs(alpha - clip[last][1]).mean() < 0.05, "the returned subject must be matted where it now is"


@pytest.mark.parametrize("flags, fragment", [
    (["--propagator", "flow", "--finetune-steps", "3"], "--propagator memory"),
    (["--propagator", "memory", "--mem-every", "0"], "at least 1"),
])
def test_cli_bad_memory_flags_are_one_line_exit_2(tmp_path, video, flags, fragment):
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = _cli(video, "--keyframe", f"0:{tmp_path / 'key0.png'}", *flags, "--alpha", f"{tmp_path}/pha/")
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in proc.stderr, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_cli_without_torch_refuses_finetuning_in_one_line(tmp_path, video, monkeypatch, capsys):
    from vidmatte.cli.main import main

    monkeypatch.setitem(sys.modules, "torch", None)
    code = main(["guided", str(video), "--keyframe", f"0:{tmp_path / 'key0.png'}", "--prior", "none",
                 "--propagator", "memory", "--finetune-steps", "5", "--alpha", f"{tmp_path}/pha/"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs PyTorch" in err[0]
    assert not (tmp_path / "pha").exists()


def test_auto_falls_back_to_the_flow_when_the_tracker_weights_cannot_be_had(monkeypatch):
    """Offline without RVM's weights: --propagator auto carries the keyframes by flow alone and says so; track,
    asked for by name, insists (one-line ModelError)."""
    from vidmatte.errors import ModelError
    from vidmatte.guidance import memory

    def unavailable(*args, **kwargs):
        raise ModelError("rvm-mobilenetv3: cannot fetch the weights (offline)")

    monkeypatch.setattr(memory, "FeatureEncoder", unavailable)
    said = []
    assert memory.propagator_factory("auto", warn=said.append) is FlowPropagator
    assert len(said) == 1 and "optical flow alone" in said[0] and "offline" in said[0]
    with pytest.raises(ModelError, match="offline"):
        memory.propagator_factory("track")
