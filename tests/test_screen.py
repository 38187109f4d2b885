"""Green and blue screens as their own plate, and foreground decontamination (issue 25): generated screens with
uneven light, a crease and a shadow, and spills with exact answers."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from media import write_video
from vidmatte.cli.main import main
from vidmatte.data.screens import screen_background, spill
from vidmatte.solvers.foreground import despill
from vidmatte.solvers.plate_alpha import plate_foreground, solve_with_plate
from vidmatte.solvers.plate_screen import Screen, background_key, detect_screen, parse_screen, screen_key

W, H = 320, 192


def soft_blob(cx: float, cy: float, rx: float = 45, ry: float = 60, edge: float = 6.0) -> np.ndarray:
    """An ellipse with a wide soft edge (fractional alpha over ``edge`` px, where spill shows)."""
    y, x = np.mgrid[0:H, 0:W]
    d = (np.hypot((x - cx) / rx, (y - cy) / ry) - 1) * min(rx, ry)
    return np.clip(0.5 - d / edge, 0, 1).astype(np.float32)


def to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)


def screen_frame(colour: str, cx: float, seed: int = 0, fg=(0.85, 0.55, 0.35)):
    """(frame uint8, alpha, the clean screen float) of a warm-coloured subject over an uneven screen."""
    bg = screen_background(H, W, colour, np.random.default_rng(seed))
    alpha = soft_blob(cx, 100)
    frame = alpha[..., None] * np.array(fg, np.float32) + (1 - alpha[..., None]) * bg
    return to_u8(frame), alpha, bg


@pytest.mark.parametrize("colour, name", [("green", "green"), ("blue", "blue"), ("green", "#00b140")])
def test_screen_plate_recovers_an_uneven_screen_with_a_crease_and_a_shadow(colour, name):
    frame, alpha, bg = screen_frame(colour, 150, seed=3)
    made = Screen(*parse_screen(name)).plate(frame)
    error = np.abs(made.plate.astype(np.float32) - bg * 255).max(axis=2)
    seen = alpha == 0
    assert error[seen].mean() < 2.0, f"{error[seen].mean():.2f} grey levels where the screen is seen"
    # under the subject the screen is interpolated from around it: the light's falloff, not the crease exactly
    assert error[alpha > 0].mean() < 12, f"{error[alpha > 0].mean():.2f} grey levels under the subject"
    assert not (made.screen & (alpha > 0.02)).any(), "no pixel of the subject may be taken as screen"
    assert made.screen[seen].mean() > 0.8, "most of the visible screen is clearly screen"


def test_a_flat_key_colour_plate_would_be_far_worse():
    """The bound above means something: the named colour as a flat plate is tens of grey levels off."""
    frame, alpha, bg = screen_frame("green", 150, seed=3)
    flat = np.array([0x00, 0xB1, 0x40], np.float32)
    assert np.abs(flat - bg * 255).max(axis=2)[alpha == 0].mean() > 20


def lit_screen(peak=(160, 96), crease_x=None) -> np.ndarray:
    """float32 [H,W,3]: a green screen whose key light peaks at ``peak`` (falling off by half towards the frame's
    edges), with a shaded vertical crease at ``crease_x`` when given."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    lit = 0.5 + 0.5 * np.exp(-((x - peak[0]) ** 2 + (y - peak[1]) ** 2) / (2 * 70.0 ** 2))
    if crease_x is not None:
        lit = lit * (1 - 0.4 * np.exp(-((x - crease_x) / 4.0) ** 2))
    return (np.array([0.22, 0.66, 0.27], np.float32) * lit[..., None]).astype(np.float32)


def over(bg: np.ndarray, alpha: np.ndarray, fg=(0.85, 0.55, 0.35)) -> np.ndarray:
    return to_u8(alpha[..., None] * np.array(fg, np.float32) + (1 - alpha[..., None]) * bg)


def test_the_light_hidden_behind_the_subject_is_carried_over_it():
    """The key light peaks behind the subject: a fill from the screen around it alone sees no peak (it carries the
    boundary's values inwards) and is dark there; the smooth surface fitted to the clear screen brings the peak."""
    bg = lit_screen()
    alpha = soft_blob(160, 96, rx=50, ry=55, edge=3)
    made = Screen(*parse_screen("green")).plate(over(bg, alpha))
    under = alpha > 0.5
    error = (made.plate.astype(np.float32) - bg * 255).mean(axis=2)[under]
    assert np.abs(error).mean() < 4.0, f"{np.abs(error).mean():.2f} grey levels under the subject"
    assert error.mean() > -3.0, f"the light's peak is lost ({error.mean():.2f} grey levels dark)"


