"""Job folders in the server's work folder: uploads under a size cap, zips unpacked safely, a disk quota.

Nothing a client sends is ever used as a path. A job is a folder named by an unguessable id (``secrets``), and
every file in it has a fixed name chosen here (``input.mp4``, ``frames/00000.png``, ``keyframes/00012.png``,
``alpha.mp4``...). Zip members are refused when they could land outside the folder (absolute paths, ``..``,
symlinks); the images they hold are renumbered ``00000.png...`` in natural order, so a member's name only ever
decides the order of frames.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath

from ..errors import InputError, UsageError
from ..io.atomic import atomic_path
from ..io.images import IMAGE_EXTENSIONS
from ..io.probe import natural_key

JOB_ID = re.compile(r"[0-9a-f]{32}")
UNITS = {"": 1, "B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}
# The containers an upload may be stored as (the extension helps FFmpeg's probe; anything else is stored as .bin).
VIDEO_EXTENSIONS = {".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts", ".gif",
                    ".wmv", ".flv", ".ogv", ".3gp", ".mxf"}
CHUNK = 1 << 20


class TooLarge(InputError):
    """The upload goes past the size cap (HTTP 413); nothing of it is kept."""


class NoRoom(InputError):
    """The work folder's quota is used by jobs that cannot be removed (running or queued) (HTTP 507)."""


def parse_size(text: str | int) -> int:
    """``"2GB"`` -> bytes (units B, KB, MB, GB, TB, powers of 1024; a bare number is bytes)."""
    if isinstance(text, int):
        return text
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?B?)\s*", str(text).upper())
    if match is None or (match.group(2) and match.group(2) not in UNITS):
        raise UsageError(f"a size must look like 500MB or 2GB (units KB, MB, GB), not {text!r}")
    size = int(float(match.group(1)) * UNITS[match.group(2)])
    if size <= 0:
        raise UsageError(f"a size must be positive, not {text!r}")
    return size


def human(size: int) -> str:
    for unit in ("GB", "MB", "KB"):
        if size >= UNITS[unit]:
            return f"{size / UNITS[unit]:.3g} {unit}"
    return f"{size} bytes"


def new_job_id() -> str:
    return secrets.token_hex(16)


class Storage:
    """The work folder: ``jobs/<id>/`` per job, the SQLite store beside them, and the quota over all of it."""

    def __init__(self, work: str | os.PathLike, max_upload: int, quota: int):
        self.root = Path(work).resolve()
        self.jobs = self.root / "jobs"
        self.jobs.mkdir(parents=True, exist_ok=True)
        self.max_upload, self.quota = max_upload, quota

    def folder(self, job_id: str) -> Path:
        """The folder of a job id; the id must be one we could have made (never a path)."""
        if not JOB_ID.fullmatch(job_id or ""):
            raise KeyError(job_id)
        return self.jobs / job_id

    def create(self) -> tuple[str, Path]:
        job_id = new_job_id()
        folder = self.folder(job_id)
        folder.mkdir()
        return job_id, folder

    def remove(self, job_id: str) -> None:
        shutil.rmtree(self.folder(job_id), ignore_errors=True)

    # --- uploads -----------------------------------------------------------------------------------------
    def check_declared(self, length: int | None, cap: int | None = None) -> None:
        """Refuse an upload at once when its declared length is past the cap."""
        cap = cap or self.max_upload
        if length is not None and length > cap:
            raise TooLarge(f"the upload is {human(length)}; this server takes at most {human(cap)} (--max-upload)")

    async def receive(self, chunks, target: Path, cap: int | None = None) -> int:
        """Write an async iterator of byte chunks to ``target`` (a temporary name first), stopping at the cap.

        Past the cap, or on any failure, the partial file is removed and nothing is kept."""
        cap = cap or self.max_upload
        size = 0
        with atomic_path(target) as partial:
            with open(partial, "wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > cap:
                        raise TooLarge(f"the upload is larger than {human(cap)}, the most this server takes "
                                       "(--max-upload)")
                    out.write(chunk)
            if size == 0:
                raise InputError("the upload is empty")
        return size

    @staticmethod
    def input_name(filename: str | None) -> str:
        """The fixed name an upload is stored as: ``input`` plus a known video or image extension (else .bin)."""
        suffix = PurePosixPath((filename or "").replace("\\", "/")).suffix.lower()
        return "input" + (suffix if suffix in VIDEO_EXTENSIONS | IMAGE_EXTENSIONS else ".bin")

    # --- quota --------------------------------------------------------------------------------------------
    def used(self) -> int:
        total = 0
        for dirpath, _, files in os.walk(self.jobs):
            for name in files:
                try:
                    total += os.lstat(os.path.join(dirpath, name)).st_size
                except OSError:
                    pass
        return total

    def make_room(self, incoming: int, removable: list[str]) -> list[str]:
        """Remove the oldest finished jobs (``removable``, oldest first) until ``incoming`` more bytes fit the
        quota; returns the ids removed. ``NoRoom`` if it cannot fit even then."""
        removed = []
        used = self.used()
        for job_id in removable:
            if used + incoming <= self.quota:
                break
            used -= _size_of(self.folder(job_id))
            self.remove(job_id)
            removed.append(job_id)
        if used + incoming > self.quota:
            raise NoRoom(f"the work folder's quota ({human(self.quota)}) is used by jobs still queued or running; "
                         "try again when they finish")
        return removed


def _size_of(folder: Path) -> int:
    return sum(p.lstat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def unpack_images(archive: Path, target: Path, most_bytes: int) -> int:
    """Extract the images of a zip into ``target`` as ``00000.png, 00001.jpg...`` (natural order of the members'
    names). Refuses (``InputError``) absolute or ``..`` member paths, symlinks, and more than ``most_bytes``
    unpacked. Returns the number of frames."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = _image_members(zf, most_bytes)
            target.mkdir()
            for i, member in enumerate(members):
                suffix = PurePosixPath(member.filename).suffix.lower()
                with zf.open(member) as src, open(target / f"{i:05d}{suffix}", "wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
    except zipfile.BadZipFile as exc:
        raise InputError(f"not a readable zip: {exc}") from None
    return len(members)


def _image_members(zf: zipfile.ZipFile, most_bytes: int) -> list[zipfile.ZipInfo]:
    images, total = [], 0
    for member in zf.infolist():
        name = member.filename
        _check_member(member)
        if member.is_dir():
            continue
        path = PurePosixPath(name)
        if path.suffix.lower() not in IMAGE_EXTENSIONS or path.name.startswith(".") or "__MACOSX" in path.parts:
            continue
        total += member.file_size
        if total > most_bytes:
            raise TooLarge(f"the zip unpacks to more than {human(most_bytes)} (--max-upload)")
        images.append(member)
    if not images:
        raise InputError("the zip holds no images (png/jpg/tif/webp/bmp)")
    return sorted(images, key=lambda m: natural_key(m.filename))


def _check_member(member: zipfile.ZipInfo) -> None:
    name = member.filename.replace("\\", "/")
    mode = member.external_attr >> 16
    if name.startswith("/") or re.match(r"[A-Za-z]:", name):
        raise InputError(f"zip member {member.filename!r} has an absolute path: refused")
    if ".." in PurePosixPath(name).parts:
        raise InputError(f"zip member {member.filename!r} leads out of the folder: refused")
    if stat.S_ISLNK(mode):
        raise InputError(f"zip member {member.filename!r} is a symbolic link: refused")
