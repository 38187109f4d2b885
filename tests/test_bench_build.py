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
            {"name": "disc_still", "fg": {"image": "disc.png", "alpha": "disc_alpha.png"},
             "bg": {"image": "still.png"}},
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
    neighbour = _read(tmp_path / "r" / "clips" / "disc_video" / "com" / "00000.png")
    assert error < np.abs(frames[1].astype(int) - neighbour).mean()
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
        for clip in d.get("clips", []):  # a "layout" definition (dvm_test) reads the dataset given at build time
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
    assert sorted(p.name for p in (root / "pred" / "oracle" / "disc_video" / "pha").glob("*.png")) == \
        ["00000.png", "00001.png", "00002.png"]
    assert (root / "report_oracle.html").stat().st_size > 10_000
    assert main(["bench", "run", "--root", str(root), "--methods", "rvm,magic"]) == 2
    assert "unknown method 'magic'" in capsys.readouterr().err
    assert main(["bench", "run", "--root", str(tmp_path / "nothing")]) == 1
    assert "no built benchmark" in capsys.readouterr().err


def test_bench_run_ftpvm_takes_its_checkpoint_and_the_builds_keyframes(source_root, tmp_path, capsys):
    from test_ftpvm import constant_checkpoint

    root = _tiny_root(source_root, tmp_path, "64x48")
    ckpt = constant_checkpoint(tmp_path / "bg.pth", (5.0, 0.0, 0.0), 0.5)  # says "background" everywhere
    capsys.readouterr()
    assert main(["bench", "run", "--root", str(root), "--methods", "ftpvm", "--checkpoint", str(ckpt)]) == 0
    result = json.loads((root / "results.json").read_text())["results"]["ftpvm"]
    assert result["checkpoint"] == str(ckpt) and np.isfinite(result["full"]["mean"]["MAD"])
    pha = [_read(root / "pred" / "ftpvm" / "disc_video" / "pha" / f"{i:05d}.png") for i in range(3)]
    key = _read(root / "clips" / "disc_video" / "tcvom" / "00000_trimap.png")
    # Frame 0 is the keyframe (its given trimap decides alpha outside the unknown band); the others are the
    # network's own "background everywhere".
    assert (pha[0][key == 255] == 255).all() and (pha[0][key == 0] == 0).all()
    assert pha[1].max() == 0 and pha[2].max() == 0
    assert main(["bench", "run", "--root", str(root), "--methods", "ftpvm"]) == 2
    assert "needs --checkpoint" in capsys.readouterr().err
    assert main(["bench", "run", "--root", str(root), "--methods", "ftpvm", "--checkpoint", "nope.pth"]) == 1
    assert "checkpoint not found" in capsys.readouterr().err


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


# --- non-rigid deformation and guided-mode keyframes -------------------------------------------------------------

# sha256 of the 16 pha frames of `build(_definition(frames=8))` (both clips, frames 0..7, raw pixels), computed with
# the code before the deformation existed (commit 685e197): the rigid path must keep drawing the same motion.
RIGID_PHA_SHA256 = "3e5c7c7d3024c3f97045e7020b0bfee440219a43aa4c0fa8d344d07ec45ac2d9"


def _pha_hash(out: Path, frames: int) -> str:
    import hashlib

    h = hashlib.sha256()
    for clip in ("disc_video", "disc_still"):
        for t in range(frames):
            h.update(_read(out / clip / "pha" / f"{t:05d}.png").tobytes())
    return h.hexdigest()


def test_rigid_path_is_unchanged(source_root, tmp_path):
    """No deform key and amplitude 0 give the same bytes, and the motion the rigid code always drew."""
    build(_definition(frames=8), source_root, tmp_path / "absent")
    zero = _definition(frames=8)
    zero["deform"] = {"amplitude": 0, "grid": 4, "keyframe_every": 2}
    build(zero, source_root, tmp_path / "zero")
    files = sorted(p.relative_to(tmp_path / "absent") for p in (tmp_path / "absent").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "zero") for p in (tmp_path / "zero").rglob("*") if p.is_file())
    for rel in files:
        assert (tmp_path / "absent" / rel).read_bytes() == (tmp_path / "zero" / rel).read_bytes(), rel
    assert "deform" not in json.loads((tmp_path / "zero" / "benchmark.json").read_text())
    assert _pha_hash(tmp_path / "absent", 8) == RIGID_PHA_SHA256


def _disc_source(fg_equals_alpha: bool = True):
    from vidmatte.data.synthesis import Source

    yy, xx = np.mgrid[0:120, 0:100]
    alpha = np.clip((40 - np.hypot(yy - 60, xx - 50)) / 4, 0, 1).astype(np.float32)
    # a foreground whose colour is its own alpha in red, and a ramp in green: misalignment would show in both
    fg = np.dstack([alpha, (xx / 100.0).astype(np.float32), np.full_like(alpha, 0.5)])
    return Source("disc", [alpha], [fg], False)