def test_the_screen_seen_before_stands_behind_the_subject_and_a_moved_camera_drops_it():
    """A crease the subject now hides was seen in an earlier frame: it is in the plate; when the camera moves (the
    screen is shifted), the memory no longer fits and is not used."""
    bg = lit_screen(crease_x=200)
    screen = Screen(*parse_screen("green"))
    screen.plate(over(bg, soft_blob(80, 96, rx=40, ry=55, edge=3)))  # the subject left of the crease
    alpha = soft_blob(200, 96, rx=40, ry=55, edge=3)  # ... now in front of it
    made = screen.plate(over(bg, alpha))
    crease = (alpha > 0.5) & (np.abs(np.arange(W) - 200) < 5)[None, :]
    error = np.abs(made.plate.astype(np.float32) - bg * 255).max(axis=2)
    assert error[crease].mean() < 4.0, f"{error[crease].mean():.2f} grey levels on the hidden crease"
    fresh = Screen(*parse_screen("green")).plate(over(bg, alpha))
    assert np.abs(fresh.plate.astype(np.float32) - bg * 255).max(axis=2)[crease].mean() > 3 * error[crease].mean()
    # the camera moves 40 px: what the memory holds is of another place; the plate is the frame's own fill
    moved = np.roll(bg, 40, axis=1)
    shifted = screen.plate(over(moved, alpha))
    alone = Screen(*parse_screen("green")).plate(over(moved, alpha))
    assert screen.memory_count is not None and screen.memory_count.max() <= 1, "the stale memory was dropped"
    assert np.array_equal(shifted.plate, alone.plate)


def test_detection_finds_a_screen_and_not_a_plain_wall():
    frame, _, _ = screen_frame("blue", 160)
    found = detect_screen(frame)
    assert found is not None and found.name == "blue"
    wall = np.full((H, W, 3), (190, 180, 160), np.uint8)
    wall[60:140, 120:200] = (200, 60, 40)  # a red subject on a beige wall
    assert detect_screen(wall) is None


@pytest.mark.parametrize("text", ["#00b14", "#gg0000", "#808080"])
def test_bad_screen_colours_are_refused(text):
    with pytest.raises(ValueError, match="--plate"):
        parse_screen(text)


KEY = np.array([0.28, 1.0, 0.36], np.float32)


def test_despill_removes_a_known_spill_exactly_and_spares_a_green_shirt():
    """A spill with an exact answer: grey and white hair (r = g = b) lit green by the screen where it is thin."""
    rng = np.random.default_rng(0)
    alpha = np.tile(np.linspace(0, 1, W, dtype=np.float32), (H, 1))
    clean = np.repeat(rng.uniform(0.3, 0.95, (H, W, 1)).astype(np.float32), 3, axis=2)
    spilled = clean.copy()
    # the screen's light, more where the hair is thinner, none where it is solid
    spilled[..., 1] += 0.4 * (1 - alpha) * (alpha > 0) * (alpha < 0.9)
    spilled = np.clip(spilled, 0, 1)
    fringe = (alpha > 0.02) & (alpha < 0.9)
    assert np.abs(spilled - clean)[fringe].max() > 0.03
    assert np.abs(despill(spilled, alpha, KEY) - clean)[fringe].max() < 1e-6
    # the screen's tint on warm hair (the benchmark's spill) is reduced, if not exactly undone
    warm = np.broadcast_to(np.array([0.8, 0.6, 0.4], np.float32), (H, W, 3))
    tinted = spill(warm, alpha, np.broadcast_to(np.array([0.2, 0.7, 0.25], np.float32), (H, W, 3)))
    before = np.abs(tinted - warm)[fringe].mean()
    assert np.abs(despill(tinted, alpha, KEY) - warm)[fringe].mean() < 0.8 * before
    # a shirt in nearly the screen's colour keeps its colour, at its solid pixels and on its edge
    shirt = np.empty((H, W, 3), np.float32)
    shirt[...] = (0.3, 0.75, 0.35)
    edge = np.clip(alpha * 4, 0, 1)  # solid over most of the frame, an edge on the left
    kept = despill(shirt, edge, KEY)
    assert np.abs(kept - shirt)[edge > 0.5].max() < 0.02


def test_unmixing_against_a_known_plate_is_exact_where_alpha_is_solid():
    frame, alpha, bg = screen_frame("green", 150)
    colours = plate_foreground(frame, to_u8(bg), alpha)
    solid = alpha > 0.7
    assert np.abs(colours[solid] - np.array([0.85, 0.55, 0.35])).max() < 0.02


