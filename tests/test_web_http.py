"""The page's HTTP API against a real server on 127.0.0.1: every safety rule of issue 12, and real jobs.

Uploads are real files (H.264 clips made with PyAV, PNG zips); jobs run through the real pipeline (guided mode with
no prior: no weights needed, so these tests run offline).
"""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from media import disc_over_plate, moving_square_frames, write_video
from web_helpers import call, serving, upload, wait_for

from vidmatte.errors import UsageError
from vidmatte.web.jobs import JobStore
from vidmatte.web.storage import parse_size

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("web") / "clip.mp4", moving_square_frames(12, 96, 64))


def _square_mask(frame_index: int = 0, width: int = 96, height: int = 64) -> bytes:
    """A PNG mask of the yellow square of ``moving_square_frames`` at ``frame_index`` (0/255)."""
    mask = np.zeros((height, width), np.uint8)
    x = (frame_index * 5) % (width - 16)
    mask[8:24, x:x + 16] = 255
    return cv2.imencode(".png", mask)[1].tobytes()


def _jobs_on_disk(work: Path) -> list[str]:
    return sorted(p.name for p in (work / "jobs").iterdir()) if (work / "jobs").exists() else []


def _zip(members: list[tuple[str, bytes, int | None]]) -> bytes:
    """A zip of (name, data, unix mode or None)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name)
            if mode is not None:
                info.external_attr = mode << 16
            zf.writestr(info, data)
    return buffer.getvalue()


def _png(seed: int) -> bytes:
    return cv2.imencode(".png", moving_square_frames(seed + 1, 48, 32)[seed])[1].tobytes()


# --- uploads ---------------------------------------------------------------------------------------------------
def test_sizes_parse_with_units():
    assert parse_size("2GB") == 2 << 30 and parse_size("500MB") == 500 << 20 and parse_size("64KB") == 65536
    assert parse_size("1.5 MB") == int(1.5 * (1 << 20))
    for bad in ("lots", "-1MB", "0", "2XB"):
        with pytest.raises(Exception, match="a size must"):
            parse_size(bad)


def test_upload_is_probed_and_previewed(tmp_path, clip):
    with serving(tmp_path / "work") as (base, _):
        status, job = upload(base, clip)
        assert status == 201, job
        assert job["info"]["frames"] == 12 and (job["info"]["width"], job["info"]["height"]) == (96, 64)
        assert job["state"] == "ready" and job["name"] == "clip.mp4"
        status, jpeg = call(base, "GET", f"/api/jobs/{job['id']}/frames/11/input.jpg")
        frame = cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        x = (11 * 5) % 80
        assert status == 200 and frame[16, x + 8, 0] > 200 and frame[16, x + 8, 2] < 100  # the yellow square
        folder = tmp_path / "work" / "jobs" / job["id"]
        assert sorted(p.name for p in folder.iterdir()) == ["input.mp4", "preview"]


def test_oversize_upload_is_refused_with_413_and_nothing_kept(tmp_path, clip):
    size = clip.stat().st_size
    with serving(tmp_path / "work", max_upload=size - 1) as (base, _):
        status, body = upload(base, clip)  # declared length: refused before reading
        assert status == 413 and "at most" in body["error"]
        # No declared length (chunked): refused when the stream passes the cap
        data = clip.read_bytes()
        chunks = (data[i:i + 1024] for i in range(0, len(data), 1024))
        status, body = call(base, "POST", "/api/jobs", chunks, {"X-Filename": "clip.mp4"})
        assert status in (413, None), body  # None: the server hung up while the client still sent
        assert _jobs_on_disk(tmp_path / "work") == []
        status, body = call(base, "GET", "/api/jobs")
        assert body["jobs"] == []


def test_a_text_file_named_mp4_is_refused_with_the_readers_message(tmp_path):
    fake = tmp_path / "holiday.mp4"
    fake.write_text("this is not a video\n" * 20)
    with serving(tmp_path / "work") as (base, _):
        status, body = upload(base, fake)
        assert status == 422
        assert body["error"].startswith("not a readable video or image: holiday.mp4 (")
        assert str(tmp_path) not in body["error"]  # the server's folders are not shown
        assert _jobs_on_disk(tmp_path / "work") == []


def test_zip_of_images_becomes_a_clip_in_natural_order(tmp_path):
    members = [(f"shot/frame{i}.png", _png(i), None) for i in (10, 2, 1)] + [("shot/notes.txt", b"hi", None)]
    with serving(tmp_path / "work") as (base, _):
        status, job = call(base, "POST", "/api/jobs", _zip(members), {"X-Filename": "shot.zip"})
        assert status == 201, job
        assert job["info"]["frames"] == 3 and job["info"]["kind"] == "images"
        frames = sorted(os.listdir(tmp_path / "work" / "jobs" / job["id"] / "frames"))
        assert frames == ["00000.png", "00001.png", "00002.png"]
        stored = (tmp_path / "work" / "jobs" / job["id"] / "frames" / "00002.png").read_bytes()
        assert stored == _png(10)  # frame10 sorts last (natural order), stored under a fixed name


@pytest.mark.parametrize("member, mode, reason", [
    ("../evil.png", None, "leads out of the folder"),
    ("frames/../../evil.png", None, "leads out of the folder"),
    ("/etc/evil.png", None, "absolute path"),
    ("C:/evil.png", None, "absolute path"),
    ("link.png", stat.S_IFLNK | 0o777, "symbolic link"),
])
def test_zip_members_that_could_escape_are_refused(tmp_path, member, mode, reason):
    data = _zip([("ok.png", _png(0), None), (member, b"/etc/passwd" if mode else _png(1), mode)])
    with serving(tmp_path / "work") as (base, _):
        status, body = call(base, "POST", "/api/jobs", data, {"X-Filename": "x.zip"})
        assert status == 422 and reason in body["error"], body
        assert _jobs_on_disk(tmp_path / "work") == []
    assert not (tmp_path / "evil.png").exists() and not (tmp_path / "work" / "evil.png").exists()


def test_files_are_reached_by_job_id_and_fixed_names_only(tmp_path, clip):
    with serving(tmp_path / "work") as (base, _):
        _, job = upload(base, clip)
        for path in ("/api/jobs/..%2F..%2Fjobs.sqlite3", "/api/jobs/../../etc/passwd",
                     f"/api/jobs/{job['id']}/frames/0/..%2F..%2Finput.mp4", f"/api/jobs/{job['id']}/frames/0/input.mp4",
                     f"/api/jobs/{job['id']}/download/input.mp4", f"/api/jobs/{job['id']}/download/alpha",
                     f"/api/jobs/{'0' * 32}", "/static/../jobs.sqlite3"):
            status, body = call(base, "GET", path)
            assert status == 404, (path, status, body)


# --- token and host ----------------------------------------------------------------------------------------------
def test_token_is_required_on_every_request_when_set(tmp_path, clip):
    with serving(tmp_path / "work", token="s3cret-token") as (base, _):
        assert call(base, "GET", "/api/jobs")[0] == 401
        assert call(base, "GET", "/")[0] == 401
        assert call(base, "GET", "/api/jobs", headers={"X-Vidmatte-Token": "wrong"})[0] == 401
        assert upload(base, clip)[0] == 401
        assert _jobs_on_disk(tmp_path / "work") == []
        assert call(base, "GET", "/api/jobs", headers={"X-Vidmatte-Token": "s3cret-token"})[0] == 200
        status, page = call(base, "GET", "/?token=s3cret-token")
        assert status == 200 and b"vidmatte" in page


def test_loopback_server_answers_local_host_names_only(tmp_path):
    with serving(tmp_path / "work") as (base, _):
        assert call(base, "GET", "/api/config")[0] == 200
        status, body = call(base, "GET", "/api/config", headers={"Host": "attacker.example:7860"})
        assert status == 400 and "127.0.0.1 or localhost" in body["error"]


def test_non_loopback_addresses_get_a_token():
    from vidmatte.cli.serve import token_for

    assert token_for("127.0.0.1", None) is None and token_for("localhost", None) is None
    assert token_for("::1", None) is None
    generated = token_for("0.0.0.0", None)
    assert generated and len(generated) >= 24 and generated != token_for("0.0.0.0", None)
    assert token_for("192.168.1.5", "mine") == "mine"


def test_serve_command_with_token_on_127_0_0_1(tmp_path):
    """The command itself: prints its address (port 0: a free one) with the token, refuses requests without it."""
    process = subprocess.Popen([sys.executable, "-m", "vidmatte", "serve", "--port", "0", "--token", "tok-123",
                                "--work", str(tmp_path / "work"), "--max-upload", "10MB", "--quota", "50MB"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    try:
        line = process.stdout.readline()  # printed once the socket listens
        assert line.startswith("vidmatte serve: http://127.0.0.1:") and "?token=tok-123" in line, line
        base = line.split()[2].split("/?")[0]
        for _ in range(100):  # the app starts right after the line: bounded wait
            status, _ = call(base, "GET", "/api/config", headers={"X-Vidmatte-Token": "tok-123"})
            if status == 200:
                break
            time.sleep(0.1)
        assert status == 200
        assert call(base, "GET", "/api/config")[0] == 401
        assert call(base, "GET", "/api/config?token=nope")[0] == 401
    finally:
        process.terminate()
        process.wait(30)


def test_serve_usage_errors_are_one_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    for args, message in ((["--max-upload", "lots"], "a size must look like"),
                          (["--max-upload", "2GB", "--quota", "1GB"], "--quota (1GB) must be at least"),
                          (["--token", " "], "--token must not be empty")):
        result = subprocess.run([sys.executable, "-m", "vidmatte", "serve", "--work", str(tmp_path), *args],
                                capture_output=True, text=True, env=env, timeout=60)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


# --- runs, queue, cancel, quota, restart ------------------------------------------------------------------------
def _guided_job(base: str, path: Path, name: str | None = None) -> str:
    status, job = upload(base, path, name)
    assert status == 201, job
    status, body = call(base, "PUT", f"/api/jobs/{job['id']}/keyframes/0", _square_mask())
    assert status == 200 and body["keyframes"] == [0], body
    return job["id"]


def _run(base: str, job_id: str, **settings):
    return call(base, "POST", f"/api/jobs/{job_id}/run", body=json.dumps(
        {"mode": "guided", "prior": "none", **settings}), headers={"Content-Type": "application/json"})


def test_guided_run_writes_the_downloads(tmp_path, clip):
    with serving(tmp_path / "work") as (base, _):
        job_id = _guided_job(base, clip)
        status, body = _run(base, job_id, outputs=["alpha_png", "composition"])
        assert status == 202, body
        job = wait_for(base, job_id, ("done", "failed"))
        assert job["state"] == "done", job["error"]
        assert job["progress"]["done"] == 12 and job["progress"]["passes"] == 3
        assert set(job["downloads"]) == {"alpha_png", "composition"}
        status, data = call(base, "GET", f"/api/jobs/{job_id}/download/alpha_png")
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = zf.namelist()
            alpha = cv2.imdecode(np.frombuffer(zf.read("alpha/00000.png"), np.uint8), cv2.IMREAD_GRAYSCALE)
        assert names == [f"alpha/{i:05d}.png" for i in range(12)]
        assert alpha[16, 8] > 200 and alpha[50, 60] < 30  # the square is the subject, the rest is not
        assert call(base, "GET", f"/api/jobs/{job_id}/frames/5/alpha.jpg")[0] == 200


def test_a_rerun_after_a_fixed_keyframe_recomputes_only_its_span(tmp_path, clip):
    """The job's work folder is kept between its runs: fixing the keyframe at frame 11 (keyframes 0, 6, 11)
    re-solves frames 7..11 only; frames 0..6 are read back from the first run."""
    with serving(tmp_path / "work") as (base, _):
        job_id = _guided_job(base, clip)
        for index in (6, 11):
            assert call(base, "PUT", f"/api/jobs/{job_id}/keyframes/{index}", _square_mask(index))[0] == 200
        assert _run(base, job_id, outputs=["alpha_png"])[0] == 202
        assert wait_for(base, job_id, ("done", "failed"))["state"] == "done"
        solved = tmp_path / "work" / "jobs" / job_id / "work" / "solved"
        before = {p.name: p.stat().st_mtime_ns for p in solved.glob("*_alpha.npy.gz")}
        assert len(before) == 12
        bigger = np.zeros((64, 96), np.uint8)
        bigger[6:26, (11 * 5) % 80 - 2:(11 * 5) % 80 + 18] = 255  # the fix: a wider mask on frame 11
        assert call(base, "PUT", f"/api/jobs/{job_id}/keyframes/11",
                    cv2.imencode(".png", bigger)[1].tobytes())[0] == 200
        assert _run(base, job_id, outputs=["alpha_png"])[0] == 202
        assert wait_for(base, job_id, ("done", "failed"))["state"] == "done"
        after = {p.name: p.stat().st_mtime_ns for p in solved.glob("*_alpha.npy.gz")}
        changed = sorted(int(name[:5]) for name in after if after[name] != before[name])
        assert changed == [7, 8, 9, 10, 11]


def test_frames_whose_keyframes_disagree_are_reported_with_the_job(tmp_path, clip):
    """Keyframe 11 marks a patch of background instead of the square: the frames between are matted from the nearer
    keyframe (not emptied), and the job tells the page which run of frames to give a keyframe."""
    patch = np.zeros((64, 96), np.uint8)
    patch[40:56, 66:86] = 255
    with serving(tmp_path / "work") as (base, _):
        job_id = _guided_job(base, clip)
        assert call(base, "PUT", f"/api/jobs/{job_id}/keyframes/11", cv2.imencode(".png", patch)[1].tobytes())[0] == 200
        assert _run(base, job_id, outputs=["alpha_png"])[0] == 202
        job = wait_for(base, job_id, ("done", "failed"))
        assert job["state"] == "done", job["error"]
        (first, last), = job["details"]["contradicting_frames"]
        assert first <= 2 and last >= 9, job["details"]
        # ...and says so through the run's warning channel, which the page shows beside "done"
        assert any("followed to different places" in w for w in job["details"]["warnings"]), job["details"]
        status, data = call(base, "GET", f"/api/jobs/{job_id}/download/alpha_png")
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            alpha = {i: cv2.imdecode(np.frombuffer(zf.read(f"alpha/{i:05d}.png"), np.uint8), cv2.IMREAD_GRAYSCALE)
                     for i in (3, 9)}
        assert alpha[3][16, 3 * 5 + 8] > 200 and alpha[3][48, 76] < 30  # keyframe 0's square
        assert alpha[9][48, 76] > 200 and alpha[9][16, 9 * 5 + 8] < 30  # keyframe 11's patch


def test_a_refused_rerun_in_another_mode_keeps_the_last_runs_outputs(tmp_path, clip):
    """A done guided job re-run in plate mode with a plate of the wrong size: the run is refused, and the guided
    run's downloads and previews are still offered, saying which run they came from."""
    with serving(tmp_path / "work") as (base, _):
        job_id = _guided_job(base, clip)
        assert _run(base, job_id, outputs=["composition", "alpha_png"])[0] == 202
        assert wait_for(base, job_id, ("done", "failed"))["state"] == "done"
        small = cv2.imencode(".png", np.zeros((32, 32, 3), np.uint8))[1].tobytes()
        assert call(base, "PUT", f"/api/jobs/{job_id}/plate", small)[0] == 200
        assert _run(base, job_id, mode="plate", plate="image", outputs=["alpha"])[0] == 202
        job = wait_for(base, job_id, ("done", "failed"))
        assert job["state"] == "failed" and "32x32" in job["error"], job["error"]
        assert set(job["downloads"]) == {"composition", "alpha_png"}
        assert job["downloads_from"]["run"] == 1 and job["runs"] == 2 and not job["downloads_from"]["latest"]
        assert job["downloads_from"]["mode"] == "guided"
        status, data = call(base, "GET", f"/api/jobs/{job_id}/download/composition")
        assert status == 200 and data == (tmp_path / "work" / "jobs" / job_id / "composition.mp4").read_bytes()
        assert call(base, "GET", f"/api/jobs/{job_id}/download/alpha")[0] == 404  # the refused run's: never made
        assert job["previews"] and job["preview_frames"] == 12
        assert call(base, "GET", f"/api/jobs/{job_id}/frames/5/alpha.jpg")[0] == 200


