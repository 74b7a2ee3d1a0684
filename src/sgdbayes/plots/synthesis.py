"""Figures of the synthesis chapter. Each function takes computed results and returns a Figure."""

from __future__ import annotations

import numpy as np

from sgdbayes.plots import PALETTE, new_figure

__all__ = ["averaging_distances", "baseline_comparison", "local_covariances", "temperature_panels"]


def _loglog_identity(ax, lo, hi):
    ax.plot([lo, hi], [lo, hi], color="0.5", lw=1, ls="--", zorder=0)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)


def baseline_comparison(p_mcmc, se_mcmc, p_direct, se_direct, p_ep, marg_mcmc, marg_se, marg_ep, marg_direct):
    """(a) P(f|S) of the finite network by MCMC (0–1 reweighted) against direct prior sampling, (b) against EP on
    the NNGP, for the functions MCMC visits most and resolves (standard error below half the estimate); (c) each
    test input's posterior marginal P(f_j = 1 | S)."""
    fig, axes = new_figure(3, 1, width=2.9, height=2.9)
    a, b, c = axes[0]
    lo = 10 ** np.floor(np.log10(max(min(np.nanmin(p_mcmc[p_mcmc > 0]), np.nanmin(p_ep[p_ep > 0])), 1e-8)))
    resolved = se_mcmc < 0.5 * p_mcmc  # MCMC's own estimate within ±50%
    for ax, other, err, name, col in ((a, p_direct, se_direct, "direct sampling", PALETTE[1]),
                                      (b, p_ep, None, "EP (NNGP)", PALETTE[2])):
        ok = (other > 0) & (p_mcmc > 0) & resolved
        ax.errorbar(other[ok], p_mcmc[ok], yerr=se_mcmc[ok], xerr=None if err is None else err[ok], fmt="o", ms=3,
                    color=col, ecolor="0.6", elinewidth=0.8)
        miss = (~(other > 0)) & (p_mcmc > 0) & resolved
        if miss.any():
            ax.scatter(np.full(miss.sum(), lo * 1.5), p_mcmc[miss], marker="<", s=12, color=col, alpha=0.6,
                       label=f"{int(miss.sum())} unseen by {name.split()[0]}")
            ax.legend(loc="lower right", fontsize=9, frameon=False)
        _loglog_identity(ax, lo, 1.0)
        ax.set_xlabel(f"P(f|S), {name}")
    a.set_ylabel("P(f|S), MCMC (network)")
    a.set_title("(a) two samplers")
    b.set_title("(b) network vs NNGP")
    c.errorbar(marg_ep, marg_mcmc, yerr=marg_se, fmt="o", ms=3, color=PALETTE[0], ecolor="0.6", elinewidth=0.8,
               label="MCMC vs EP")
    if marg_direct is not None:
        c.scatter(marg_ep, marg_direct, s=10, marker="x", color=PALETTE[1], label="direct vs EP")
    c.plot([0, 1], [0, 1], color="0.5", lw=1, ls="--", zorder=0)
    c.set_xlim(0, 1)
    c.set_ylim(0, 1)
    c.set_xlabel("P(f_j = 1 | S), EP")
    c.set_ylabel("P(f_j = 1 | S), sampled")
    c.set_title("(c) marginals on E")
    c.legend(loc="upper left", fontsize=9, frameon=False)
    return fig


def temperature_panels(df, *, keras=None, pb_top1=None, pb_error=None):
    """Statistics of P_SGD against the SGD temperature η/b, one colour and marker per batch size: (a) top-1 mass,
    (b) mean test error, (c) KL(P_SGD ‖ P_B) on the functions seen ≥ 10 times, (d) fraction of networks that fit S.
    ``df``: the clean stop rule (filled markers, solid); ``keras``: the authors' rule (hollow markers, dashed).
    ``pb_top1`` / ``pb_error``: (value, standard error) of the posterior's own, drawn as bands."""
    fig, axes = new_figure(2, 2, width=4.2, height=3.0)
    markers = ["o", "s", "^", "D", "v"]
    batches = sorted(df["batch"].unique())
    panels = [("top1", "top-1 mass", pb_top1), ("mean_error", "mean test error", pb_error),
              ("kl", "KL(P_SGD ‖ P_B) on support", None), ("fit_fraction", "fraction fitting S", None)]
    sets = [(df, "-", "", None)] + ([(keras, "--", " (Keras rule)", "none")] if keras is not None else [])
    for ax, (col, label, band) in zip(axes.ravel(), panels, strict=True):
        for data, ls, suffix, face in sets:
            for k, b in enumerate(batches):
                d = data[data["batch"] == b].sort_values("eta_over_b")
                if col not in d:
                    continue
                se = d[f"{col}_se"] if f"{col}_se" in d else None
                ax.errorbar(d["eta_over_b"], d[col], yerr=se, marker=markers[k % len(markers)], ms=4, lw=1, ls=ls,
                            color=PALETTE[k], mfc=face, label=f"b = {b}{suffix}", capsize=2)
        if band is not None:
            v, s = band
            ax.axhspan(v - 2 * s, v + 2 * s, color="0.8", alpha=0.6, lw=0)
            ax.axhline(v, color="0.3", lw=1, ls=":", label="P_B (MCMC)")
        ax.set_xscale("log")
        ax.set_xlabel("η / b")
        ax.set_ylabel(label)
    axes[1, 1].set_ylim(-0.02, 1.05)
    axes[0, 0].legend(fontsize=9, frameon=False)
    return fig


