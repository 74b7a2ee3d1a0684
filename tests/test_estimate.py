"""The cost model (sgdbayes.estimate): its arithmetic, its check against the measured default-profile build times
(README: the 2-core reference machine), the rendered table, and the on-the-spot calibration."""

from __future__ import annotations

from pathlib import Path

import pytest

from sgdbayes import estimate
from sgdbayes.chapters import discover, load_profiles, resolve_parameters

ROOT = Path(__file__).resolve().parents[1]
# measured default-profile seconds per chapter on the reference machine (README, first make book)
MEASURED_DEFAULT = {"function_probability": 770.0, "sgd_variational_inference": 69.0, "constant_sgd": 133.0,
                    "polyak_averaging": 38.0, "report": 4.0}


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


def test_default_estimates_within_1_5_of_measured_times():
    """With the reference machine's rates, each chapter's default-profile estimate lies within a factor 1.5 of the
    time measured there. For function_probability this checks the work model (networks × epochs × FLOPs, prior
    draws, ...); the chapters scaled from their measured default time agree by construction."""
    resolved, _ = _resolved()
    for chapter, measured in MEASURED_DEFAULT.items():
        if chapter not in resolved:
            continue
        works = estimate.estimate_work(chapter, resolved[chapter]["default"], resolved[chapter]["default"])
        assert works is not None, chapter
        here, _ = estimate.predict(works, estimate.REFERENCE_RATES)
        assert measured / 1.5 <= here <= measured * 1.5, (chapter, here, measured)


def test_paper_profile_costs_more_and_render_shows_every_chapter():
    resolved, names = _resolved()
    rates = dict(estimate.REFERENCE_RATES)
    text = estimate.render(resolved, names, ["default", "paper"], rates=rates)
    for chapter in resolved:
        assert chapter in text
    assert "default here" in text and "paper GPU" in text and "total" in text and "H200" in text
    fp = resolved["function_probability"]
    d = estimate.predict(estimate.estimate_work("function_probability", fp["default"]), rates)[0]
    p = estimate.predict(estimate.estimate_work("function_probability", fp["paper"]), rates)[0]
    assert p > 10 * d


def test_calibration_measures_every_kind():
    rates = estimate.calibrate(quick=True)
    assert set(rates) == set(estimate.KINDS)
    assert all(v > 0 for v in rates.values())
