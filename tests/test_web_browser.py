"""The page end to end in a real browser: Debian's Chromium driven by Playwright, against a real server on 127.0.0.1.

Skipped (with the reason) when Playwright or a Chromium is missing; `.ci/run` installs Debian's `chromium` so CI
runs them. VIDMATTE_WEB_SCREENSHOTS=docs/images keeps the screenshots of the main states (docs/WEB.md).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from media import moving_square_frames, write_video
from web_helpers import serving

sync_api = pytest.importorskip("playwright.sync_api", reason="the browser tests need Playwright (vidmatte[dev])")

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("VIDMATTE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                 reason="no Chromium (apt-get install chromium, or set VIDMATTE_CHROMIUM)")]
WAIT_MS = 120_000


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 820}, accept_downloads=True)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, errors  # no script error on the page


def _shot(page, tmp_path: Path, name: str) -> None:
    folder = Path(os.environ.get("VIDMATTE_WEB_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"web_{name}.png"))


def _open_upload(page, base: str, clip: Path) -> str:
    page.goto(base + "/")
    page.wait_for_selector("body[data-ready]")  # the page has its handlers and the server's limits
    page.set_input_files("#upload", str(clip))
    page.wait_for_selector("#editor:not([hidden])")
    page.wait_for_function("location.hash.length > 1")
    return page.evaluate("location.hash.slice(1)")


def _paint(page, points_in_frame: list[tuple[float, float]], frame_size: tuple[int, int]) -> None:
    """Drag the mouse through ``points_in_frame`` (frame pixels) on the painting canvas."""
    box = page.locator("#overlay").bounding_box()
    sx, sy = box["width"] / frame_size[0], box["height"] / frame_size[1]
    xs = [(box["x"] + x * sx, box["y"] + y * sy) for x, y in points_in_frame]
    page.mouse.move(*xs[0])
    page.mouse.down()
    for point in xs[1:]:
        page.mouse.move(*point, steps=4)
    page.mouse.up()


def _alpha_pngs(zip_or_folder: Path) -> list[np.ndarray]:
    if zip_or_folder.is_dir():
        files = sorted(zip_or_folder.glob("*.png"))
        return [cv2.imread(str(f), cv2.IMREAD_UNCHANGED) for f in files]
    with zipfile.ZipFile(zip_or_folder) as zf:
        return [cv2.imdecode(np.frombuffer(zf.read(n), np.uint8), cv2.IMREAD_UNCHANGED) for n in sorted(zf.namelist())]


def test_paint_a_keyframe_run_guided_and_download_what_the_cli_writes(page, tmp_path):
    width, height = 160, 96
    clip = write_video(tmp_path / "square.mp4", moving_square_frames(24, width, height))
    with serving(tmp_path / "work") as (base, _):
        job_id = _open_upload(page, base, clip)
        page.wait_for_selector("text=frame 0 / 23")
        _shot(page, tmp_path, "1_uploaded")
        page.check("input[name=mode][value=guided]")  # the subject tools are guided mode's
        page.click("[data-tool=fg]")
        page.fill("#brush-size", "20")
        _paint(page, [(3, 16), (8, 15), (13, 17)], (width, height))  # over the yellow square (x 0..16, y 8..24)
        # The image 'Set keyframe' sends, made by the page's own function (Playwright does not show blob bodies)
        sent = bytes(page.evaluate("async () => new Uint8Array(await (await labelsPng("
                                   "(label) => GREY_OF_LABEL[label])).arrayBuffer())"))
        _shot(page, tmp_path, "2_painted")
        page.click("#set-keyframe")
        page.wait_for_selector("text=frame 0 is a keyframe")
        page.click("#preview-propagation")
        page.wait_for_selector("text=propagated over frames 0..12")
        for _ in range(6):
            page.click("#next")
        page.wait_for_selector("text=frame 6 / 23")
        _shot(page, tmp_path, "3_propagation_preview")
        assert page.is_checked("input[name=mode][value=guided]")
        page.select_option("#prior", "none")
        for output in ("composition", "alpha", "rgba_mov"):
            page.uncheck(f"#outputs input[value={output}]")
        page.click("#run")
        page.wait_for_selector("#progress-text.done", timeout=WAIT_MS)
        assert page.text_content("#progress-text") == "done: 100%"
        assert page.eval_on_selector("#progress", "p => p.value") == 100
        page.wait_for_function("document.getElementById('view-alpha').naturalWidth > 0")
        _shot(page, tmp_path, "4_done")
        with page.expect_download() as download:
            page.click("a[data-output=alpha_png]")
        downloaded = tmp_path / "alpha.zip"
        download.value.save_as(downloaded)
    painted = tmp_path / "painted.png"
    painted.write_bytes(sent)
    cli = subprocess.run([sys.executable, "-m", "vidmatte", "guided", str(clip), "--keyframe", f"0:{painted}",
                          "--alpha", str(tmp_path / "cli") + "/", "--prior", "none", "--quiet"],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO / "src")},
                         timeout=300)
    assert cli.returncode == 0, cli.stderr
    page_alpha, cli_alpha = _alpha_pngs(downloaded), _alpha_pngs(tmp_path / "cli")
    assert len(page_alpha) == len(cli_alpha) == 24
    for ours, theirs in zip(page_alpha, cli_alpha):
        assert np.array_equal(ours, theirs)
    x = (20 * 5) % (width - 16)
    assert page_alpha[20][16, x + 8] > 200 and page_alpha[20][70, 120] < 30  # the square was followed
    assert job_id


def test_reload_mid_job_then_cancel(page, tmp_path):
    width, height = 320, 192
    clip = write_video(tmp_path / "long.mp4", moving_square_frames(150, width, height))
    mask = np.zeros((height, width), np.uint8)
    mask[8:24, 0:16] = 255
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    with serving(tmp_path / "work") as (base, _):
        job_id = _open_upload(page, base, clip)
        page.set_input_files("#mask-upload", str(tmp_path / "mask.png"))  # a mask file as the keyframe
        page.wait_for_selector("text=frame 0 is a keyframe")
        page.select_option("#prior", "none")
        page.click("#run")
        page.wait_for_selector("#progress-text.running", timeout=WAIT_MS)
        page.reload()
        page.wait_for_selector("#progress-text.running", timeout=WAIT_MS)  # picked up again from the address
        page.wait_for_function("document.getElementById('progress').value > 0", timeout=WAIT_MS)
        assert page.is_enabled("#cancel") and not page.is_enabled("#run")
        _shot(page, tmp_path, "5_running")
        page.click("#cancel")
        page.wait_for_selector("#progress-text.cancelled", timeout=WAIT_MS)
        assert "no output was written" in page.text_content("#progress-text")
        assert page.locator("#downloads a").count() == 0
        left = sorted(p.name for p in (tmp_path / "work" / "jobs" / job_id).iterdir())
        assert left == ["input.mp4", "keyframes", "preview", "work"], left


def test_frames_whose_keyframes_disagree_are_marked_and_one_click_away(page, tmp_path):
    """Keyframe 23 marks a patch of background, not the square: after the run the page marks the frames between on
    the timeline, says what happened, and a button goes to the middle frame, where a keyframe would settle it."""
    width, height = 160, 96
    clip = write_video(tmp_path / "square.mp4", moving_square_frames(24, width, height))
    masks = {0: np.zeros((height, width), np.uint8), 23: np.zeros((height, width), np.uint8)}
    masks[0][8:24, 0:16] = 255
    masks[23][60:80, 110:140] = 255
    for index, mask in masks.items():
        cv2.imwrite(str(tmp_path / f"mask{index}.png"), mask)
    with serving(tmp_path / "work") as (base, _):
        _open_upload(page, base, clip)
        page.set_input_files("#mask-upload", str(tmp_path / "mask0.png"))
        page.wait_for_selector("text=frame 0 is a keyframe")
        page.fill("#frame", "23")
        page.dispatch_event("#frame", "input")
        page.wait_for_selector("text=frame 23 / 23")
        page.set_input_files("#mask-upload", str(tmp_path / "mask23.png"))
        page.wait_for_selector("text=frame 23 is a keyframe")
        page.select_option("#prior", "none")
        page.click("#run")
        page.wait_for_selector("#progress-text.done", timeout=WAIT_MS)
        page.wait_for_selector("#advice:not([hidden])")
        advice = page.text_content("#advice")
        assert "followed to different places" in advice, advice
        assert page.locator(".lostspan").count() == 1
        button = page.locator("#advice button.go-to-frame:not(.go-to-suggested)")
        middle = int(button.text_content().split()[-1])
        first, last = (int(v) for v in re.search(r"Frames (\d+)-(\d+): the keyframes", advice).groups())
        assert 0 < first < last < 23 and middle == (first + last) // 2, advice
        button.click()
        page.wait_for_selector(f"text=frame {middle} / 23")
        _shot(page, tmp_path, "7_keyframes_disagree")


def test_doubtful_frames_are_marked_on_the_timeline_with_the_frame_to_fix(page, tmp_path):
    """The striped disc hides behind a bar on frames 20-26: one keyframe at frame 0, and the page marks the frames
    where the tracker is unsure, says which frame one more keyframe would help most, and goes there."""
    from test_track import OCCLUDED, textured_clip

    frames, masks = textured_clip()
    clip = write_video(tmp_path / "disc.mp4", frames)
    cv2.imwrite(str(tmp_path / "mask0.png"), masks[0].astype(np.uint8) * 255)
    with serving(tmp_path / "work") as (base, _):
        _open_upload(page, base, clip)
        page.set_input_files("#mask-upload", str(tmp_path / "mask0.png"))
        page.wait_for_selector("text=frame 0 is a keyframe")
        page.click("#run")
        page.wait_for_selector("#progress-text.done", timeout=WAIT_MS)
        page.wait_for_selector("#advice:not([hidden])")
        advice = page.text_content("#advice")
        assert "probably lost or leaking" in advice and "would help most" in advice, advice
        assert page.locator(".doubtspan").count() >= 1
        button = page.locator("#advice button.go-to-suggested")
        suggested = int(button.text_content().split()[-1])
        assert suggested in OCCLUDED, advice
        button.click()
        page.wait_for_selector(f"text=frame {suggested} / {len(frames) - 1}")
        _shot(page, tmp_path, "8_doubtful_frames")


def test_pick_a_network_for_plate_matting_run_it_and_see_it_after_a_restart(page, tmp_path):
    """The --checkpoints folder holds a tiny BackgroundMattingV2 made here and a file that is not weights: the page
    offers the network under background mode, says which file it could not use, runs it, and a restarted server shows
    the job's method; the alpha is what `vidmatte background --method neural` writes from the same weights."""
    from media import disc_over_plate
    from test_plate_neural import tiny_network, training_checkpoint

    plate, frames, _ = disc_over_plate(7, frames=4)
    clip = write_video(tmp_path / "scene.mp4", frames)
    plate_png = tmp_path / "plate.png"
    cv2.imwrite(str(plate_png), cv2.cvtColor(plate, cv2.COLOR_RGB2BGR))
    weights = tmp_path / "weights"
    weights.mkdir()
    training_checkpoint(weights / "bgm.pt", tiny_network())
    (weights / "junk.pth").write_bytes(b"not weights")
    with serving(tmp_path / "work", checkpoints=weights) as (base, _):
        job_id = _open_upload(page, base, clip)
        assert page.input_value("#method") == "classical" and page.is_disabled("#method")  # convert: RVM alone
        page.set_input_files("#plate-image", str(plate_png))
        page.wait_for_selector("text=plate image set")
        assert page.is_checked("input[name=mode][value=background]")
        page.select_option("#method", "neural")
        assert page.input_value("#checkpoint") == "bgm.pt" and page.is_visible("#checkpoint")
        note = page.text_content("#methods-note")
        assert "No trained weights ship with vidmatte" in note and "Could not use: junk.pth" in note
        _shot(page, tmp_path, "5_network_method")
        for output in ("composition", "alpha", "rgba_mov"):
            page.uncheck(f"#outputs input[value={output}]")
        page.click("#run")
        page.wait_for_selector("#progress-text.done", timeout=WAIT_MS)
        page.wait_for_selector("text=background neural (bgm.pt)")  # the jobs list
        with page.expect_download() as download:
            page.click("a[data-output=alpha_png]")
        downloaded = tmp_path / "alpha.zip"
        download.value.save_as(downloaded)
    with serving(tmp_path / "work") as (base, _):  # restarted without the folder: the record still says
        page.goto(f"{base}/#{job_id}")
        page.wait_for_selector("body[data-ready]")
        page.wait_for_selector("text=background neural (bgm.pt)")
        assert page.input_value("#method") == "neural" and page.input_value("#checkpoint") == "bgm.pt"
        assert "without --checkpoints" in page.text_content("#methods-note")
    cli = subprocess.run([sys.executable, "-m", "vidmatte", "background", str(clip), "--plate", str(plate_png),
                          "--method", "neural", "--checkpoint", str(weights / "bgm.pt"),
                          "--alpha", str(tmp_path / "cli") + "/", "--quiet"],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO / "src")},
                         timeout=300)
    assert cli.returncode == 0, cli.stderr
    page_alpha, cli_alpha = _alpha_pngs(downloaded), _alpha_pngs(tmp_path / "cli")
    assert len(page_alpha) == len(cli_alpha) == 4 and page_alpha[-1].std() > 1  # not a constant matte
    for ours, theirs in zip(page_alpha, cli_alpha):
        assert np.array_equal(ours, theirs)


