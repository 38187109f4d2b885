"""What a folder output's frame costs to write at 1080p, by format: PNG 8/16-bit, TIFF 16-bit, EXR half and float.

Each frame goes through the real sink (``outputs.FileSink``: the conversion to what the file stores, the encoder,
the write into the output's temporary folder), for an alpha matte and for straight RGBA. The picture is a real
matte: comp1k's "boy" (hair; ../shared/data) cropped to 1920x1080, or, without the shared data, a generated soft
disc over noise (said in the output). Times are the median of ``--repeats`` frames on this machine, with the ratio to
16-bit PNG, the format the others replace, and the file size.

    PYTHONPATH=src python benchmarks/image_formats.py [--repeats 15]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from vidmatte.io.writers import parse_output
from vidmatte.matte import Pictures
from vidmatte.outputs import FileSink, StreamInfo

SHARED = Path(os.environ.get("VIDMATTE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
BOY = "image_matting_gt/comp1k_test_huochaitiantang/{}/boy-1518482_1920_12.png"
VARIANTS = [("png 8", "png", 8), ("png 16", "png", 16), ("tiff 16", "tiff", 16), ("exr half", "exr", 16),
            ("exr float", "exr", 32)]


def picture() -> tuple[Pictures, str]:
    import cv2

    image_path, alpha_path = (SHARED / BOY.format(k) for k in ("image", "alpha"))
    if image_path.is_file() and alpha_path.is_file():
        image = cv2.cvtColor(cv2.imread(str(image_path)), cv2.COLOR_BGR2RGB)[100:1180]
        alpha = cv2.imread(str(alpha_path), cv2.IMREAD_GRAYSCALE)[100:1180].astype(np.float32) / 255
        source = "comp1k boy-1518482, rows 100..1179"
    else:
        rng = np.random.default_rng(0)
        image = cv2.GaussianBlur(rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8), (0, 0), 2)
        alpha = np.zeros((1080, 1920), np.float32)
        cv2.circle(alpha, (960, 540), 400, 1.0, -1)
        alpha = cv2.GaussianBlur(alpha, (0, 0), 15)
        source = "generated soft disc over blurred noise (no ../shared/data)"
    # The float foreground a matter hands over: the 8-bit colour plus sub-step detail, as a network's output has.
    fine = image.astype(np.float32) / 255 + np.float32(0.3 / 255) * np.sin(np.arange(1920, dtype=np.float32))[:, None]
    fine = np.clip(fine, 0, 1)
    return Pictures(foreground=image, alpha=alpha, alpha_u8=(alpha * 255 + 0.5).astype(np.uint8),
                    foreground_float=fine), source


def measure(pictures: Pictures, kind: str, fmt: str, depth: int, repeats: int, folder: Path) -> dict:
    spec = parse_output(kind, f"{folder / f'{kind}-{fmt}-{depth}'}/", depth, fmt)
    stream = StreamInfo(1920, 1080, Fraction(1, 25), 25.0, None, False)
    sink = FileSink(spec, stream)
    times = []
    try:
        for i in range(repeats):
            started = time.perf_counter()
            sink.write(i, i, pictures)
            times.append(time.perf_counter() - started)
        size = (sink.writer._out.temp / f"00000{'.tif' if fmt == 'tiff' else '.' + fmt}").stat().st_size
    finally:
        sink.abort()
    return {"ms": 1000 * statistics.median(times), "mb": size / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    pictures, source = picture()
    print(f"1920x1080, {source}; median of {args.repeats} frames; ratio to 16-bit PNG")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("alpha", "rgba"):
            rows = {name: measure(pictures, kind, fmt, depth, args.repeats, Path(tmp)) for name, fmt, depth in VARIANTS}
            base = rows["png 16"]["ms"]
            print(f"\n{kind:6s} {'format':10s} {'ms/frame':>9s} {'ratio':>6s} {'MB':>6s}")
            for name, row in rows.items():
                row["ratio"] = row["ms"] / base
                print(f"{'':6s} {name:10s} {row['ms']:9.1f} {row['ratio']:6.2f} {row['mb']:6.2f}")
            results[kind] = rows
    print(json.dumps(results))


if __name__ == "__main__":
    main()
