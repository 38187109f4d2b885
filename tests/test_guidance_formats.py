"""Guidance input (issue 9): every trimap and mask format read into a {0,128,255} trimap at the frame size, the
refusals (one-line usage errors), and keyframe specs, folders and TCVOM workspaces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vidmatte.errors import GuidanceError, UsageError
from vidmatte.guidance import (Keyframes, default_band, detect_tcvom, load_keyframes, parse_spec, read_guidance,
                               trimap_from_mask)

W, H = 64, 48
SIZE = (W, H)


def grey_trimap(unknown: int = 128) -> np.ndarray:
    """uint8 [H,W]: background, a ring of ``unknown``, a foreground square in the middle."""
    t = np.zeros((H, W), np.uint8)
    t[8:40, 12:52] = unknown
    t[16:32, 20:44] = 255
    return t


def expected_trimap() -> np.ndarray:
    return grey_trimap(128)


def save(path: Path, array: np.ndarray, mode: str | None = None, palette: list[int] | None = None) -> Path:
    im = Image.fromarray(array, mode) if mode else Image.fromarray(array)
    if palette is not None:
        im.putpalette(palette + [0] * (768 - len(palette)))
    im.save(path)
    return path


def refused(fragment: str, call, *args, **kwargs) -> GuidanceError:
    with pytest.raises(GuidanceError) as info:
        call(*args, **kwargs)
    error = info.value
    assert isinstance(error, UsageError) and error.exit_code == 2
    assert fragment in str(error), str(error)
    assert "\n" not in str(error)
    return error


def read(path, **kwargs) -> np.ndarray:
    trimap, warnings = read_guidance(path, SIZE, **kwargs)
    assert trimap.dtype == np.uint8 and trimap.shape == (H, W)
    assert set(np.unique(trimap)) <= {0, 128, 255}
    assert warnings == []
    return trimap


# --- trimaps ---

def test_grey_trimap_reads_exactly(tmp_path):
    assert (read(save(tmp_path / "t.png", grey_trimap())) == expected_trimap()).all()


def test_unknown_drawn_as_102_is_unknown(tmp_path):
    assert (read(save(tmp_path / "t.png", grey_trimap(102))) == expected_trimap()).all()


def test_anti_aliased_levels_use_the_documented_thresholds(tmp_path):
    t = grey_trimap()
    row = np.array([0, 25, 26, 64, 128, 190, 229, 230, 255], np.uint8)
    t[0, :len(row)] = row
    got = read(save(tmp_path / "t.png", t))
    assert got[0, :len(row)].tolist() == [0, 0, 128, 128, 128, 128, 128, 255, 255]


def test_rgba_opaque_trimap_reads_its_grey(tmp_path):
    rgba = np.dstack([grey_trimap(102)] * 3 + [np.full((H, W), 255, np.uint8)])
    assert (read(save(tmp_path / "t.png", rgba, "RGBA")) == expected_trimap()).all()


def test_rgba_trimap_painted_on_a_transparent_layer_is_background_where_transparent(tmp_path):
    t = grey_trimap()
    rgb = np.where(t[..., None] == 0, 255, t[..., None]).repeat(3, axis=2).astype(np.uint8)  # white under alpha 0
    alpha = np.where(t == 0, 0, 255).astype(np.uint8)
    assert (read(save(tmp_path / "t.png", np.dstack([rgb, alpha]), "RGBA")) == expected_trimap()).all()


def test_palette_with_grey_colours_is_a_trimap(tmp_path):
    indices = np.select([grey_trimap() == 255, grey_trimap() == 128], [2, 1], 0).astype(np.uint8)
    path = save(tmp_path / "t.png", indices, "P", [0, 0, 0, 128, 128, 128, 255, 255, 255])
    assert (read(path) == expected_trimap()).all()


def test_sixteen_bit_grey_trimap(tmp_path):
    path = save(tmp_path / "t.png", grey_trimap().astype(np.uint16) * 257)
    assert Image.open(path).mode.startswith("I")
    assert (read(path) == expected_trimap()).all()


# --- masks ---

def square_mask() -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    m[10:38, 14:50] = 1
    return m


def check_mask_trimap(trimap: np.ndarray, band: int) -> None:
    """The unknown band straddles the square's edge: band // 2 inside, the rest outside (along a row)."""
    row = trimap[24]
    assert (row[:14 - (band - band // 2)] == 0).all()
    assert (row[14 - (band - band // 2):14 + band // 2] == 128).all()
    assert (row[14 + band // 2:50 - band // 2] == 255).all()
    assert (row[50 - band // 2:50 + (band - band // 2)] == 128).all()


@pytest.mark.parametrize("scale", [255, 1], ids=["0-255", "0-1"])
def test_binary_grey_mask_gets_an_unknown_band(tmp_path, scale):
    check_mask_trimap(read(save(tmp_path / "m.png", square_mask() * scale), band=6), 6)


def test_colour_mask_with_one_colour(tmp_path):
    rgb = np.dstack([square_mask() * 200, square_mask() * 30, np.zeros((H, W), np.uint8)]).astype(np.uint8)
    check_mask_trimap(read(save(tmp_path / "m.png", rgb), band=4), 4)


def test_palette_mask_object_id_picks_one_object(tmp_path):
    labels = np.zeros((H, W), np.uint8)
    labels[10:38, 14:50] = 2
    labels[2:6, 2:6] = 1
    path = save(tmp_path / "m.png", labels, "P", [0, 0, 0, 128, 0, 0, 0, 128, 0])
    check_mask_trimap(read(path, object_id=2, band=4), 4)
    assert (read(path, object_id=1, band=2)[20:40, 20:40] == 0).all()
    refused("holds 2 objects (palette indices 1, 2): give an object id", read_guidance, path, SIZE)
    refused("has no object 3 (objects present: 1, 2)", read_guidance, path, SIZE, object_id=3)


def test_palette_mask_with_one_object_needs_no_id(tmp_path):
    path = save(tmp_path / "m.png", square_mask() * 4, "P", [0, 0, 0] + [128, 0, 0] * 4)
    check_mask_trimap(read(path, band=4), 4)


def test_grey_label_map_is_read_like_a_palette(tmp_path):
    labels = square_mask() * 2
    labels[2:6, 2:6] = 1
    path = save(tmp_path / "m.png", labels)
    check_mask_trimap(read(path, object_id=2, band=4), 4)
    refused("holds 2 objects (grey levels 1, 2)", read_guidance, path, SIZE)


def test_soft_mask_given_as_mask_is_cut_half_way(tmp_path):
    soft = (square_mask() * 255).astype(np.uint8)
    soft[10:38, 13] = 100  # an anti-aliased left edge: below half, outside
    soft[10:38, 49] = 160  # right edge: above half, inside
    check_mask_trimap(read(save(tmp_path / "m.png", soft), kind="mask", band=4), 4)


def test_a_trimap_given_as_a_mask_counts_its_unknown_as_object(tmp_path):
    got = read(save(tmp_path / "t.png", grey_trimap()), kind="mask", band=0)
    assert (got == np.where(grey_trimap() > 0, 255, 0)).all()


def test_band_zero_is_the_mask_itself(tmp_path):
    assert (read(save(tmp_path / "m.png", square_mask() * 255), band=0) == square_mask() * 255).all()


def test_default_band_scales_with_the_short_side():
    assert default_band((1920, 1080)) == 10
    assert default_band((1080, 1920)) == 10
    assert default_band((854, 480)) == 4
    assert default_band((1280, 720)) == 7
    assert default_band((3840, 2160)) == 20
    assert default_band((64, 48)) == 2
    assert (trimap_from_mask(np.ones((4, 4), bool), 2) == 255).all()  # the frame border does not erode an object


# --- size ---

def test_same_picture_at_another_scale_is_resized_with_a_warning(tmp_path):
    small = grey_trimap()[::2, ::2]
    trimap, warnings = read_guidance(save(tmp_path / "t.png", small), SIZE)
    assert trimap.shape == (H, W) and set(np.unique(trimap)) == {0, 128, 255}
    assert len(warnings) == 1 and "32x24: resized to the frames' 64x48" in warnings[0]


def test_codec_padding_is_padded_with_background_or_cropped(tmp_path):
    mask = np.zeros((100, 199), np.uint8)  # as Cutie's 853-px judo mask for 854-px frames
    mask[20:80, 50:150] = 255
    mask[40:60, 190:] = 255  # touches the right edge: the padded column must still be background
    trimap, warnings = read_guidance(save(tmp_path / "m.png", mask), (200, 100), band=4)
    assert trimap.shape == (100, 200) and "199x100: padded with background at the right" in warnings[0]
    assert (trimap[:, 199] != 255).all() and (trimap[45:55, 60:140] == 255).all()
    tall = np.zeros((1088, 32), np.uint8)  # a 1088-row mask for 1080-row frames (the other way round)
    tall[:1080, 8:24] = 255
    tall[1080:] = 255  # what is cropped away must not matter
    trimap, warnings = read_guidance(save(tmp_path / "t.png", tall), (32, 1080), band=4)
    assert trimap.shape == (1080, 32) and "cropped at the bottom" in warnings[0]
    assert (trimap[500, 12:20] == 255).all() and (trimap[500, :2] == 0).all()
    refused("is 63x48 but the frames are 64x48", read_guidance, save(tmp_path / "n.png", mask[:48, :63]), SIZE)


def test_another_aspect_ratio_is_refused(tmp_path):
    refused("is 64x64 but the frames are 64x48", read_guidance,
            save(tmp_path / "t.png", np.zeros((64, 64), np.uint8)), SIZE)


# --- refusals ---

def test_refusals(tmp_path):
    no_fg = grey_trimap()
    no_fg[no_fg == 255] = 102
    no_bg = grey_trimap()
    no_bg[no_bg == 0] = 128
    two_colours = np.dstack([square_mask() * 255, np.zeros((H, W), np.uint8), np.zeros((H, W), np.uint8)])
    two_colours[2:4, 2:4] = (0, 255, 0)
    thin = np.zeros((H, W), np.uint8)
    thin[:, 30:32] = 255
    palette = save(tmp_path / "p.png", square_mask(), "P", [0, 0, 0, 128, 0, 0])
    (tmp_path / "junk.png").write_bytes(b"not a png")
    cases = [
        ("has no known foreground (read as a trimap", save(tmp_path / "a.png", no_fg), {}),
        ("has no known background (read as a trimap", save(tmp_path / "b.png", no_bg), {"kind": "trimap"}),
        ("has no known foreground (read as a mask", save(tmp_path / "c.png", np.zeros((H, W), np.uint8)), {}),
        ("has no known background (read as a mask", save(tmp_path / "d.png", np.full((H, W), 255, np.uint8)), {}),
        ("thinner than the 10-pixel unknown band", save(tmp_path / "e.png", thin), {"band": 10}),
        ("cannot read guidance image", tmp_path / "junk.png", {}),
        ("cannot read guidance image", tmp_path / "missing.png", {}),
        ("is a palette mask, not a grey trimap", palette, {"kind": "trimap"}),
        ("an object id picks an object of a mask", save(tmp_path / "f.png", grey_trimap()),
         {"kind": "trimap", "object_id": 1}),
        ("RGB image with 2 colours besides black", save(tmp_path / "g.png", two_colours.astype(np.uint8)), {}),
        ("guidance kind must be one of auto, trimap, mask", palette, {"kind": "alpha"}),
        ("band must be 0 or more", palette, {"band": -1}),
    ]
    for fragment, path, kwargs in cases:
        refused(fragment, read_guidance, path, SIZE, **kwargs)


# --- real files ---

def test_real_trimaps_and_masks(shared_data):
    trimaps = shared_data / "image_matting_trimap_only"
    for path, size in [(trimaps / "vitmatte_demo" / "bulb_trimap.png", (960, 640)),
                       (trimaps / "vitmatte_demo" / "retriever_trimap.png", (960, 643)),
                       (trimaps / "pymatting_lemur" / "lemur_trimap.png", (680, 440))]:
        trimap, warnings = read_guidance(path, size)
        assert set(np.unique(trimap)) == {0, 128, 255} and not warnings
        raw = np.asarray(Image.open(path))[..., 0]
        assert (trimap[raw == 102] == 128).all() and (trimap[raw == 255] == 255).all()
    lemur, _ = read_guidance(trimaps / "pymatting_lemur" / "lemur_trimap.png", (680, 440))
    assert (lemur == 128).sum() == 38666  # exactly its 102-grey pixels
    judo = shared_data / "video_people" / "cutie_examples" / "masks" / "judo"
    trimap, warnings = read_guidance(judo / "00005.png", (854, 480), object_id=2)  # 853 px wide
    assert trimap.shape == (480, 854) and "853x480: padded with background at the right" in warnings[0]
    assert set(np.unique(trimap)) == {0, 128, 255}
    refused("has no object 1 (objects present: 2)", read_guidance, judo / "00005.png", (854, 480), object_id=1)


# --- keyframes ---

def test_parse_spec():
    assert parse_spec("12:masks/a.png") == (12, Path("masks/a.png"))
    assert parse_spec("0:C:\\masks\\a.png") == (0, Path("C:\\masks\\a.png"))
    for bad in ["masks/a.png", "x:a.png", "-1:a.png", "3:"]:
        refused("is not INDEX:PATH", parse_spec, bad)


def test_keyframes_from_specs_and_a_folder(tmp_path):
    folder = tmp_path / "keys"
    folder.mkdir()
    save(folder / "00012.png", grey_trimap())
    save(folder / "3.png", square_mask() * 255)
    (folder / "notes.txt").write_text("ignored")
    save(tmp_path / "first.png", grey_trimap(102))
    keyframes, warnings = load_keyframes([f"0:{tmp_path / 'first.png'}"], folder, 20, SIZE, band=4)
    assert isinstance(keyframes, Keyframes) and warnings == []
    assert keyframes.indices() == [0, 3, 12] and len(keyframes) == 3
    assert (keyframes.at(0) == expected_trimap()).all() and (keyframes.at(12) == expected_trimap()).all()
    check_mask_trimap(keyframes.at(3), 4)
    assert keyframes.at(1) is None
    assert not keyframes.at(0).flags.writeable


def test_cutie_folder_keyframes_are_those_holding_the_object(tmp_path):
    """Cutie's masks add a new object id at a later frame and omit the earlier ones: in a folder, a mask without
    the object asked for is not a keyframe for it (a warning says so); a file named for it must hold it."""
    folder = tmp_path / "masks"
    folder.mkdir()
    palette = [0, 0, 0, 128, 0, 0, 0, 128, 0]
    first, later = np.zeros((H, W), np.uint8), np.zeros((H, W), np.uint8)
    first[10:38, 14:50] = 1
    later[4:20, 4:20] = 2
    save(folder / "00000.png", first, "P", palette)
    save(folder / "00005.png", later, "P", palette)
    keyframes, warnings = load_keyframes([], folder, 20, SIZE, object_id=2, band=2)
    assert keyframes.indices() == [5] and (keyframes.at(5)[8:16, 8:16] == 255).all()
    assert "object 2 is not in the masks of frame 0" in warnings[-1]
    assert load_keyframes([], folder, 20, SIZE, object_id=1, band=2)[0].indices() == [0]
    refused("no keyframe mask holds object 3", load_keyframes, [], folder, 20, SIZE, object_id=3)
    refused("has no object 2", load_keyframes, [f"7:{folder / '00000.png'}"], None, 20, SIZE, object_id=2)


def test_keyframe_refusals(tmp_path):
    one = save(tmp_path / "one.png", grey_trimap())
    folder = tmp_path / "keys"
    folder.mkdir()
    save(folder / "00012.png", grey_trimap())
    save(folder / "12.png", grey_trimap())
    empty = tmp_path / "empty"
    empty.mkdir()
    refused("no keyframe given", load_keyframes, [], None, 20, SIZE)
    refused("no images named by frame number", load_keyframes, [], empty, 20, SIZE)
    refused("guidance folder not found", load_keyframes, [], tmp_path / "nope", 20, SIZE)
    refused("two guidance images for frame 12", load_keyframes, [], folder, 20, SIZE)
    refused("two guidance images for frame 5", load_keyframes, [f"5:{one}", f"05:{one}"], None, 20, SIZE)
    refused("keyframe 20 (", load_keyframes, [f"20:{one}"], None, 20, SIZE)
    refused("it has 20 frames (0..19)", load_keyframes, [f"0:{one}", f"25:{one}"], None, 20, SIZE)
    refused("cannot read guidance image", load_keyframes, [f"0:{tmp_path / 'missing.png'}"], None, 20, SIZE)


def tcvom_workspace(folder: Path, numbers: range, keys: list[int]) -> Path:
    folder.mkdir(parents=True)
    for n in numbers:
        rgb = np.full((H, W, 3), n * 10, np.uint8)
        save(folder / f"{n:05d}_rgb.png", rgb)
        if n in keys:
            save(folder / f"{n:05d}_trimap.png", grey_trimap())
    return folder


def test_tcvom_workspace_is_detected_and_its_frames_read_as_a_sequence(tmp_path):
    from vidmatte.io.source import open_source

    folder = tcvom_workspace(tmp_path / "clip[1]" / "tcvom", range(5), [0, 3])
    workspace = detect_tcvom(folder)
    assert workspace.frame_count == 5 and sorted(workspace.keyframes) == [0, 3] and not workspace.warnings
    source = open_source(workspace.frames)
    assert [int(f.image[0, 0, 0]) for f in source.frames()] == [0, 10, 20, 30, 40]
    keyframes, warnings = load_keyframes([], folder, workspace.frame_count, SIZE)
    assert keyframes.indices() == [0, 3] and warnings == []
    assert detect_tcvom(tmp_path) is None


def test_tcvom_workspace_numbered_from_one_maps_by_position(tmp_path):
    folder = tcvom_workspace(tmp_path / "ws", range(1, 4), [1])
    workspace = detect_tcvom(folder)
    assert list(workspace.keyframes) == [0] and "is frame 0 of the sequence" in workspace.warnings[0]


def test_tcvom_trimap_without_its_frame_is_refused(tmp_path):
    folder = tcvom_workspace(tmp_path / "ws", range(2), [])
    save(folder / "00007_trimap.png", grey_trimap())
    refused("00007_trimap.png has no frame 00007_rgb.png", detect_tcvom, folder)