def _patch_mask(width: int = 96, height: int = 64) -> bytes:
    """A second subject for ``moving_square_frames``: a still patch of its background (0/255)."""
    mask = np.zeros((height, width), np.uint8)
    mask[40:56, 66:86] = 255
    return cv2.imencode(".png", mask)[1].tobytes()


def test_keyframes_are_kept_per_object_and_object_1_where_jobs_always_kept_it(tmp_path, clip):
    work = tmp_path / "work"
    with serving(work) as (base, _):
        job_id = _guided_job(base, clip)
        folder = work / "jobs" / job_id
        status, body = call(base, "PUT", f"/api/jobs/{job_id}/keyframes/3?object=2", _patch_mask())
        assert status == 400 and "no object 2" in body["error"]  # an object is added before it is marked
        status, body = call(base, "POST", f"/api/jobs/{job_id}/objects")
        assert status == 201 and body["object"] == 2 and body["objects"] == {"1": [0], "2": []}, body
        status, body = call(base, "PUT", f"/api/jobs/{job_id}/keyframes/3?object=2", _patch_mask())
        assert status == 200 and body == {"keyframes": [3], "object": 2, "objects": {"1": [0], "2": [3]}}, body
        assert call(base, "PUT", f"/api/jobs/{job_id}/keyframes/0?object=2", _patch_mask())[0] == 200
        # object 1's keyframe is where it always was; object 2's as the CLI names per-object masks
        assert sorted(p.name for p in (folder / "keyframes").iterdir()) == ["00000.png", "00000_2.png", "00003_2.png"]
        status, data = call(base, "GET", f"/api/jobs/{job_id}/keyframes/3?object=2")
        stored = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
        assert status == 200 and stored[48, 76] == 255 and stored[16, 8] == 0  # the patch, not the square
        assert call(base, "GET", f"/api/jobs/{job_id}/keyframes/3")[0] == 404  # object 1 has none at 3
        status, data = call(base, "GET", f"/api/jobs/{job_id}/keyframes/0")
        assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)[16, 8] == 255  # object 1's square
        status, body = call(base, "DELETE", f"/api/jobs/{job_id}/keyframes/3?object=2")
        assert status == 200 and body["objects"] == {"1": [0], "2": [0]}
        assert not (folder / "keyframes" / "00003_2.png").exists()
        status, body = call(base, "POST", f"/api/jobs/{job_id}/propagate?frame=0&object=2")
        assert status == 200 and body["object"] == 2, body
        status, body = call(base, "POST", f"/api/jobs/{job_id}/objects")
        assert body["object"] == 3
        status, body = call(base, "DELETE", f"/api/jobs/{job_id}/objects/1")
        assert status == 400 and "object 1 stays" in body["error"]
        status, body = _run(base, job_id)
        assert status == 400 and body["error"].startswith("object 3 has no keyframe"), body
        status, body = call(base, "DELETE", f"/api/jobs/{job_id}/objects/3")
        assert status == 200 and body["objects"] == {"1": [0], "2": [0]}
        from vidmatte.web.runs import guided_objects

        with pytest.raises(UsageError, match="several objects in one run are for the classical method"):
            guided_objects(call(base, "GET", f"/api/jobs/{job_id}")[1], "tgm")
    with serving(work) as (base, _):  # kept over a restart, object 1 in the job's `keyframes` as before
        job = call(base, "GET", f"/api/jobs/{job_id}")[1]
        assert job["keyframes"] == [0] and job["objects"] == {"1": [0], "2": [0]}
        assert job["guide_preview"]["object"] == 2
        status, body = call(base, "DELETE", f"/api/jobs/{job_id}/objects/2")
        assert status == 200 and body["objects"] == {"1": [0]}
        assert sorted(p.name for p in (folder / "keyframes").iterdir()) == ["00000.png"]
        assert call(base, "GET", f"/api/jobs/{job_id}")[1]["guide_preview"] is None  # object 2's preview went