def local_covariances(pic, comparisons: dict):
    """(a) Spectra at the solution: the nonzero eigenvalues of C and all eigenvalues of A (Gauss–Newton).
    (b) Variance along each direction of the range of C (the eigenvectors of the Lyapunov prediction there):
    constant SGD against the prediction, one colour per rate. (c) Total variance in the range and in the null space
    of C: constant SGD, Lyapunov, Laplace."""
    fig, axes = new_figure(3, 1, width=2.9, height=2.9)
    a, b, c = axes[0]
    lamC = np.clip(pic.C_spectrum, 1e-30, None)
    a.semilogy(np.arange(1, lamC.size + 1), lamC, "o", ms=3, color=PALETTE[0], label="C (nonzero part)")
    a.semilogy(np.arange(1, pic.A_eigvals.size + 1), np.sort(pic.A_eigvals)[::-1], "-", lw=1.5, color=PALETTE[3],
               label="A (Gauss–Newton)")
    a.axvline(pic.C_rank, color="0.4", ls=":", lw=1)
    a.set_xscale("log")
    a.set_xlabel("index")
    a.set_ylabel("eigenvalue")
    a.set_title(f"(a) rank C = {pic.C_rank} of D = {pic.D:,}")
    a.legend(fontsize=9, frameon=False, loc="lower left")
    lo, hi = np.inf, 0.0
    for k, (label, cmp) in enumerate(comparisons.items()):
        pred = cmp["lyap_range_discrete"] if np.isfinite(cmp["tr_lyap_discrete_range"]) else cmp["lyap_range"]
        w, V = np.linalg.eigh(pred)
        emp = np.einsum("ij,jk,ki->i", V.T, cmp["emp_range"], V)
        if not np.all(np.isfinite(emp)):
            continue
        b.loglog(w, emp, "o", ms=3, color=PALETTE[k], label=label)
        lo, hi = min(lo, w.min(), emp.min()), max(hi, w.max(), emp.max())
    if hi > 0:
        _loglog_identity(b, lo / 2, hi * 2)
    b.set_xlabel("variance, Lyapunov prediction")
    b.set_ylabel("variance, constant SGD")
    b.set_title("(b) in the range of C")
    b.legend(fontsize=9, frameon=False, loc="lower right")
    first = next(iter(comparisons.values()))
    names = ["SGD, range", "SGD, null", "Lyapunov, range", "Lyapunov, null", "Laplace, range", "Laplace, null"]
    for k, (label, cmp) in enumerate(comparisons.items()):
        vals = [cmp["tr_emp_range"], cmp["tr_emp_null"], cmp["tr_lyap_range"], cmp["tr_lyap_null"]]
        c.scatter(vals, np.arange(4), color=PALETTE[k], s=18, label=label, zorder=3)
    c.scatter([first["tr_laplace_range"], first["tr_laplace_null"]], [4, 5], color="0.2", marker="s", s=18,
              label="Laplace", zorder=3)
    c.set_yticks(np.arange(6))
    c.set_yticklabels(names)
    c.set_xscale("log")
    c.invert_yaxis()
    c.set_xlabel("total variance (trace)")
    c.set_title("(c) where the variance is")
    return fig


def averaging_distances(distances: dict, n_bits: int):
    """Cumulative distribution of the Hamming distance (on E) between each network's labelling and a reference
    labelling, one line per kind of network (e.g. solution, last iterate, Polyak average, IASG sample); the x axis
    stops at the 99th percentile of the largest distances."""
    fig, axes = new_figure(1, 1, width=5.6, height=3.0)
    ax = axes[0, 0]
    top = max(int(max(np.percentile(d, 99) for d in distances.values() if len(d))), 2)
    x = np.arange(0, top + 1)
    for k, (label, d) in enumerate(distances.items()):
        d = np.asarray(d)
        ax.step(x, [(d <= v).mean() for v in x], where="post", color=PALETTE[k], lw=1.5, label=label)
    ax.set_xlim(-0.3, top)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(f"bits of E (of {n_bits}) that differ from the posterior-majority labelling")
    ax.set_ylabel("fraction of networks within")
    ax.legend(fontsize=9, frameon=False, loc="lower right")
    return fig