def test_a_mesh_over_a_screen_is_not_read_as_opaque():
    """A grey mesh (wires finer than 3 px, mean alpha 0.45) inside a solid rim over a smooth blue screen. Its mixed
    pixels alone do not tell F from alpha; F taken from them holds the screen's blue and read 0.55 too opaque. The
    screen's key breaks the tie (the subject is not of the screen's colour beyond what its solid parts show)."""
    bg = screen_background(H, W, "blue", np.random.default_rng(5), crease=False, shadow=False)
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    r = np.hypot(x - 160, y - 96)
    alpha = np.where(r < 50, 0.45 + 0.3 * np.sin(x * 2.2) * np.sin(y * 2.2), 0)
    alpha = np.where((r >= 50) & (r < 58), 1.0, alpha).astype(np.float32)
    frame = to_u8(alpha[..., None] * np.float32([0.6, 0.6, 0.6]) + (1 - alpha[..., None]) * bg)
    mesh = (alpha > 0) & (alpha < 1)
    keyed = solve_with_plate(frame, to_u8(bg), key=Screen(*parse_screen("blue")).key_rgb).alpha
    unkeyed = solve_with_plate(frame, to_u8(bg)).alpha
    assert np.abs(keyed - alpha)[mesh].mean() < 0.12, np.abs(keyed - alpha)[mesh].mean()
    assert np.abs(unkeyed - alpha)[mesh].mean() > 0.3  # what the key fixes
    assert keyed[alpha == 1].min() > 0.95, "the rim stays solid"


def test_a_plate_image_of_a_screen_is_keyed_like_the_screen():
    """A clean plate shot of a blue screen is a screen: its key holds the solve's colours as --plate blue does (the
    mesh is not read as opaque) and --json says so; a plate of a plain wall is not."""
    from vidmatte.matters.plate import PlateMatter

    bg = screen_background(H, W, "blue", np.random.default_rng(5), crease=False, shadow=False)
    key = screen_key(to_u8(bg))
    assert key is not None and int(np.argmax(key)) == 2
    wall = np.full((H, W, 3), (200, 190, 170), np.uint8)
    assert screen_key(wall) is None
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    r = np.hypot(x - 160, y - 96)
    alpha = np.where(r < 50, 0.45 + 0.3 * np.sin(x * 2.2) * np.sin(y * 2.2), 0)
    alpha = np.where((r >= 50) & (r < 58), 1.0, alpha).astype(np.float32)
    frame = to_u8(alpha[..., None] * np.float32([0.6, 0.6, 0.6]) + (1 - alpha[..., None]) * bg)
    matter = PlateMatter(to_u8(bg), align=False)
    solved = matter.matte([matter.prepare(frame, 0)])[0].alpha()
    mesh = (alpha > 0) & (alpha < 1)
    assert np.abs(solved - alpha)[mesh].mean() < 0.12, np.abs(solved - alpha)[mesh].mean()
    assert matter.summary()["plate_is_screen"] is True
    plain = PlateMatter(wall, align=False)
    assert "plate_is_screen" not in plain.summary()


@pytest.mark.parametrize("shirt", [False, True])
def test_a_gap_that_shows_the_screen_opens_though_rvm_fills_it(shirt):
    """RVM is sure of the whole body, the gap between arm and body included, whose colour is the screen's: on a
    screen the gap opens; a shirt of nearly the screen's colour around it stays solid."""
    bg = screen_background(H, W, "green", np.random.default_rng(6), crease=False, shadow=False)
    body = soft_blob(160, 110, rx=70, ry=80, edge=2)
    gap = soft_blob(185, 140, rx=8, ry=16, edge=2)
    alpha = np.clip(body - gap, 0, 1)
    fg = np.broadcast_to(np.float32([0.85, 0.55, 0.35]), (H, W, 3)).copy()
    if shirt:
        shade = np.float32([0.22, 0.66, 0.27]) * np.float32([1.25, 0.9, 1.1])  # as benchmarks/screen.py's
        fg[np.mgrid[0:H, 0:W][0] > 130] = shade / shade.mean() * 0.55
    frame = to_u8(alpha[..., None] * fg + (1 - alpha[..., None]) * bg)
    rvm = (frame.astype(np.float32) / 255, body)
    keyed = solve_with_plate(frame, to_u8(bg), rvm, key=Screen(*parse_screen("green")).key_rgb).alpha
    assert keyed[gap > 0.9].mean() < 0.3, keyed[gap > 0.9].mean()
    assert keyed[alpha > 0.99].min() > 0.95
    assert solve_with_plate(frame, to_u8(bg), rvm).alpha[gap > 0.9].mean() > 0.9  # a plate that is no screen


def test_background_key_is_the_screen_and_none_over_a_room():
    frame, alpha, _ = screen_frame("green", 150)
    key = background_key(frame, alpha)
    assert key is not None and np.argmax(key) == 1
    room = np.random.default_rng(1).integers(0, 255, (H, W, 3), dtype=np.uint8)
    assert background_key(room, alpha) is None


