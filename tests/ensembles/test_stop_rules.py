"""Stop rules of train_ensemble: the Keras rule (fit test at logit 0.5, ``wait`` epochs, a callback shared by the runs
of a process) against a plain one-network-at-a-time reference written the way the authors' Keras loop runs; the
clean rule's behaviour kept; argument errors; a statistical check that the Keras rule concentrates P_SGD."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from sgdbayes.data.boolean import mingard_split
from sgdbayes.ensembles import (FCN, KERAS_RUNS_PER_PROCESS, StopRule, as_stop_rule, epoch_permutations,
                                network_streams, process_layout, train_ensemble)

from test_train import boolean_data, fcn_module  # noqa: E402  (tests/ensembles is on sys.path under pytest)

pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------------------------------------------------------
# the reference: runs one after the other, as NN_train_simplified.py loops over its tasks
# --------------------------------------------------------------------------------------------------------------------
class ReferenceCallback:
    """The authors' EarlyStoppingByAccuracy(value=1.0, wait_epochs=wait) as a plain object: ``end_of_epoch`` gets
    Keras' 0-based epoch number and the validation accuracy on S, and says whether training stops."""

    def __init__(self, wait: int):
        self.wait = wait
        self.first_time = True
        self.first_time_epoch = None

    def end_of_epoch(self, epoch: int, accuracy: float) -> bool:
        if accuracy < 1.0:
            return False
        if self.first_time:
            self.first_time = False
            self.first_time_epoch = epoch
            return self.wait == 0
        return epoch - self.first_time_epoch >= self.wait


def reference_run(model, X, y, Xe, callback, *, index, seed, lr, batch_size, max_epochs, threshold):
    """One network g, trained by torch.nn + torch.optim.SGD with the ensemble's seeds and minibatch order, epochs
    0 … max_epochs−1 as Keras counts them, the callback asked after each. Returns its record."""
    init_seeds, keys = network_streams(seed, [index])
    net = fcn_module(model, model.init(init_seeds), 0)
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    crit, n = nn.BCEWithLogitsLoss(), X.shape[0]
    own_first_fit, status = -1, None
    for epoch in range(max_epochs):
        order = epoch_permutations(keys, epoch + 1, n)[0]
        for s in range(math.ceil(n / batch_size)):
            idx = order[s * batch_size:(s + 1) * batch_size]
            opt.zero_grad()
            crit(net(X[idx]).squeeze(-1), y[idx].float()).backward()
            opt.step()
        with torch.no_grad():
            z = net(X).squeeze(-1)
        if not torch.isfinite(z).all():  # never fits again; the library reports it at once
            status = "diverged"
            break
        accuracy = ((z > threshold).long() == y).double().mean().item()
        if accuracy == 1.0 and own_first_fit < 0:
            own_first_fit = epoch + 1
        if callback.end_of_epoch(epoch, accuracy):
            break
    if status is None:  # ignore_non_fit: a run counts iff its final training accuracy is 1.0
        status = "fitted" if accuracy == 1.0 else "not_fitted"
    with torch.no_grad():
        labels = net(Xe).squeeze(-1) > 0
    return {"status": status, "epochs_trained": epoch + 1, "epochs_to_fit": own_first_fit,
            "params": [p.detach().clone() for p in net.parameters()], "labels": labels,
            "fits_by_sign": bool(((z > 0).long() == y).all()) if status != "diverged" else False}


def reference_processes(model, X, y, Xe, *, indices, runs_per_process, shared, wait, **kw):
    """Every network of ``indices`` in its process's order; one callback per process (``shared``) or per run.
    Runs of a process that lie before ``indices`` are trained too (they drive the callback), not returned."""
    out = {}
    for p in sorted({g // runs_per_process for g in indices}):
        callback = ReferenceCallback(wait)
        for g in range(p * runs_per_process, min((p + 1) * runs_per_process, max(indices) + 1)):
            if not shared:
                callback = ReferenceCallback(wait)
            rec = reference_run(model, X, y, Xe, callback, index=g, **kw)
            if g in indices:
                out[g] = rec
    return [out[g] for g in indices]


def assert_matches_reference(res, refs, *, offset=0):
    for m, ref in enumerate(refs):
        where = f"network {offset + m}"
        assert res.status[m] == ref["status"], where
        assert res.epochs_trained[m] == ref["epochs_trained"], where
        assert res.epochs_to_fit[m] == ref["epochs_to_fit"], where
        assert torch.equal(res.test_labels[m], ref["labels"]), where
        assert res.fits_by_sign[m] == ref["fits_by_sign"], where
        for p_ens, p_ref in zip(res.params, ref["params"], strict=True):
            torch.testing.assert_close(p_ens[m], p_ref, rtol=1e-4, atol=1e-5)


KW = dict(seed=3, lr=0.1, batch_size=4)


@pytest.mark.parametrize("wait,runs_per_process", [(1, 4), (0, 3), (3, 5)])
def test_keras_shared_callback_matches_sequential_reference(wait, runs_per_process):
    X, y, Xe = boolean_data(seed=0)
    model = FCN(5, (16, 16), sigma_w=1.0, sigma_b=1.0)
    M, max_epochs = 10, 400
    res = train_ensemble(model, X, y, Xe, n_networks=M, optimizer="sgd", loss="ce", max_epochs=max_epochs,
                         stop_rule=StopRule.keras(wait=wait, runs_per_process=runs_per_process),
                         return_params=True, progress=False, **KW)
    refs = reference_processes(model, X, y, Xe, indices=list(range(M)), runs_per_process=runs_per_process,
                               shared=True, wait=wait, max_epochs=max_epochs, threshold=0.5, **KW)
    assert_matches_reference(res, refs)
    assert (res.status == "fitted").sum() >= M - 1
    # the mechanics were exercised: some follower trained past its own first fit + wait because of the floor
    followers = ~res.leader & (res.status == "fitted")
    assert (res.epochs_trained[followers] > res.epochs_to_fit[followers] + wait).any()
    np.testing.assert_array_equal(res.process, np.arange(M) // runs_per_process)
    # each process's floor is its leader's first fit + wait, and nobody stopped before it
    for p in np.unique(res.process):
        lead = np.flatnonzero((res.process == p) & res.leader)
        assert lead.size == 1
        floors = res.stop_floor[(res.process == p) & (res.status == "fitted")]
        np.testing.assert_array_equal(floors, res.epochs_to_fit[lead[0]] + wait)
    fitted = res.status == "fitted"
    assert (res.epochs_trained[fitted] >= res.stop_floor[fitted]).all()


def test_keras_fresh_callback_matches_reference():
    X, y, Xe = boolean_data(seed=0)
    model = FCN(5, (16,), sigma_w=1.0, sigma_b=1.0)
    res = train_ensemble(model, X, y, Xe, n_networks=5, optimizer="sgd", max_epochs=400,
                         stop_rule=StopRule.keras(wait=2, shared_callback=False), return_params=True,
                         progress=False, **KW)
    refs = reference_processes(model, X, y, Xe, indices=list(range(5)), runs_per_process=1, shared=False, wait=2,
                               max_epochs=400, threshold=0.5, **KW)
    assert_matches_reference(res, refs)
    assert res.process is not None and (res.process == -1).all() and not res.leader.any()


def test_failed_leader_hands_e0_to_the_next_run():
    """A budget short enough that some runs never pass the fit test: a process whose first run fails takes e0 from
    its next run that fits, as the never-reset callback does (its first_time flag is still set)."""
    X, y, Xe = boolean_data(seed=0)
    model = FCN(5, (16, 16), sigma_w=1.0, sigma_b=1.0)
    full = train_ensemble(model, X, y, Xe, n_networks=24, optimizer="sgd", max_epochs=400,
                          stop_rule=StopRule.keras(wait=1, shared_callback=False), progress=False, **KW)
    max_epochs = int(np.median(full.epochs_to_fit))  # about half of all runs fit within it
    R, M = 4, 16
    res = train_ensemble(model, X, y, Xe, n_networks=M, optimizer="sgd", max_epochs=max_epochs,
                         stop_rule=StopRule.keras(wait=1, runs_per_process=R), return_params=True, progress=False,
                         **KW)
    _, pos = process_layout(np.arange(M), R)
    assert (res.leader & (pos > 0)).any(), "no process needed a later leader; choose another budget"
    assert (res.status == "not_fitted").any() and (res.status == "fitted").any()
    refs = reference_processes(model, X, y, Xe, indices=list(range(M)), runs_per_process=R, shared=True, wait=1,
                               max_epochs=max_epochs, threshold=0.5, **KW)
    assert_matches_reference(res, refs)


def test_shards_reproduce_the_single_run():
    """Processes of 5 runs, shards cut inside a process: the second shard trains the leader of its first process
    (outside the shard) to learn e0, and every network ends as in the single run."""
    X, y, Xe = boolean_data(seed=2)
    model = FCN(5, (16,), sigma_w=1.0, sigma_b=1.0)
    kw = dict(optimizer="sgd", max_epochs=400, stop_rule=StopRule.keras(wait=1, runs_per_process=5),
              return_params=True, progress=False, **KW)
    whole = train_ensemble(model, X, y, Xe, n_networks=12, **kw)
    parts = [train_ensemble(model, X, y, Xe, n_networks=b - a, index_offset=a, **kw) for a, b in ((0, 7), (7, 12))]
    for (a, b), part in zip(((0, 7), (7, 12)), parts, strict=True):
        np.testing.assert_array_equal(part.network_index, np.arange(a, b))
        for key in ("status", "epochs_trained", "epochs_to_fit", "stop_floor", "process", "leader", "fits_by_sign"):
            np.testing.assert_array_equal(getattr(part, key), getattr(whole, key)[a:b], err_msg=key)
        assert torch.equal(part.test_labels, whole.test_labels[a:b])
        for p, q in zip(part.params, whole.params, strict=True):
            torch.testing.assert_close(p, q[a:b], rtol=1e-5, atol=1e-6)
    assert not parts[1].leader[:3].any()  # networks 7–9 follow network 5, which that shard does not report


def test_keras_stopped_networks_are_frozen_bit_identical():
    """Run A goes to completion; run B is the same job cut at the epoch e where A's first follower stopped. That
    network's recorded parameters and function must be bit-identical in both: what is recorded is its state at its
    stop, and the networks still training in A's stack (which B stops) did not touch it."""
    X, y, Xe = boolean_data(seed=0)
    model = FCN(5, (16, 16), sigma_w=1.0, sigma_b=1.0)
    # networks 10–14 form process 2, whose leader (10) fits early: its followers stop at spread-out epochs
    kw = dict(n_networks=5, index_offset=10, optimizer="sgd", stop_rule=StopRule.keras(wait=2, runs_per_process=5),
              return_params=True, progress=False, **KW)
    a = train_ensemble(model, X, y, Xe, max_epochs=600, **kw)
    assert (a.status == "fitted").all() and a.leader[0]
    followers = np.flatnonzero(~a.leader)
    first = followers[np.argmin(a.epochs_trained[followers])]
    e = int(a.epochs_trained[first])
    assert (a.epochs_trained[followers] > e).any(), "need a follower that trains on after the first one stops"
    b = train_ensemble(model, X, y, Xe, max_epochs=e, **kw)
    assert b.status[first] == "fitted" and b.epochs_trained[first] == e
    for pa, pb in zip(a.params, b.params, strict=True):
        assert torch.equal(pa[first], pb[first])
    assert torch.equal(a.test_labels[first], b.test_labels[first])
    later = np.flatnonzero(a.epochs_trained > e)
    assert not torch.equal(a.params[0][later], b.params[0][later])


def test_fits_by_sign_and_counted_runs_against_direct_evaluation():
    X, y, Xe = boolean_data(seed=4)
    model = FCN(5, (16, 16), sigma_w=1.0, sigma_b=1.0)
    res = train_ensemble(model, X, y, Xe, n_networks=24, optimizer="sgd", max_epochs=400,
                         stop_rule=StopRule.keras(wait=0, runs_per_process=6), return_params=True, progress=False,
                         **KW)
    z = model.forward_shared([p for p in res.params], X)
    by_sign = ((z > 0).long() == y).all(1).numpy()
    by_half = ((z > 0.5).long() == y).all(1).numpy()
    np.testing.assert_array_equal(res.fits_by_sign, by_sign)
    np.testing.assert_array_equal(res.counted, (res.status == "fitted") & by_half)
    assert torch.equal(res.test_labels, model.forward_shared(res.params, Xe) > 0)
    assert res.summary()["n_counted_not_fitting_by_sign"] == int((res.counted & ~by_sign).sum())


def test_clean_rule_is_the_default_and_unchanged():
    X, y, Xe = boolean_data(seed=5)
    model = FCN(5, (16,), sigma_w=1.0, sigma_b=0.1)
    kw = dict(n_networks=4, seed=1, optimizer="sgd", lr=0.1, batch_size=4, max_epochs=300, overtrain_epochs=2,
              return_params=True, progress=False)
    default, named, built = (train_ensemble(model, X, y, Xe, stop_rule=r, **kw)
                             for r in (None, "clean", StopRule.clean()))
    for other in (named, built):
        np.testing.assert_array_equal(other.epochs_trained, default.epochs_trained)
        assert torch.equal(other.test_labels, default.test_labels)
    assert (default.stop_floor == -1).all() and (default.process == -1).all()
    np.testing.assert_array_equal(default.epochs_trained, default.epochs_to_fit + 2)
    assert default.fits_by_sign[default.counted].all()


def test_top_mass_standard_error():
    """Independent runs: SE² = p(1 − p)/(n − 1); clustered runs: the ratio estimator's variance over processes,
    recomputed here from per-process counts."""
    X, y, Xe = boolean_data(seed=6)
    model = FCN(5, (8,), sigma_w=1.0, sigma_b=1.0)
    res = train_ensemble(model, X, y, Xe, n_networks=30, optimizer="sgd", max_epochs=300,
                         stop_rule=StopRule.keras(wait=1, runs_per_process=5), progress=False, **KW)
    keep = res.counted
    rows = [bytes(r) for r in res.test_labels.numpy().astype(np.uint8)]
    kept = [r for r, k in zip(rows, keep, strict=True) if k]
    top = max(set(kept), key=kept.count)
    hit = np.array([r == top for r in rows]) & keep
    n = keep.sum()
    a = np.array([hit[res.process == p].sum() for p in range(6)], float)
    m = np.array([keep[res.process == p].sum() for p in range(6)], float)
    mass = a.sum() / n
    se = math.sqrt(6 / 5 * ((a - mass * m) ** 2).sum()) / n
    got = res.top_mass(1)
    assert got[0] == pytest.approx(mass) and got[1] == pytest.approx(se)
    # followers only: the same computation without each process's leader
    follow = keep & ~res.leader
    kept_f = [r for r, k in zip(rows, follow, strict=True) if k]
    top_f = max(set(kept_f), key=kept_f.count)
    assert res.top_mass(1, leaders=False)[0] == pytest.approx(kept_f.count(top_f) / follow.sum())
    assert res.function_counts(leaders=False).total == follow.sum() == keep.sum() - res.leader[keep].sum()
    res.process = np.full(res.n_networks, -1)  # as if independent
    assert res.top_mass(1)[1] == pytest.approx(math.sqrt(mass * (1 - mass) / (n - 1)))


# --------------------------------------------------------------------------------------------------------------------
# argument errors, all before any training
# --------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rule,match", [
    ("keras2", "unknown stop rule 'keras2'; allowed: 'clean', 'keras'"),
    (3, "unknown stop rule 3"),
    (dict(kind="sign"), "unknown stop rule 'sign'; allowed: clean, keras"),
    (dict(kind="keras", threshold=float("nan")), "threshold must be a finite number, got nan"),
    (dict(kind="keras", threshold="0.5"), "threshold must be a finite number"),
    (dict(kind="keras", wait=-1), "wait must be an int >= 0, got -1"),
    (dict(kind="keras", wait=1.5), "wait must be an int >= 0, got 1.5"),
    (dict(kind="keras", runs_per_process=0), "runs_per_process must be an int >= 1, got 0"),
    (dict(kind="keras", shared_callback="yes"), "shared_callback must be True or False"),
    (dict(kind="keras", label_threshold=float("inf")), "label_threshold must be a finite number"),
    (dict(kind="clean", wait=2), r"clean stop rule takes no \['wait'\]"),
    (dict(kind="clean", threshold=0.5), r"clean stop rule takes no \['threshold'\]"),
])
def test_bad_stop_rules(rule, match):
    X, y, Xe = boolean_data()
    with pytest.raises(ValueError, match=match):
        stop_rule = StopRule(**rule) if isinstance(rule, dict) else rule
        # a job far too large to run: the error must come before any training
        train_ensemble(FCN(5, (4,)), X, y, Xe, n_networks=10**9, stop_rule=stop_rule, progress=False)


def test_keras_rule_rejects_overtrain_epochs():
    X, y, Xe = boolean_data()
    with pytest.raises(ValueError, match=r"StopRule.keras\(wait=64\)"):
        train_ensemble(FCN(5, (4,)), X, y, Xe, n_networks=10**9, stop_rule="keras", overtrain_epochs=64,
                       progress=False)


def test_stop_rule_constructors():
    assert as_stop_rule("keras") == StopRule.keras() == StopRule("keras")
    k = StopRule.keras()
    assert (k.threshold, k.wait, k.shared_callback, k.runs_per_process, k.label_threshold) == (
        0.5, 1, True, KERAS_RUNS_PER_PROCESS, 0.0)
    assert as_stop_rule(None) == as_stop_rule("CLEAN") == StopRule.clean()
    assert StopRule.keras(wait=64, runs_per_process=10).describe().count("64") == 1
    g = np.array([0, 4, 5, 14])
    proc, pos = process_layout(g, 5)
    np.testing.assert_array_equal(proc, [0, 0, 1, 2])
    np.testing.assert_array_equal(pos, [0, 4, 0, 4])


# --------------------------------------------------------------------------------------------------------------------
# statistics: the Keras rule concentrates P_SGD (the authors' set-up, a few hundred networks)
# --------------------------------------------------------------------------------------------------------------------
def test_keras_rule_concentrates_more_than_clean_rule():
    """The authors' Boolean set-up (target 7 on mask A, 7→40→40→1, σ_w = σ_b = 1, SGD lr 0.01, batch 8, CE):
    the top-1 mass under the Keras rule exceeds the clean rule's by more than 5 standard errors (the facts file's
    emulation: ≈ 0.64 against ≈ 0.17), every clean counted run fits S by sign, and some Keras ones do not."""
    sp = mingard_split(7)
    model = FCN(7, (40, 40), sigma_w=1.0, sigma_b=1.0)
    kw = dict(n_networks=160, seed=11, optimizer="sgd", lr=0.01, loss="ce", batch_size=8, max_epochs=3000,
              progress=False)
    keras = train_ensemble(model, sp.x_train, sp.y_train, sp.x_test,
                           stop_rule=StopRule.keras(wait=1, runs_per_process=10), **kw)
    clean = train_ensemble(model, sp.x_train, sp.y_train, sp.x_test, stop_rule="clean", **kw)
    (mk, sk), (mc, sc) = keras.top_mass(1), clean.top_mass(1)
    assert mk - mc > 5 * math.hypot(sk, sc), (mk, sk, mc, sc)
    assert keras.summary()["n_counted_not_fitting_by_sign"] > 0
    assert clean.summary()["n_counted_not_fitting_by_sign"] == 0
    # the Keras rule trains longer: every follower at least to its process's floor
    assert keras.summary()["mean_epochs_trained"] > clean.summary()["mean_epochs_trained"]
