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
    ``pb_top1`` / ``pb_error``: (value, standard error) of the posterior's own, drawn as a line and a ±2 s.e. band.
    The legend sits under the panels."""
    fig, axes = new_figure(2, 2, width=3.4, height=2.5, sharex="all")
    markers = ["o", "s", "^", "D", "v"]
    batches = sorted(df["batch"].unique())
    panels = [("top1", "(a) top-1 mass", pb_top1), ("mean_error", "(b) mean test error", pb_error),
              ("kl", "(c) KL(P_SGD ‖ P_B) on support", None), ("fit_fraction", "(d) fraction fitting S", None)]
    sets = [(df, "-", "", None)] + ([(keras, "--", ", Keras rule", "none")] if keras is not None else [])
    handles, labels = [], []
    for ax, (col, title, band) in zip(axes.ravel(), panels, strict=True):
        for data, ls, suffix, face in sets:
            for k, b in enumerate(batches):
                d = data[data["batch"] == b].sort_values("eta_over_b")
                if col not in d:
                    continue
                se = d[f"{col}_se"] if f"{col}_se" in d else None
                h = ax.errorbar(d["eta_over_b"], d[col], yerr=se, marker=markers[k % len(markers)], ms=4, lw=1,
                                ls=ls, color=PALETTE[k], mfc=face, capsize=2)
                if ax is axes[0, 0]:
                    handles.append(h)
                    labels.append(f"b = {b}{suffix}")
        if band is not None:
            v, s = band
            ax.axhspan(v - 2 * s, v + 2 * s, color="0.8", alpha=0.6, lw=0)
            line = ax.axhline(v, color="0.3", lw=1, ls=":")
            if ax is axes[0, 0]:
                handles.append(line)
                labels.append("network posterior P_B (MCMC)")
        ax.set_xscale("log")
        ax.set_title(title)
    for ax in axes[1]:
        ax.set_xlabel("η / b")
    axes[1, 1].set_ylim(-0.02, 1.05)
    fig.legend(handles, labels, loc="outside lower center", ncol=2 if keras is not None else 4, frameon=False)
    return fig


def local_covariances(pic, comparisons: dict, runs: dict):
    """Mandt's picture at one mode, 2×2. (a) Spectra: the nonzero eigenvalues of C and all eigenvalues of A
    (Gauss–Newton). (b) Variance along each principal direction of the Lyapunov prediction in the range of C:
    constant SGD against the prediction, one colour per rate. (c) Total variance in the range and in the null space
    of C: constant SGD (filled), Lyapunov (hollow), Laplace (square). (d) Mean ‖θ − θ*‖² along the runs (chains that
    did not diverge). ``comparisons`` and ``runs``: label → :func:`covariance_comparison` / ``ConstantSGDRun``."""
    fig, axes = new_figure(2, 2, width=3.4, height=2.6)
    a, b, c, d = axes.ravel()
    lamC = np.clip(pic.C_spectrum, 1e-30, None)
    a.loglog(np.arange(1, lamC.size + 1), lamC, "o", ms=3, color=PALETTE[0])
    lamA = np.sort(pic.A_eigvals)[::-1]
    a.loglog(np.arange(1, lamA.size + 1), lamA, "-", lw=1.5, color=PALETTE[3])
    a.axvline(pic.C_rank, color="0.4", ls=":", lw=1)
    a.text(lamA.size, lamA[-1] * 3, "A", color=PALETTE[3], ha="right", va="bottom")
    a.text(2, lamC[1] * 1e-4, "C", color=PALETTE[0], ha="left", va="top")
    a.set_xlabel("index")
    a.set_ylabel("eigenvalue")
    a.set_title(f"(a) rank C = {pic.C_rank} of D = {pic.D:,}")
    lo, hi = np.inf, 0.0
    for k, (label, cmp) in enumerate(comparisons.items()):
        pred = cmp["lyap_range_discrete"] if np.isfinite(cmp["tr_lyap_discrete_range"]) else cmp["lyap_range"]
        w, V = np.linalg.eigh(pred)
        emp = np.einsum("ij,jk,ki->i", V.T, cmp["emp_range"], V)
        if not np.all(np.isfinite(emp)):
            continue
        keep = (w > 0) & (emp > 0)
        b.loglog(w[keep], emp[keep], "o", ms=3, color=PALETTE[k], label=label)
        lo, hi = min(lo, w[keep].min(), emp[keep].min()), max(hi, w[keep].max(), emp[keep].max())
    if hi > 0:
        _loglog_identity(b, lo / 2, hi * 2)
    b.set_xlabel("Lyapunov prediction")
    b.set_ylabel("constant SGD")
    b.set_title("(b) variances in range(C)")
    for k, (label, cmp) in enumerate(comparisons.items()):
        c.scatter([cmp["tr_emp_range"], cmp["tr_emp_null"]], [0, 1], color=PALETTE[k], s=22, zorder=3)
        c.scatter([cmp["tr_lyap_range"], cmp["tr_lyap_null"]], [0, 1], facecolor="none", edgecolor=PALETTE[k],
                  s=40, zorder=3)
    first = next(iter(comparisons.values()))
    c.scatter([first["tr_laplace_range"], first["tr_laplace_null"]], [0, 1], color="0.2", marker="s", s=22,
              zorder=3)
    c.set_yticks([0, 1])
    c.set_yticklabels(["range(C)", "null(C)"])
    c.set_ylim(1.5, -0.5)
    c.set_xscale("log")
    c.set_xlabel("total variance (trace)")
    c.set_title("(c) SGD ●, Lyapunov ○, Laplace ■")
    for k, (label, run) in enumerate(runs.items()):
        use = ~run.diverged
        if not use.any():
            continue
        steps = run.burn_in + run.thin * np.arange(1, run.sq_dev.shape[1] + 1)
        d.semilogy(steps, run.sq_dev[use].mean(0), color=PALETTE[k], lw=1.5, label=label)
    d.set_xlabel("step")
    d.set_ylabel("mean ‖θ − θ*‖²")
    d.set_title("(d) distance from the mode")
    handles, labels = b.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), frameon=False)
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