def test_a_job_stored_before_several_objects_opens_as_object_1(tmp_path, clip):
    """A job row with no ``objects`` column (a database of an earlier release) and keyframes/00000.png: one
    object, its keyframe readable, and it runs as before."""
    import sqlite3

    work = tmp_path / "work"
    with serving(work) as (base, _):
        job_id = _guided_job(base, clip)
    db = sqlite3.connect(work / "jobs.sqlite3")
    db.execute("ALTER TABLE jobs DROP COLUMN objects")
    db.commit()
    db.close()
    with serving(work) as (base, _):
        job = call(base, "GET", f"/api/jobs/{job_id}")[1]
        assert job["keyframes"] == [0] and job["objects"] == {"1": [0]}
        assert call(base, "GET", f"/api/jobs/{job_id}/keyframes/0")[0] == 200
        assert _run(base, job_id, outputs=["composition"])[0] == 202
        job = wait_for(base, job_id, ("done", "failed"))
        assert job["state"] == "done", job["error"]
        assert job["downloads"] == {"composition": "composition.mp4"}


def test_two_objects_in_one_run_give_downloads_per_object(tmp_path, clip):
    with serving(tmp_path / "work") as (base, _):
        job_id = _guided_job(base, clip)
        assert call(base, "POST", f"/api/jobs/{job_id}/objects")[0] == 201
        assert call(base, "PUT", f"/api/jobs/{job_id}/keyframes/0?object=2", _patch_mask())[0] == 200
        status, body = _run(base, job_id, outputs=["alpha_png", "composition", "rgba_mov"])
        assert status == 202, body
        job = wait_for(base, job_id, ("done", "failed"))
        assert job["state"] == "done", job["error"]
        assert job["downloads"] == {
            "composition.1": "composition.1.mp4", "alpha_png.1": "alpha.1.zip", "rgba_mov.1": "rgba.1.mov",
            "composition.2": "composition.2.mp4", "alpha_png.2": "alpha.2.zip", "rgba_mov.2": "rgba.2.mov"}
        assert set(job["details"]["objects"]) == {"1", "2"}, job["details"]
        alphas = {}
        for object_id in (1, 2):
            status, data = call(base, "GET", f"/api/jobs/{job_id}/download/alpha_png.{object_id}")
            assert status == 200
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                assert zf.namelist() == [f"alpha/{object_id}/{i:05d}.png" for i in range(12)]
                alphas[object_id] = cv2.imdecode(np.frombuffer(zf.read(f"alpha/{object_id}/00005.png"), np.uint8),
                                                 cv2.IMREAD_GRAYSCALE)
        square, patch = (16, 5 * 5 + 8), (48, 76)
        assert alphas[1][square] > 200 and alphas[1][patch] < 30  # each object its own subject
        assert alphas[2][patch] > 200 and alphas[2][square] < 30
        assert (alphas[1].astype(int) + alphas[2] <= 255 + 1).all()  # their sum never past 1 (8-bit rounding)
        status, data = call(base, "GET", f"/api/jobs/{job_id}/download/composition.2")
        assert status == 200 and data == (tmp_path / "work" / "jobs" / job_id / "composition.2.mp4").read_bytes()
        for name in ("composition", "composition.3", "composition.02", "alpha_png.x", "../jobs.sqlite3"):
            assert call(base, "GET", f"/api/jobs/{job_id}/download/{name}")[0] == 404, name
        assert not (tmp_path / "work" / "jobs" / job_id / "alpha").exists()  # zipped, then removed
        status, data = call(base, "GET", f"/api/jobs/{job_id}/frames/5/composition.jpg")
        assert status == 200  # the whole frame's preview: every object, in its own colours
        preview = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        sy, sx = preview.shape[0] / 64, preview.shape[1] / 96
        yellow = preview[int(16 * sy), int((5 * 5 + 8) * sx)].astype(int)
        assert yellow[0] > 200 and yellow[1] > 200 and yellow[2] < 100, yellow  # (250, 240, 40), not red alone


