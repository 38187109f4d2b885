"""``vidmatte`` entry point: dispatches to subcommand modules and turns known errors into one-line messages."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from ..errors import VidmatteError

# name -> (module, one-line help). Add a subcommand by adding a line here and a module beside this one.
COMMANDS = {
    "convert": ("vidmatte.cli.convert", "matte a video, image folder or image"),
    "guided": ("vidmatte.cli.guided", "matte any object marked on keyframes (trimaps or masks)"),
    "background": ("vidmatte.cli.background", "matte whatever differs from a clean plate of the scene"),
    "serve": ("vidmatte.cli.serve", "the web page: upload, mark the subject, run, download (the 'web' extra)"),
    "batch": ("vidmatte.cli.batch", "matte many videos, or one long one, on a process pool or a Ray cluster"),
    "probe": ("vidmatte.cli.probe", "print what the reader sees in an input"),
    "demo": ("vidmatte.cli.demo", "matte a built-in clip into ./demo-output/"),
    "models": ("vidmatte.cli.models", "list, fetch or locate pretrained weights"),
    "eval": ("vidmatte.cli.eval", "score predicted mattes against ground truth (MAD, MSE, Grad, Conn, dtSSD, ...)"),
    "bench": ("vidmatte.cli.bench", "build the benchmark, run methods on it, measure speed"),
    "export": ("vidmatte.cli.export", "export a model to ONNX or TorchScript (checked against PyTorch)"),
    "train": ("vidmatte.cli.train", "train or fine-tune RVM and FTP-VM from a config file"),
}


class _Parser(argparse.ArgumentParser):
    """Usage errors: one line on stderr and exit 2 (argparse's default prints the whole usage block)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from .._version import __version__

    parser = _Parser(prog="vidmatte", description="Video matting: alpha mattes and foregrounds from any video.")
    parser.add_argument("--version", action="version", version=f"vidmatte {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=help_text, description=getattr(module, "DESCRIPTION", help_text))
        module.add_arguments(p)
        p.add_argument("--debug", action="store_true", help="show full tracebacks")
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return 2
    from ..errors import Cancelled
    from .signals import terminate_as_interrupt

    terminate_as_interrupt()
    import logging

    log, handler = logging.getLogger("vidmatte"), None
    if args.debug:  # what the pipeline decided (passes, threads), on stderr; other libraries' logs stay quiet
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("vidmatte: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.DEBUG)
    try:
        return _run(args)
    finally:
        if handler is not None:  # a caller running main() again in the same process (tests, scripts) starts clean
            log.removeHandler(handler)
            log.setLevel(logging.NOTSET)


def _run(args) -> int:
    from ..errors import Cancelled

    try:
        return int(args._module.run(args) or 0)
    except Cancelled:
        print(f"vidmatte {args.command}: interrupted; no output was written", file=sys.stderr)
        return Cancelled.exit_code
    except VidmatteError as exc:
        if args.debug:
            raise
        print(f"vidmatte {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"vidmatte {args.command}: interrupted", file=sys.stderr)
        sys.stderr.flush()
        sys.stdout.flush()
        # The pipeline has already removed its temporary files. Skip interpreter teardown: codec threads still
        # parked in FFmpeg could otherwise wait for the GIL while teardown waits for them.
        os._exit(130)
    except Exception as exc:  # an unexpected failure: still one line, with a pointer to --debug
        if args.debug:
            raise
        print(f"vidmatte {args.command}: error: {type(exc).__name__}: {exc} (run with --debug for details)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
