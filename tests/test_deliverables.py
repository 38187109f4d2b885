"""Deliverables (issue 23): OpenEXR (half/float, layered), 16-bit TIFF, premultiplied alpha said in each file's
metadata, the input's timecode and frame rate kept, and the one-line refusals of combinations that cannot work.

The pictures come from a matter with known results (``RampMatter``: an alpha ramp that is not on the 8-bit grid and a
coloured foreground, both functions of the frame index), run by the real pipeline and written by the real writers,
so every stored value can be checked against what it must be.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from media import moving_square_frames, write_video
from vidmatte.cli.main import main
from vidmatte.compose import alpha_to_u16
from vidmatte.io.image_formats import (layer_channels, png_text, read_exr, srgb_to_linear, tiff_extra_samples,
                                       tiff_with_alpha_mode, write_layers_exr)
from vidmatte.io.probe import probe, shift_timecode
from vidmatte.io.writers import parse_output
from vidmatte.matte import DenseMatte
from vidmatte.matters.base import writing_pass
from vidmatte.pipeline import ConvertOptions, convert

REPO = Path(__file__).resolve().parents[1]
W, H = 48, 32
HALF = 2.0 ** -11  # a half float's relative step: values in 0..1 are stored within half of it times the value
needs_exr = pytest.mark.skipif(__import__("importlib").util.find_spec("OpenEXR") is None,
                               reason="the 'exr' extra (openexr) is not installed")


def ramp_alpha(i: int) -> np.ndarray:
    """0 on the left, 1 on the right, a ramp between whose values fall between 8-bit (and 16-bit) steps."""
    x = np.arange(W, dtype=np.float32)
    row = np.clip((x - 8) / 29.3 + 0.0123 * i, 0, 1)
    return np.repeat(row[None], H, axis=0).astype(np.float32)


def ramp_foreground(i: int) -> np.ndarray:
    """float32 [H,W,3] 0..1, different per channel and row."""
    y = np.linspace(0, 1, H, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, W, dtype=np.float32)[None, :]
    return np.stack([0.1 + 0.8 * y + 0 * x, 0.9 - 0.7 * x + 0 * y, np.full((H, W), 0.3 + 0.05 * i)], -1)


class RampMatter:
    """A one-pass matter whose every frame's result is known (``ramp_alpha``, ``ramp_foreground``)."""

    seq_chunk = 1

    def reset(self):
        pass

    def passes(self, span):
        return [writing_pass(span)]

    def begin_pass(self, p):
        pass

    def prepare(self, frame, index=None):
        return index

    def matte(self, prepared):
        return [DenseMatte(ramp_foreground(i).transpose(2, 0, 1).copy(), ramp_alpha(i)) for i in prepared]


@pytest.fixture()
def clip(tmp_path):
    return write_video(tmp_path / "clip.mp4", moving_square_frames(3, W, H), fps=24)


def run(clip, tmp_path, outputs: dict, **spec) -> None:
    """The pipeline writes ``outputs`` ({kind: name}) in tmp_path with ``spec`` (bit_depth, image_format...)."""
    specs = [parse_output(kind, f"{tmp_path}/{name}", **spec) for kind, name in outputs.items()]
    result = convert(clip, RampMatter(), ConvertOptions(specs))
    assert result.frames == 3


# --- OpenEXR -------------------------------------------------------------------------------------------------------
@needs_exr
@pytest.mark.parametrize("depth, dtype", [(16, np.float16), (32, np.float32)])
def test_exr_alpha_is_half_or_float_and_equals_the_matte(clip, tmp_path, depth, dtype):
    run(clip, tmp_path, {"alpha": "pha/"}, bit_depth=depth, image_format="exr")
    names = sorted(p.name for p in (tmp_path / "pha").iterdir())
    assert names == [".vidmatte-frames.json", "00000.exr", "00001.exr", "00002.exr"]
    for i in range(3):
        channels, header = read_exr(tmp_path / "pha" / f"{i:05d}.exr")
        assert sorted(channels) == ["A", "Y"]
        assert channels["A"].dtype == dtype
        expected = ramp_alpha(i)
        # half: within half a step of the value; float: the matte's own float32 values, exactly
        np.testing.assert_allclose(channels["A"].astype(np.float32), expected, rtol=HALF if depth == 16 else 0,
                                   atol=0)
        np.testing.assert_array_equal(channels["Y"], channels["A"])
        assert header["alpha_mode"] == "straight"
    # the ramp lies between 16-bit steps: a float EXR keeps what 16-bit integers cannot
    if depth == 32:
        assert np.abs(alpha_to_u16(expected) / 65535 - expected).max() > 1e-6