def test_settings_are_kept_per_job_before_any_run_and_survive_a_restart(tmp_path, clip):
    work = tmp_path / "work"
    chosen = {"mode": "guided", "prior": "none", "background": "#102030", "outputs": ["alpha_png", "alpha"]}
    with serving(work) as (base, _):
        job_id = _guided_job(base, clip)
        status, job = call(base, "PUT", f"/api/jobs/{job_id}/settings", json.dumps(chosen),
                           {"Content-Type": "application/json"})
        assert status == 200, job
        status, body = call(base, "PUT", f"/api/jobs/{job_id}/settings", json.dumps({"mode": "sideways"}))
        assert status == 400 and body["error"] == "mode must be one of convert, guided, background"
        # a draft may name an image not uploaded yet: the run checks it
        status, job = call(base, "PUT", f"/api/jobs/{job_id}/settings", json.dumps({**chosen, "plate": "image"}))
        assert status == 200, job
    with serving(work) as (base, _):
        job = call(base, "GET", f"/api/jobs/{job_id}")[1]
        assert job["state"] == "ready" and job["keyframes"] == [0]
        assert {k: job["settings"][k] for k in chosen} == {**chosen, "outputs": ["alpha", "alpha_png"]}
        assert job["settings"]["plate"] == "image"


def test_a_database_from_before_jobs_kept_their_report_opens_and_gains_it(tmp_path):
    import sqlite3

    path = tmp_path / "jobs.sqlite3"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE jobs (id TEXT PRIMARY KEY, created REAL NOT NULL, updated REAL NOT NULL, "
                "name TEXT NOT NULL, state TEXT NOT NULL, info TEXT NOT NULL DEFAULT '{}', settings TEXT NOT NULL "
                "DEFAULT '{}', keyframes TEXT NOT NULL DEFAULT '[]', progress TEXT, error TEXT, outputs TEXT NOT "
                "NULL DEFAULT '[]')")
    old.execute("INSERT INTO jobs (id, created, updated, name, state) VALUES ('a', 0, 0, 'old.mp4', 'done')")
    old.commit()
    old.close()
    store = JobStore(path)
    assert store.get("a")["details"] == {}
    store.update("a", details={"contradicting_frames": [[2, 5]]})
    assert store.get("a")["details"] == {"contradicting_frames": [[2, 5]]}
    store.close()