def _compose(deform: dict | None, deform_seed: int = 5, frames: int = 24, augment: dict | None = None):
    from vidmatte.data.synthesis import compose_clip

    rng = np.random.default_rng(1)
    bgs = [np.tile(np.arange(90, dtype=np.uint8)[None, :, None] * 2, (50, 1, 3))] * frames
    layers = compose_clip(_disc_source(), bgs, 128, 72, rng, {"keyframe_every": 6, "rotate_deg": 8},
                          {"translate": 0.02, "zoom": 0.05}, augment or {}, deform, np.random.default_rng(deform_seed))
    return layers, rng.random()  # the next draw of the main generator: equal iff it was consumed alike


DEFORM = {"amplitude": 0.05, "grid": 4, "keyframe_every": 6}


def test_deformation_field_is_smooth_and_does_not_fold():
    from vidmatte.data.synthesis import Deformation, affine, min_jacobian

    amp, grid = 0.05, 4
    d = Deformation(np.random.default_rng(0), 30, (200.0, 150.0), (300.0, 240.0), amp, grid, 6)
    yy, xx = np.mgrid[-20:330, 20:380].astype(np.float64)  # the subject's box (50..350 x 30..270) and beyond
    size = 300.0
    bound = 2 * amp * grid  # slope bound of the B-spline field (px per px), before the temporal spline's overshoot
    previous = None
    for t in range(30):
        dx, dy = d.displacement(t, xx, yy)
        assert max(np.abs(dx).max(), np.abs(dy).max()) <= 1.3 * amp * size
        for f in (dx, dy):
            step = max(np.abs(np.diff(f, axis=0)).max(), np.abs(np.diff(f, axis=1)).max())
            assert step <= 1.3 * bound
            # second differences are tiny: no kinks, no tearing
            assert max(np.abs(np.diff(f, 2, axis=0)).max(), np.abs(np.diff(f, 2, axis=1)).max()) < 0.05
        if previous is not None:  # smooth in time too: a frame moves every point by a fraction of the amplitude
            assert max(np.abs(dx - previous[0]).max(), np.abs(dy - previous[1]).max()) < 0.5 * amp * size
        previous = dx, dy
    # it is really non-rigid: an affine fit leaves a large residual
    dx, dy = d.displacement(12, xx, yy)
    a = np.stack([xx.ravel(), yy.ravel(), np.ones(xx.size)], 1)
    for f in (dx, dy):
        residual = f.ravel() - a @ np.linalg.lstsq(a, f.ravel(), rcond=None)[0]
        assert np.abs(residual).max() > 0.2 * amp * size
    m = affine(256, 144, 5, -3, 7, 0.6, 0.03, 200, 150)
    for t in (0, 7, 29):
        assert min_jacobian(*d.maps(t, m, 512, 288), m) > 0.5
    with pytest.raises(InputError, match="could fold"):
        Deformation(np.random.default_rng(0), 30, (0, 0), (10, 10), 0.1, 4, 6)


def test_deformation_is_seeded_and_leaves_the_rest_alone():
    rigid, rigid_next = _compose(None)
    a, a_next = _compose(DEFORM, 5)
    b, b_next = _compose(DEFORM, 5)
    c, c_next = _compose(DEFORM, 6)
    zero, zero_next = _compose({**DEFORM, "amplitude": 0})
    assert rigid_next == a_next == c_next == zero_next  # the main generator is consumed exactly as when rigid
    for layer in ("pha", "fgr", "bgr", "com"):
        assert all(np.array_equal(x, y) for x, y in zip(getattr(a, layer), getattr(b, layer)))  # same seed
        assert all(np.array_equal(x, y) for x, y in zip(getattr(rigid, layer), getattr(zero, layer)))  # amp 0
    assert all(np.array_equal(x, y) for x, y in zip(rigid.bgr, a.bgr))  # same background and camera
    assert not np.array_equal(a.pha[10], c.pha[10])  # another seed, another warp
    assert not np.array_equal(a.pha[10], rigid.pha[10])
    assert a.params["deform"]["min_jacobian"] > 0.5 and "deform" not in rigid.params
    # the same amount of subject, moved about: the warp reshapes, it does not grow or erase the disc
    assert abs(int((a.pha[10] > 127).sum()) - int((rigid.pha[10] > 127).sum())) < 0.15 * (rigid.pha[10] > 127).sum()