def _canvas_pixels(page) -> np.ndarray:
    """The painting canvas as RGBA [H,W,4] (what the user sees over the frame)."""
    data = page.evaluate("() => { const c = document.getElementById('overlay');"
                         " return [c.width, c.height, Array.from(c.getContext('2d')"
                         ".getImageData(0, 0, c.width, c.height).data)]; }")
    return np.array(data[2], np.uint8).reshape(data[1], data[0], 4)


def test_each_mode_shows_its_own_controls_and_the_swatch_the_chosen_colour(page, tmp_path):
    clip = write_video(tmp_path / "square.mp4", moving_square_frames(4, 96, 64))
    truncated = tmp_path / "trunc.mp4"
    truncated.write_bytes(clip.read_bytes()[:400])
    with serving(tmp_path / "work") as (base, _):
        page.goto(base + "/")
        page.wait_for_selector("body[data-ready]")
        page.set_input_files("#upload", str(truncated))
        page.wait_for_selector("#message.error:not([hidden])")
        message = page.text_content("#message")
        assert message.count("trunc.mp4") == 1, message  # the reader's message names the file; said once
        _open_upload(page, base, clip)
        shown = {"convert": set(), "guided": {"#guidance", "#prior", "#method"},
                 "background": {"#plate-kind", "#method"}}
        for mode in ("guided", "background", "convert"):
            page.check(f"input[name=mode][value={mode}]")
            visible = {c for c in ("#guidance", "#prior", "#plate-kind", "#method") if page.is_visible(c)}
            assert visible == shown[mode], (mode, visible)
        green = page.evaluate("state.config.colours.green")
        assert green == "#78ff9b"  # RVM's green, (120, 255, 155)
        assert page.input_value("#bg-kind") == "green" and page.input_value("#bg-colour") == green
        page.select_option("#bg-kind", "black")
        assert page.input_value("#bg-colour") == "#000000"
        page.select_option("#bg-kind", "image")
        assert not page.is_visible("#bg-colour")


