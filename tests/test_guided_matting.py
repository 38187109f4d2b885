"""Guided matting: keyframe-anchored trimap propagation and the guided matter on the pipeline, on generated clips
whose truth is exact (a textured subject that moves, turns and deforms smoothly over a panning textured background)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vidmatte.data.synthesis import trimap_from_alpha
from vidmatte.guidance.propagate import BG, FG, UNKNOWN, FlowPropagator, Propagated, contradiction, fuse
from vidmatte.io.writers import parse_output
from vidmatte.matters.guided import GuidedMatter
from vidmatte.pipeline import ConvertOptions, convert

H, W = 144, 256


def _texture(h: int, w: int, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).integers(0, 255, (h // 6, w // 6, 3), dtype=np.uint8)
    return cv2.GaussianBlur(cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC), (0, 0), 1.0)


def deforming_clip(frames: int, veil: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
    """(frame uint8 [H,W,3], true alpha float32 [H,W]) pairs. The subject's texture and outline deform together
    (one smooth displacement field warps both), as a real non-rigid object does. veil: the subject is
    semi-transparent (alpha 0.6) but for a small opaque core, as a seed head or a veil is, over an out-of-focus
    background (the subject's texture is what flow can follow)."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    layer_alpha = np.clip(0.5 - (np.hypot((xx - W / 2) / 1.4, yy - H / 2) - 34) / 2, 0, 1).astype(np.float32)
    if veil:
        layer_alpha *= 0.6
        layer_alpha[H // 2 - 5:H // 2 + 6, W // 2 - 5:W // 2 + 6] = 1.0
    layer_rgb = _texture(H, W, 2)
    background = _texture(H + 40, W + 80, 1)
    if veil:
        background = cv2.GaussianBlur(background, (0, 0), 4)
    clip = []
    for t in range(frames):
        angle, cx, cy = 0.6 * t, W / 2 - 40 + 3 * t, H / 2 + 10 * np.sin(t / 6)
        move = cv2.getRotationMatrix2D((W / 2, H / 2), angle, 1.0)
        move[:, 2] += [cx - W / 2, cy - H / 2]
        inverse = cv2.invertAffineTransform(move)
        # Smooth bending: a displacement that varies slowly over the subject and in time.
        bend_x = 4 * np.sin(yy / 18 + t / 5)
        bend_y = 3 * np.sin(xx / 25 - t / 7)
        sx = (inverse[0, 0] * xx + inverse[0, 1] * yy + inverse[0, 2] + bend_x).astype(np.float32)
        sy = (inverse[1, 0] * xx + inverse[1, 1] * yy + inverse[1, 2] + bend_y).astype(np.float32)
        alpha = cv2.remap(layer_alpha, sx, sy, cv2.INTER_LINEAR, borderValue=0)
        rgb = cv2.remap(layer_rgb, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        bg = background[20:20 + H, t:t + W]
        frame = np.rint(rgb * alpha[..., None] + bg * (1 - alpha[..., None])).astype(np.uint8)
        clip.append((frame, alpha))
    return clip


def label_errors(trimap: np.ndarray, alpha: np.ndarray) -> float:
    """Share of the subject's pixels (alpha > 0.5) carrying a wrong definite label (fg where alpha < 0.9 or bg where
    alpha > 0.1): what the solver cannot undo."""
    wrong = ((trimap == FG) & (alpha < 0.9)) | ((trimap == BG) & (alpha > 0.1))
    return float(wrong.sum() / max((alpha > 0.5).sum(), 1))


def key_trimap(alpha: np.ndarray) -> np.ndarray:
    return trimap_from_alpha(np.rint(alpha * 255).astype(np.uint8), 3)


@pytest.fixture(scope="module")
def clip():
    return deforming_clip(31)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "backward"])
def test_a_keyframe_carries_its_trimap_30_frames_either_way(clip, reverse):
    order = list(range(len(clip)))[::-1] if reverse else list(range(len(clip)))
    propagator = FlowPropagator()
    propagator.start(clip[order[0]][0], key_trimap(clip[order[0]][1]))
    for i in order[1:]:
        result = propagator.step(clip[i][0])
    frame, alpha = clip[order[-1]]
    assert result.distance == 30
    assert label_errors(result.trimap, alpha) < 0.03
    assert (result.trimap == UNKNOWN).mean() < 0.2, "the band must stay a band, not grow over the frame"
    assert (result.trimap == FG).sum() > 0.6 * (alpha > 0.9).sum(), "the subject must not be lost"
    # Without anchoring to the keyframe (the trimap simply left where it was) the errors are far larger:
    assert label_errors(key_trimap(clip[order[0]][1]), alpha) > 5 * max(label_errors(result.trimap, alpha), 0.01)


def test_a_subject_that_is_nearly_all_band_is_followed(monkeypatch):
    """A semi-transparent subject with an 11x11 opaque core: the frame-to-frame fit follows the whole marked subject,
    band included, when it has too few solid pixels to fit on (it used to stay put: no motion found)."""
    from vidmatte.guidance import propagate

    clip = deforming_clip(31, veil=True)
    key = trimap_from_alpha(np.rint(clip[0][1] * 255).astype(np.uint8), 3)
    assert 0 < (key == FG).sum() < 30

    def overlap_after_30_frames() -> float:
        propagator = FlowPropagator()
        propagator.start(clip[0][0], key)
        for frame, _ in clip[1:]:
            result = propagator.step(frame)
        carried, true = result.trimap != BG, clip[-1][1] > 0.05
        return float((carried & true).sum() / (carried | true).sum())

    followed = overlap_after_30_frames()
    monkeypatch.setattr(propagate, "MIN_SOLID_PIXELS", 0)  # fit on the solid pixels however few (the old way)
    left_behind = overlap_after_30_frames()
    assert followed > 0.8 and left_behind < 0.5, (followed, left_behind)


def test_fusing_two_directions_takes_the_more_confident_and_marks_conflicts():
    a = Propagated(np.array([[FG, BG, FG]], np.uint8), np.array([[0.9, 0.9, 0.9]], np.float32), 1)
    b = Propagated(np.array([[BG, BG, BG]], np.uint8), np.array([[0.1, 0.8, 0.8]], np.float32), 9)
    assert fuse(a, b).trimap.tolist() == [[FG, BG, UNKNOWN]]
    assert fuse(a, None).trimap.tolist() == a.trimap.tolist()


def test_fusing_keeps_the_chosen_directions_band_and_makes_conflicts_doubts():
    a = Propagated(np.array([[UNKNOWN, UNKNOWN, UNKNOWN, FG]], np.uint8), np.array([[0.9, 0.1, 0.9, 0.9]], np.float32),
                   1, np.array([[True, False, True, False]]))
    b = Propagated(np.array([[UNKNOWN, UNKNOWN, BG, FG]], np.uint8), np.array([[0.1, 0.9, 0.8, 0.9]], np.float32),
                   9, np.array([[False, True, False, False]]))
    fused = fuse(a, b)
    assert fused.trimap.tolist() == [[UNKNOWN, UNKNOWN, UNKNOWN, FG]]
    assert fused.band.tolist() == [[True, True, False, False]]  # the third pixel: the directions disagree


def test_fusing_for_the_rvm_prior_doubts_only_contradictions():
    """With doubts="contradictions" a label against the other direction's band keeps the chosen label; only
    foreground against background becomes a doubt."""
    a = Propagated(np.array([[FG, FG, BG, UNKNOWN]], np.uint8), np.full((1, 4), 0.9, np.float32), 1,
                   np.array([[False, False, False, True]]))
    b = Propagated(np.array([[UNKNOWN, BG, UNKNOWN, BG]], np.uint8), np.full((1, 4), 0.8, np.float32), 9,
                   np.array([[True, False, True, False]]))
    assert fuse(a, b).trimap.tolist() == [[UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN]]
    fused = fuse(a, b, doubts="contradictions")
    assert fused.trimap.tolist() == [[FG, UNKNOWN, BG, UNKNOWN]]
    assert fused.band.tolist() == [[False, False, False, True]]  # the second pixel is a doubt, the fourth band


def test_directions_that_follow_different_things_leave_the_nearer_keyframes_guidance_whole():
    """Where the two directions contradict each other over most of the subject, doubting every contradicted pixel
    would leave no foreground at all; the nearer direction is taken whole instead, unless RVM's prior is there to
    decide the doubts (doubts="contradictions"). The share is reported either way."""
    subject = np.zeros((8, 8), np.uint8)
    subject[2:5, 1:4] = FG
    elsewhere = np.zeros((8, 8), np.uint8)
    elsewhere[4:7, 4:7] = FG
    near = Propagated(subject, np.full((8, 8), 0.9, np.float32), 2)
    far = Propagated(elsewhere, np.full((8, 8), 0.6, np.float32), 9)
    assert contradiction(near, far) == 1.0
    for first, second in ((near, far), (far, near)):
        fused = fuse(first, second)
        assert fused.trimap.tolist() == subject.tolist() and fused.contradicted == 1.0
        decided_by_rvm = fuse(first, second, doubts="contradictions")
        assert decided_by_rvm.contradicted == 1.0 and not (decided_by_rvm.trimap == FG).any()
    overlapping = subject.copy()
    overlapping[2:5, 3] = BG  # a third of the subject contradicted: a doubt, as before
    fused = fuse(near, Propagated(overlapping, np.full((8, 8), 0.6, np.float32), 9))
    assert (fused.trimap[2:5, 3] == UNKNOWN).all() and (fused.trimap[2:5, 1:3] == FG).all()
    assert fused.contradicted == pytest.approx(1 / 3)


def test_a_span_where_the_keyframes_disagree_is_matted_and_reported(tmp_path, clip, caplog):
    """A second keyframe marking something else (here: a patch of background, as a track lost in one direction
    looks): the frames between are matted from the nearer keyframe, not emptied, and the run is named in the
    result's details and in a warning that says where a keyframe would settle it."""
    import logging

    caplog.set_level(logging.INFO, logger="vidmatte")
    short = clip[:11]
    frames_dir = write_frames(tmp_path / "in", short, 11)
    wrong = np.zeros((H, W), np.uint8)
    wrong[10:40, 190:240] = FG
    wrong[6:44, 186:244][wrong[6:44, 186:244] == 0] = UNKNOWN
    keyframes = {0: key_trimap(short[0][1]), 10: wrong}
    matter = GuidedMatter(keyframes, prior_mode="none")
    result = convert(frames_dir, matter, ConvertOptions([parse_output("alpha", f"{tmp_path}/pha/")]))
    got = cv2.imread(str(tmp_path / "pha" / "00003.png"), cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255
    assert float(np.abs(got - short[3][1]).mean()) < 0.02, "frame 3 is matted from keyframe 0"
    (first, last), = result.details["contradicting_frames"]
    assert first <= 2 and last >= 8, result.details
    assert f"frames {first}-{last}: the keyframes on either side" in caplog.text


def test_a_carried_trimap_tells_its_band_from_its_doubts(clip):
    """The keyframe's own unknown band, carried, is band; a foreground part whose colour changed is a doubt."""
    propagator = FlowPropagator()
    start = propagator.start(clip[0][0], key_trimap(clip[0][1]))
    assert (start.band_mask() == (start.trimap == UNKNOWN)).all()
    for i in range(1, 10):
        result = propagator.step(clip[i][0])
    frame, alpha = clip[10]
    repainted = frame.copy()
    ys, xs = np.nonzero(alpha > 0.99)
    patch = (slice(ys.mean().astype(int) - 6, ys.mean().astype(int) + 6), slice(xs.mean().astype(int) - 6,
                                                                                xs.mean().astype(int) + 6))
    repainted[patch] = 255 - repainted[patch]  # the subject's middle changes colour: the flow still follows it
    result = propagator.step(repainted)
    band, unknown = result.band_mask(), result.trimap == UNKNOWN
    assert unknown[patch].mean() > 0.5 and not band[patch].any(), "a changed colour is a doubt, not band"
    rim = (alpha > 0.02) & (alpha < 0.98)
    assert band[rim].mean() > 0.8, "the subject's edge is the keyframe's band, carried"
    assert not (band & ~unknown).any()


def test_rvm_prior_weighs_little_on_the_band_and_much_on_doubts():
    """A doubt region coloured like the subject but outside it, where RVM says background: a strong prior there
    decides it (alpha follows RVM); on band pixels the weak prior leaves closed form's answer."""
    from vidmatte.solvers.trimap_solver import PRIOR_WEIGHT, _band_solve, _prior_weights

    image = np.zeros((64, 96, 3), np.uint8)
    image[:, :48] = (200, 40, 40)  # subject colour
    image[:, 48:] = (30, 60, 200)  # background colour
    image[20:40, 60:80] = (200, 40, 40)  # a background object coloured like the subject
    trimap = np.zeros((64, 96), np.uint8)
    trimap[:, :40] = FG
    trimap[:, 40:56] = UNKNOWN  # the band around the true edge at x = 48
    trimap[16:44, 56:84] = UNKNOWN  # a doubt around the look-alike object (e.g. a colour that no longer matched)
    band = np.zeros_like(trimap, bool)
    band[:, 40:56] = True
    rvm = np.zeros((64, 96), np.float32)
    rvm[:, :46] = 1.0  # RVM's edge 2 px off the true one: on the band it should not win
    weights = _prior_weights(trimap, band, PRIOR_WEIGHT)
    assert weights[30, 44] == PRIOR_WEIGHT[0] and weights[30, 70] == PRIOR_WEIGHT[1]
    alpha = _band_solve(image, trimap, None, rvm, weights)
    assert alpha[20:40, 60:80].mean() < 0.1, "on a doubt, RVM decides"
    assert alpha[:, 46:48].mean() > 0.8, "on the band, the colours decide"
    uniform = _band_solve(image, trimap, None, rvm, np.full(trimap.shape, PRIOR_WEIGHT[1], np.float32))
    assert uniform[:, 46:48].mean() < alpha[:, 46:48].mean() - 0.2, "a strong prior on the band would follow RVM"


@pytest.mark.parametrize("band, fails", [((40, 56), False), ((30, 46), True)])
def test_the_band_is_trusted_unless_closed_form_shows_the_edge_beyond_it(band, fails):
    """A band around the true edge (x = 48) holds: closed form alone decides it. A band that stops short of the
    edge (the subject runs on into what the trimap calls background) leaks: RVM's pull stays there."""
    from vidmatte.solvers.trimap_solver import BAND_CHECK, _band_solve, _where_the_band_fails

    image = np.zeros((64, 96, 3), np.uint8)
    image[:, :48] = (200, 40, 40)
    image[:, 48:] = (30, 60, 200)
    trimap = np.zeros((64, 96), np.uint8)
    trimap[:, :band[0]] = FG
    trimap[:, band[0]:band[1]] = UNKNOWN
    free = _band_solve(image, trimap, None)
    anchored = free.copy()  # the two solves agree: only the band's edge can show it failing
    failing = _where_the_band_fails(free, anchored, trimap)
    assert failing.shape == trimap.shape and failing.min() >= 0 and failing.max() <= 1
    if fails:
        assert free[:, band[1] - 1].min() > BAND_CHECK["leak"] and failing[:, band[1] - 3:band[1]].min() > 0.9
    else:
        assert failing.max() == 0
    wide_apart = _where_the_band_fails(free, 1 - free, trimap)
    assert wide_apart[:, band[0] + 2:band[1] - 2].min() > 0.9, "solves far apart: RVM's pull stays"


class _StillPrior:
    """A stand-in for RVM's matter with a fixed alpha (what the solver's prior logic reads of it)."""

    def __init__(self, alpha: np.ndarray):
        self.alpha = alpha

    def reset(self) -> None:
        pass

    def step(self, frame):
        return None, self.alpha


def test_a_keyframes_own_labels_are_not_reopened_by_rvm():
    """Where RVM contradicts a definite label, a propagated trimap is reopened for RVM to decide; a keyframe's own
    trimap is the user's and stands."""
    from vidmatte.solvers.trimap_solver import TrimapSolver

    image = np.zeros((48, 64, 3), np.uint8)
    image[:, :32] = (200, 40, 40)
    image[:, 32:] = (30, 60, 200)
    trimap = np.zeros((48, 64), np.uint8)
    trimap[:, :28] = FG
    trimap[:, 28:36] = UNKNOWN
    rvm = np.zeros((48, 64), np.float32)
    rvm[:, :14] = 1.0  # RVM misses half of the marked subject
    solver = TrimapSolver(prior=_StillPrior(rvm), prior_mode="rvm")
    solver.begin_sequence()
    kept, kept_trimap = solver.solve(image, trimap, given=True)
    reopened, reopened_trimap = solver.solve(image, trimap)
    assert (kept_trimap == trimap).all() and (kept[:, :28] == 1).all()
    assert (reopened_trimap[:, 14:28] == UNKNOWN).all() and reopened[:, 16:26].mean() < 0.5


def test_where_rvm_is_sure_and_closed_form_leans_the_same_way_the_haze_is_settled():
    """Closed form leaves a haze (0.93 on an opaque part, 0.04 on a clear one) that RVM, sure there, does not share:
    those values go to 1 and 0, continuously (nothing jumps at a threshold). Where the two disagree, where RVM is
    unsure, on known pixels and without the prior, the solved alpha stands."""
    from vidmatte.solvers.trimap_solver import AGREE_MARGIN, TrimapSolver

    solved = np.tile(np.linspace(0, 1, 101, dtype=np.float32), (4, 1))  # every value, one per column
    trimap = np.full(solved.shape, UNKNOWN, np.uint8)
    trimap[3] = FG  # a known row keeps whatever the solver gave it
    rvm = np.ones_like(solved)
    rvm[:, :50] = 0.0  # sure: clear on the left half, opaque on the right
    rvm[1] = 0.5  # unsure everywhere on row 1
    rvm[3] = 1.0  # sure and agreeing with the known row (a contradicted label would be reopened, so unknown)
    image = np.zeros((*solved.shape, 3), np.uint8)

    def settled(mode):
        solver = TrimapSolver(solver=lambda *args: solved.copy(), prior=_StillPrior(rvm), prior_mode=mode)
        solver.begin_sequence()
        return solver.solve(image, trimap)[0]

    alpha = settled("rvm")
    row = alpha[0]
    edge = round(200 * AGREE_MARGIN)  # columns within 2 * AGREE_MARGIN of 0 or 1
    assert (row[: edge // 2 + 1] == 0).all() and (row[-(edge // 2 + 1):] == 1).all(), row
    assert row[edge:-edge] == pytest.approx(solved[0, edge:-edge], abs=1e-6), "away from 0 and 1 closed form stands"
    assert (np.diff(row) >= 0).all() and np.abs(np.diff(row)).max() <= 0.02 + 1e-6, "continuous, no jump"
    assert row[4] < solved[0, 4] and row[96] > solved[0, 96], "a haze of 0.04 / 0.96 is settled"
    assert alpha[1] == pytest.approx(solved[1], abs=1e-6), "RVM unsure: closed form stands"
    assert alpha[3] == pytest.approx(solved[3], abs=1e-6), "known pixels are not touched"
    # RVM sure of the opposite (clear where closed form says 0.96): a disagreement, left alone
    flipped = rvm.copy(); flipped[0] = 1 - rvm[0]
    solver = TrimapSolver(solver=lambda *args: solved.copy(), prior=_StillPrior(flipped), prior_mode="rvm")
    solver.begin_sequence()
    assert solver.solve(image, trimap)[0][0] == pytest.approx(solved[0], abs=1e-6)
    assert (settled("none") == solved).all(), "without the prior nothing changes"


def test_the_bands_prior_grows_with_the_distance_from_a_keyframe(tmp_path, clip):
    """Near a keyframe its band is trusted and RVM's pull on it is weak; farther away it is stronger; doubts keep
    their full weight. Checked on what the matter hands the solver, frame by frame, for keyframes 0 and 10."""
    from vidmatte.solvers.trimap_solver import PRIOR_WEIGHT

    short = clip[:11]
    frames_dir = write_frames(tmp_path / "in", short, 11)
    band_weights, free_starts = [], []

    def solver(frame, trimap, start, prior, weight):  # records, then solves as the matter would
        from vidmatte.solvers.trimap_solver import _band_solve
        alpha = _band_solve(frame, trimap, start, prior, weight)
        if start is None:  # the anchored solve, with the band's prior
            band_weights.append(float(weight[trimap == UNKNOWN].min()))
        else:  # the free one: no prior on the band, started from the anchored solve
            free_starts.append((float(weight[trimap == UNKNOWN].min()), start is not None))
        return alpha

    rvm = _StillPrior(short[0][1])  # any alpha: only the weights it is given are read here
    keyframes = {0: key_trimap(short[0][1]), 10: key_trimap(short[10][1])}
    matter = GuidedMatter(keyframes, solver=solver, prior=rvm, prior_mode="rvm")
    convert(frames_dir, matter, ConvertOptions([parse_output("alpha", f"{tmp_path}/pha/")]))
    assert len(band_weights) == 11 and free_starts == [(0.0, True)] * 11, "each frame solved twice"
    near, far = band_weights[0], band_weights[5]
    assert band_weights[10] == near and band_weights[1] == band_weights[9], "symmetric in the nearest keyframe"
    assert near < band_weights[1] < band_weights[3] < far <= PRIOR_WEIGHT[0], band_weights
    assert near == pytest.approx(PRIOR_WEIGHT[0] / 10)


def test_guided_matter_on_the_pipeline_mattes_a_non_person(tmp_path, clip):
    """Keyframes at both ends, alpha solved on every frame: close to the truth where RVM sees nothing at all."""
    short = clip[:13]
    frames_dir = write_frames(tmp_path / "in", short, 13)
    keyframes = {0: key_trimap(short[0][1]), 12: key_trimap(short[12][1])}
    matter = GuidedMatter(keyframes, work=tmp_path / "work")
    result = convert(frames_dir, matter, ConvertOptions([parse_output("alpha", f"{tmp_path}/pha/")]))
    assert result.frames == 13
    errors = []
    for i, (_, alpha) in enumerate(short):
        got = cv2.imread(str(tmp_path / "pha" / f"{i:05d}.png"), cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255
        errors.append(float(np.abs(got - alpha).mean()))
    assert 0.05 < float((short[6][1] > 0.5).mean()) < 0.5, "the subject must be a real part of the frame"
    assert max(errors) < 0.02, errors  # MAD x1e3 below 20 on every frame
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["backward", "confidence.json", "forward",
                                                                      "manifest.json", "solved"]


def test_guided_matter_refuses_what_it_cannot_do(tmp_path):
    with pytest.raises(ValueError, match="at least one keyframe"):
        GuidedMatter({})
    from vidmatte.matters.base import Span

    with pytest.raises(ValueError, match="live source"):
        GuidedMatter({0: np.zeros((4, 4), np.uint8)}).passes(Span(0, None, seekable=False))


# --- the command line -----------------------------------------------------------------------------------------
def _cli(*args):
    import subprocess
    import sys

    # --prior none: these clips hold no person, and the tests must run offline (no RVM weights needed).
    return subprocess.run([sys.executable, "-m", "vidmatte.cli.main", "guided", "--prior", "none", *map(str, args)],
                          capture_output=True, text=True, timeout=600)


def write_frames(folder, clip, count: int, pattern: str = "{:05d}.png"):
    folder.mkdir()
    for i, (frame, _) in enumerate(clip[:count]):
        cv2.imwrite(str(folder / pattern.format(i)), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return folder


def clip_fixtures(count: int):
    """Fixtures ``clip`` (a deforming clip of ``count`` frames, once per module) and ``frames`` (it as PNGs in a
    test's folder), for modules that run guided matting on a clip of their own length."""
    @pytest.fixture(scope="module")
    def clip():
        return deforming_clip(count)

    @pytest.fixture
    def frames(tmp_path, clip):
        return write_frames(tmp_path / "in", clip, count)

    return clip, frames


@pytest.fixture
def frames_folder(tmp_path, clip):
    cv2.imwrite(str(tmp_path / "key0.png"), key_trimap(clip[0][1]))
    return write_frames(tmp_path / "in", clip, 8)


def test_guided_cli_writes_alpha_trimaps_and_a_json_line(tmp_path, frames_folder, clip):
    import json

    proc = _cli(frames_folder, "--keyframe", f"0:{tmp_path / 'key0.png'}", "--alpha", f"{tmp_path}/pha/",
                "--trimaps", f"{tmp_path}/tri/", "--composition", tmp_path / "comp.mp4", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["frames"] == 8 and result["rvm_prior"] is False  # --prior none
    trimap = cv2.imread(str(tmp_path / "tri" / "00007.png"), cv2.IMREAD_GRAYSCALE)
    assert set(np.unique(trimap)) <= {0, 128, 255} and label_errors(trimap, clip[7][1]) < 0.03
    alpha = cv2.imread(str(tmp_path / "pha" / "00007.png"), cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255
    assert np.abs(alpha - clip[7][1]).mean() < 0.02


def test_guided_cli_names_the_frames_whose_keyframes_disagree(tmp_path, frames_folder):
    """A second keyframe marking a patch of background: the CLI's warning line says where a keyframe would settle it,
    and --json carries the run of frames."""
    import json

    wrong = np.zeros((H, W), np.uint8)
    wrong[10:40, 190:240] = FG
    cv2.imwrite(str(tmp_path / "key7.png"), wrong)
    proc = _cli(frames_folder, "--keyframe", f"0:{tmp_path / 'key0.png'}", "--keyframe", f"7:{tmp_path / 'key7.png'}",
                "--alpha", f"{tmp_path}/pha/", "--json")
    assert proc.returncode == 0, proc.stderr
    (first, last), = json.loads(proc.stdout)["contradicting_frames"]
    assert first <= 2 and last >= 5
    assert (f"vidmatte: warning: frames {first}-{last}: the keyframes on either side are followed to different "
            f"places") in proc.stderr and f"A keyframe near frame {(first + last) // 2}" in proc.stderr


def test_guided_cli_names_the_frames_where_the_matted_subject_jumps(tmp_path):
    """A fast red disc that leaves the scene (frame 5 on: the plate alone), one keyframe: propagation loses the disc
    and the matte collapses within a few frames. The keyframes never disagree (there is one), so only the jump says
    so: --json's jumping_frames span the collapse, found here from the alpha files themselves, and a warning names
    them."""
    import json

    from media import disc_over_plate

    plate, pictures, truths = disc_over_plate(3, frames=10)
    folder = tmp_path / "in"
    folder.mkdir()
    for i, picture in enumerate(pictures):
        cv2.imwrite(str(folder / f"{i:05d}.png"), cv2.cvtColor(picture if i < 5 else plate, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(tmp_path / "key0.png"), key_trimap(truths[0]))
    proc = _cli(folder, "--keyframe", f"0:{tmp_path / 'key0.png'}", "--alpha", f"{tmp_path}/pha/", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["contradicting_frames"] == []
    areas = [int((cv2.imread(str(tmp_path / "pha" / f"{i:05d}.png"), cv2.IMREAD_GRAYSCALE) >= 128).sum())
             for i in range(10)]
    collapse = next(i for i, area in enumerate(areas) if area < areas[0] / 3)  # the first frame with a third left
    (first, last), = report["jumping_frames"]
    assert first <= collapse <= last, (areas, report)
    assert (f"vidmatte: warning: frames {first}-{last}: the matted subject jumps in size or place against the "
            f"frames around it") in proc.stderr


def test_jumping_frames_let_steady_motion_and_growth_pass_and_name_a_lost_or_moved_subject():
    """The measure alone, on made-up subjects: moving steadily and growing 10% a frame is no jump; one frame where
    the subject is gone, a collapse over two frames, and a jump of its whole size sideways are."""
    from vidmatte.matters.guided import jumping_frames

    steady = {i: (0.05 * 1.1 ** i, 0.2 + 0.02 * i, 0.5) for i in range(20)}
    assert jumping_frames(steady) == []
    gone = {**steady, 7: (0.0, 0.0, 0.0)}
    assert 7 in jumping_frames(gone)
    collapsing = {i: (0.05 if i < 10 else 0.025 if i == 10 else 0.004, 0.5, 0.5) for i in range(20)}
    assert set(jumping_frames(collapsing)) & {10, 11}
    moved = {**steady, 12: (steady[12][0], steady[12][1] + 2 * np.sqrt(steady[12][0]), 0.5)}
    assert jumping_frames(moved) == [12]


def test_guided_cli_reads_a_tcvom_workspace(tmp_path, clip):
    workspace = write_frames(tmp_path / "ws", clip, 6, "{:05d}_rgb.png")
    cv2.imwrite(str(workspace / "00000_trimap.png"), key_trimap(clip[0][1]))
    proc = _cli(workspace, "--alpha", f"{tmp_path}/pha/")
    assert proc.returncode == 0, proc.stderr
    assert len(list((tmp_path / "pha").glob("*.png"))) == 6


@pytest.mark.parametrize("case, fragment", [
    ("no keyframe", "no keyframe"),
    ("outside", "outside"),
    ("wrong size", "x"),
    ("no foreground", "foreground"),
])
def test_bad_guidance_is_one_line_exit_2_and_writes_nothing(tmp_path, frames_folder, case, fragment):
    key = tmp_path / "key0.png"
    if case == "wrong size":
        cv2.imwrite(str(key), np.zeros((50, 50), np.uint8))
    elif case == "no foreground":
        cv2.imwrite(str(key), np.where(cv2.imread(str(key), 0) == 255, 128, cv2.imread(str(key), 0)).astype(np.uint8))
    keyframe = [] if case == "no keyframe" else ["--keyframe", f"{99 if case == 'outside' else 0}:{key}"]
    if case == "no foreground":  # two levels (0/128) would read as a mask under --guidance auto
        keyframe += ["--guidance", "trimap"]
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = _cli(frames_folder, *keyframe, "--alpha", f"{tmp_path}/pha/")
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr and fragment in lines[0], proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.weights
def test_the_rvm_prior_is_used_for_a_person_and_not_for_an_object(rvm_onnx_path, clip):
    """--prior auto: RVM's alpha helps where RVM sees the keyframe's subject (a person) and hurts other objects.
    A subject marked almost all as band counts as seen when RVM sees the band, even if it misses the few solid
    pixels (a dandelion: its stem)."""
    from media import person_frames

    from vidmatte.backends import open_runner
    from vidmatte.matters.base import Pass, Span
    from vidmatte.matters.recurrent import RecurrentMatter

    rvm = RecurrentMatter(open_runner(str(rvm_onnx_path), threads=1), warmup=0)
    person = person_frames(3, 192, 192)[0]
    for _ in range(3):
        rvm_alpha = rvm.step(person)[1]
    person_trimap = key_trimap((rvm_alpha > 0.5).astype(np.float32))
    all_band = np.where(cv2.dilate((rvm_alpha > 0.5).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0, UNKNOWN, BG)
    all_band = all_band.astype(np.uint8)
    missed = np.argwhere((all_band == UNKNOWN) & (rvm_alpha < 0.1))[:12]  # solid pixels RVM does not see
    all_band[missed[:, 0], missed[:, 1]] = FG
    decided = {}
    for name, frame, trimap in [("person", person, person_trimap), ("object", clip[0][0], key_trimap(clip[0][1])),
                                ("band", person, all_band)]:
        matter = GuidedMatter({0: trimap}, prior=rvm, prior_mode="auto")
        matter.passes(Span(0, 1, seekable=True))
        matter.begin_pass(Pass("propagate forward", 0, 1))
        matter.matte([matter.prepare(frame, 0)])
        decided[name] = matter.summary()["rvm_prior"]
    assert decided == {"person": True, "object": False, "band": True}
