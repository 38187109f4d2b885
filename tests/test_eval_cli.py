"""`vidmatte eval` end to end on small generated layouts: numbers, regions, outputs, and every rejected layout."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from vidmatte.cli.main import main


def _clip(root: Path, name: str, alphas: list[np.ndarray], layer: str = "pha") -> None:
    d = root / name / layer
    d.mkdir(parents=True, exist_ok=True)
    for t, a in enumerate(alphas):
        cv2.imwrite(str(d / f"{t:05d}.png"), a)


def _gt_and_pred(tmp_path: Path, offset: int = 51, frames: int = 3):
    """Truth: alpha 0 left half, 102 right half. Prediction: truth + ``offset`` levels everywhere (clipped at 255)."""
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    a = np.zeros((8, 10), np.uint8)
    a[:, 5:] = 102
    for clip in ("a", "b"):
        _clip(gt, clip, [a] * frames)
        _clip(pred, clip, [a + offset] * frames)
        tri = np.zeros((8, 10), np.uint8)
        tri[:, 4:6] = 128
        _clip(gt, clip, [tri] * frames, "trimap")
    return gt, pred


def _json_line(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_eval_constant_offset_json(tmp_path, capsys):
    gt, pred = _gt_and_pred(tmp_path)
    assert main(["eval", "--pred", str(pred), "--gt", str(gt), "--json"]) == 0
    out = capsys.readouterr().out
    assert "region: full" in out and "MAD x1e3" in out  # the header states region and scale
    mean = _json_line(out)["mean"]
    # offset 51/255 = 0.2 everywhere: MAD 200, MSE 40; same change every frame: dtSSD 0; Grad of an offset: 0
    assert mean["MAD"] == pytest.approx(200.0, abs=1e-3)
    assert mean["MSE"] == pytest.approx(40.0, abs=1e-3)
    assert mean["dtSSD"] == pytest.approx(0.0, abs=1e-9)
    assert mean["Grad"] == pytest.approx(0.0, abs=1e-6)
    assert set(mean) == {"MAD", "MSE", "Grad", "Conn", "dtSSD"}


def test_eval_unknown_region(tmp_path, capsys):
    gt, pred = _gt_and_pred(tmp_path)
    # make the prediction wrong only outside the trimap band: inside the band (columns 4,5) it is right
    for clip in ("a", "b"):
        for f in (pred / clip / "pha").iterdir():
            a = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
            a[:, 4:6] = [0, 102]
            cv2.imwrite(str(f), a)
    assert main(["eval", "--pred", str(pred), "--gt", str(gt), "--region", "unknown", "--trimaps", str(gt),
                 "--metrics", "mad,mse", "--json"]) == 0
    out = capsys.readouterr().out
    assert "region: unknown" in out
    assert _json_line(out)["mean"] == {"MAD": 0.0, "MSE": 0.0}
    assert main(["eval", "--pred", str(pred), "--gt", str(gt), "--metrics", "mad", "--json"]) == 0
    assert _json_line(capsys.readouterr().out)["mean"]["MAD"] == pytest.approx(200 * 8 / 10, abs=1e-3)


def test_eval_fg_metrics_and_missing_fgr_warning(tmp_path, capsys):
    gt, pred = _gt_and_pred(tmp_path)
    fg = np.zeros((8, 10, 3), np.uint8)
    _clip(gt, "a", [fg] * 3, "fgr")
    _clip(pred, "a", [fg + 51] * 3, "fgr")  # 0.2 off on every channel
    assert main(["eval", "--pred", str(pred), "--gt", str(gt), "--metrics", "fg_mad,fg_mse", "--json"]) == 0
    captured = capsys.readouterr()
    result = _json_line(captured.out)
    # FG is scored where the truth's alpha > 0 (the right half): 0.2 everywhere there -> 200 and 40
    assert result["clips"]["a"] == pytest.approx({"FG_MAD": 200.0, "FG_MSE": 40.0})
    assert "b" in result["clips"] and result["clips"]["b"] == {}
    assert "FG metrics skipped for clips without fgr/ on both sides: b" in captured.err


def test_eval_report_and_csv(tmp_path, capsys):
    gt, pred = _gt_and_pred(tmp_path)
    report, csv = tmp_path / "r.html", tmp_path / "m.csv"
    assert main(["eval", "--pred", str(pred), "--gt", str(gt), "--report", str(report), "--csv", str(csv)]) == 0
    page = report.read_text()
    assert page.count("data:image/png;base64,") == 2  # per-frame curves + worst frames, inlined
    assert "region: full" in page and "<table>" in page
    rows = csv.read_text().splitlines()
    assert rows[1] == "clip,MAD,MSE,Grad,Conn,dtSSD" and rows[-1].startswith("mean,200.0")


def test_eval_alpha_video_prediction(tmp_path, capsys):
    import av

    gt, _ = _gt_and_pred(tmp_path, frames=4)
    pred = tmp_path / "vid"
    for clip in ("a", "b"):
        (pred / clip).mkdir(parents=True)
        with av.open(str(pred / clip / "pha.mp4"), "w") as c:
            s = c.add_stream("libx264rgb", rate=24)
            s.width, s.height, s.pix_fmt = 10, 8, "rgb24"
            s.options = {"crf": "0"}  # lossless, so the numbers are exact
            for t in range(4):
                a = cv2.imread(str(gt / clip / "pha" / f"{t:05d}.png"), cv2.IMREAD_GRAYSCALE)
                for p in s.encode(av.VideoFrame.from_ndarray(np.repeat(a[..., None], 3, 2), format="rgb24")):
                    c.mux(p)
            for p in s.encode():
                c.mux(p)
    assert main(["eval", "--pred", str(pred), "--gt", str(gt), "--json"]) == 0
    mean = _json_line(capsys.readouterr().out)["mean"]
    assert mean["MAD"] == 0.0 and mean["Conn"] == 0.0


@pytest.mark.parametrize("breakage, message", [
    ("missing_clip", "clip 'b' is in the ground truth but not in the prediction"),
    ("extra_clip", "clip 'c' is in the prediction but not in the ground truth"),
    ("fewer_frames", "clip 'a': prediction has 2 pha frames, ground truth has 3"),
    ("renamed_frame", "clip 'a': pha frame names differ (prediction '00009', ground truth '00002')"),
    ("smaller_frame", "clip 'a': pha frame 00000 is 5x4 in the prediction but 10x8 in the ground truth"),
    ("empty_pred", "has no clips: expected <clip>/pha/*.png"),
])
def test_eval_rejects_bad_layouts(tmp_path, capsys, breakage, message):
    gt, pred = _gt_and_pred(tmp_path)
    frames = pred / "a" / "pha"
    if breakage == "missing_clip":
        for f in (pred / "b" / "pha").iterdir():
            f.unlink()
        (pred / "b" / "pha").rmdir()
    elif breakage == "extra_clip":
        _clip(pred, "c", [np.zeros((8, 10), np.uint8)])
    elif breakage == "fewer_frames":
        (frames / "00002.png").unlink()
    elif breakage == "renamed_frame":
        (frames / "00002.png").rename(frames / "00009.png")
    elif breakage == "smaller_frame":
        cv2.imwrite(str(frames / "00000.png"), np.zeros((4, 5), np.uint8))
    elif breakage == "empty_pred":
        pred = tmp_path / "empty"
        pred.mkdir()
    rc = main(["eval", "--pred", str(pred), "--gt", str(gt)])
    err = capsys.readouterr().err
    assert rc == 1
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_eval_usage_errors(tmp_path, capsys):
    gt, pred = _gt_and_pred(tmp_path)
    assert main(["eval", "--pred", str(pred), "--gt", str(gt), "--region", "unknown"]) == 2
    assert "--region unknown needs --trimaps" in capsys.readouterr().err
    assert main(["eval", "--pred", str(pred), "--gt", str(gt), "--metrics", "mad,sad"]) == 2
    assert "unknown metric 'sad'" in capsys.readouterr().err
    assert main(["eval", "--pred", str(pred), "--gt", str(gt), "--report", str(tmp_path / "no" / "r.html")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "no").exists()


def test_missing_extra_gives_an_install_hint(tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    gt, pred = _gt_and_pred(tmp_path)
    assert main(["eval", "--pred", str(pred), "--gt", str(gt), "--report", str(tmp_path / "r.html")]) == 2
    assert "from the 'eval' extra: .venv/bin/pip install -e '.[eval]'" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()
