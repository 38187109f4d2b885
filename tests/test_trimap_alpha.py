"""solvers.trimap_alpha: the band-restricted closed-form solver used per frame by guided matting."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vidmatte.data.synthesis import trimap_from_alpha
from vidmatte.solvers.trimap_alpha import BandProblem, foreground, solve_alpha, solve_alpha_info

FG_COLOUR = np.array([210, 70, 40], np.float32)
BG_COLOUR = np.array([30, 90, 220], np.float32)


def soft_disc(h: int = 90, w: int = 120) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image uint8 RGB, trimap, true alpha float32): a blurred disc of one colour over another, band of 4 px."""
    yy, xx = np.mgrid[:h, :w]
    disc = (((yy - h / 2) ** 2 + (xx - w / 2) ** 2) < (min(h, w) / 3) ** 2).astype(np.float32)
    alpha = cv2.GaussianBlur(disc, (0, 0), 2.0)
    image = alpha[..., None] * FG_COLOUR + (1 - alpha[..., None]) * BG_COLOUR
    alpha_u8 = np.rint(alpha * 255).astype(np.uint8)
    return np.rint(image).astype(np.uint8), trimap_from_alpha(alpha_u8, band=4), alpha_u8.astype(np.float32) / 255


def test_known_pixels_kept_exactly_and_output_contract():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    trimap = np.full((40, 50), 128, np.uint8)
    trimap[:, :15] = 0
    trimap[:, 35:] = 255
    alpha = solve_alpha(image, trimap)
    assert alpha.dtype == np.float32 and alpha.shape == (40, 50)
    assert np.all(alpha[trimap == 255] == 1.0) and np.all(alpha[trimap == 0] == 0.0)
    assert alpha.min() >= 0 and alpha.max() <= 1


def test_no_unknown_pixels_is_the_trimap():
    trimap = np.zeros((20, 30), np.uint8)
    trimap[5:, :] = 255
    alpha, info = solve_alpha_info(np.zeros((20, 30, 3), np.uint8), trimap)
    assert info.unknown == 0
    np.testing.assert_array_equal(alpha, trimap / 255)


def test_soft_edge_recovered():
    """Two flat colours satisfy the colour-line model exactly, so alpha is recovered up to 8-bit rounding."""
    image, trimap, truth = soft_disc()
    alpha = solve_alpha(image, trimap, tol=1e-6)
    band = trimap == 128
    assert np.abs(alpha - truth)[band].max() < 0.03
    assert np.abs(alpha - truth)[band].mean() < 0.005
    # the default tolerance (what video frames use) stays close too
    assert np.abs(solve_alpha(image, trimap) - truth)[band].mean() < 0.01


def test_warm_start_same_answer_in_fewer_iterations():
    image, trimap, truth = soft_disc()
    rng = np.random.default_rng(2)
    image = np.clip(image + rng.normal(0, 4, image.shape), 0, 255).astype(np.uint8)  # not a trivial system
    cold, cold_info = solve_alpha_info(image, trimap, tol=1e-6, levels=0)
    previous = cv2.GaussianBlur(np.roll(cold, 1, axis=1), (0, 0), 1.0)  # last frame's answer, moved by 1 px
    warm, warm_info = solve_alpha_info(image, trimap, init=previous, tol=1e-6, levels=0)
    assert cold_info.converged and warm_info.converged
    assert warm_info.iterations < cold_info.iterations
    assert np.abs(warm - cold).max() < 1e-3


def test_coarse_to_fine_start_saves_iterations():
    image, trimap, _ = soft_disc(180, 240)
    _, flat_start = solve_alpha_info(image, trimap, tol=1e-5, levels=0)
    _, coarse_start = solve_alpha_info(image, trimap, tol=1e-5, levels=2)
    assert coarse_start.iterations < flat_start.iterations


def test_prior_pulls_towards_the_prior():
    image, trimap, truth = soft_disc()
    band = trimap == 128
    prior = (1 - truth).astype(np.float32)  # deliberately wrong, so any pull shows
    distances = [np.abs(solve_alpha(image, trimap, prior=prior, prior_weight=w, tol=1e-6) - prior)[band].mean()
                 for w in (0.0, 1e-2, 1.0, 100.0)]
    assert distances[0] > distances[1] > distances[2] > distances[3]
    assert distances[3] < 0.02  # a heavy weight is nearly the prior itself
    # a weak weight keeps the image's answer mostly intact
    weak = solve_alpha(image, trimap, prior=prior, prior_weight=1e-3, tol=1e-6)
    assert np.abs(weak - truth)[band].mean() < 0.05


@pytest.mark.parametrize("kwargs, message", [
    (dict(image=np.zeros((10, 12, 3), np.float32)), "image must be uint8"),
    (dict(image=np.zeros((10, 12), np.uint8)), "image must be uint8"),
    (dict(trimap=np.zeros((10, 11), np.uint8)), "trimap must be uint8"),
    (dict(trimap=np.zeros((10, 12), np.float32)), "trimap must be uint8"),
    (dict(init=np.zeros((9, 12), np.float32)), "init must be float"),
    (dict(init=np.zeros((10, 12), np.uint8)), "init must be float"),
    (dict(prior=np.zeros((10, 13), np.float32), prior_weight=0.1), "prior must be float"),
    (dict(prior_weight=-1.0, prior=np.zeros((10, 12), np.float32)), "prior_weight must be"),
    (dict(prior_weight=0.5), "needs a prior"),
])
def test_bad_inputs_raise_value_error(kwargs, message):
    args = dict(image=np.zeros((10, 12, 3), np.uint8), trimap=np.full((10, 12), 128, np.uint8)) | kwargs
    with pytest.raises(ValueError, match=message):
        solve_alpha(**args)


