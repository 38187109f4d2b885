"""``vidmatte serve [--host 127.0.0.1] [--port 7860] [--max-upload 2GB] [--work DIR] [--token T] [--checkpoints
DIR]``: the web page."""

from __future__ import annotations

import argparse

DESCRIPTION = ("Serve the web page: upload a video (or a zip of images), mark the subject on any frame, run auto "
               "(RVM), guided or plate matting (the networks of --checkpoints DIR among their methods) with "
               "progress and cancel, preview and download the results. Binds "
               "127.0.0.1 by default; any other address requires a token on every request (--token, or one is "
               "generated and printed once). Needs the 'web' extra.")
DEFAULT_WORK = "~/.cache/vidmatte/web"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860; 0: any free port)")
    p.add_argument("--max-upload", default="2GB", metavar="SIZE",
                   help="largest upload accepted, units KB/MB/GB (default 2GB); larger ones get HTTP 413")
    p.add_argument("--work", default=DEFAULT_WORK, metavar="DIR",
                   help=f"folder for jobs, their files and the job database (default {DEFAULT_WORK})")
    p.add_argument("--token", default=None, metavar="T",
                   help="require this token on every request (generated when binding a non-loopback address)")
    p.add_argument("--quota", default="20GB", metavar="SIZE",
                   help="disk quota of the work folder; the oldest finished jobs are removed to make room "
                        "(default 20GB)")
    p.add_argument("--queue", type=int, default=4, metavar="N", help="jobs that may wait to run (default 4)")
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="jobs running at once (default 1)")
    p.add_argument("--checkpoints", default=None, metavar="DIR",
                   help="a folder of network weights (.pt/.pth/.ckpt) the page offers: FTP-VM, DVM and TGM for "
                        "guided matting, BackgroundMattingV2 for plate matting, recognised when the server starts; "
                        "none ship with vidmatte (without this, the page offers the classical methods only)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import UsageError
    from ..web.storage import parse_size

    from ..extras import require

    require("web", "the web page")
    require("web", "the web page", module="uvicorn")
    import uvicorn
    from ..web.app import Settings, create_app

    if args.queue < 1 or args.jobs < 1:
        raise UsageError("--queue and --jobs must be at least 1")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0..65535, not {args.port}")
    max_upload, quota = parse_size(args.max_upload), parse_size(args.quota)
    if quota < max_upload:
        raise UsageError(f"--quota ({args.quota}) must be at least --max-upload ({args.max_upload})")
    token = token_for(args.host, args.token)
    if args.checkpoints and not Path(args.checkpoints).expanduser().is_dir():
        raise UsageError(f"--checkpoints {args.checkpoints}: not a folder")
    work = Path(args.work).expanduser()
    try:
        work.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--work {work}: {exc.strerror}") from None
    sock = _bind(args.host, args.port)
    settings = Settings(work=work, max_upload=max_upload, quota=quota, token=token, host=args.host,
                        workers=args.jobs, queue=args.queue,
                        checkpoints=Path(args.checkpoints).expanduser() if args.checkpoints else None)
    app = create_app(settings)
    port = sock.getsockname()[1]
    shown = f"[{args.host}]" if ":" in args.host else args.host
    address = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    print(f"vidmatte serve: {address}  (work folder {work}; Ctrl-C stops)", flush=True)
    config = uvicorn.Config(app, log_level="warning", limit_concurrency=64, timeout_keep_alive=5,
                            timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def token_for(host: str, token: str | None) -> str | None:
    """The token every request must carry: the one given, or for a non-loopback address a new one (printed once
    with the address); None on loopback without --token."""
    import secrets

    from ..web.app import is_loopback

    if token is not None and not token.strip():
        from ..errors import UsageError

        raise UsageError("--token must not be empty")
    if token or is_loopback(host):
        return token
    return secrets.token_urlsafe(24)


def _bind(host: str, port: int):
    """The listening socket, bound here so that a busy port is a one-line error and port 0 shows its number."""
    import socket

    from ..errors import UsageError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock
