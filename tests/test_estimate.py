"""The cost model (sgdbayes.estimate): its arithmetic, its check against the measured default-profile build times
(README: the 2-core reference machine), the rendered table, and the on-the-spot calibration."""

from __future__ import annotations

from pathlib import Path

import pytest

from sgdbayes import estimate
from sgdbayes.chapters import discover, load_profiles, resolve_parameters

ROOT = Path(__file__).resolve().parents[1]
# Measured default-profile seconds per chapter: the clean-clone `make book` of 2026-11-30 on the otherwise idle 2-core
# machine (README's build table), and the rates `calibrate(quick=False)` measured minutes later (= REFERENCE_RATES).
# The chapters scaled from these same times (estimate.SCALED) agree by construction; function_probability checks the
# work model (networks × measured mean epochs × FLOPs on the native or torch path, prior draws; its GP parts are
# seconds from an earlier run), function_probability_images its MNIST ensembles the same way (its CNN and Ionosphere
# panels are seconds from this build), synthesis its grid and averaging ensembles (HMC and local chains carry
# factors fitted to this build).
MEASURED_DEFAULT = {"function_probability": (242.0, None),
                    "function_probability_images": (252.8, None),
                    "synthesis": (68.1, None),
                    **{c: (s, None) for c, (s, _) in estimate.SCALED.items()}}


def _resolved():
    chapters = discover(ROOT)
    profiles = load_profiles(ROOT, chapters)
    return {name: {p: resolve_parameters(ch, profiles, p) for p in profiles.names} for name, ch in chapters.items()}, \
        profiles.names


def test_predict_is_amount_over_rate_and_gpu_model():
    works = [estimate.Work("gemm_f32", 2e9), estimate.Work("fixed", 3.0), estimate.Work("prior", 1e6)]
    rates = {"gemm_f32": 1e9, "fixed": 1.0, "prior": 1e5}
    here, gpu = estimate.predict(works, rates)
    assert here == pytest.approx(2.0 + 3.0 + 10.0)
    g = estimate.GPU_MODEL["float32_flops"]
    expected = 2e9 / (g * estimate.KINDS["gemm_f32"].gpu_efficiency) + 3.0 \
        + 1e6 * estimate.PRIOR_FLOPS_PER_DRAW / (g * estimate.KINDS["prior"].gpu_efficiency)
    assert gpu == pytest.approx(expected)


def test_training_flops_match_the_benchmark_count():
    from sgdbayes.ensembles import FCN

    model = FCN(7, (40, 40))
    first = 2 * 7 * 40
    assert estimate._train_flops_per_example(7, (40, 40)) == 2 * first + 3 * (model.flops_per_example() - first)


@pytest.mark.parametrize("chapter", sorted(MEASURED_DEFAULT))
def test_default_estimates_within_1_5_of_measured_times(chapter):
    """With the reference machine's rates (calibrated beside the measured runs), each chapter's default-profile
    estimate lies within a factor 1.5 of the time measured there. For function_probability this checks the work
    model (networks × measured mean epochs × FLOPs on the native or torch path, prior draws, the GP parts); the
    chapters scaled from their measured default time agree by construction. A chapter whose current parameters the
    model does not know (a rewrite landed) is skipped here and shows "no model"."""
    resolved, _ = _resolved()
    if chapter not in resolved:
        pytest.skip(f"no chapter {chapter} in this book")
    works = estimate.estimate_work(chapter, resolved[chapter]["default"], resolved[chapter]["default"])
    assert works is not None, f"the model does not know {chapter}'s current parameters"
    if MEASURED_DEFAULT[chapter] is None:
        pytest.skip(f"no measured default-profile time of {chapter} on record yet")
    measured, rates = MEASURED_DEFAULT[chapter]
    here, _ = estimate.predict(works, rates or estimate.REFERENCE_RATES)
    assert measured / 1.5 <= here <= measured * 1.5, (chapter, here, measured)


def test_paper_profile_costs_more_and_render_shows_every_chapter():
    resolved, names = _resolved()
    rates = dict(estimate.REFERENCE_RATES)
    text = estimate.render(resolved, names, ["default", "paper"], rates=rates)
    for chapter in resolved:
        assert chapter in text
    assert "default here" in text and "paper GPU" in text and "total" in text and "H200" in text
    assert "no model" not in text, text  # every chapter of this book and each of its profiles is modelled
    for chapter in ("function_probability", "function_probability_images", "synthesis"):
        d_work = estimate.estimate_work(chapter, resolved[chapter]["default"])
        p_work = estimate.estimate_work(chapter, resolved[chapter]["paper"])
        assert estimate.predict(p_work, rates)[0] > 10 * estimate.predict(d_work, rates)[0], chapter


def test_mean_epochs_measured_scaled_or_no_model():
    key = next(k for k in estimate.MEAN_EPOCHS if k[0] == "sgd")
    assert estimate.mean_epochs(key) == estimate.MEAN_EPOCHS[key]
    # plain SGD at half the learning rate: twice the epochs of the nearest measured setting (steps to fit ∝ 1/lr)
    half = (key[0], key[1] / 2, *key[2:])
    if half not in estimate.MEAN_EPOCHS:
        assert estimate.mean_epochs(half) == pytest.approx(2 * estimate.MEAN_EPOCHS[key])
    with pytest.raises(estimate.NoModel):
        estimate.mean_epochs(("lbfgs", 0.1, 8, "clean", 0, 32))


def test_mean_epochs_across_batch_sizes():
    """Plain SGD's measured epochs grow ∝ batch (steps to fit do not depend on it: a measured law, checked here on
    the table), so an unmeasured batch scales from the nearest measured one; an overtraining length adds its epochs."""
    a = estimate._batch_exponent("sgd", "clean")
    assert 0.85 <= a <= 1.15, a
    b1 = estimate.mean_epochs(("sgd", 0.01, 1, "clean", 0, 32))
    assert b1 == pytest.approx(estimate.MEAN_EPOCHS[("sgd", 0.01, 8, "clean", 0, 32)] / 8**a)
    assert estimate.mean_epochs(("sgd", 0.01, 8, "clean", 10, 32)) == pytest.approx(
        estimate.MEAN_EPOCHS[("sgd", 0.01, 8, "clean", 0, 32)] + 10)
    assert 0 < estimate._batch_exponent("adam", "keras") < 1  # adaptive optimisers: fewer steps at larger batches


def test_unknown_chapter_or_parameters_render_no_model():
    """A chapter without a model, or a version of a modelled chapter with other parameters, shows "no model" and the
    total says it covers the modelled chapters only; nothing raises."""
    assert estimate.estimate_work("no_such_chapter", {}) is None
    assert estimate.estimate_work("function_probability", {"profile": "default", "new_knob": 3}) is None
    assert estimate.estimate_work("synthesis", {"grid_lrs": [0.1]}) is None
    chapters = {"no_such_chapter": {"default": {}}, "report": {"default": {"profile": "default"}},
                "function_probability": {"default": {"only": 1}}}
    text = estimate.render(chapters, ["default"], rates=dict(estimate.REFERENCE_RATES))
    assert text.count("no model") == 4 and "total (modelled chapters)" in text
    assert "report" in text


def test_calibration_measures_every_kind():
    rates = estimate.calibrate(quick=True)
    assert set(rates) == set(estimate.KINDS)
    assert all(v > 0 for v in rates.values())