def test_bad_guidance_and_settings_are_one_line_errors(tmp_path, clip):
    with serving(tmp_path / "work") as (base, _):
        _, job = upload(base, clip)
        empty = cv2.imencode(".png", np.zeros((64, 96), np.uint8))[1].tobytes()
        status, body = call(base, "PUT", f"/api/jobs/{job['id']}/keyframes/0", empty)
        assert status == 400 and "no known foreground" in body["error"]
        status, body = call(base, "PUT", f"/api/jobs/{job['id']}/keyframes/99", _square_mask())
        assert status == 400 and "outside the clip" in body["error"]
        status, body = _run(base, job["id"])
        assert status == 400 and body["error"].startswith("guided mode needs a keyframe")
        status, body = _run(base, job["id"], mode="plate", plate="image")
        assert status == 400 and "upload a plate image first" in body["error"]
        status, body = call(base, "PUT", f"/api/jobs/{job['id']}/plate", b"not an image")
        assert status == 422 and "the plate is not a readable image" in body["error"]
        status, body = _run(base, job["id"], background="image")
        assert status == 400 and "background image" in body["error"]


def test_plate_mode_mattes_what_differs_from_the_uploaded_plate(tmp_path, rvm_onnx_path):
    """A red disc crossing a textured scene; the plate (the empty scene) uploaded: the alpha is the disc."""
    plate, frames, truths = disc_over_plate(5)
    clip = write_video(tmp_path / "scene.mp4", frames)
    with serving(tmp_path / "work") as (base, _):
        _, job = upload(base, clip)
        png = cv2.imencode(".png", cv2.cvtColor(plate, cv2.COLOR_RGB2BGR))[1].tobytes()
        assert call(base, "PUT", f"/api/jobs/{job['id']}/plate", png) == (200, {"plate": "image"})
        status, body = _run(base, job["id"], mode="plate", plate="image", outputs=["alpha_png"])
        assert status == 202, body
        done = wait_for(base, job["id"], ("done", "failed"))
        assert done["state"] == "done", done["error"]
        _, data = call(base, "GET", f"/api/jobs/{job['id']}/download/alpha_png")
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            found = [cv2.imdecode(np.frombuffer(zf.read(n), np.uint8), cv2.IMREAD_GRAYSCALE) / 255.0
                     for n in sorted(zf.namelist())]
    error = np.mean([np.abs(a - t).mean() for a, t in zip(found, truths)])
    assert len(found) == 6 and error < 0.03, error  # an empty matte would be 0.08 off


def test_queue_is_bounded_and_cancel_frees_the_job(tmp_path):
    long_clip = write_video(tmp_path / "long.mp4", moving_square_frames(90, 96, 64))
    with serving(tmp_path / "work", workers=1, queue=1) as (base, _):
        ids = [_guided_job(base, long_clip, f"clip{i}.mp4") for i in range(3)]
        assert _run(base, ids[0])[0] == 202
        wait_for(base, ids[0], ("running",))
        assert _run(base, ids[1])[0] == 202
        status, body = _run(base, ids[2])
        assert status == 429 and "queue is full" in body["error"]
        assert call(base, "GET", f"/api/jobs/{ids[1]}")[1]["queue_position"] == 0
        assert call(base, "POST", f"/api/jobs/{ids[1]}/cancel")[0] == 200  # queued: gone at once
        assert call(base, "GET", f"/api/jobs/{ids[1]}")[1]["state"] == "cancelled"
        assert call(base, "PUT", f"/api/jobs/{ids[0]}/keyframes/1", _square_mask(1))[0] == 409  # running: locked
        assert call(base, "POST", f"/api/jobs/{ids[0]}/cancel")[0] == 200
        job = wait_for(base, ids[0], ("cancelled", "done", "failed"), seconds=60)
        assert job["state"] == "cancelled" and job["downloads"] == {}
        folder = tmp_path / "work" / "jobs" / ids[0]
        left = sorted(p.name for p in folder.iterdir())
        assert left == ["input.mp4", "keyframes", "preview", "work"], left  # no output, no temporary
        assert not any(t.name.startswith("vidmatte-") and "worker" not in t.name for t in threading.enumerate())
        assert _run(base, ids[2])[0] == 202  # the queue has room again
        assert wait_for(base, ids[2], ("done", "failed"))["state"] == "done"