@needs_exr
@pytest.mark.parametrize("premultiplied", [False, True])
def test_exr_rgba_is_linear_and_premultiplied_on_request(clip, tmp_path, premultiplied):
    run(clip, tmp_path, {"rgba": "rgba/", "foreground": "fgr/"}, image_format="exr", premultiplied=premultiplied)
    channels, header = read_exr(tmp_path / "rgba" / "00001.exr")
    assert sorted(channels) == ["A", "B", "G", "R"]
    assert all(c.dtype == np.float16 for c in channels.values())  # half unless --bit-depth 32
    assert header["alpha_mode"] == ("premultiplied" if premultiplied else "straight")
    assert header["colour"].startswith("linear")
    alpha, linear = ramp_alpha(1), srgb_to_linear(ramp_foreground(1))
    rgb = np.stack([channels[c].astype(np.float32) for c in "RGB"], -1)
    expected = linear * alpha[..., None] if premultiplied else linear
    # srgb_to_linear's 16-bit table, then half storage
    np.testing.assert_allclose(rgb, expected, rtol=HALF, atol=2e-5)
    if premultiplied:  # the maths the flag promises: premultiplied colour = straight colour x alpha
        straight = np.stack([read_exr(tmp_path / "fgr" / "00001.exr")[0][c].astype(np.float32) for c in "RGB"], -1)
        np.testing.assert_allclose(rgb, straight * alpha[..., None], rtol=2 * HALF, atol=2e-5)
        assert np.abs(rgb - straight).max() > 0.1  # and it differs where alpha < 1: the check is not vacuous
    # linear, not the display encoding: mid-grey 0.5 is stored near 0.214
    assert abs(float(srgb_to_linear(np.array([0.5], np.float32))[0]) - 0.2140) < 1e-3


def opencv_with_exr() -> dict:
    """Reads EXRs with OpenCV in a child process (OPENCV_IO_ENABLE_OPENEXR must be set before cv2 loads).

    The OpenCV 5 wheels are built without OpenEXR; the 4.x wheels have it. VIDMATTE_TEST_OPENCV names a folder
    holding another OpenCV (e.g. an unpacked opencv-python-headless 4.x wheel) to check with instead."""
    env = {**os.environ, "OPENCV_IO_ENABLE_OPENEXR": "1"}
    if os.environ.get("VIDMATTE_TEST_OPENCV"):
        env["PYTHONPATH"] = os.environ["VIDMATTE_TEST_OPENCV"]
    return env


OPENCV_READ = """
import json, sys, cv2, numpy as np
out = {"version": cv2.__version__, "exr": bool(cv2.haveImageReader(sys.argv[1]))}
if out["exr"]:
    for path in sys.argv[1:]:
        image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        np.save(path + ".npy", image)
print(json.dumps(out))
"""


