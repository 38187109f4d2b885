"""Background-plate matting at 1080p: speed beside RVM alone, and memory against the clip's length (issue 11).

A built plate clip (``vidmatte bench build --definition plate``) is brought to 1920x1080 and written as an H.264
video, forward then backward (a longer clip with the same content); ``vidmatte convert`` and ``vidmatte
background`` run on it one after the other, each in its own process, on N and 2N frames. Reported: seconds per
frame, frames per second, the ratio between the two, and each run's peak RSS (flat memory: the 2N run's peak is
about the N run's).

    PYTHONPATH=src python benchmarks/plate.py --root benchmarks/results/plate --clip boy_room_pan --frames 24

``--screen green`` (or blue) times ``--plate green`` instead: benchmarks/screen.py's clip of the child over that
generated screen (``--data``: shared/data), composed at 512x288 and brought to 1080p the same way.

    PYTHONPATH=src python benchmarks/plate.py --screen green --data ../shared/data --frames 24
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import cv2

RUN = """
import json, resource, sys, time
from vidmatte.cli.main import main
started = time.monotonic()
code = main(sys.argv[1:])
print(json.dumps({"code": code, "seconds": time.monotonic() - started,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_1080p(clip: Path, out: Path, frames: int) -> None:
    import av

    files = sorted((clip / "com").glob("*.png"))
    order = (files + files[::-1]) * (frames // (2 * len(files)) + 1)
    with av.open(str(out), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(24))
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        stream.options = {"crf": "16", "preset": "veryfast"}
        for f in order[:frames]:
            image = cv2.resize(cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB), (1920, 1080),
                               interpolation=cv2.INTER_CUBIC)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))


def screen_clip(colour: str, data: Path, out: Path, frames: int) -> Path:
    """benchmarks/screen.py's child over a generated ``colour`` screen, as a clip folder (``com/`` PNGs)."""
    import zlib

    import numpy as np

    sys.path.insert(0, str(Path(__file__).parent))
    import screen

    name = f"boy_{colour}"
    rng = np.random.default_rng([25, zlib.crc32(name.encode())])
    com = screen.build_clip(name, "boy", colour, rng, data, frames)[0]
    (out / "com").mkdir(parents=True)
    for i, frame in enumerate(com):
        cv2.imwrite(str(out / "com" / f"{i:05d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return out


def run(args: list[str]) -> dict:
    done = subprocess.run([sys.executable, "-c", RUN, *args], capture_output=True, text=True, check=False)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["code"] != 0:
        raise SystemExit(f"vidmatte {args[0]} failed: {done.stderr.strip()}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="benchmarks/results/plate", help="a built plate benchmark")
    parser.add_argument("--clip", default="boy_room_pan")
    parser.add_argument("--frames", type=int, default=24, help="N: the runs take N and 2N frames")
    parser.add_argument("--screen", choices=("green", "blue"), help="time --plate green|blue on a screen clip")
    parser.add_argument("--data", default="../shared/data", help="with --screen: shared/data")
    options = parser.parse_args()
    clip = Path(options.root) / "clips" / options.clip
    with tempfile.TemporaryDirectory() as tmp:
        if options.screen:
            clip = screen_clip(options.screen, Path(options.data), Path(tmp) / "screen", options.frames)
            plate = options.screen
            options.clip = f"boy_{options.screen} (screens benchmark, --plate {options.screen})"
        else:
            plate = Path(tmp) / "plate.png"
            cv2.imwrite(str(plate), cv2.resize(cv2.imread(str(clip / "plate.png")), (1920, 1080),
                                               interpolation=cv2.INTER_CUBIC))
        rows = []
        for frames in (options.frames, 2 * options.frames):
            video = Path(tmp) / f"clip{frames}.mp4"
            write_1080p(clip, video, frames)
            alpha = ["--alpha", f"{tmp}/a{frames}.mp4", "--overwrite", "--quiet"]
            rvm = run(["convert", str(video), *alpha])
            plate_run = run(["background", str(video), "--plate", str(plate), *alpha])
            rows.append((frames, rvm, plate_run))
    print(f"1080p, {options.clip}, this machine (2 cores, shared; load varies): seconds per frame, fps, peak RSS")
    print("| frames | RVM alone s/frame (fps) | background s/frame (fps) | ratio | peak MiB RVM / background |")
    print("|---|---|---|---|---|")
    for frames, rvm, plate_run in rows:
        a, b = rvm["seconds"] / frames, plate_run["seconds"] / frames
        print(f"| {frames} | {a:.2f} ({1 / a:.2f}) | {b:.2f} ({1 / b:.2f}) | {b / a:.2f}x | "
              f"{rvm['peak_mib']:.0f} / {plate_run['peak_mib']:.0f} |")


if __name__ == "__main__":
    main()
