"""``vidmatte models list | fetch NAME | path NAME``."""

from __future__ import annotations

import argparse
import json

DESCRIPTION = "List, fetch or locate pretrained weights (cached in $VIDMATTE_CACHE or the user's cache dir)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["list", "fetch", "path"])
    p.add_argument("name", nargs="?", help="model name (for fetch/path)")
    p.add_argument("--cache-dir", help="weights folder (default: $VIDMATTE_CACHE or ~/.cache/vidmatte)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    from ..errors import UsageError
    from ..models import registry

    if args.action == "list":
        for spec in registry.list_models():
            path = registry.model_path(spec.name, args.cache_dir)
            if args.json:
                print(json.dumps({**spec.to_dict(), "cached": path.exists(), "path": str(path)}))
            else:
                state = "cached" if path.exists() else "not fetched"
                print(f"{spec.name:18s} {spec.description}\n{'':18s} licence {spec.licence}; {state}: {path}")
        return 0
    if not args.name:
        raise UsageError(f"`models {args.action}` needs a model name")
    if args.action == "fetch":
        path = registry.fetch_model(args.name, args.cache_dir)
        print(path)
        return 0
    print(registry.model_path(args.name, args.cache_dir))
    return 0
