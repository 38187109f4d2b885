"""The page's HTTP API (FastAPI) and the static page itself.

Every route addresses files by job id (checked against the ids we make) and fixed names; no path a client sends is
ever opened. Errors a user can act on come back as ``{"error": "one line"}`` with a status saying what kind:
400 bad request, 401 token, 404 unknown job, 409 busy job, 413 too large, 422 unreadable upload, 429 queue full,
507 quota.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from ..errors import GuidanceError, InputError, UsageError, VidmatteError
from ..io.atomic import atomic_path
from ..io.images import read_gray
from . import guide, runs
from .jobs import ACTIVE, JobQueue, JobStore, QueueFull
from .previews import count_pictures, preview_size, write_input_previews
from .storage import NoRoom, Storage, TooLarge, human
from .weights import read_catalogue

STATIC = Path(__file__).parent / "static"
OBJECT = Query(1, alias="object")  # which subject a guidance request is about (?object=2); 1 as before there were more
SMALL_UPLOAD = 64 << 20  # keyframe images and backgrounds
# picture kind -> (extension, folder under preview/): the completed run's alpha and composition, the running run's
# (run_alpha, run_composition: shown as they are written), the input, the propagation preview (guide)
PREVIEW_KINDS = {"input": ("jpg", "input"), "alpha": ("jpg", "alpha"), "composition": ("jpg", "composition"),
                 "run_alpha": ("jpg", "run/alpha"), "run_composition": ("jpg", "run/composition"),
                 "guide": ("png", "guide")}
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


@dataclass
class Settings:
    work: Path
    max_upload: int = 2 << 30
    quota: int = 20 << 30
    token: str | None = None
    host: str = "127.0.0.1"
    workers: int = 1  # running jobs at once: one on a small machine
    queue: int = 4  # jobs waiting beyond those
    cpus: int | None = None  # each running job's CPU allotment (None: the machine)
    model: str = "rvm-mobilenetv3"
    cache: str | None = None
    checkpoints: Path | None = None  # the network methods' weights (--checkpoints DIR); None: classical methods only


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Server:
    """What the routes share: storage, the job store and queue, the person picker."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.storage = Storage(settings.work, settings.max_upload, settings.quota)
        self.store = JobStore(self.storage.root / "jobs.sqlite3")
        self.interrupted = self.store.mark_interrupted()
        self.queue = JobQueue(self.store, self._execute, settings.workers, settings.queue, settings.cpus)
        self.person = guide.PersonPicker(settings.model, settings.cache)
        self.weights = read_catalogue(settings.checkpoints)  # each file read once, here

    def _execute(self, job_id: str, control) -> tuple[list[str], dict]:
        return runs.execute(self.job(job_id), self.storage.folder(job_id), control, self.settings.model,
                            self.settings.cache, self.weights)

    def job(self, job_id: str) -> dict:
        self.storage.folder(job_id)  # KeyError unless it is one of our ids
        job = self.store.get(job_id)
        if job is None:
            raise KeyError(job_id)
        return job

    def folder(self, job_id: str) -> Path:
        self.job(job_id)
        return self.storage.folder(job_id)

    def close(self) -> None:
        self.queue.close()
        self.store.close()