def test_a_box_proposes_a_mask_shown_for_accept_or_undo(page, tmp_path):
    width, height = 192, 128
    clip = write_video(tmp_path / "big.mp4", moving_square_frames(3, width, height))
    with serving(tmp_path / "work") as (base, _):
        _open_upload(page, base, clip)
        page.check("input[name=mode][value=guided]")
        for attempt in ("undo", "accept"):
            page.click("[data-tool=box]")
            _paint(page, [(1, 2), (20, 20), (40, 34)], (width, height))  # around the square (x 0..16, y 8..24)
            page.wait_for_selector("#proposal:not([hidden])")
            help_text = page.text_content("#tool-help")
            assert help_text.startswith("GrabCut from the box proposed the region in magenta"), help_text
            pixels = _canvas_pixels(page)
            magenta = np.abs(pixels[..., :3].astype(int) - (255, 0, 200)).max(-1) <= 3  # the canvas rounds colours
            sx, sy = pixels.shape[1] / width, pixels.shape[0] / height
            assert magenta[int(16 * sy), int(8 * sx)] and not magenta[int(100 * sy), int(150 * sx)]
            assert page.evaluate("state.labels.every((l) => l === 0)")  # proposed, not yet taken
            if attempt == "undo":
                page.click("#reject-mask")
                assert "undone" in page.text_content("#tool-help")
                assert _canvas_pixels(page)[..., 3].max() == 0  # nothing drawn: the marks are as they were
        _shot(page, tmp_path, "8_box_proposed")
        page.click("#accept-mask")
        assert page.is_hidden("#proposal")
        assert page.text_content("#tool-help").startswith("Accepted the mask of GrabCut from the box")
        pixels = _canvas_pixels(page)
        assert np.abs(pixels[int(16 * sy), int(8 * sx)].astype(int) - (0, 220, 90, 120)).max() <= 3  # foreground now