@needs_exr
@pytest.mark.parametrize("depth", [16, 32])
def test_opencv_reads_the_exr_outputs(clip, tmp_path, depth):
    run(clip, tmp_path, {"alpha": "pha/", "rgba": "rgba/"}, bit_depth=depth, image_format="exr", premultiplied=True)
    files = [tmp_path / "pha" / "00002.exr", tmp_path / "rgba" / "00002.exr"]
    proc = subprocess.run([sys.executable, "-c", OPENCV_READ, *map(str, files)], capture_output=True, text=True,
                          env=opencv_with_exr(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    if not found["exr"]:
        pytest.skip(f"OpenCV {found['version']} was built without OpenEXR (set VIDMATTE_TEST_OPENCV to a 4.x)")
    matte = np.load(str(files[0]) + ".npy")
    stored, _ = read_exr(files[0])
    assert matte.dtype == np.float32 and matte.shape[:2] == (H, W)
    grey = matte if matte.ndim == 2 else matte[..., 0]  # Y (and A) as OpenCV lays them out
    np.testing.assert_array_equal(grey, stored["Y"].astype(np.float32))  # the same values the OpenEXR library reads
    bgra = np.load(str(files[1]) + ".npy")
    stored, _ = read_exr(files[1])
    assert bgra.shape == (H, W, 4)
    for i, c in enumerate("BGRA"):
        np.testing.assert_array_equal(bgra[..., i], stored[c].astype(np.float32))


@needs_exr
@pytest.mark.parametrize("depth, dtype", [(16, np.float16), (32, np.float32)])
def test_layered_exr_round_trip_equals_the_16_bit_png_path(clip, tmp_path, depth, dtype):
    """One file, a channel group per object; its values are the 16-bit PNG outputs' within half precision."""
    run(clip, tmp_path, {"rgba": "rgba16/"}, bit_depth=16)  # the 16-bit PNG path of the same results
    png = cv2.cvtColor(cv2.imread(str(tmp_path / "rgba16" / "00002.png"), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)
    assert png.dtype == np.uint16
    second = 1 - ramp_alpha(2)  # a second object where the first is not
    layers = {1: (ramp_alpha(2), ramp_foreground(2)), 2: (second, None), "bike": (second, ramp_foreground(0))}
    path = tmp_path / "layers.exr"
    write_layers_exr(path, layers, bit_depth=depth)
    channels, header = read_exr(path)
    assert sorted(channels) == ["1.A", "1.B", "1.G", "1.R", "2.A", "bike.A", "bike.B", "bike.G", "bike.R"]
    assert {c.dtype for c in channels.values()} == {np.dtype(dtype)}
    assert header["layers"] == "1,2,bike" and header["alpha_mode"] == "straight"
    step = HALF if depth == 16 else 0
    png_alpha = png[..., 3].astype(np.float32) / 65535
    # each side is within its own rounding of the same float matte: half (or nothing) and half a 16-bit step
    np.testing.assert_allclose(channels["1.A"].astype(np.float32), png_alpha, rtol=step, atol=0.5 / 65535 + 1e-7)
    png_linear = srgb_to_linear(png[..., :3])  # the same colour, decoded as the EXR's is
    exr_rgb = np.stack([channels[f"1.{c}"].astype(np.float32) for c in "RGB"], -1)
    np.testing.assert_allclose(exr_rgb, png_linear, rtol=step, atol=3e-5)
    np.testing.assert_allclose(channels["2.A"].astype(np.float32), second, rtol=step, atol=0)
    # premultiplied layers: colour x alpha, said in the header
    write_layers_exr(path, layers, bit_depth=depth, premultiplied=True)
    channels, header = read_exr(path)
    assert header["alpha_mode"] == "premultiplied"
    exr_pre = np.stack([channels[f"1.{c}"].astype(np.float32) for c in "RGB"], -1)
    np.testing.assert_allclose(exr_pre, exr_rgb * ramp_alpha(2)[..., None], rtol=2 * step, atol=3e-5)


def test_layer_ids_must_be_names():
    with pytest.raises(ValueError, match="without '.'"):
        layer_channels({"a.b": (ramp_alpha(0), None)})


# --- PNG and TIFF --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("image_format, depth", [("png", 8), ("png", 16), ("tiff", 8), ("tiff", 16)])
def test_premultiplied_rgba_is_straight_times_alpha_and_says_so(clip, tmp_path, image_format, depth):
    spec = {"image_format": image_format, "bit_depth": depth}
    for name, premultiplied in (("s", False), ("p", True)):
        (tmp_path / name).mkdir()
        run(clip, tmp_path / name, {"rgba": "rgba/"}, premultiplied=premultiplied, **spec)
    ext = ".png" if image_format == "png" else ".tif"
    top = 65535 if depth == 16 else 255
    for name, premultiplied in (("s", False), ("p", True)):
        path = tmp_path / name / "rgba" / f"00001{ext}"
        data = path.read_bytes()
        if image_format == "png":
            assert png_text(data)["alpha_mode"] == ("premultiplied" if premultiplied else "straight")
        else:  # TIFF's own field: 1 associated (premultiplied), 2 unassociated (straight)
            assert tiff_extra_samples(data) == (1 if premultiplied else 2)
    # TIFF readers honour the tag: OpenCV reads 8-bit TIFFs through libtiff's RGBA interface, which hands back
    # associated colour, premultiplying a straight file as it reads it. The values as stored are read from the same
    # bytes with the tag saying associated (a no-op for PNG, which has no such tag).
    raw = [(tmp_path / n / "rgba" / f"00001{ext}").read_bytes() for n in "sp"]
    raw = [tiff_with_alpha_mode(data, True) if ext == ".tif" else data for data in raw]
    read = [cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)
            for data in raw]
    straight, pre = (r.astype(np.float64) for r in read)
    assert read[0].dtype == (np.uint16 if depth == 16 else np.uint8)
    np.testing.assert_array_equal(straight[..., 3], pre[..., 3])
    expected = straight[..., :3] * straight[..., 3:] / top
    off = np.abs(pre[..., :3] - expected).max()
    assert off <= 0.5 + 1e-3, off  # rounded to the nearest step (OpenCV multiplies in float32)
    assert np.abs(pre[..., :3] - straight[..., :3]).max() > top / 10  # it did premultiply
    # straight colour is the float foreground rounded to the file's steps (16 bits: not the 8-bit one scaled)
    assert np.abs(straight[..., :3] - ramp_foreground(1) * top).max() <= 0.5 + 1e-3
    if depth == 16:
        assert np.any(read[0][..., :3] % 257)


def test_16_bit_tiff_alpha_holds_the_matte_to_16_bits(clip, tmp_path):
    run(clip, tmp_path, {"alpha": "pha/"}, image_format="tiff", bit_depth=16)
    assert sorted(p.name for p in (tmp_path / "pha").glob("0*")) == ["00000.tif", "00001.tif", "00002.tif"]
    for i in range(3):
        stored = cv2.imread(str(tmp_path / "pha" / f"{i:05d}.tif"), cv2.IMREAD_UNCHANGED)
        assert stored.dtype == np.uint16 and stored.shape == (H, W)
        np.testing.assert_array_equal(stored, alpha_to_u16(ramp_alpha(i)))
    assert len(np.unique(stored)) > 20  # a real ramp, more levels than a coarse matte


def test_a_tiff_folder_of_ours_is_replaced_with_overwrite_and_a_foreign_one_is_not(clip, tmp_path):
    """The folder's record lists .tif/.exr frames as it lists PNGs (what a later run may replace)."""
    run(clip, tmp_path, {"alpha": "pha/"}, image_format="tiff")
    specs = [parse_output("alpha", f"{tmp_path}/pha/", image_format="tiff")]
    convert(clip, RampMatter(), ConvertOptions(specs, overwrite=True))  # ours: replaced
    (tmp_path / "pha" / "00007.tif").write_bytes(b"not ours")
    with pytest.raises(Exception, match="vidmatte did not write"):
        convert(clip, RampMatter(), ConvertOptions(specs, overwrite=True))


# --- video: timecode, frame rate, alpha mode -----------------------------------------------------------------------
def clip_with_timecode(path: Path, timecode: str, rate: Fraction, frames: int = 8) -> Path:
    """An H.264 .mov with a timecode track (tmcd), as cameras write them."""
    with av.open(str(path), "w") as container:
        container.metadata["timecode"] = timecode
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for image in moving_square_frames(frames, W, H):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    return path


@pytest.mark.parametrize("rate, timecode, start, expected", [
    (Fraction(25), "01:00:00:00", 0, "01:00:00:00"),
    (Fraction(25), "10:59:59:20", 6, "11:00:00:01"),
    (Fraction(30000, 1001), "00:00:59;28", 3, "00:01:00;03"),  # drop-frame: ;00 and ;01 of minute 1 do not exist
])
def test_video_outputs_keep_the_inputs_timecode_and_frame_rate(tmp_path, rate, timecode, start, expected):
    source = clip_with_timecode(tmp_path / "camera.mov", timecode, rate)
    assert probe(source).timecode == timecode
    outputs = {"composition": "c.mp4", "alpha": "a.mkv", "foreground": "f.webm", "rgba": "r.mov"}
    specs = [parse_output(kind, str(tmp_path / name)) for kind, name in outputs.items()]
    result = convert(source, RampMatter(), ConvertOptions(specs, start_frame=start))
    assert result.frames == 8 - start
    for name in outputs.values():
        info = probe(tmp_path / name)
        assert info.timecode == expected, name
        with av.open(str(tmp_path / name)) as container:
            assert container.streams.video[0].average_rate == rate, name


def test_shifted_timecodes_count_as_smpte_does():
    assert shift_timecode("00:00:59;29", 1, 29.97) == "00:01:00;02"
    assert shift_timecode("00:09:59;29", 1, 29.97) == "00:10:00;00"  # every tenth minute keeps ;00 and ;01
    assert shift_timecode("00:00:00;00", 17982, 29.97) == "00:10:00;00"  # ten minutes of 29.97 fps
    assert shift_timecode("23:59:59:24", 1, 25) == "00:00:00:00"
    assert shift_timecode("01:00:00:00", 0, 25) == "01:00:00:00"


def test_rgba_videos_say_straight_or_premultiplied(tmp_path):
    source = write_video(tmp_path / "in.mp4", moving_square_frames(3, W, H), fps=24)
    for premultiplied in (False, True):
        folder = tmp_path / str(premultiplied)
        folder.mkdir()
        specs = [parse_output("rgba", str(folder / name), premultiplied=premultiplied)
                 for name in ("r.mov", "r.webm", "r.mkv")]
        convert(source, RampMatter(), ConvertOptions(specs))
        for spec in specs:
            with av.open(str(spec.path)) as container:
                tags = {k.lower(): v for k, v in container.metadata.items()}
            assert tags["alpha_mode"] == ("premultiplied" if premultiplied else "straight"), spec.path.name
    # and the ProRes colour is premultiplied: darker where alpha is low, as straight x alpha (10-bit 4:4:4 rounding)
    decoded = {p: next(av.open(str(tmp_path / p / "r.mkv")).decode(video=0)).to_ndarray(format="rgba").astype(float)
               for p in ("False", "True")}
    expected = decoded["False"][..., :3] * decoded["False"][..., 3:] / 255
    assert np.abs(decoded["True"][..., :3] - expected).max() <= 0.5 + 1e-6


# --- refusals: one line, exit 2, nothing written -------------------------------------------------------------------
def exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


BAD = [
    ("8-bit EXR", ["--alpha", "a/", "--image-format", "exr", "--bit-depth", "8"], "EXR holds half (16) or float"),
    ("float PNG", ["--alpha", "a/", "--bit-depth", "32"], "--bit-depth 32 (float) is for EXR"),
    ("float TIFF file", ["--alpha", "a.mp4", "--rgba", "r/", "--image-format", "tiff", "--bit-depth", "32"],
     "TIFF holds 8 or 16"),
    ("premultiplied without RGBA", ["--alpha", "a/", "--premultiplied"], "--premultiplied applies to --rgba"),
    ("float video alpha", ["--alpha", "a.mp4", "--rgba", "r/", "--image-format", "exr", "--bit-depth", "32"],
     "8-bit alpha only"),
    ("unknown format", ["--alpha", "a/", "--image-format", "jpeg"], "invalid choice"),
]


@pytest.mark.parametrize("name, extra, fragment", BAD, ids=[b[0] for b in BAD])
def test_impossible_combinations_are_one_line_exit_2(tmp_path, clip, capsys, monkeypatch, name, extra, fragment):
    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    code = exit_code(["convert", str(clip), *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and fragment in err, err
    assert sorted(tmp_path.rglob("*")) == before


NO_OPENEXR = """
import sys
sys.modules["OpenEXR"] = None  # as on an install without the 'exr' extra
from vidmatte.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("outputs", [["--alpha", "a/", "--image-format", "exr"], ["--rgba", "cutout.exr"]])
def test_exr_without_the_extra_is_one_line_exit_2_before_any_work(tmp_path, clip, outputs):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run([sys.executable, "-c", NO_OPENEXR, "convert", str(clip), *outputs], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == ("vidmatte convert: error: EXR output (--image-format exr, .exr) needs OpenEXR, "
                                   "from the 'exr' extra: .venv/bin/pip install -e '.[exr]' in the vidmatte clone")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_an_image_format_no_folder_uses_is_a_warning(tmp_path, clip, capsys):
    code = exit_code(["convert", str(clip), "--alpha", str(tmp_path / "a.mp4"), "--image-format", "tiff",
                      "--model", "none-such-model", "--quiet"])
    err = capsys.readouterr().err
    assert "--image-format tiff is ignored" in err
    assert code != 0  # the model does not exist: the warning came before any work


# --- the modes' front ends -----------------------------------------------------------------------------------------
@needs_exr
@pytest.mark.weights
def test_convert_command_writes_float_exr_folders(tmp_path, clip, rvm_onnx_path):
    args = ["convert", str(clip), "--alpha", f"{tmp_path}/pha/", "--rgba", f"{tmp_path}/rgba/", "--composition",
            str(tmp_path / "c.mp4"), "--image-format", "exr", "--bit-depth", "32", "--premultiplied", "--quiet",
            "--json"]
    assert exit_code(args) == 0
    channels, header = read_exr(tmp_path / "rgba" / "00002.exr")
    assert channels["A"].dtype == np.float32 and header["alpha_mode"] == "premultiplied"
    assert (tmp_path / "pha" / "00002.exr").is_file() and (tmp_path / "c.mp4").is_file()


@pytest.mark.weights
def test_api_modes_take_the_image_format(tmp_path, clip, rvm_onnx_path):
    import vidmatte

    vidmatte.convert_video("rvm-mobilenetv3", str(clip), output_alpha=f"{tmp_path}/pha/", image_format="tiff",
                           bit_depth=16, progress=False)
    assert cv2.imread(str(tmp_path / "pha" / "00000.tif"), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    mask = np.zeros((H, W), np.uint8)
    mask[8:24, 5:21] = 255
    vidmatte.convert_guided(str(clip), {0: mask}, output_rgba=f"{tmp_path}/g/", image_format="tiff", bit_depth=16,
                            premultiplied=True, prior="none", progress=False)
    assert tiff_extra_samples((tmp_path / "g" / "00002.tif").read_bytes()) == 1
    plate = np.full((H, W, 3), 60, np.uint8)
    vidmatte.convert_background(str(clip), plate, align=False, output_alpha=f"{tmp_path}/b/", image_format="tiff",
                                progress=False)
    assert cv2.imread(str(tmp_path / "b" / "00000.tif"), cv2.IMREAD_UNCHANGED).dtype == np.uint8


@needs_exr
@pytest.mark.weights
@pytest.mark.slow
def test_batch_chunks_stitch_into_premultiplied_exr_as_one_run_writes_them(tmp_path, rvm_onnx_path):
    """Chunks are 16-bit straight PNGs; stitching remakes the item's EXRs (linear, premultiplied) from them."""
    from test_jobs import subject_frames

    clip = write_video(tmp_path / "long.mp4", subject_frames(20, size=64))
    common = ["--outputs", "alpha/,rgba/,composition.mp4", "--image-format", "exr", "--premultiplied", "--json",
              "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    for name, extra in (("single", ["--workers", "1"]),
                        ("chunked", ["--workers", "2", "--chunk-frames", "10", "--lead-in", "10"])):
        proc = subprocess.run([sys.executable, "-m", "vidmatte", "batch", str(clip), "--output-dir",
                               str(tmp_path / name), *common, *extra], capture_output=True, text=True, env=env,
                              timeout=600)
        assert json.loads(proc.stdout.strip().splitlines()[-1])["done"] == 1, proc.stderr
    a, b = tmp_path / "single" / "long", tmp_path / "chunked" / "long"
    assert sorted(p.name for p in (b / "rgba").glob("*.exr")) == [f"{i:05d}.exr" for i in range(20)]
    assert not (b / ".vidmatte-chunks").exists()
    for i in range(20):  # chunk 1's lead-in reaches frame 0: both chunks are the whole run's frames
        one, header = read_exr(a / "rgba" / f"{i:05d}.exr")
        two, header2 = read_exr(b / "rgba" / f"{i:05d}.exr")
        assert header2["alpha_mode"] == header["alpha_mode"] == "premultiplied"
        for c in "RGBA":
            assert np.abs(one[c].astype(np.float32) - two[c].astype(np.float32)).max() <= 2 / 255, (i, c)
        np.testing.assert_allclose(read_exr(b / "alpha" / f"{i:05d}.exr")[0]["A"].astype(np.float32),
                                   two["A"].astype(np.float32), atol=1e-3)


# --- the page ------------------------------------------------------------------------------------------------------
@needs_exr
def test_the_page_zips_exr_alpha_frames_and_writes_premultiplied_rgba(tmp_path):
    pytest.importorskip("fastapi")
    import io
    import zipfile

    from web_helpers import call, serving, upload, wait_for

    clip = write_video(tmp_path / "clip.mp4", moving_square_frames(4, 96, 64))
    mask = np.zeros((64, 96), np.uint8)
    mask[8:24, 0:16] = 255
    with serving(tmp_path / "work") as (base, _):
        status, job = upload(base, clip)
        assert status == 201, job
        job_id = job["id"]
        status, body = call(base, "PUT", f"/api/jobs/{job_id}/keyframes/0", cv2.imencode(".png", mask)[1].tobytes())
        assert status == 200, body
        settings = {"mode": "guided", "prior": "none", "outputs": ["alpha_png", "rgba_mov"], "image_format": "exr",
                    "bit_depth": 32, "premultiplied": True}
        status, body = call(base, "POST", f"/api/jobs/{job_id}/run", body=json.dumps(settings),
                            headers={"Content-Type": "application/json"})
        assert status == 202, body
        job = wait_for(base, job_id, ("done", "failed"))
        assert job["state"] == "done", job["error"]
        _, data = call(base, "GET", f"/api/jobs/{job_id}/download/alpha_png")
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            assert zf.namelist() == [f"alpha/{i:05d}.exr" for i in range(4)]
            (tmp_path / "a.exr").write_bytes(zf.read("alpha/00000.exr"))
        assert read_exr(tmp_path / "a.exr")[0]["A"].dtype == np.float32
        _, data = call(base, "GET", f"/api/jobs/{job_id}/download/rgba_mov")
        (tmp_path / "rgba.mov").write_bytes(data)
        with av.open(str(tmp_path / "rgba.mov")) as container:
            assert container.metadata["alpha_mode"] == "premultiplied"
        # a depth the format cannot hold is a one-line refusal before the run
        status, body = call(base, "POST", f"/api/jobs/{job_id}/run", body=json.dumps({**settings, "bit_depth": 8}),
                            headers={"Content-Type": "application/json"})
        assert status == 400 and body["error"] == "EXR alpha frames are 16 or 32-bit", body


@needs_exr
def test_a_layered_exr_that_cannot_be_written_leaves_nothing(tmp_path):
    """Written beside its name and renamed: a failure (here a channel of the wrong size) leaves no file at all."""
    from vidmatte.errors import OutputError

    path = tmp_path / "layers.exr"
    with pytest.raises(OutputError):
        write_layers_exr(path, {1: (ramp_alpha(0), ramp_foreground(0)), 2: (np.zeros((4, 4), np.float32), None)})
    assert list(tmp_path.iterdir()) == []