def create_app(settings: Settings) -> FastAPI:
    server = Server(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        server.close()  # running jobs are cancelled: their threads joined, their temporary files removed

    app = FastAPI(title="vidmatte", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.server = server
    _add_guards(app, settings)
    _add_errors(app)
    _add_job_routes(app, server)
    _add_guidance_routes(app, server)
    _add_run_routes(app, server)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/")
    def index():
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    @app.get("/favicon.ico")
    def favicon():  # the page links static/favicon.svg; this answers browsers and tools that ask the old way
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    @app.get("/api/config")
    def config():
        return {"max_upload": settings.max_upload, "max_upload_text": human(settings.max_upload),
                "modes": {mode: True for mode in runs.MODES}, "outputs": list(runs.OUTPUTS),
                "defaults": runs.DEFAULT_SETTINGS, "methods": runs.mode_methods(),
                "checkpoints": server.weights.public(), "colours": runs.named_colours()}

    return app


# --- safety: token and Host --------------------------------------------------------------------------------
def _add_guards(app: FastAPI, settings: Settings) -> None:
    token = settings.token
    loopback = is_loopback(settings.host)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        host = (request.headers.get("host") or "").rsplit(":", 1)[0]
        # Bound to loopback, only local names are served: a web page elsewhere cannot reach us by rebinding DNS.
        if loopback and host not in LOOPBACK_HOSTS:
            return _error(400, f"this server answers to 127.0.0.1 or localhost, not {host!r}")
        if token is not None:
            given = request.headers.get("x-vidmatte-token") or request.query_params.get("token") or ""
            if not hmac.compare_digest(given.encode(), token.encode()):
                return _error(401, "a valid token is required (open the address the server printed)")
        return await call_next(request)


def _add_errors(app: FastAPI) -> None:
    statuses = [(Busy, 409), (TooLarge, 413), (NoRoom, 507), (QueueFull, 429), (UsageError, 400), (InputError, 422),
                (VidmatteError, 400)]

    @app.exception_handler(VidmatteError)
    async def vidmatte_error(request: Request, exc: VidmatteError):
        status = next(code for kind, code in statuses if isinstance(exc, kind))
        return _error(status, str(exc))

    @app.exception_handler(KeyError)
    async def unknown(request: Request, exc: KeyError):
        return _error(404, "no such job")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _public(server: Server, job: dict) -> dict:
    """A job as the page sees it: no server paths, the live progress of a running job."""
    live = server.queue.progress(job["id"])
    shown = {k: job[k] for k in ("id", "created", "updated", "name", "state", "info", "settings", "keyframes",
                                 "error", "outputs", "details")}
    mode = shown["settings"].get("mode")  # a job saved when the page said auto and plate: the modes' names now
    shown["settings"] = {**shown["settings"], "mode": runs.ALIASES.get(mode, mode)}
    shown["progress"] = live or job.get("progress")
    shown["queue_position"] = server.queue.position(job["id"])
    preview = server.storage.folder(job["id"]) / "preview"
    shown["previews"] = (preview / "alpha").is_dir()  # the last completed run's
    shown["preview_frames"] = count_pictures(preview / "composition")
    # The running run's pictures so far (frames 0..n-1): the page asks for no picture that is not there yet.
    shown["run_preview_frames"] = count_pictures(preview / "run" / "composition") if job["state"] in ACTIVE else 0
    # The last completed run's outputs, offered until another run completes (a failed or refused one hides none);
    # downloads_from says which run they came from.
    shown["downloads"] = {name: runs.download_file(name) for name in job["outputs"]}
    result = job.get("result")
    shown["downloads_from"] = None if result is None or not job["outputs"] else {
        "run": result["run"], "finished": result["finished"],
        "mode": runs.ALIASES.get(result["settings"]["mode"], result["settings"]["mode"]),
        "method": result["settings"].get("method", "classical"), "latest": result["run"] == job["runs"]}
    shown["runs"] = job["runs"]
    shown["guide_preview"] = job.get("guide_preview")
    # Every subject's keyframes by id ("1" is `keyframes`): the page colours each object's marks and ticks.
    shown["objects"] = {str(i): frames for i, frames in guide.job_objects(job).items()}
    return shown


# --- jobs: upload, list, look, delete ------------------------------------------------------------------------
def _add_job_routes(app: FastAPI, server: Server) -> None:
    storage = server.storage

    @app.post("/api/jobs", status_code=201)
    async def upload(request: Request):
        declared = _declared_length(request)
        storage.check_declared(declared)
        removed = await run_in_threadpool(storage.make_room, declared or storage.max_upload,
                                          server.store.removable())
        for old_id in removed:
            server.store.delete(old_id)
        name = _display_name(request.headers.get("x-filename"))
        job_id, folder = storage.create()
        try:
            upload_path = folder / ".upload"
            await storage.receive(request.stream(), upload_path)
            info = await run_in_threadpool(_accept_upload, folder, upload_path, name, storage.max_upload)
        except BaseException:
            storage.remove(job_id)
            raise
        server.store.add(job_id, name, info, runs.DEFAULT_SETTINGS)
        return _public(server, server.job(job_id))

    @app.get("/api/jobs")
    def list_jobs():
        return {"jobs": [_public(server, job) for job in server.store.all()]}

    @app.get("/api/jobs/{job_id}")
    def get_job(job_id: str):
        return _public(server, server.job(job_id))

    @app.delete("/api/jobs/{job_id}")
    def delete_job(job_id: str):
        if server.job(job_id)["state"] in ACTIVE:
            return _error(409, "cancel the job before deleting it")
        storage.remove(job_id)
        server.store.delete(job_id)
        return {"deleted": job_id}

    @app.get("/api/jobs/{job_id}/frames/{index}/{kind}")
    def frame_picture(job_id: str, index: int, kind: str):
        stem, _, ext = kind.partition(".")
        if stem not in PREVIEW_KINDS or PREVIEW_KINDS[stem][0] != ext or index < 0:
            return _error(404, "no such picture")
        path = server.folder(job_id) / "preview" / PREVIEW_KINDS[stem][1] / f"{index:05d}.{ext}"
        if not path.is_file():
            return _error(404, "no such picture")
        return FileResponse(path, headers={"Cache-Control": "no-cache"})


def _display_name(header: str | None) -> str:
    """The upload's file name for display only (never a path): its last component, printable, at most 120."""
    name = re.split(r"[\\/]", unquote(header or "upload"))[-1]
    name = "".join(ch for ch in name if ch.isprintable())[:120]
    return name or "upload"


def _accept_upload(folder: Path, upload: Path, name: str, max_bytes: int) -> dict:
    """Probe the upload with the project's reader (a zip: unpack its images first) and make the timeline's
    previews; ``InputError`` with the reader's message (naming the upload, not our folder) otherwise."""
    from ..io.source import open_source

    with open(upload, "rb") as f:
        is_zip = f.read(4) == b"PK\x03\x04"
    if is_zip:
        from .storage import unpack_images

        unpack_images(upload, folder / "frames", max_bytes)
        upload.unlink()
        source_path = folder / "frames"
    else:
        source_path = folder / Storage.input_name(name)
        upload.rename(source_path)
    try:
        source = open_source(source_path)
        size = preview_size(source.info.width, source.info.height)
        frames = write_input_previews(source, folder / "preview" / "input", size)
    except VidmatteError as exc:
        raise InputError(str(exc).replace(str(source_path), name)) from None
    if frames == 0:
        raise InputError(f"{name}: no frame could be decoded")
    info = source.info
    return {"kind": "images" if is_zip else info.kind, "width": info.width, "height": info.height,
            "fps": round(float(info.fps), 3), "frames": frames, "preview": list(size), "audio": info.audio,
            "codec": info.codec}


def _declared_length(request: Request) -> int | None:
    declared = request.headers.get("content-length", "")
    return int(declared) if declared.isdigit() else None


async def _small_body(request: Request, server: Server, target: Path) -> Path:
    server.storage.check_declared(_declared_length(request), SMALL_UPLOAD)
    await server.storage.receive(request.stream(), target, SMALL_UPLOAD)
    return target


def _frame(server: Server, job_id: str, index: int) -> np.ndarray:
    from ..io.source import open_source

    job = server.job(job_id)
    if not 0 <= index < job["info"]["frames"]:
        raise UsageError(f"frame {index} is outside the clip (0..{job['info']['frames'] - 1})")
    return open_source(runs.input_path(server.storage.folder(job_id))).frame(index).image


def _png(image: np.ndarray) -> Response:
    import cv2

    ok, data = cv2.imencode(".png", image)
    return Response(data.tobytes(), media_type="image/png", headers={"Cache-Control": "no-store"})


class Busy(VidmatteError):
    """The job is queued or running, and the request would change it (HTTP 409)."""


def _check_editable(server: Server, job_id: str) -> dict:
    job = server.job(job_id)
    if job["state"] in ACTIVE:
        raise Busy("the job is queued or running: cancel it first")
    return job


# --- guidance: first masks, keyframes, propagation preview ---------------------------------------------------
def _add_guidance_routes(app: FastAPI, server: Server) -> None:

    @app.post("/api/jobs/{job_id}/first-mask")
    async def first_mask(job_id: str, request: Request, frame: int, method: str, x0: float = 0, y0: float = 0,
                         x1: float = 0, y1: float = 0):
        """A trimap (PNG, the frame's size) from one gesture: method=box (x0..y1), person (x0, y0), scribble
        (body: a grey PNG, 255 object, 0 background, 128 unmarked)."""
        if method not in ("box", "person", "scribble"):
            raise UsageError("method must be box, person or scribble")
        folder = server.folder(job_id)
        labels = None
        if method == "scribble":
            labels = await _small_body(request, server, folder / ".scribble.png")
        image = await run_in_threadpool(_frame, server, job_id, frame)
        mask = await run_in_threadpool(_first_mask, server, image, method, (x0, y0, x1, y1), labels)
        return _png(guide.trimap_of(mask))

    @app.put("/api/jobs/{job_id}/keyframes/{index}")
    async def set_keyframe(job_id: str, index: int, request: Request, object_id: int = OBJECT):
        """Object ``object_id``'s keyframe at frame ``index`` (1, the default, is the only one a job starts with)."""
        job = _check_editable(server, job_id)
        objects = _objects_with(job, object_id)
        if not 0 <= index < job["info"]["frames"]:
            raise UsageError(f"frame {index} is outside the clip (0..{job['info']['frames'] - 1})")
        folder = server.storage.folder(job_id)
        body = await _small_body(request, server, folder / ".keyframe")
        size = (job["info"]["width"], job["info"]["height"])
        try:
            await run_in_threadpool(guide.save_keyframe, folder, index, body, size, object_id)
        finally:
            body.unlink(missing_ok=True)
        objects[object_id] = sorted(set(objects[object_id]) | {index})
        _store_objects(server, job_id, objects)
        _drop_guide_preview(server, job, index, object_id)
        return _keyframes_answer(objects, object_id)

    @app.get("/api/jobs/{job_id}/keyframes/{index}")
    def get_keyframe(job_id: str, index: int, object_id: int = OBJECT):
        objects = guide.job_objects(server.job(job_id))
        path = guide.keyframe_path(server.folder(job_id), index, object_id)
        if index not in objects.get(object_id, []) or not path.is_file():
            return _error(404, "no keyframe there")
        return FileResponse(path, headers={"Cache-Control": "no-store"})

    @app.delete("/api/jobs/{job_id}/keyframes/{index}")
    def delete_keyframe(job_id: str, index: int, object_id: int = OBJECT):
        job = _check_editable(server, job_id)
        objects = _objects_with(job, object_id)
        guide.keyframe_path(server.storage.folder(job_id), index, object_id).unlink(missing_ok=True)
        objects[object_id] = [i for i in objects[object_id] if i != index]
        _store_objects(server, job_id, objects)
        _drop_guide_preview(server, job, index, object_id)
        return _keyframes_answer(objects, object_id)

    @app.post("/api/jobs/{job_id}/objects", status_code=201)
    def add_object(job_id: str):
        """One more subject to mark (the next id); a run then mattes each marked object, with outputs per object."""
        job = _check_editable(server, job_id)
        objects = guide.job_objects(job)
        if len(objects) >= guide.MAX_OBJECTS:
            raise UsageError(f"a job marks at most {guide.MAX_OBJECTS} objects")
        added = max(objects) + 1
        objects[added] = []
        _store_objects(server, job_id, objects)
        return _keyframes_answer(objects, added)

    @app.delete("/api/jobs/{job_id}/objects/{object_id}")
    def remove_object(job_id: str, object_id: int):
        """A subject and its keyframes (object 1 stays: its keyframes can be removed one by one)."""
        job = _check_editable(server, job_id)
        objects = _objects_with(job, object_id)
        if object_id == 1:
            raise UsageError("object 1 stays on the job: remove its keyframes instead")
        folder = server.storage.folder(job_id)
        for index in objects.pop(object_id):
            guide.keyframe_path(folder, index, object_id).unlink(missing_ok=True)
        _store_objects(server, job_id, objects)
        shown = job.get("guide_preview")
        if shown and shown.get("object", 1) == object_id:
            _drop_guide_preview(server, job, shown["keyframe"], object_id)
        return _keyframes_answer(objects, 1)

    @app.post("/api/jobs/{job_id}/propagate")
    def propagate(job_id: str, frame: int, object_id: int = OBJECT):
        """Object ``object_id``'s keyframe at ``frame`` carried over the next frames, as previews (before a run)."""
        from ..io.source import open_source

        job = server.job(job_id)
        if frame not in guide.job_objects(job).get(object_id, []):
            raise UsageError("set this frame as a keyframe first")
        folder = server.storage.folder(job_id)
        size = (job["info"]["width"], job["info"]["height"])
        trimap = guide.read_keyframes(folder, [frame], size, object_id=object_id).at(frame)
        out = folder / "preview" / "guide"
        shutil.rmtree(out, ignore_errors=True)
        frames = guide.propagation_preview(open_source(runs.input_path(folder)), trimap, frame,
                                           guide.PROPAGATION_PREVIEW_FRAMES, out, tuple(job["info"]["preview"]))
        # Kept with the job, so a reload shows it again and the page can say how far it went.
        server.store.update(job_id, guide_preview={"keyframe": frame, "frames": frames, "object": object_id})
        return {"frames": frames, "keyframe": frame, "object": object_id, "last_frame": job["info"]["frames"] - 1}


def _objects_with(job: dict, object_id: int) -> dict[int, list[int]]:
    """The job's {object id: keyframes}, which must hold ``object_id`` (a one-line error otherwise)."""
    objects = guide.job_objects(job)
    if object_id not in objects:
        raise UsageError(f"the job has no object {object_id} (objects: {', '.join(map(str, objects))}): add it first")
    return objects


def _store_objects(server: Server, job_id: str, objects: dict[int, list[int]]) -> None:
    """Object 1's keyframes where jobs always kept them (``keyframes``), the others in ``objects``."""
    more = {str(i): frames for i, frames in objects.items() if i != 1}
    server.store.update(job_id, keyframes=objects[1], objects=more or None)


def _keyframes_answer(objects: dict[int, list[int]], object_id: int) -> dict:
    return {"keyframes": objects[object_id], "object": object_id,
            "objects": {str(i): frames for i, frames in objects.items()}}


def _drop_guide_preview(server: Server, job: dict, index: int, object_id: int = 1) -> None:
    """The propagation preview of keyframe ``index`` no longer shows what a run would do once it changes."""
    shown = job.get("guide_preview")
    if shown and shown["keyframe"] == index and shown.get("object", 1) == object_id:
        shutil.rmtree(server.storage.folder(job["id"]) / "preview" / "guide", ignore_errors=True)
        server.store.update(job["id"], guide_preview=None)


def _first_mask(server: Server, image: np.ndarray, method: str, box, labels_path: Path | None) -> np.ndarray:
    if method == "box":
        return guide.grabcut_box(image, box)
    if method == "person":
        return server.person.mask_at(image, int(box[0]), int(box[1]))
    import cv2

    try:
        labels = read_gray(labels_path)
    except InputError:
        raise GuidanceError("the scribbles could not be read as an image") from None
    finally:
        labels_path.unlink(missing_ok=True)
    h, w = image.shape[:2]
    labels = cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)
    return guide.grabcut_scribbles(image, labels)


# --- runs: background, run, cancel, download ---------------------------------------------------------------------
def _add_run_routes(app: FastAPI, server: Server) -> None:

    @app.put("/api/jobs/{job_id}/background")
    async def set_background(job_id: str, request: Request):
        """The composition's background image."""
        await _keep_image(server, job_id, request, "background")
        return {"background": "image"}

    @app.put("/api/jobs/{job_id}/plate")
    async def set_plate(job_id: str, request: Request):
        """Plate mode's clean plate: a photo of the empty scene, at the video's size."""
        await _keep_image(server, job_id, request, "plate")
        return {"plate": "image"}

    @app.put("/api/jobs/{job_id}/settings")
    async def save_settings(job_id: str, request: Request):
        """The page's choices, saved as they change (every value checked; the uploads a run needs are checked
        when it runs), so reopening the job shows them."""
        _check_editable(server, job_id)
        given = await request.json() if await request.body() else {}
        if not isinstance(given, dict):
            raise UsageError("the settings must be a JSON object")
        settings = runs.check_settings(given, draft=True)
        server.store.update(job_id, settings=settings)
        return _public(server, server.job(job_id))

    @app.post("/api/jobs/{job_id}/run", status_code=202)
    async def run(job_id: str, request: Request):
        job = _check_editable(server, job_id)
        folder = server.storage.folder(job_id)
        given = await request.json() if await request.body() else {}
        if not isinstance(given, dict):
            raise UsageError("the run's settings must be a JSON object")
        settings = runs.check_settings(given, (folder / "background.png").is_file(), (folder / "plate.png").is_file(),
                                       server.weights)
        if settings["mode"] == "guided":
            runs.guided_objects(job, settings["method"])  # every object marked, a method that mattes them all
        server.store.update(job_id, settings=settings)
        server.queue.submit(job_id)
        return _public(server, server.job(job_id))

    @app.post("/api/jobs/{job_id}/cancel")
    def cancel(job_id: str):
        server.job(job_id)
        if not server.queue.cancel(job_id):
            return _error(409, "the job is not queued or running")
        return {"cancelling": job_id}

    @app.get("/api/jobs/{job_id}/download/{name}")
    def download(job_id: str, name: str):
        job = server.job(job_id)  # the last completed run's outputs, whatever the state of a later run
        file = runs.download_file(name)
        path = server.storage.folder(job_id) / (file or ".none")
        if file is None or name not in job["outputs"] or not path.is_file():
            return _error(404, "no such download (the job has not written it)")
        stem = os.path.splitext(job["name"])[0] or "vidmatte"
        return FileResponse(path, filename=f"{stem}_{file}")


async def _keep_image(server: Server, job_id: str, request: Request, what: str) -> None:
    """An uploaded image kept as the job's ``<what>.png`` (re-encoded; the upload itself is removed)."""
    _check_editable(server, job_id)
    folder = server.storage.folder(job_id)
    body = await _small_body(request, server, folder / f".{what}")
    try:
        await run_in_threadpool(_save_image, body, folder / f"{what}.png", what)
    finally:
        body.unlink(missing_ok=True)


def _save_image(upload: Path, target: Path, what: str) -> None:
    """Re-encode an uploaded image as ``target`` (PNG; what is kept is our own PNG, never the upload)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(upload) as im:
            im.load()
            rgb = im.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InputError(f"the {what} is not a readable image ({exc})") from None
    with atomic_path(target) as partial:
        rgb.save(partial)