def test_no_missing_picture_is_asked_for_and_a_reload_keeps_settings_and_preview(page, tmp_path):
    """A keyframe, a propagation preview, a reload (guided mode and the preview are still there), then a run: no
    request of the page's is answered 404 (pictures not written yet, the favicon)."""
    width, height = 160, 96
    clip = write_video(tmp_path / "square.mp4", moving_square_frames(24, width, height))
    mask = np.zeros((height, width), np.uint8)
    mask[8:24, 0:16] = 255
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    missing = []
    page.on("response", lambda response: missing.append(response.url) if response.status == 404 else None)
    with serving(tmp_path / "work") as (base, _):
        _open_upload(page, base, clip)
        page.set_input_files("#mask-upload", str(tmp_path / "mask.png"))
        page.wait_for_selector("text=frame 0 is a keyframe")
        page.click("#preview-propagation")
        page.wait_for_selector("text=propagated over frames 0..12 of 0..23")
        page.reload()
        page.wait_for_selector("body[data-ready]")
        page.wait_for_selector("text=frame 0 / 23")
        assert page.is_checked("input[name=mode][value=guided]")  # kept with the job, though it never ran
        assert "propagated over frames 0..12 of 0..23" in page.text_content("#guide-note")
        page.fill("#frame", "6")
        page.dispatch_event("#frame", "input")
        page.wait_for_function("document.getElementById('overlay').getContext('2d')"
                               ".getImageData(0, 0, 160, 96).data.some((v, i) => i % 4 === 3 && v > 0)")
        page.select_option("#prior", "none")
        for output in ("composition", "alpha", "rgba_mov"):
            page.uncheck(f"#outputs input[value={output}]")
        page.click("#run")
        page.wait_for_selector("#progress-text.done", timeout=WAIT_MS)
        page.wait_for_function("document.getElementById('view-alpha').naturalWidth > 0")
        assert page.locator("a[data-output=alpha_png]").count() == 1
        assert "From run 1 (guided)" in page.text_content("#downloads-from")
    assert missing == []


