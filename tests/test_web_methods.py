"""The page's network methods over HTTP against a real server: ``vidmatte serve --checkpoints DIR`` read once at
start-up (FTP-VM for guided, BackgroundMattingV2 for plate, with tiny checkpoints made here), runs through the same
matters as the CLI, the method and weights recorded across a restart, and every refusal in one line."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from guided_network_checks import keyframe_clip
from web_helpers import call, serving, upload, wait_for

from vidmatte.web.weights import NO_FOLDER


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """A --checkpoints folder: FTP-VM weights whose trimap head says "unknown" everywhere and whose matte is 0.25,
    a tiny BGMv2, and three files the page cannot offer."""
    from test_ftpvm import constant_checkpoint
    from test_plate_neural import tiny_network, training_checkpoint

    folder = tmp_path_factory.mktemp("checkpoints")
    constant_checkpoint(folder / "quarter.pth", (0.0, 5.0, 0.0), 0.25)
    training_checkpoint(folder / "bgm.pt", tiny_network())
    (folder / "junk.pth").write_bytes(b"not a checkpoint")
    (folder / "notes.txt").write_text("which weights are which")
    import torch

    torch.save({"conv.weight": torch.zeros(1)}, folder / "other.pth")
    (folder / ".hidden.pth").write_bytes(b"")
    return folder


def _zip_alphas(base: str, job_id: str) -> list[np.ndarray]:
    status, data = call(base, "GET", f"/api/jobs/{job_id}/download/alpha_png")
    assert status == 200
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [cv2.imdecode(np.frombuffer(zf.read(n), np.uint8), cv2.IMREAD_GRAYSCALE) for n in sorted(zf.namelist())]


def _run(base: str, job_id: str, **settings):
    return call(base, "POST", f"/api/jobs/{job_id}/run", body=json.dumps({"prior": "none", **settings}),
                headers={"Content-Type": "application/json"})


def test_the_folder_is_read_once_and_each_file_offered_where_its_family_fits(tmp_path, weights):
    with serving(tmp_path / "work", checkpoints=weights) as (base, _):
        status, config = call(base, "GET", "/api/config")
    assert status == 200
    catalogue = config["checkpoints"]
    assert catalogue["folder"] is True and catalogue["note"] == ""
    assert catalogue["weights"] == [{"name": "bgm.pt", "mode": "background", "method": "neural"},
                                    {"name": "quarter.pth", "mode": "guided", "method": "ftpvm"}]
    refused = {r["name"]: r["reason"] for r in catalogue["refused"]}
    assert set(refused) == {"junk.pth", "notes.txt", "other.pth"}  # hidden files are not looked at
    assert refused["junk.pth"].startswith("cannot read junk.pth as a PyTorch weights file")
    assert str(weights) not in json.dumps(config)  # the server's paths stay on the server
    assert "not a weights file" in refused["notes.txt"] and "not weights of a network" in refused["other.pth"]
    assert config["methods"] == {"convert": ["classical"], "guided": ["classical", "ftpvm", "dvm", "tgm"],
                                 "background": ["classical", "neural"]}


def test_a_guided_network_runs_from_the_folder_and_a_restart_shows_its_method(tmp_path, weights):
    clip = keyframe_clip(tmp_path, 5)
    key = cv2.imread(str(clip / "key.png"), cv2.IMREAD_GRAYSCALE)
    with serving(tmp_path / "work", checkpoints=weights) as (base, _):
        _, job = upload(base, clip / "clip.mp4")
        assert call(base, "PUT", f"/api/jobs/{job['id']}/keyframes/2", (clip / "key.png").read_bytes())[0] == 200
        status, body = _run(base, job["id"], mode="guided", method="ftpvm", checkpoint="quarter.pth",
                            outputs=["alpha_png"])
        assert status == 202, body
        done = wait_for(base, job["id"], ("done", "failed"), seconds=300)
        assert done["state"] == "done", done["error"]
        alphas = _zip_alphas(base, job["id"])
    assert len(alphas) == 5
    assert (alphas[2][key == 255] == 255).all() and (alphas[2][key == 0] == 0).all()  # the keyframe's own labels
    for i in (0, 1, 3, 4):  # FTP-VM's matte (0.25), not the classical solver's
        assert np.abs(alphas[i].astype(int) - 64).max() <= 1, i
    with serving(tmp_path / "work") as (base, _):  # restarted, without the folder
        status, again = call(base, "GET", f"/api/jobs/{job['id']}")
        assert again["settings"]["method"] == "ftpvm" and again["settings"]["checkpoint"] == "quarter.pth"
        status, body = _run(base, job["id"], mode="guided", method="ftpvm", checkpoint="quarter.pth")
        assert status == 400 and body["error"] == NO_FOLDER


@pytest.mark.parametrize("settings, fragment", [
    ({"mode": "guided", "method": "neural", "checkpoint": "bgm.pt"}, "guided mode's method must be one of classical"),
    ({"mode": "background", "method": "neural", "checkpoint": "quarter.pth"}, "quarter.pth holds ftpvm weights"),
    ({"mode": "plate", "method": "neural", "checkpoint": "junk.pth"}, "'junk.pth' is not a usable file"),
    ({"mode": "background", "method": "neural"}, "choose the weights of neural"),
    ({"mode": "plate", "method": "neural", "checkpoint": "../quarter.pth"}, "is not a usable file"),
    ({"mode": "plate", "checkpoint": "bgm.pt"}, "weights are for a network method"),
    ({"mode": "convert", "method": "neural"}, "convert mode's method must be one of classical"),
    # the page's former names for two modes are still accepted (saved jobs, scripts): plate above, auto here
    ({"mode": "auto", "method": "neural"}, "convert mode's method must be one of classical"),
])
def test_a_method_or_weights_the_mode_cannot_use_are_refused_in_one_line(tmp_path, weights, settings, fragment):
    clip = keyframe_clip(tmp_path, 3)
    with serving(tmp_path / "work", checkpoints=weights) as (base, _):
        _, job = upload(base, clip / "clip.mp4")
        status, body = _run(base, job["id"], **settings)
        assert status == 400 and fragment in body["error"] and "\n" not in body["error"]
        assert call(base, "GET", f"/api/jobs/{job['id']}")[1]["state"] == "ready"  # nothing queued


def test_without_a_folder_the_page_says_why_only_classical_methods_are_offered(tmp_path):
    with serving(tmp_path / "work") as (base, _):
        config = call(base, "GET", "/api/config")[1]
    assert config["checkpoints"] == {"folder": False, "weights": [], "refused": [], "note": NO_FOLDER}
    assert "no trained weights" in NO_FOLDER