def screen_clip(tmp_path: Path, colour: str = "green", frames: int = 6) -> tuple[Path, list[np.ndarray]]:
    clip, truths = [], []
    for i in range(frames):
        frame, alpha, _ = screen_frame(colour, 110 + 12 * i)
        clip.append(frame)
        truths.append(alpha)
    return write_video(tmp_path / "screen.mp4", clip, codec="libx264rgb", pix_fmt="rgb24"), truths


@pytest.mark.weights
@pytest.mark.parametrize("plate, source", [("green", "screen green"), ("#00b140", "screen #00b140"),
                                           ("auto", "detected screen green")])
def test_background_command_keys_a_screen(tmp_path, capsys, plate, source):
    video, truths = screen_clip(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    assert main(["background", str(video), "--plate", plate, "--alpha", f"{out}/alpha/", "--rgba", f"{out}/rgba/",
                 "--json", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out.strip())
    assert result["plate_source"] == source and result["plate_alignment"] == "none"
    written = sorted((out / "alpha").glob("*.png"))
    mad = np.mean([np.abs(cv2.imread(str(p), 0) / 255 - t).mean() for p, t in zip(written, truths)])
    assert len(written) == len(truths) and mad < 0.01, f"MAD {mad:.4f}"


@pytest.mark.parametrize("plate, fragment", [("#00b14", "six hex digits"), ("#808080", "too grey"),
                                             ("greeen", "plate not found")])
def test_bad_screen_colour_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, plate, fragment):
    video, _ = screen_clip(tmp_path, frames=2)
    out = tmp_path / "out"
    out.mkdir()
    code = main(["background", str(video), "--plate", plate, "--alpha", f"{out}/a.mp4", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1, err
    assert list(out.iterdir()) == []


def test_bad_foreground_method_is_refused(tmp_path, capsys):
    video, _ = screen_clip(tmp_path, frames=2)
    with pytest.raises(SystemExit) as exc:
        main(["convert", str(video), "--alpha", str(tmp_path / "a.mp4"), "--foreground-method", "magic"])
    assert exc.value.code == 2


def test_foreground_methods_take_the_screen_out_of_the_fringe():
    """The convert and guided modes' step (``matters.foreground``) on a frame and its alpha: the frame's own colours
    keep the screen in the fringe; estimate and despill take it out (the despill's key found from the frame)."""
    from vidmatte.matters.foreground import foreground_colours

    frame, alpha, _ = screen_frame("green", 150, fg=(0.6, 0.6, 0.6))  # grey: any green excess is the screen's
    fringe = (alpha > 0.1) & (alpha < 0.8)
    raw = lambda: frame.astype(np.float32) / 255  # noqa: E731  (a matter whose colours are the frame's)
    green = {}
    for method in ("none", "estimate", "despill"):
        colours = foreground_colours(method, frame, alpha, raw)
        green[method] = float((colours[..., 1] - np.maximum(colours[..., 0], colours[..., 2]))[fringe].mean())
    assert green["none"] > 0.1, green
    assert green["estimate"] < 0.02 and green["despill"] < 0.01, green


@pytest.mark.weights
def test_convert_and_guided_take_the_foreground_method(tmp_path, capsys):
    video, truths = screen_clip(tmp_path, frames=3)
    out = tmp_path / "out"
    out.mkdir()
    assert main(["convert", str(video), "--foreground", f"{out}/fg.mp4", "--foreground-method", "estimate",
                 "--quiet"]) == 0
    key = tmp_path / "key.png"
    cv2.imwrite(str(key), (truths[0] > 0.5).astype(np.uint8) * 255)
    assert main(["guided", str(video), "--keyframe", f"0:{key}", "--rgba", f"{out}/rgba/", "--foreground-method",
                 "despill", "--quiet"]) == 0
    assert len(list((out / "rgba").glob("*.png"))) == 3 and (out / "fg.mp4").stat().st_size > 0


def test_a_batch_manifest_names_a_screen_as_its_plate(tmp_path):
    from vidmatte.batch.manifest import read_manifest

    video, _ = screen_clip(tmp_path, frames=2)
    manifest = tmp_path / "items.jsonl"
    manifest.write_text("\n".join(json.dumps({"input": video.name, "plate": plate})
                                  for plate in ("green", "#00b140", "auto", "missing.png")) + "\n")
    items, rejected = read_manifest(str(manifest), "background", lambda column, text: (column, text))
    assert [item.plate for item in items] == ["green", "#00b140", "auto"]
    assert len(rejected) == 1 and "plate not found" in rejected[0].reason