def test_deformation_keeps_alpha_and_foreground_aligned():
    import cv2 as _cv2

    from vidmatte.data.synthesis import Deformation, affine, blend_u8, to_u8

    layers, _ = _compose(DEFORM, augment={"noise_max": 0.03})
    for t in (0, 9, 23):
        # the foreground's red channel is its own alpha: warped with the same map it still is (noise aside)
        a = layers.pha[t].astype(int)
        assert np.abs(layers.fgr[t][..., 0].astype(int) - a)[a > 0].mean() < 0.03 * 255 * 1.5
        assert np.array_equal(layers.com[t], blend_u8(layers.pha[t], layers.fgr[t], layers.bgr[t]))
    clean, _ = _compose(DEFORM)
    for t in (0, 9, 23):
        assert np.abs(clean.fgr[t][..., 0].astype(int) - clean.pha[t]).max() <= 1
    # the truth is the alpha pulled through the documented map: rebuild frame 9's map from the same draws
    src = _disc_source()
    rng = np.random.default_rng(1)
    from vidmatte.data.synthesis import smooth_track

    n, every = 24, 6
    tx = smooth_track(rng, n, every, -0.1 * 128, 0.1 * 128)
    ty = smooth_track(rng, n, every, -0.1 * 72 / 2, 0.1 * 72 / 2)
    angle = smooth_track(rng, n, every, -8, 8)
    scale = smooth_track(rng, n, every, 0.9, 1.1)
    shear = smooth_track(rng, n, every, -0.03, 0.03)
    ys, xs = np.nonzero(src.alphas[0] > 0.01)
    box_h, box_w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
    base = min(0.85 * 72 / box_h, 0.9 * 128 / box_w)
    cx, cy = (xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2
    warp = Deformation(np.random.default_rng(5), n, (cx, cy), (box_w, box_h), 0.05, 4, 6)
    t = 9
    m = affine(64, 36, tx[t], ty[t], angle[t], base * scale[t], shear[t], cx, cy)
    mx, my = warp.maps(t, m, 128, 72)
    expected = to_u8(_cv2.remap(src.alphas[0], mx, my, _cv2.INTER_LINEAR, borderMode=_cv2.BORDER_CONSTANT))
    assert np.array_equal(clean.pha[t], expected)


def test_resolve_keyframes():
    from vidmatte.data.benchmark import resolve_keyframes

    assert resolve_keyframes([0, 12], 24) == [0, 12]
    assert resolve_keyframes([0, 12], 10) == [0]  # past the end: dropped, as before
    assert resolve_keyframes("first", 60) == [0]
    assert resolve_keyframes("first_and_last", 60) == [0, 59]
    assert resolve_keyframes(["first", 30, "last"], 60) == [0, 30, 59]
    for bad in ("middle", [-1], [1.5], ["end"]):
        with pytest.raises(InputError):
            resolve_keyframes(bad, 60)


def test_long_deformed_build_layout(source_root, tmp_path, capsys):
    """60 frames at 128x72 with the deformation, through the CLI, first and last frame as trimap keyframes."""
    definition = _definition(frames=60)
    definition["deform"] = DEFORM
    definition["motion"]["keyframe_every"] = 10
    (tmp_path / "long.json").write_text(json.dumps(definition))
    root = tmp_path / "r"
    assert main(["bench", "build", "--definition", str(tmp_path / "long.json"), "--data-root", str(source_root),
                 "--root", str(root), "--size", "128x72", "--keyframes", "first_and_last"]) == 0
    out = root / "clips"
    record = json.loads((out / "benchmark.json").read_text())
    assert record["frames"] == 60 and record["size"] == [128, 72] and record["keyframes"] == [0, 59]
    assert record["deform"] == DEFORM
    frames = [f"{t:05d}.png" for t in range(60)]
    for clip in ("disc_video", "disc_still"):
        d = out / clip
        for layer in ("com", "pha", "fgr", "bgr", "trimap"):
            assert sorted(p.name for p in (d / layer).iterdir()) == frames, (clip, layer)
        assert sorted(p.name for p in (d / "tcvom").iterdir()) == sorted(
            [f"{t:05d}_rgb.png" for t in range(60)] + ["00000_trimap.png", "00059_trimap.png"])
        assert np.array_equal(_read(d / "tcvom" / "00059_trimap.png"), _read(d / "trimap" / "00059.png"))
        assert _read(d / "pha" / "00059.png").shape == (72, 128)
        assert record["clips"][clip]["deform"]["min_jacobian"] > 0.5
        for t in (0, 30, 59):
            a = _read(d / "pha" / frames[t]).astype(np.float64)[..., None] / 255
            com = _read(d / "com" / frames[t]).astype(np.float64) / 255
            f, b = (_read(d / layer / frames[t]).astype(np.float64) / 255 for layer in ("fgr", "bgr"))
            assert np.abs(com - (a * f + (1 - a) * b)).max() <= 1 / 255
    capsys.readouterr()
    assert main(["bench", "build", "--definition", str(tmp_path / "long.json"), "--data-root", str(source_root),
                 "--root", str(root), "--keyframes", "middle", "--overwrite"]) == 2
    assert "--keyframes" in capsys.readouterr().err


def test_guided_definitions_are_twins_of_default():
    from vidmatte.data.benchmark import load_definition

    default, rigid, nonrigid = (load_definition(n) for n in ("default", "guided_rigid", "guided_nonrigid"))
    assert rigid["clips"] == nonrigid["clips"] == default["clips"]
    assert rigid["frames"] >= 60 and nonrigid["frames"] == rigid["frames"]
    assert float(rigid["deform"]["amplitude"]) == 0 and float(nonrigid["deform"]["amplitude"]) > 0
    strip = {"name", "description", "deform", "_path"}
    assert {k: v for k, v in rigid.items() if k not in strip} == {k: v for k, v in nonrigid.items() if k not in strip}
