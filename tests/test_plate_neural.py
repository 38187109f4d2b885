"""``vidmatte background --method neural`` (``matters.plate``): BackgroundMattingV2 with ConvLSTMs on frame
and aligned plate, end to end through the command and the API with small checkpoints made here."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from test_plate import scene, texture
from vidmatte.api import convert_background
from vidmatte.cli.main import main
from vidmatte.models.loaders import args_from_keys, load_bgmv2
from vidmatte.models.bgmv2 import MattingRefine


def tiny_network(convlstm: bool = True) -> MattingRefine:
    """Untrained, but with an alpha that varies over the frame (the last conv's alpha bias at 0.5)."""
    torch.manual_seed(0)
    net = MattingRefine("mobilenetv2", convlstm=convlstm, refine_sample_pixels=400)
    with torch.no_grad():
        net.decoder.conv4.bias[0] = 0.5
    return net.eval()


def training_checkpoint(path, net) -> str:
    torch.save({"model": net.state_dict(), "model_args": net.model_args()}, path)
    return str(path)


def odd_sized_clip(tmp_path, count: int = 4, size=(70, 98)):
    """A plate and frames of a size off the 4-pixel grid: a square crossing the plate."""
    h, w = size
    plate = texture(h, w, 3)
    folder = tmp_path / "odd"
    folder.mkdir()
    frames = []
    for i in range(count):
        frame = plate.copy()
        frame[20:45, 10 + 12 * i:35 + 12 * i] = (30, 200, 90)
        frames.append(frame)
        cv2.imwrite(str(folder / f"{i:05d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return folder, plate, frames


def direct_alphas(net, frames, plate) -> list[np.ndarray]:
    """The network run by hand, state carried, edge-padded to the 4-pixel grid, cropped back."""
    from vidmatte.matters.plate import pad_to_4

    state, out = None, []
    bgr = pad_to_4(torch.from_numpy(plate).permute(2, 0, 1)[None].float() / 255)
    with torch.no_grad():
        for frame in frames:
            src = pad_to_4(torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255)
            result = net(src, bgr, state)
            state = result[-1]
            out.append(result[0][0, 0, :frame.shape[0], :frame.shape[1]].numpy())
    return out


def test_the_api_runs_the_network_on_frame_and_plate_with_its_state_carried(tmp_path):
    folder, plate, frames = odd_sized_clip(tmp_path)
    net = tiny_network()
    checkpoint = training_checkpoint(tmp_path / "tiny.pt", net)
    result = convert_background(str(folder), plate, method="neural", checkpoint=checkpoint, align=False,
                                output_type="png_sequence", output_alpha=str(tmp_path / "alpha"), progress=False)
    assert result.frames == len(frames)
    written = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) / 255 for p in sorted((tmp_path / "alpha").glob("*.png"))]
    expected = direct_alphas(net, frames, plate)
    assert len(written) == len(frames)
    assert all(w.shape == (70, 98) for w in written)
    assert expected[-1].std() > 0.01  # not a constant matte
    assert max(np.abs(w - e).max() for w, e in zip(written, expected)) <= 1 / 255 + 1e-6
    # Without the carried state the last frame would come out otherwise: the memory is in use.
    alone = direct_alphas(net, frames[-1:], plate)[0]
    assert np.abs(alone - expected[-1]).max() > 2 / 255


def test_the_command_mattes_a_hand_held_scene_with_the_plate_aligned(tmp_path, capsys):
    frames, plate, truths = scene(tmp_path, frames=3)
    checkpoint = training_checkpoint(tmp_path / "tiny.pt", tiny_network())
    out = tmp_path / "out"
    out.mkdir()
    assert main(["background", str(frames), "--plate", str(plate), "--method", "neural", "--checkpoint", checkpoint,
                 "--alpha", f"{out}/alpha/", "--composition", f"{out}/comp.mp4", "--json", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out.strip())
    assert result["frames"] == len(truths) and result["plate_unmatched_frames"] == 0
    assert "person_share" not in result
    assert len(list((out / "alpha").glob("*.png"))) == len(truths) and (out / "comp.mp4").stat().st_size > 0


def test_an_official_state_dict_is_recognised_by_its_keys(tmp_path):
    plain = MattingRefine("mobilenetv2")
    path = tmp_path / "pytorch_mobilenetv2.pth"
    torch.save(plain.state_dict(), path)
    assert args_from_keys(plain.state_dict()) == {"backbone": "mobilenetv2", "convlstm": False, "refine": True}
    loaded = load_bgmv2(str(path))
    assert not loaded.convlstm and all(torch.equal(loaded.state_dict()[k], v) for k, v in plain.state_dict().items())
    with_memory = load_bgmv2(str(path), convlstm=True)  # BGMv2's weights, the ConvLSTMs fresh
    assert with_memory.convlstm
    assert torch.equal(with_memory.state_dict()["refiner.conv1.weight"], plain.state_dict()["refiner.conv1.weight"])


NEURAL_BAD = [
    ("no checkpoint", None, 2, "no BackgroundMattingV2 weights are bundled"),
    ("missing checkpoint", "missing.pt", 2, "checkpoint not found"),
    ("not a torch file", "junk.pt", 1, "cannot read"),
    ("another network's state", "other.pt", 1, "is not a BackgroundMattingV2 checkpoint"),
]


@pytest.mark.parametrize("name, checkpoint, code, fragment", NEURAL_BAD, ids=[b[0] for b in NEURAL_BAD])
def test_unusable_weights_are_a_one_line_error_and_nothing_is_written(tmp_path, capsys, name, checkpoint, code,
                                                                      fragment):
    folder, plate, _ = odd_sized_clip(tmp_path, count=2)
    cv2.imwrite(str(tmp_path / "plate.png"), cv2.cvtColor(plate, cv2.COLOR_RGB2BGR))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    torch.save({"conv.weight": torch.zeros(3, 3, 1, 1)}, tmp_path / "other.pt")
    args = ["background", str(folder), "--plate", str(tmp_path / "plate.png"), "--method", "neural",
            "--alpha", str(tmp_path / "alpha.mp4"), "--no-align"]
    if checkpoint:
        args += ["--checkpoint", str(tmp_path / checkpoint)]
    assert main(args) == code
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "alpha.mp4").exists()