def _box(page, a: tuple[float, float], b: tuple[float, float], frame_size: tuple[int, int]) -> None:
    """Drag a box from ``a`` to ``b`` (frame pixels) with the Box tool and accept GrabCut's proposal."""
    page.click("[data-tool=box]")
    _paint(page, [a, b], frame_size)
    page.wait_for_selector("#proposal:not([hidden])")
    page.click("#accept-mask")


def _two_squares(n: int, width: int, height: int) -> list[np.ndarray]:
    """``moving_square_frames`` with a second subject: a blue square moving left along the bottom."""
    frames = moving_square_frames(n, width, height)
    for i, frame in enumerate(frames):
        x = width - 24 - i * 5
        frame[60:84, x:x + 24] = (40, 60, 230)
    return frames


def test_two_objects_marked_in_their_colours_run_into_downloads_per_object(page, tmp_path):
    """Add a second object, mark both (a box for each on the first frame, a mask file for object 2's last frame),
    run: each object's ticks are in its colour, the other object's marks show faintly under the one being marked,
    and each object gets its own downloads, its alpha its own square."""
    width, height, count = 160, 96, 12
    clip = write_video(tmp_path / "two.mp4", _two_squares(count, width, height))
    last = np.zeros((height, width), np.uint8)
    x = width - 24 - (count - 1) * 5
    last[60:84, x:x + 24] = 255
    cv2.imwrite(str(tmp_path / "object2_last.png"), last)
    with serving(tmp_path / "work") as (base, _):
        _open_upload(page, base, clip)
        page.check("input[name=mode][value=guided]")
        assert page.locator(".object-choice").count() == 1  # object 1 is there from the start
        assert page.is_disabled("#remove-object")
        _box(page, (2, 4), (22, 28), (width, height))  # around the yellow square
        page.click("#set-keyframe")
        page.wait_for_selector("text=frame 0 is a keyframe")
        page.click("#add-object")
        page.wait_for_selector("text=object 2 added")
        assert page.get_attribute(".object-choice.active", "data-object") == "2"
        box = page.locator("#overlay").bounding_box()
        sx, sy = box["width"] / width, box["height"] / height
        page.wait_for_function("document.getElementById('overlay').getContext('2d')"
                               ".getImageData(0, 0, 160, 96).data.some((v, i) => i % 4 === 3 && v > 0)")
        faint = _canvas_pixels(page)[16, 8]  # object 1's keyframe, beneath object 2's (empty) marks
        assert abs(int(faint[3]) - 70) <= 3 and faint[1] > faint[0], faint
        _box(page, (width - 30, 54), (width - 1, 90), (width, height))  # around the blue square
        pixels = _canvas_pixels(page)
        assert np.abs(pixels[72, width - 12].astype(int) - (255, 90, 30, 120)).max() <= 3  # object 2's colour
        page.click("#set-keyframe")
        page.wait_for_selector("text=frame 0 is a keyframe of object 2")
        page.fill("#frame", str(count - 1))
        page.dispatch_event("#frame", "input")
        page.set_input_files("#mask-upload", str(tmp_path / "object2_last.png"))
        page.wait_for_selector(f"text=frame {count - 1} is a keyframe of object 2")
        ticks = page.locator("#keymarks .keymark")
        assert ticks.count() == 3
        colours = {(ticks.nth(i).get_attribute("data-object"), ticks.nth(i).evaluate("t => getComputedStyle(t).color"))
                   for i in range(3)}
        assert colours == {("1", "rgb(0, 220, 90)"), ("2", "rgb(255, 90, 30)")}, colours
        page.select_option("#prior", "none")
        for output in ("alpha", "rgba_mov"):
            page.uncheck(f"#outputs input[value={output}]")
        page.click("#run")
        page.wait_for_selector("#progress-text.done", timeout=WAIT_MS)
        page.wait_for_function("document.getElementById('view-alpha').naturalWidth > 0")
        page.click(".object-choice[data-object='1']")
        page.fill("#frame", "0")
        page.dispatch_event("#frame", "input")
        page.wait_for_function("document.getElementById('view-alpha').complete")
        page.wait_for_timeout(300)  # the other object's keyframe drawn faintly
        folder = Path(os.environ.get("VIDMATTE_WEB_SCREENSHOTS") or tmp_path)
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / "web_6_two_objects.png"), full_page=True)  # the downloads are below
        names = sorted(page.locator("#downloads a").evaluate_all("links => links.map(a => a.dataset.output)"))
        assert names == ["alpha_png.1", "alpha_png.2", "composition.1", "composition.2"], names
        assert page.locator(".object-downloads").count() == 2
        alphas = {}
        for object_id in (1, 2):
            assert page.text_content(f"a[data-output='alpha_png.{object_id}']") == f"alpha.{object_id}.zip"
            with page.expect_download() as download:
                page.click(f"a[data-output='alpha_png.{object_id}']")
            download.value.save_as(tmp_path / f"alpha.{object_id}.zip")
            alphas[object_id] = _alpha_pngs(tmp_path / f"alpha.{object_id}.zip")
    assert len(alphas[1]) == len(alphas[2]) == count
    for i in (0, 6, count - 1):
        yellow, blue = (16, (i * 5) % (width - 16) + 8), (72, width - 24 - i * 5 + 12)
        assert alphas[1][i][yellow] > 200 and alphas[1][i][blue] < 30, i
        assert alphas[2][i][blue] > 200 and alphas[2][i][yellow] < 30, i