def test_one_problem_solved_for_several_priors_answers_as_separate_solves():
    """A BandProblem builds its systems once; each solve adds its own prior and leaves them as they were, so the
    second and third solves answer exactly what separate solves would (a prior that leaked into the next would not)."""
    image, trimap, truth = soft_disc(96, 128)
    prior = np.clip(truth + 0.3, 0, 1).astype(np.float32)  # a prior that moves the answer
    weights = [np.full(trimap.shape, 1.0, np.float32), np.zeros(trimap.shape, np.float32)]
    problem = BandProblem(image, trimap)
    shared = [problem.solve(None, prior, w)[0] for w in weights]
    shared.append(problem.solve(shared[0], prior, weights[1])[0])  # warm-started from another solve
    alone = [solve_alpha(image, trimap, prior=prior, prior_weight=w) for w in weights]
    alone.append(solve_alpha(image, trimap, init=shared[0], prior=prior, prior_weight=weights[1]))
    assert np.abs(shared[0] - shared[1]).max() > 0.05, "the two priors give different answers"
    for a, b in zip(shared, alone):
        assert np.array_equal(a, b)


def test_foreground_recovers_colour_and_checks_shapes():
    image, trimap, truth = soft_disc()
    fg = foreground(image, truth)
    assert fg.shape == image.shape
    seen = truth > 0.2
    assert np.abs(fg[seen] * 255 - FG_COLOUR).mean() < 8
    half = foreground(image, truth, scale=2)
    assert half.shape == image.shape and half.dtype == np.float32
    assert np.abs(half[seen] * 255 - FG_COLOUR).mean() < 12
    np.testing.assert_array_equal(half[truth >= 1], image[truth >= 1] / np.float32(255))
    with pytest.raises(ValueError, match="scale must be"):
        foreground(image, truth, scale=0)
    with pytest.raises(ValueError, match="alpha must be"):
        foreground(image, truth[:-1])
    with pytest.raises(ValueError, match="image must be uint8"):
        foreground(image.astype(np.float32), truth)


def load_gt01(root, size=(400, 248)):
    base = root / "image_matting_gt" / "alphamatting_GT01_mattekit"
    image = cv2.cvtColor(cv2.imread(str(base / "GT01.png")), cv2.COLOR_BGR2RGB)
    trimap = cv2.imread(str(base / "GT01_tri.png"), cv2.IMREAD_GRAYSCALE)
    truth = cv2.imread(str(base / "GT01_truth.png"), cv2.IMREAD_GRAYSCALE)
    return (cv2.resize(image, size, interpolation=cv2.INTER_AREA),
            cv2.resize(trimap, size, interpolation=cv2.INTER_NEAREST),
            cv2.resize(truth, size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255)


def test_real_gt_close_to_pymatting_closed_form(shared_data):
    pymatting = pytest.importorskip("pymatting")
    image, trimap, truth = load_gt01(shared_data)
    alpha = solve_alpha(image, trimap)
    reference = pymatting.estimate_alpha_cf(image / 255.0, trimap / 255.0)
    ours, theirs = np.abs(alpha - truth).mean(), np.abs(reference - truth).mean()
    assert ours < 0.006  # MAD 6e-3 on alphamatting.com GT01 at 400x248 (measured about 3e-3)
    assert ours < 1.5 * theirs


def test_band_system_matches_the_full_laplacian():
    """The stencil rows equal the repo's full-frame matting Laplacian restricted to the unknown pixels."""
    from vidmatte.solvers.closed_form import matting_laplacian
    from vidmatte.solvers.trimap_alpha import band_system

    rng = np.random.default_rng(3)
    image = rng.random((24, 30, 3))
    trimap = np.zeros((24, 30), np.uint8)
    trimap[:, 18:] = 255
    trimap[4:20, 10:22] = 128
    unknown, known_alpha = trimap == 128, (trimap == 255).astype(np.float64)
    system = band_system(image, known_alpha, unknown)
    active = cv2.dilate(unknown.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    full = matting_laplacian(image, active).tocsr()
    u, k = np.flatnonzero(unknown), np.flatnonzero(~unknown)
    lap_uu = system.to_csr()
    np.testing.assert_allclose(lap_uu.toarray(), full[u][:, u].toarray(), atol=1e-9)
    np.testing.assert_allclose(system.rhs, -(full[u][:, k] @ known_alpha.ravel()[k]), atol=1e-9)
    np.testing.assert_allclose(lap_uu.toarray(), lap_uu.T.toarray(), atol=1e-9)


def test_tiny_images_solve():
    """Frames too small for any 3x3 window still give an answer (unknown pixels pinned to 0.5)."""
    alpha = solve_alpha(np.zeros((5, 2, 3), np.uint8), np.full((5, 2), 128, np.uint8))
    assert alpha.shape == (5, 2) and np.all(alpha == 0.5)