def test_a_crashed_job_is_reported_not_hung(tmp_path, clip):
    with serving(tmp_path / "work") as (base, _):
        job_id = _guided_job(base, clip)
        (tmp_path / "work" / "jobs" / job_id / "input.mp4").write_bytes(b"\0" * 1000)  # the input broke on disk
        assert _run(base, job_id)[0] == 202
        job = wait_for(base, job_id, ("done", "failed"))
        assert job["state"] == "failed" and "not a readable video" in job["error"]
        assert _run(base, job_id)[0] == 202  # the worker goes on: the next run is taken
        assert wait_for(base, job_id, ("done", "failed"))["state"] == "failed"


def test_quota_removes_the_oldest_finished_jobs_first(tmp_path, clip):
    size = clip.stat().st_size
    with serving(tmp_path / "work", max_upload=size + 10, quota=10 * size) as (base, app):
        first = upload(base, clip, "first.mp4")[1]["id"]
        job_size = sum(p.stat().st_size for p in (tmp_path / "work" / "jobs" / first).rglob("*") if p.is_file())
        app.state.server.storage.quota = 2 * job_size + size // 2  # room for two jobs, not for a third upload
        second = upload(base, clip, "second.mp4")[1]["id"]
        third = upload(base, clip, "third.mp4")[1]["id"]
        kept = _jobs_on_disk(tmp_path / "work")
        assert first not in kept and {second, third} <= set(kept)
        names = [job["name"] for job in call(base, "GET", "/api/jobs")[1]["jobs"]]
        assert "first.mp4" not in names and {"second.mp4", "third.mp4"} <= set(names)


