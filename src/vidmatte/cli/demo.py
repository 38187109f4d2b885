"""``vidmatte demo``: matte a built-in clip (no input needed) and write the results into ./demo-output/."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DESCRIPTION = ("Synthesise a short clip from a public-domain photo of a person that a dependency ships, matte it "
               "with the pretrained RVM model, and write input.mp4, background.png, composition.mp4, alpha.mp4, "
               "alpha/, rgba.mov and side_by_side.png into the output folder (a new one, or one an earlier demo "
               "wrote).")
# What the demo writes into its folder, and the record that says the folder is the demo's: a later demo replaces
# these, and refuses a folder holding anything else (or these names without the record: a user's input.mp4).
DEMO_FILES = ("input.mp4", "background.png", "composition.mp4", "alpha.mp4", "rgba.mov", "alpha", "side_by_side.png")
DEMO_RECORD = ".vidmatte-demo.json"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output-dir", default="demo-output", help="where to write (default ./demo-output)")
    p.add_argument("--cache-dir", help="weights folder (default: $VIDMATTE_CACHE or ~/.cache/vidmatte)")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--json", action="store_true", help="one JSON line with the result on stdout")


def run(args: argparse.Namespace) -> int:
    import cv2

    from .. import demo
    from ..backends import open_runner
    from ..io.writers import parse_output
    from ..matters import RecurrentMatter
    from ..job import JobControl
    from ..pipeline import ConvertOptions, convert
    from ..progress import ProgressBar

    out = Path(args.output_dir)
    _check_output_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / DEMO_RECORD).write_text(json.dumps({"written_by": "vidmatte demo", "files": list(DEMO_FILES)}) + "\n")
    photo = cv2.cvtColor(cv2.imread(str(demo.find_sample_photo())), cv2.COLOR_BGR2RGB)
    frames = demo.synthesise_frames(photo)
    clip = out / "input.mp4"
    demo.write_clip(clip, frames)
    background = out / "background.png"
    cv2.imwrite(str(background), cv2.cvtColor(demo.gradient_background(), cv2.COLOR_RGB2BGR))

    outputs = [parse_output("composition", str(out / "composition.mp4")),
               parse_output("alpha", str(out / "alpha.mp4")),
               parse_output("rgba", str(out / "rgba.mov")),
               parse_output("alpha", str(out / "alpha") + "/")]
    options = ConvertOptions(outputs=outputs, background=str(background), overwrite=True)
    matter = RecurrentMatter(open_runner("rvm-mobilenetv3", cache=args.cache_dir))
    bar = ProgressBar(enabled=not args.quiet)
    try:
        result = convert(clip, matter, options, JobControl(on_progress=bar.update))
    finally:
        bar.close()
    outputs_written = {"input": str(clip), "composition": str(out / "composition.mp4"),
                       "alpha": str(out / "alpha.mp4"), "alpha_png": str(out / "alpha"),
                       "rgba": str(out / "rgba.mov")}
    picture = out / "side_by_side.png"
    _side_by_side(frames, out / "alpha", out / "composition.mp4", picture)
    outputs_written["side_by_side"] = str(picture)
    if args.json:
        print(json.dumps({**result.to_json(), "outputs": outputs_written}))
    elif not args.quiet:
        print(f"vidmatte demo: {result.frames} frames matted at {result.fps:.1f} fps; open {picture} "
              f"(input | alpha | composition) and the videos in {out}/", file=sys.stderr)
    return 0


def _check_output_dir(out: Path) -> None:
    """The demo writes a few fixed names: only into a new or empty folder, or one an earlier demo wrote."""
    from ..errors import UsageError
    from ..io.atomic import TEMPORARY_NAME

    if not out.exists():
        return
    if not out.is_dir():
        raise UsageError(f"--output-dir {out} exists and is not a folder")
    entries = sorted(p.name for p in out.iterdir() if not TEMPORARY_NAME.fullmatch(p.name))
    if (out / DEMO_RECORD).is_file():
        entries = [name for name in entries if name not in (*DEMO_FILES, DEMO_RECORD)]
    if entries:
        raise UsageError(f"--output-dir {out} holds {', '.join(entries[:3])}{' and more' if len(entries) > 3 else ''}"
                         ", which the demo did not write (or an older demo, which left no record): it was left "
                         "untouched; give another --output-dir, or delete it yourself if it is an old demo's")


def _side_by_side(frames, alpha_dir: Path, composition: Path, target: Path) -> None:
    """Three moments of the clip, each as input | alpha | composition, stacked into one PNG."""
    import cv2
    import numpy as np

    from ..io.atomic import AtomicOutput
    from ..io.readers import open_reader

    picks = [0, len(frames) // 2, len(frames) - 1]
    comps = {f.index: f.image for f in open_reader(composition) if f.index in picks}
    rows = []
    for i in picks:
        alpha = cv2.imread(str(alpha_dir / f"{i:05d}.png"), cv2.IMREAD_GRAYSCALE)
        rows.append(np.hstack([frames[i], np.dstack([alpha] * 3), comps[i]]))
    sheet = np.vstack(rows)
    scale = 0.5
    sheet = cv2.resize(sheet, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    out = AtomicOutput(target, is_dir=False)
    cv2.imwrite(str(out.temp), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    out.commit()
