"""The pipeline as a host sees it: passes, job control (progress, cancel), sinks, two jobs in one process, and the
checks at the public boundaries (frames, backgrounds)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from media import write_video
from vidmatte.errors import Cancelled
from vidmatte.io.writers import parse_output
from vidmatte.job import JobControl
from vidmatte.matters.base import Span, as_rgb_u8
from vidmatte.matters.recurrent import RecurrentMatter
from vidmatte.outputs import CallbackSink
from vidmatte.pipeline import ConvertOptions, convert

pytestmark = pytest.mark.weights


def subject_frames(n: int = 12, size: int = 160) -> list[np.ndarray]:
    """A real person (the demo's photo, shipped with matplotlib) drifting over a gradient: RVM finds her."""
    import cv2

    from vidmatte import demo

    photo = cv2.cvtColor(cv2.imread(str(demo.find_sample_photo())), cv2.COLOR_BGR2RGB)
    return [cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in demo.synthesise_frames(photo)[:n]]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("jobs") / "subject.mp4", subject_frames())


@pytest.fixture(scope="module")
def runner(rvm_onnx_path):
    from vidmatte.backends import open_runner

    return open_runner(str(rvm_onnx_path), threads=1)


class IndexSpy(RecurrentMatter):
    """RVM's matter that records the order in which the pipeline hands it frames."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.order: list[int] = []

    def prepare(self, frame: np.ndarray, index: int | None = None) -> object:
        self.order.append(index)
        return super().prepare(frame, index)


def vidmatte_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("vidmatte-")]


def test_warm_up_reads_backward_then_writes_forward(tmp_path, clip, runner):
    spy = IndexSpy(runner, 0.5, warmup=4)
    options = ConvertOptions(outputs=[parse_output("alpha", f"{tmp_path}/a/")])
    result = convert(clip, spy, options)
    assert result.frames == 12
    assert spy.order == [4, 3, 2, 1] + list(range(12))
    assert len(list((tmp_path / "a").glob("*.png"))) == 12


def test_passes_follow_the_span():
    matter = RecurrentMatter.__new__(RecurrentMatter)
    matter.warmup = 8
    names = lambda ps: [(p.name, p.start, p.stop, p.reverse, p.writes) for p in ps]  # noqa: E731
    assert names(matter.passes(Span(0, 100, True))) == [("warm-up", 1, 9, True, False),
                                                        ("matting", 0, 100, False, True)]
    assert names(matter.passes(Span(10, 13, True))) == [("warm-up", 11, 13, True, False),
                                                       ("matting", 10, 13, False, True)]
    assert names(matter.passes(Span(0, 1, True))) == [("warm-up", 0, 1, False, False), ("matting", 0, 1, False, True)]
    assert names(matter.passes(Span(0, None, False))) == [("matting", 0, None, False, True)]  # a camera starts cold
    matter.lead_in = 16  # a chunk of a longer run: starts as a run would 16 frames earlier, then runs up to it
    assert names(matter.passes(Span(40, 60, True))) == [("warm-up", 25, 33, True, False),
                                                        ("lead-in", 24, 40, False, False),
                                                        ("matting", 40, 60, False, True)]
    assert names(matter.passes(Span(0, 20, True)))[0] == ("warm-up", 1, 9, True, False)  # chunk 0: as a run
    matter.lead_in = 0
    matter.warmup = 0
    assert names(matter.passes(Span(0, 100, True))) == [("matting", 0, 100, False, True)]


def test_warm_up_changes_the_first_frame_only_through_the_state(tmp_path, clip, runner):
    """Frame 0 differs with a warmed state; with warm-up off the pipeline equals stepping the frames by hand."""
    from vidmatte.io.readers import open_reader

    frames = [f.image for f in open_reader(clip)]
    cold = RecurrentMatter(runner, 0.5, warmup=0)
    by_hand = [cold.step(f)[1] for f in frames]
    got = {}
    for warmup in (0, 4):
        seen = {}
        sink = CallbackSink(lambda i, pictures: seen.__setitem__(i, pictures.alpha.copy()), kinds=("alpha",))
        convert(clip, RecurrentMatter(runner, 0.5, warmup=warmup), ConvertOptions(outputs=[], sinks=[sink]))
        got[warmup] = [seen[i] for i in range(len(frames))]
    assert 0.05 < float(np.mean(by_hand[0] > 0.5)) < 0.95, "the subject must be found for this test to mean anything"
    for ours, theirs in zip(got[0], by_hand):
        np.testing.assert_allclose(ours, theirs, atol=1e-4)
    assert float(np.abs(got[4][0] - by_hand[0]).max()) > 1e-3, "a warmed state must change frame 0"


def test_cancel_from_progress_leaves_no_file_and_no_thread(tmp_path, clip, runner):
    control = JobControl()
    control.on_progress = lambda event: control.cancel() if event.pass_name == "matting" and event.done == 3 else None
    options = ConvertOptions(outputs=[parse_output("composition", str(tmp_path / "c.mp4")),
                                      parse_output("alpha", f"{tmp_path}/a/")])
    with pytest.raises(Cancelled):
        convert(clip, RecurrentMatter(runner, 0.5), options, control)
    assert list(tmp_path.iterdir()) == []
    assert vidmatte_threads() == []


def test_two_jobs_in_one_process_run_and_cancel_independently(tmp_path, clip, rvm_onnx_path):
    from vidmatte.backends import open_runner

    results, errors = {}, {}
    cancelling = JobControl()
    cancelling.on_progress = lambda e: cancelling.cancel() if e.pass_name == "matting" and e.done == 2 else None

    def job(name, control):
        options = ConvertOptions(outputs=[parse_output("alpha", str(tmp_path / f"{name}.mp4"))])
        matter = RecurrentMatter(open_runner(str(rvm_onnx_path), threads=1), 0.5)
        try:
            results[name] = convert(clip, matter, options, control)
        except Cancelled as exc:
            errors[name] = exc

    threads = [threading.Thread(target=job, args=("kept", JobControl())),
               threading.Thread(target=job, args=("cancelled", cancelling))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert results["kept"].frames == 12 and "cancelled" in errors
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.mp4"]
    assert vidmatte_threads() == []


def test_preview_sink_sees_what_the_files_get(tmp_path, clip, runner):
    import cv2

    previews = {}
    sink = CallbackSink(lambda i, p: previews.__setitem__(i, p.composition.copy()), kinds=("composition",))
    options = ConvertOptions(outputs=[parse_output("composition", f"{tmp_path}/c/")], sinks=[sink])
    convert(clip, RecurrentMatter(runner, 0.5), options)
    assert sorted(previews) == list(range(12))
    on_disk = cv2.cvtColor(cv2.imread(str(tmp_path / "c" / "00005.png")), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(previews[5], on_disk)


def test_sigterm_cancels_like_ctrl_c(tmp_path):
    """SIGTERM (a service manager, `kill`) removes the temporary outputs and exits 130, as Ctrl-C does."""
    import signal

    from media import moving_square_frames

    source = write_video(tmp_path / "long.mp4", moving_square_frames(400, 640, 360))
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "vidmatte.cli.main", "convert", str(source), "--composition",
                             str(out / "c.mp4"), "--alpha", f"{out}/a/"], stderr=subprocess.PIPE, text=True)
    for _ in range(600):  # wait until the job has started writing (a temporary file appears), hang-guarded
        if any(out.iterdir()) or proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert list(out.iterdir()) == []


# --- checks at the public boundaries ----------------------------------------------------------------------------
def test_frames_are_checked_and_converted():
    grey = np.full((4, 5), 7, np.uint8)
    assert as_rgb_u8(grey).shape == (4, 5, 3) and as_rgb_u8(grey[..., None])[0, 0].tolist() == [7, 7, 7]
    assert as_rgb_u8(np.full((4, 5, 3), 0.5, np.float32))[0, 0].tolist() == [128, 128, 128]
    assert as_rgb_u8(np.full((2, 2, 3), 2.0))[0, 0].tolist() == [255, 255, 255]  # float is clipped to 0..1
    for bad, words in [(np.zeros((4, 5, 4), np.uint8), "RGBA"), (np.zeros((4, 5, 3), np.uint16), "uint16"),
                       (np.zeros((4, 5, 2), np.uint8), "shape"), ([[1, 2]], "numpy array"),
                       (np.zeros((0, 5, 3), np.uint8), "empty")]:
        with pytest.raises(ValueError, match=words):
            as_rgb_u8(bad)


def test_a_size_change_without_reset_is_explained(runner):
    matter = RecurrentMatter(runner, 0.5)
    matter.step(np.zeros((64, 96, 3), np.uint8))
    with pytest.raises(ValueError, match=r"frame size changed from 96x64 to 64x48; call reset\(\)"):
        matter.step(np.zeros((48, 64, 3), np.uint8))
    matter.reset()
    matter.step(np.zeros((48, 64, 3), np.uint8))


@pytest.mark.parametrize("backend", ["onnxruntime", "onnxruntime-whole"])
def test_a_background_of_the_wrong_size_is_refused(rvm_onnx_path, backend):
    """The fused kernel indexes the background by frame coordinates: a smaller one would read out of bounds."""
    from vidmatte.backends import open_runner

    matter = RecurrentMatter(open_runner(str(rvm_onnx_path), backend, threads=1), 0.5)
    matte = matter.step_matte(np.zeros((64, 96, 3), np.uint8))
    for background in (np.zeros((32, 96, 3), np.uint8), np.zeros((64, 96, 4), np.uint8),
                       np.zeros((64, 96, 3), np.float32)):
        with pytest.raises(ValueError, match="background must be"):
            matte.pictures(background)
    assert matte.pictures(np.zeros((64, 96, 3), np.uint8)).composition.shape == (64, 96, 3)
    assert matte.pictures(np.zeros((1, 1, 3), np.uint8)).composition.shape == (64, 96, 3)