def test_restart_keeps_finished_jobs_and_marks_interrupted_ones(tmp_path, clip):
    work = tmp_path / "work"
    with serving(work) as (base, _):
        done_id = _guided_job(base, clip, "done.mp4")
        _run(base, done_id)
        assert wait_for(base, done_id, ("done", "failed"))["state"] == "done"
        other_id = _guided_job(base, clip, "other.mp4")
    store = JobStore(work / "jobs.sqlite3")  # as a server killed mid-run leaves it
    store.update(other_id, state="running")
    store.close()
    with serving(work) as (base, _):
        assert call(base, "GET", f"/api/jobs/{done_id}")[1]["state"] == "done"
        other = call(base, "GET", f"/api/jobs/{other_id}")[1]
        assert other["state"] == "interrupted" and "server stopped" in other["error"]
        assert call(base, "GET", f"/api/jobs/{done_id}/download/composition")[0] == 200


# --- first masks -----------------------------------------------------------------------------------------------
def _trimap_of(png: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)


def test_box_first_mask_is_grabcut_around_the_object(tmp_path):
    clip = write_video(tmp_path / "big.mp4", moving_square_frames(3, 192, 128))
    with serving(tmp_path / "work") as (base, _):
        job_id = upload(base, clip)[1]["id"]
        status, png = call(base, "POST", f"/api/jobs/{job_id}/first-mask?frame=2&method=box&x0=2&y0=2&x1=40&y1=32")
        assert status == 200
        trimap = _trimap_of(png)
        assert trimap.shape == (128, 192) and set(np.unique(trimap)) == {0, 128, 255}
        assert trimap[16, 18] == 255 and trimap[100, 150] == 0  # the square (x 10..26 at frame 2) vs far away
        status, body = call(base, "POST", f"/api/jobs/{job_id}/first-mask?frame=2&method=box&x0=5&y0=5&x1=6&y1=6")
        assert status == 400 and "drag a box" in body["error"]
        status, body = call(base, "POST", f"/api/jobs/{job_id}/first-mask?frame=9&method=box&x0=2&y0=2&x1=40&y1=32")
        assert status == 400 and "outside the clip" in body["error"]


def test_click_a_person_is_the_rvm_component_under_the_click(tmp_path, rvm_onnx_path):
    from vidmatte.demo import find_sample_photo

    photo = cv2.imread(str(find_sample_photo()))
    photo = cv2.resize(photo, (256, 256 * photo.shape[0] // photo.shape[1]))
    cv2.imwrite(str(tmp_path / "portrait.png"), photo)
    with serving(tmp_path / "work") as (base, _):
        status, job = upload(base, tmp_path / "portrait.png")
        assert status == 201 and job["info"]["frames"] == 1, job
        h = job["info"]["height"]
        status, png = call(base, "POST", f"/api/jobs/{job['id']}/first-mask?frame=0&method=person&x0=128&y0={h // 2}")
        assert status == 200, png
        trimap = _trimap_of(png)
        assert trimap[h // 2, 128] == 255 and 0.15 < (trimap == 255).mean() < 0.9
        status, body = call(base, "POST", f"/api/jobs/{job['id']}/first-mask?frame=0&method=person&x0=3&y0=3")
        assert status == 400 and "no person under the click" in body["error"], body


def test_a_box_proposes_the_same_mask_whatever_ran_before(shared_data):
    """GrabCut's colour models start from k-means on OpenCV's thread RNG: on DAVIS dog-agility the same box gave
    IoU 0.43 or nothing depending on what had run before on the thread. Seeded, the proposal is one."""
    from vidmatte.io.source import open_source
    from vidmatte.web.guide import grabcut_box

    frame = open_source(shared_data / "video_objects_davis2016" / "dog-agility" / "video.mp4").frame(0).image
    masks = []
    for seed in (1, 2):
        cv2.setRNGSeed(seed)  # as another request's GrabCut would leave the thread's RNG
        masks.append(grabcut_box(frame, (311, 189, 839, 423)))  # the true mask's box, 5% margin
    assert masks[0].any() and np.array_equal(masks[0], masks[1])
