"""`bench build` on a tiny generated source: layouts, the composition identity, determinism, trimaps, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from vidmatte.cli.main import main
from vidmatte.data.benchmark import build
from vidmatte.data.synthesis import trimap_from_alpha
from vidmatte.errors import InputError


def _write_video(path: Path, frames: int, w: int, h: int) -> None:
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=24)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for t in range(frames):
            img = np.zeros((h, w, 3), np.uint8)
            img[..., 0] = (np.arange(w) * 3 + t * 5) % 256
            img[..., 2] = 120
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


@pytest.fixture(scope="module")
def source_root(tmp_path_factory) -> Path:
    """A data root with a soft-edged disc (image + alpha, no fg layer) and a short background video."""
    root = tmp_path_factory.mktemp("src")
    yy, xx = np.mgrid[0:80, 0:80]
    alpha = np.clip((30 - np.hypot(yy - 40, xx - 40)) / 5, 0, 1)
    image = np.zeros((80, 80, 3), np.uint8)
    image[:] = (40, 200, 90)  # BGR on disk: RGB (90, 200, 40)
    cv2.imwrite(str(root / "disc.png"), image)
    cv2.imwrite(str(root / "disc_alpha.png"), (alpha * 255).round().astype(np.uint8))
    cv2.imwrite(str(root / "still.png"), np.full((50, 90, 3), 200, np.uint8))
    _write_video(root / "bg.mp4", 6, 96, 64)
    return root


def _definition(frames: int = 5) -> dict:
    return {
        "name": "tiny", "_path": "tiny.json", "seed": 3, "size": [64, 48], "frames": frames,
        "trimap": {"band": 2, "keyframes": [0, 3]},
        "motion": {"keyframe_every": 2, "translate": 0.1, "rotate_deg": 10, "scale": [0.9, 1.1], "shear": 0.05},
        "camera": {"translate": 0.05, "zoom": 0.05},
        "augment": {"noise_max": 0.03, "bg_blur_prob": 1.0, "bg_blur_max": 1.0},
        "clips": [
            {"name": "disc_video", "fg": {"image": "disc.png", "alpha": "disc_alpha.png"}, "bg": {"video": "bg.mp4"}},
            {"name": "disc_still", "fg": {"image": "disc.png", "alpha": "disc_alpha.png"}, "bg": {"image": "still.png"}},
        ],
    }


@pytest.fixture(scope="module")
def built(source_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("b") / "clips"
    build(_definition(), source_root, out)
    return out


def _read(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    return img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def test_layouts_read_back(built):
    record = json.loads((built / "benchmark.json").read_text())
    assert record["seed"] == 3 and record["size"] == [64, 48]
    for clip in ("disc_video", "disc_still"):
        d = built / clip
        for layer in ("com", "pha", "fgr", "bgr", "trimap"):
            names = sorted(p.name for p in (d / layer).iterdir())
            assert names == [f"{t:05d}.png" for t in range(5)], (clip, layer)
        assert _read(d / "pha" / "00000.png").shape == (48, 64)
        assert _read(d / "com" / "00004.png").shape == (48, 64, 3)
        assert set(np.unique(_read(d / "mask" / "00000.png"))) <= {0, 255}
        assert _read(d / "plate.png").shape == (48, 64, 3)
        tcvom = sorted(p.name for p in (d / "tcvom").iterdir())
        assert tcvom == sorted([f"{t:05d}_rgb.png" for t in range(5)] + ["00000_trimap.png", "00003_trimap.png"])
        assert np.array_equal(_read(d / "tcvom" / "00003_rgb.png"), _read(d / "com" / "00003.png"))
        assert np.array_equal(_read(d / "tcvom" / "00003_trimap.png"), _read(d / "trimap" / "00003.png"))


def test_composition_identity(built):
    for clip in ("disc_video", "disc_still"):
        for t in range(5):
            a = _read(built / clip / "pha" / f"{t:05d}.png").astype(np.float64)[..., None] / 255
            f = _read(built / clip / "fgr" / f"{t:05d}.png").astype(np.float64) / 255
            b = _read(built / clip / "bgr" / f"{t:05d}.png").astype(np.float64) / 255
            com = _read(built / clip / "com" / f"{t:05d}.png").astype(np.float64) / 255
            assert np.abs(com - (a * f + (1 - a) * b)).max() <= 1 / 255


def test_the_object_moves_and_is_partly_transparent(built):
    a0 = _read(built / "disc_video" / "pha" / "00000.png")
    a4 = _read(built / "disc_video" / "pha" / "00004.png")
    assert not np.array_equal(a0, a4)
    assert ((a0 > 0) & (a0 < 255)).sum() > 20  # the soft edge survives
    # the estimated foreground recovers the disc's flat colour where it is opaque
    f = _read(built / "disc_video" / "fgr" / "00000.png").astype(int)
    opaque = a0 == 255
    assert np.abs(f[opaque].mean(0) - [90, 200, 40]).max() < 12  # noise up to 0.03 is added to both layers


def test_deterministic_for_a_seed(source_root, built, tmp_path):
    again = tmp_path / "again"
    build(_definition(), source_root, again)
    for p in sorted(built.rglob("*.png")):
        assert p.read_bytes() == (again / p.relative_to(built)).read_bytes(), p
    other = tmp_path / "other"
    build(_definition(), source_root, other, seed=4)
    assert (other / "disc_video" / "com" / "00002.png").read_bytes() != \
        (built / "disc_video" / "com" / "00002.png").read_bytes()


def test_trimap_from_alpha_hand_case():
    alpha = np.zeros((1, 9), np.uint8)
    alpha[0, 4:] = 255
    alpha[0, 4] = 128  # one fractional pixel at x=4
    tri = trimap_from_alpha(alpha, band=1)
    # band 1: definite bg is alpha==0 eroded by 1 (x<=2), definite fg alpha==255 eroded by 1 (x>=6)
    assert tri.tolist() == [[0, 0, 0, 128, 128, 128, 255, 255, 255]]


def test_cli_build_errors(source_root, tmp_path, capsys):
    bad = _definition()
    bad["clips"][0]["bg"] = {"video": "missing.mp4"}
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    rc = main(["bench", "build", "--definition", str(tmp_path / "bad.json"), "--data-root", str(source_root),
               "--root", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 1
    assert "source not found" in err and "missing.mp4" in err and "Traceback" not in err
    assert not (tmp_path / "r" / "clips").exists()  # nothing left under the final name
    assert list((tmp_path / "r").iterdir()) == []  # and no temporary folder either
    rc = main(["bench", "build", "--definition", str(tmp_path / "nope.json"), "--root", str(tmp_path / "r")])
    assert rc == 2 and "definition not found" in capsys.readouterr().err
    good = _definition()
    (tmp_path / "good.json").write_text(json.dumps(good))
    args = ["bench", "build", "--definition", str(tmp_path / "good.json"), "--data-root", str(source_root),
            "--root", str(tmp_path / "r"), "--frames", "3", "--mp4"]
    assert main(args) == 0
    from vidmatte.io.readers import open_reader

    frames = [f.image for f in open_reader(tmp_path / "r" / "clips" / "disc_video" / "com.mp4")]
    png = _read(tmp_path / "r" / "clips" / "disc_video" / "com" / "00001.png")
    assert len(frames) == 3 and frames[1].shape == png.shape
    # the same picture through H.264 (CRF 10, 4:2:0 chroma on a tiny noisy frame): close to its PNG, and closer to
    # it than to the neighbouring frame
    error = np.abs(frames[1].astype(int) - png).mean()
    assert error < 8
    assert error < np.abs(frames[1].astype(int) - _read(tmp_path / "r" / "clips" / "disc_video" / "com" / "00000.png")).mean()
    assert main(args) == 1 and "exists; pass --overwrite" in capsys.readouterr().err
    assert main(args + ["--overwrite", "--band", "0"]) == 0
    record = json.loads((tmp_path / "r" / "clips" / "benchmark.json").read_text())
    assert record["trimap_band"] == 0
    tri = _read(tmp_path / "r" / "clips" / "disc_still" / "trimap" / "00000.png")
    pha = _read(tmp_path / "r" / "clips" / "disc_still" / "pha" / "00000.png")
    assert np.array_equal(tri == 128, (pha > 0) & (pha < 255))  # band 0: unknown = exactly the fractional pixels


def test_committed_definitions_sources_exist(shared_data):
    """Every path the committed benchmark definitions name is present in ../shared/data."""
    from vidmatte.data.benchmark import REPO_DEFINITIONS, load_definition

    names = sorted(p.stem for p in REPO_DEFINITIONS.glob("*.json"))
    assert "default" in names
    for name in names:
        d = load_definition(name)
        for clip in d["clips"]:
            for rel in list(clip["fg"].values()) + list(clip["bg"].values()):
                assert (shared_data / rel).exists(), (name, rel)


def _tiny_root(source_root: Path, tmp_path: Path, size: str) -> Path:
    (tmp_path / "tiny.json").write_text(json.dumps(_definition(frames=3)))
    root = tmp_path / "bench"
    assert main(["bench", "build", "--definition", str(tmp_path / "tiny.json"), "--data-root", str(source_root),
                 "--root", str(root), "--size", size]) == 0
    return root


def test_bench_run_oracle_on_tiny_build(source_root, tmp_path, capsys):
    root = _tiny_root(source_root, tmp_path, "64x48")
    capsys.readouterr()
    assert main(["bench", "run", "--root", str(root), "--methods", "oracle", "--report"]) == 0
    out = capsys.readouterr().out
    assert "region: full" in out and "region: unknown" in out and "| oracle" in out
    results = json.loads((root / "results.json").read_text())["results"]["oracle"]
    # the disc is one flat colour, so closed-form matting with the true trimap is close to exact
    assert results["full"]["mean"]["MAD"] < 15
    assert results["unknown"]["mean"]["MAD"] > results["full"]["mean"]["MAD"]  # errors live in the band
    assert sorted(p.name for p in (root / "pred" / "oracle" / "disc_video" / "pha").iterdir()) == \
        ["00000.png", "00001.png", "00002.png"]
    assert (root / "report_oracle.html").stat().st_size > 10_000
    assert main(["bench", "run", "--root", str(root), "--methods", "rvm,magic"]) == 2
    assert "unknown method 'magic'" in capsys.readouterr().err
    assert main(["bench", "run", "--root", str(tmp_path / "nothing")]) == 1
    assert "no built benchmark" in capsys.readouterr().err


@pytest.mark.weights
def test_bench_run_rvm_on_tiny_build(source_root, tmp_path, capsys, rvm_onnx_path):
    root = _tiny_root(source_root, tmp_path, "128x96")
    assert main(["bench", "run", "--root", str(root), "--methods", "rvm", "--json"]) == 0
    mean = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["results"]["rvm"]["full"]["mean"]
    assert set(mean) >= {"MAD", "MSE", "Grad", "Conn", "dtSSD"}
    assert all(np.isfinite(v) for v in mean.values())


def test_foreground_video_sources(source_root, tmp_path):
    """A foreground that changes over time: an RGBA image folder, and a colour video + alpha video pair."""
    import av

    root = tmp_path / "src"
    (root / "rgba").mkdir(parents=True)
    yy, xx = np.mgrid[0:40, 0:40]
    alphas = []
    for t in range(4):  # a disc that grows: the source itself moves, not only the composition's affine
        a = np.clip((8 + 3 * t - np.hypot(yy - 20, xx - 20)) / 3, 0, 1)
        alphas.append((a * 255).round().astype(np.uint8))
        bgra = np.dstack([np.full((40, 40), 30, np.uint8), np.full((40, 40), 60, np.uint8),
                          np.full((40, 40), 220, np.uint8), alphas[-1]])
        cv2.imwrite(str(root / "rgba" / f"{t:03d}.png"), bgra)
    for name, planes in (("colour.mp4", [np.full((40, 40, 3), (220, 60, 30), np.uint8)] * 4),
                         ("alpha.mp4", [np.repeat(a[..., None], 3, 2) for a in alphas])):
        with av.open(str(root / name), "w") as c:
            s = c.add_stream("libx264rgb", rate=24)
            s.width, s.height, s.pix_fmt = 40, 40, "rgb24"
            s.options = {"crf": "0"}
            for img in planes:
                c.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
            c.mux(s.encode(None))
    (root / "still.png").write_bytes((source_root / "still.png").read_bytes())
    definition = _definition(frames=4)
    definition["augment"] = {}
    definition["motion"] = {"translate": 0, "rotate_deg": 0, "scale": [1, 1], "shear": 0, "fill": 0.9}
    definition["camera"] = {}
    definition["clips"] = [
        {"name": "rgba", "fg": {"rgba": "rgba"}, "bg": {"image": "still.png"}},
        {"name": "pair", "fg": {"video": "colour.mp4", "alpha_video": "alpha.mp4"}, "bg": {"image": "still.png"}},
    ]
    out = tmp_path / "clips"
    build(definition, root, out)
    record = json.loads((out / "benchmark.json").read_text())
    assert record["clips"]["rgba"]["fg_estimated"] is False and record["clips"]["pair"]["fg_estimated"] is True
    for clip in ("rgba", "pair"):
        areas = [int((_read(out / clip / "pha" / f"{t:05d}.png") > 127).sum()) for t in range(4)]
        assert areas[0] < areas[1] < areas[2] < areas[3], (clip, areas)  # the disc grows frame by frame
        f = _read(out / clip / "fgr" / "00003.png").astype(int)
        opaque = _read(out / clip / "pha" / "00003.png") == 255
        assert np.abs(f[opaque].mean(0) - [220, 60, 30]).max() < 3  # the source's colour (RGB)
    bad = dict(definition, clips=[{"name": "x", "fg": {"rgba": "colour.mp4"}, "bg": {"image": "still.png"}}])
    with pytest.raises(InputError, match="no alpha plane"):
        build(bad, root, tmp_path / "bad")
    bad = dict(definition, clips=[{"name": "x", "fg": {"video": "colour.mp4"}, "bg": {"image": "still.png"}}])
    with pytest.raises(InputError, match="fg needs image\\+alpha, video\\+alpha_video, or rgba"):
        build(bad, root, tmp_path / "bad")


@pytest.mark.weights
def test_bench_speed_tiny(source_root, tmp_path, capsys, rvm_onnx_path):
    assert main(["bench", "speed", "--sizes", "128x96", "--frames", "3", "--source", str(source_root / "bg.mp4"),
                 "--json"]) == 0
    out = capsys.readouterr().out
    assert "| 128x96 |" in out and "e2e / model" in out
    row = json.loads(out.strip().splitlines()[-1])[0]
    assert row["model"]["frames"] == 3 and row["e2e"]["frames"] == 3
    assert row["e2e_over_model_fps"] == pytest.approx(row["e2e"]["fps"] / row["model"]["fps"])
    assert row["model"]["peak_rss_mb"] > 50  # the child's own peak (onnxruntime alone is tens of MB)
    assert main(["bench", "speed", "--sizes", "12x7"]) == 2
    assert "must be even and at least 16" in capsys.readouterr().err
