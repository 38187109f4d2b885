"""Several subjects in one guided run (issue 23): keyframes per object (palette / label masks, <frame>_<id>.png),
outputs per object, alphas that never sum past 1, one run equal to separate runs away from where objects touch,
multi-layer EXRs, and Cutie's bike clip (rider and bike) in one run."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from vidmatte.cli.main import main
from vidmatte.errors import GuidanceError
from vidmatte.guidance.keyframes import load_object_keyframes, parse_objects, read_object_keyframes
from vidmatte.matters.guided_objects import exclusive

from media import write_video

SIZE = (320, 180)
FRAMES = 16
FAST = ["--propagator", "flow", "--prior", "none", "--quiet"]  # no weights: the flow alone, closed form alone


def crossing_clip(frames: int = FRAMES, size: tuple[int, int] = SIZE, seed: int = 1):
    """Two textured discs crossing: disc 1 (red and yellow blotches) moves right in front, disc 2 (blue and white)
    moves left behind it, over a blurred noise background; each disc's texture moves with it. -> (RGB frames,
    {1: masks, 2: masks}), masks as seen (disc 2 minus disc 1 where they overlap)."""
    w, h = size
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32), (0, 0), 4)
    noise = (noise - noise.min()) / (noise.max() - noise.min())
    background = (np.array([60, 140, 80]) + 80 * (noise - 0.5)).clip(0, 255).astype(np.uint8)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    clip, masks = [], {1: [], 2: []}
    r = 0.16 * h * 1.6
    side = int(2 * r) + 2
    texture = {i: cv2.GaussianBlur(rng.random((side, side)).astype(np.float32), (0, 0), 3) for i in (1, 2)}
    texture = {i: (t - t.min()) / (t.max() - t.min()) > 0.5 for i, t in texture.items()}
    for i in range(frames):
        t = i / (frames - 1)
        frame = background.copy()
        discs = {1: (0.2 * w + 0.6 * w * t, 0.45 * h), 2: (0.8 * w - 0.6 * w * t, 0.55 * h)}
        seen = {}
        for object_id in (2, 1):  # 2 first: 1 is drawn over it
            cx, cy = discs[object_id]
            inside = (xx - cx) ** 2 + (yy - cy) ** 2 <= r ** 2
            pattern = np.zeros((h, w), bool)
            x0, y0 = int(round(cx - r)), int(round(cy - r))
            pattern[max(y0, 0):y0 + side, max(x0, 0):x0 + side] = texture[object_id][
                max(-y0, 0):h - y0, max(-x0, 0):w - x0][:h - max(y0, 0), :w - max(x0, 0)]
            tones = ([230, 50, 40], [250, 200, 70]) if object_id == 1 else ([40, 60, 220], [200, 220, 250])
            colour = np.where(pattern[..., None], *tones)
            frame[inside] = colour.astype(np.uint8)[inside]
            seen[object_id] = inside
        seen[2] = seen[2] & ~seen[1]
        clip.append(frame)
        for object_id in (1, 2):
            masks[object_id].append(seen[object_id])
    return clip, masks


def palette_png(path: Path, labels: np.ndarray) -> Path:
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    image.putpalette([0, 0, 0, 200, 30, 30, 30, 30, 200, 30, 200, 30] + [0] * (256 * 3 - 12))
    image.save(path)
    return path


@pytest.fixture(scope="module")
def crossing(tmp_path_factory):
    folder = tmp_path_factory.mktemp("crossing")
    frames, masks = crossing_clip()
    video = folder / "crossing.mkv"
    write_video(video, frames, codec="ffv1")
    labels = np.zeros(frames[0].shape[:2], np.uint8)
    labels[masks[1][0]], labels[masks[2][0]] = 1, 2
    keyframe = palette_png(folder / "00000.png", labels)
    return video, keyframe, frames, masks


def read_alpha(folder: Path) -> list[np.ndarray]:
    return [cv2.imread(str(p), cv2.IMREAD_UNCHANGED).astype(np.int32) for p in sorted(Path(folder).glob("*.png"))]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


# --- choosing objects --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("given, expected", [(None, None), (3, 3), ("3", 3), ("1,2", [1, 2]), (" 2 , 5", [2, 5]),
                                             ([4], [4]), ("all", "all"), ("ALL", "all")])
def test_object_choices_parse(given, expected):
    assert parse_objects(given) == expected


@pytest.mark.parametrize("given, fragment", [("1,,2", "ids separated by commas"), ("0,1", "1 or more"),
                                             ("1,1", "named twice"), ("one", "ids separated by commas"),
                                             ([True], "list of ids")])
def test_bad_object_choices_are_one_line_errors(given, fragment):
    with pytest.raises(GuidanceError, match=fragment):
        parse_objects(given)


def test_palette_masks_give_each_object_its_keyframes_and_all_finds_every_id(tmp_path):
    labels = np.zeros((60, 80), np.uint8)
    labels[10:30, 10:30], labels[30:50, 40:70] = 1, 2
    later = np.zeros_like(labels)
    later[5:25, 50:75] = 3  # Cutie's convention: a later mask adds object 3 and says nothing of 1 and 2
    palette_png(tmp_path / "00000.png", labels)
    palette_png(tmp_path / "00004.png", later)
    found, warnings = load_object_keyframes([], tmp_path, 10, (80, 60), objects="all", band=2)
    assert list(found) == [1, 2, 3]
    assert found[1].indices() == [0] and found[3].indices() == [4]
    assert (found[2].at(0) == 255).sum() > 0 and (found[2].at(0)[10:30, 10:30] == 0).all()  # object 1 is background
    assert not any("is not in the masks" in w for w in warnings)  # the convention, not news: the run lists them
    chosen, _ = load_object_keyframes([], tmp_path, 10, (80, 60), objects=[2], band=2)
    assert list(chosen) == [2]
    with pytest.raises(GuidanceError, match="object 7"):
        load_object_keyframes([], tmp_path, 10, (80, 60), objects=[1, 7], band=2)


def test_a_folder_of_per_object_masks_is_read_by_frame_and_id(tmp_path):
    for frame, object_id, box in ((0, 1, (5, 25)), (0, 2, (30, 55)), (6, 2, (35, 58))):
        mask = np.zeros((60, 80), np.uint8)
        mask[box[0]:box[1], box[0]:box[1]] = 255
        cv2.imwrite(str(tmp_path / f"{frame:05d}_{object_id}.png"), mask)
    found, _ = load_object_keyframes([], tmp_path, 10, (80, 60), objects="all", band=2)
    assert list(found) == [1, 2] and found[2].indices() == [0, 6]
    single, _ = load_object_keyframes([], tmp_path, 10, (80, 60), objects=[2], band=2)
    assert single[2].indices() == [0, 6]
    from vidmatte.guidance.keyframes import load_keyframes

    one, _ = load_keyframes([], tmp_path, 10, (80, 60), object_id=2, band=2)  # --object 2 alone
    assert one.indices() == [0, 6]
    with pytest.raises(GuidanceError, match="per-object masks"):
        load_keyframes([], tmp_path, 10, (80, 60), band=2)


def test_label_arrays_give_objects_to_the_api():
    labels = np.zeros((60, 80), np.uint8)
    labels[10:30, 10:30], labels[30:50, 40:70] = 1, 2
    found, _ = read_object_keyframes({0: labels}, 5, (80, 60), objects="all", band=2)
    assert list(found) == [1, 2]


# --- alphas that share pixels ------------------------------------------------------------------------------------
def test_exclusive_alphas_never_sum_past_one_and_follow_the_propagation_order():
    rng = np.random.default_rng(0)
    a, b = rng.random((40, 50)).astype(np.float32), rng.random((40, 50)).astype(np.float32)
    a[:, :10], b[:, :10] = 0.3, 0.2  # no overlap there: unchanged
    trimap_a = np.full((40, 50), 128, np.uint8)
    trimap_b = np.full((40, 50), 128, np.uint8)
    trimap_a[:20] = 255  # top half: a is definite foreground, so it is in front
    trimap_b[20:] = 255  # bottom half: b is
    kept_a, kept_b = exclusive([a, b], [trimap_a, trimap_b])
    assert (kept_a + kept_b <= 1 + 1e-6).all()
    assert np.array_equal(kept_a[:, :10], a[:, :10]) and np.array_equal(kept_b[:, :10], b[:, :10])
    assert np.array_equal(kept_a[:20], a[:20])  # in front: kept whole
    assert np.allclose(kept_b[:20], np.minimum(b[:20], 1 - a[:20]), atol=1e-6)  # behind: what the front one leaves
    assert np.array_equal(kept_b[20:], b[20:])
    assert np.allclose(kept_a[20:], np.minimum(a[20:], 1 - b[20:]), atol=1e-6)
    untouched = [np.full((4, 4), 0.4, np.float32), np.full((4, 4), 0.5, np.float32)]
    assert all(x is y for x, y in zip(exclusive(untouched, [None, None]), untouched))


# --- one run, every object -----------------------------------------------------------------------------------------
def test_two_crossing_objects_in_one_run_equal_two_runs_away_from_where_they_touch(crossing, tmp_path, capsys):
    video, keyframe, frames, masks = crossing
    assert main(["guided", str(video), "--keyframe", f"0:{keyframe}", "--object", "1,2", "--alpha", f"{tmp_path}/pha/",
                 "--composition", f"{tmp_path}/comp.mp4", "--json", *FAST]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["outputs"]["alpha"] == {"1": f"{tmp_path}/pha/1", "2": f"{tmp_path}/pha/2"}
    assert report["outputs"]["composition"] == {"1": f"{tmp_path}/comp.1.mp4", "2": f"{tmp_path}/comp.2.mp4"}
    assert set(report["objects"]) == {"1", "2"} and "confidence" in report["objects"]["1"]
    assert (tmp_path / "comp.1.mp4").stat().st_size > 0 and (tmp_path / "comp.2.mp4").stat().st_size > 0
    for object_id in (1, 2):
        assert main(["guided", str(video), "--keyframe", f"0:{keyframe}", "--object", str(object_id),
                     "--alpha", f"{tmp_path}/alone{object_id}/", *FAST]) == 0
    together = {i: read_alpha(tmp_path / "pha" / str(i)) for i in (1, 2)}
    alone = {i: read_alpha(tmp_path / f"alone{i}") for i in (1, 2)}
    assert len(together[1]) == len(together[2]) == FRAMES
    for k in range(FRAMES):
        assert (together[1][k] + together[2][k]).max() <= 256, f"frame {k}: the alphas sum past 1"
        touching = alone[1][k] + alone[2][k] > 255
        for i in (1, 2):
            assert np.array_equal(together[i][k][~touching], alone[i][k][~touching]), f"frame {k}, object {i}"
    # and each object is its own disc, the one in front (1) kept whole where they overlap
    for k in range(FRAMES):
        for i in (1, 2):
            assert iou(together[i][k] >= 128, masks[i][k]) > 0.85, f"frame {k}, object {i}"


def test_layers_hold_every_object_as_the_16_bit_png_path_does(crossing, tmp_path):
    pytest.importorskip("OpenEXR")
    from vidmatte.io.image_formats import read_exr

    video, keyframe, _, _ = crossing
    assert main(["guided", str(video), "--keyframe", f"0:{keyframe}", "--object", "all", "--end-frame", "3",
                 "--alpha", f"{tmp_path}/pha/", "--foreground", f"{tmp_path}/fgr/", "--bit-depth", "16",
                 "--layers", f"{tmp_path}/layers/", *FAST]) == 0
    files = sorted((tmp_path / "layers").glob("*.exr"))
    assert [f.name for f in files] == ["00000.exr", "00001.exr", "00002.exr"]
    channels, header = read_exr(files[2])
    assert set(channels) == {f"{i}.{c}" for i in (1, 2) for c in "ARGB"}
    assert header["layers"] == "1,2"
    assert channels["1.A"].dtype == np.float16
    for i in (1, 2):
        png = cv2.imread(str(tmp_path / "pha" / str(i) / "00002.png"), cv2.IMREAD_UNCHANGED).astype(np.float32) / 65535
        assert np.abs(channels[f"{i}.A"].astype(np.float32) - png).max() <= 1e-3  # half precision near 1: 2^-11
    total = channels["1.A"].astype(np.float32) + channels["2.A"].astype(np.float32)
    assert total.max() <= 1.0 + 1e-3


def test_a_refused_object_output_leaves_nothing_behind(crossing, tmp_path, capsys):
    video, keyframe, _, _ = crossing
    (tmp_path / "pha" / "2").mkdir(parents=True)
    (tmp_path / "pha" / "2" / "notes.txt").write_text("mine")  # not ours: never overwritten
    code = main(["guided", str(video), "--keyframe", f"0:{keyframe}", "--object", "1,2", "--alpha", f"{tmp_path}/pha/",
                 "--overwrite", *FAST])
    assert code != 0
    assert "pha/2" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "pha").iterdir()) == ["2"]
    assert (tmp_path / "pha" / "2" / "notes.txt").read_text() == "mine"


def test_a_failed_multi_object_run_removes_the_folder_it_made(crossing, tmp_path, capsys):
    video, keyframe, _, _ = crossing
    blocker = tmp_path / "comp.2.mp4"
    blocker.mkdir()  # the second object's video cannot be written: a folder stands there
    code = main(["guided", str(video), "--keyframe", f"0:{keyframe}", "--object", "1,2", "--alpha", f"{tmp_path}/pha/",
                 "--composition", f"{tmp_path}/comp.mp4", *FAST])
    assert code != 0
    assert not (tmp_path / "pha").exists() and not (tmp_path / "comp.1.mp4").exists()


@pytest.mark.parametrize("extra, fragment", [
    (["--object", "1", "--layers", "L/"], "--layers writes a channel group per object"),
    (["--object", "1,2", "--method", "ftpvm"], "classical method"),
    (["--object", "1,9"], "object 9"),
    (["--object", "x"], "--object must be"),
])
def test_object_usage_errors_are_one_line_exit_2(crossing, tmp_path, capsys, monkeypatch, extra, fragment):
    video, keyframe, _, _ = crossing
    monkeypatch.chdir(tmp_path)
    code = main(["guided", str(video), "--keyframe", f"0:{keyframe}", "--alpha", "pha/", *extra, *FAST])
    err = capsys.readouterr().err
    assert code == 2 and fragment in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "pha").exists()


def test_the_api_takes_several_objects(crossing, tmp_path):
    from vidmatte.api import convert_guided

    video, _, _, masks = crossing
    labels = np.zeros(masks[1][0].shape, np.uint8)
    labels[masks[1][0]], labels[masks[2][0]] = 1, 2
    result = convert_guided(str(video), keyframes={0: labels}, object="all", output_type="png_sequence",
                            output_alpha=str(tmp_path / "pha"), end_frame=4, propagator="flow", prior="none")
    assert set(result.outputs["alpha"]) == {"1", "2"}
    assert len(read_alpha(tmp_path / "pha" / "2")) == 4


def test_tracked_objects_share_per_frame_work_and_still_equal_separate_runs(rvm_onnx_path, tmp_path, capsys):
    """The default propagator (the tracker, RVM's encoder) and RVM's prior: frames' greys, flows and features are
    computed once for both objects, RVM is run once per frame, and each object's alpha is what its own run gives."""
    frames, masks = crossing_clip(frames=8, size=(512, 288))
    video = tmp_path / "crossing.mkv"
    write_video(video, frames, codec="ffv1")
    labels = np.zeros(frames[0].shape[:2], np.uint8)
    labels[masks[1][0]], labels[masks[2][0]] = 1, 2
    keyframe = palette_png(tmp_path / "00000.png", labels)
    common = [str(video), "--keyframe", f"0:{keyframe}", "--prior", "rvm", "--quiet"]
    assert main(["guided", *common, "--object", "1,2", "--alpha", f"{tmp_path}/pha/", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["shared"]["frame_results_reused"] > 0
    assert report["shared"]["prior_steps"]["reused"] >= len(frames)  # the second object's RVM steps, all reused
    for object_id in (1, 2):
        assert main(["guided", *common, "--object", str(object_id), "--alpha", f"{tmp_path}/alone{object_id}/"]) == 0
    for k in range(len(frames)):
        alone = {i: read_alpha(tmp_path / f"alone{i}")[k] for i in (1, 2)}
        touching = alone[1] + alone[2] > 255
        for i in (1, 2):
            together = read_alpha(tmp_path / "pha" / str(i))[k]
            assert np.array_equal(together[~touching], alone[i][~touching]), f"frame {k}, object {i}"


def test_cuties_bike_clip_rider_and_bike_in_one_run(shared_data, rvm_onnx_path, tmp_path, capsys):
    clip = shared_data / "video_people/cutie_examples"
    assert main(["guided", str(clip / "images/bike"), "--keyframes", str(clip / "masks/bike"), "--object", "all",
                 "--alpha", f"{tmp_path}/pha/", "--json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["outputs"]["alpha"]) == {"1", "2"}
    mask = np.asarray(Image.open(clip / "masks/bike/00000.png"))
    alphas = {i: read_alpha(tmp_path / "pha" / str(i)) for i in (1, 2)}
    # the keyframe solved back to its own mask (the bike's spokes and thin frame are mostly band: IoU lower)
    assert iou(alphas[1][0] >= 128, mask == 1) > 0.75 and iou(alphas[2][0] >= 128, mask == 2) > 0.9
    for i in (1, 2):
        for k in range(1, 4):  # neither object lost nor spread over the other (both stay about their size)
            area = (alphas[i][k] >= 128).sum()
            assert 0.3 < area / (mask == i).sum() < 1.5, f"object {i} lost or spread at frame {k}"
    for k in range(4):
        assert (alphas[1][k] + alphas[2][k]).max() <= 256


def test_a_batch_item_mattes_several_objects_and_a_rerun_skips_it_only_when_all_are_there(crossing, tmp_path):
    import os
    import subprocess
    import sys

    video, keyframe, _, _ = crossing
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text(json.dumps({"input": str(video), "keyframe": [f"0:{keyframe}"], "object": [1, 2],
                                    "item": "two", "end_frame": 4}) + "\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}

    def batch():
        done = subprocess.run([sys.executable, "-m", "vidmatte", "batch", "--manifest", str(manifest), "--mode",
                               "guided", "--propagator", "flow", "--prior", "none", "--output-dir",
                               str(tmp_path / "out"), "--outputs", "alpha/,composition.mp4", "--json"],
                              capture_output=True, text=True, env=env, timeout=300)
        return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr

    summary, err = batch()
    assert summary["done"] == 1, err
    item = tmp_path / "out" / "two"
    assert len(read_alpha(item / "alpha" / "1")) == 4 and len(read_alpha(item / "alpha" / "2")) == 4
    assert (item / "composition.1.mp4").is_file() and (item / "composition.2.mp4").is_file()
    summary, err = batch()
    assert summary["skipped"] == 1, err
    (item / "composition.2.mp4").unlink()  # one object's output gone: the item is done again
    summary, err = batch()
    assert summary["done"] == 1 and (item / "composition.2.mp4").is_file(), err


def test_per_object_marks_as_the_page_gives_them():
    one, two = np.zeros((60, 80), np.uint8), np.zeros((60, 80), np.uint8)
    one[10:30, 10:30], two[30:50, 40:70] = 255, 255
    found, _ = read_object_keyframes({1: {0: one}, 2: {0: two, 5: two}}, 9, (80, 60), objects="all", band=2)
    assert list(found) == [1, 2] and found[2].indices() == [0, 5]
    with pytest.raises(GuidanceError, match="object 3"):
        read_object_keyframes({1: {0: one}}, 9, (80, 60), objects=[1, 3], band=2)


def test_premultiplied_layers_and_a_work_folder_per_object(crossing, tmp_path, capsys):
    pytest.importorskip("OpenEXR")
    from vidmatte.io.image_formats import read_exr

    video, keyframe, _, _ = crossing
    common = ["guided", str(video), "--keyframe", f"0:{keyframe}", "--object", "1,2", "--end-frame", "4",
              "--work", f"{tmp_path}/work", "--propagator", "flow", "--prior", "none", "--json", "--overwrite"]
    assert main([*common, "--layers", f"{tmp_path}/straight/", "--quiet"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["objects"]["1"]["reused_frames"] == 0
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["1", "2"]
    assert main([*common, "--layers", f"{tmp_path}/premultiplied/", "--premultiplied", "--quiet"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["objects"]["1"]["reused_frames"] == 4 and second["objects"]["2"]["reused_frames"] == 4
    straight, header = read_exr(tmp_path / "straight" / "00003.exr")
    premultiplied, header_p = read_exr(tmp_path / "premultiplied" / "00003.exr")
    assert header["alpha_mode"] != header_p["alpha_mode"]
    for i in (1, 2):
        alpha = straight[f"{i}.A"].astype(np.float32)
        assert np.array_equal(straight[f"{i}.A"], premultiplied[f"{i}.A"])
        for c in "RGB":
            expected = straight[f"{i}.{c}"].astype(np.float32) * alpha
            assert np.abs(premultiplied[f"{i}.{c}"].astype(np.float32) - expected).max() <= 2e-3

def test_the_whole_frames_foreground_keeps_every_colour_channel():
    """The matte of all objects together (the page's previews): each object's colours, not their red channel alone
    (a bare number given to cv2.min is the scalar (v, 0, 0, 0), which once zeroed green and blue)."""
    from vidmatte.matte import LayeredMatte, SolvedMatte

    frame = np.zeros((8, 8, 3), np.uint8)
    frame[:, :4], frame[:, 4:] = (250, 240, 40), (40, 60, 230)
    alphas = {1: np.zeros((8, 8), np.float32), 2: np.zeros((8, 8), np.float32)}
    alphas[1][:, :4], alphas[2][:, 4:] = 1.0, 1.0
    layers = {i: SolvedMatte(frame, a, lambda f, _: f.astype(np.float32) / 255) for i, a in alphas.items()}
    foreground = LayeredMatte(frame, layers).foreground()
    assert np.abs(foreground * 255 - frame).max() < 1
