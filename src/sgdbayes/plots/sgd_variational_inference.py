"""Figures of the chapter "SGD performs variational inference" (Chaudhari & Soatto 2018). Each takes results of
:mod:`sgdbayes.experiments.sgd_variational_inference` and returns a Figure no wider than the page (6.9 in) with
text of at least 9 pt; computation lives in the library."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from sgdbayes.plots import PALETTE, new_figure
from sgdbayes.sde import DoubleWell

#: Widest figure, inches (the page's content column; the book helper's MAX_WIDTH_IN).
WIDTH = 6.9
SMALL = 9  # points: the smallest text in a book figure

__all__ = ["circulation_panels", "double_well_panels", "linear_panels", "local_entropy_panel", "replacement_panels",
           "spectra_histograms", "temperature_panels", "trajectory_panels"]


def _legend(ax, **kw):
    kw.setdefault("fontsize", SMALL)
    kw.setdefault("frameon", False)
    return ax.legend(**kw)


def _below(fig, ax_or_handles, ncol: int = 3):
    """One legend for the figure, centred below the panels."""
    handles, labels = ax_or_handles if isinstance(ax_or_handles, tuple) else ax_or_handles.get_legend_handles_labels()
    return fig.legend(handles, labels, loc="outside lower center", ncol=ncol, fontsize=SMALL, frameon=False)


def _pow10(x: float) -> str:
    """``10⁻³``-style text for a power of ten."""
    e = int(round(np.log10(x)))
    sup = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
    return f"10{str(e).translate(sup)}"


def _log_ticks(axis, values=(0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100)) -> None:
    """Label a log axis at 1-2-5 steps in plain numbers (no overlapping minor labels)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

    lo, hi = sorted(axis.get_view_interval())
    ticks = [v for v in values if lo <= v <= hi]
    if len(ticks) > 6:
        ticks = [v for v in ticks if str(v).lstrip("0.").startswith("1")]
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_locator(NullLocator())
    axis.set_minor_formatter(NullFormatter())


def spectra_histograms(runs: dict):
    """One panel per network: the distribution of log10 λ over the eigenvalues of D above the rank threshold, at
    each checkpoint (20/40/100% of training); one shared legend below."""
    k = len(runs)
    fig, axes = new_figure(ncols=k, width=WIDTH / k, height=2.9)
    handles = None
    for ax, (name, r) in zip(axes[0], runs.items(), strict=True):
        specs = [r.spectrum(i) for i in range(len(r.fractions))]
        vals = [np.log10(s.nonzero) for s in specs if s.nonzero.size]
        lo, hi = min(v.min() for v in vals), max(v.max() for v in vals)
        bins = np.linspace(lo, hi, 25)
        for i, (frac, s) in enumerate(zip(r.fractions, specs, strict=True)):
            ax.hist(np.log10(s.nonzero), bins=bins, histtype="step", lw=1.8, color=PALETTE[i],
                    label=f"{frac:.0%} of training")
        ax.set_yscale("log")
        ax.set_title(f"{name}, d = {r.d:,}", fontsize=10)
        ax.set_xlabel(r"$\log_{10}\lambda(D)$ (loss² per weight²)")
        ax.set_ylabel("number of eigenvalues")
        handles = ax.get_legend_handles_labels()
    fig.legend(*handles, loc="outside lower center", ncol=3, fontsize=SMALL, frameon=False)
    return fig


def temperature_panels(df: pd.DataFrame, table: pd.DataFrame):
    """(a) stationary train loss per (η, b), mean and 95% interval over paired replicas, coloured by η/b;
    (b) every pair's paired difference with its 90% interval (the TOST interval) and the ± margin band."""
    from sgdbayes.noise.statistics import mean_ci

    fig, axes = new_figure(ncols=2, width=WIDTH / 2, height=3.4)
    ax = axes[0][0]
    cfgs = df.groupby(["lr", "batch_size"]).loss.apply(lambda v: v.to_numpy()).reset_index()
    cfgs["ratio"] = cfgs.lr / cfgs.batch_size
    cfgs = cfgs.sort_values(["ratio", "lr"]).reset_index(drop=True)
    ratios = sorted(cfgs.ratio.round(12).unique())
    colours = {r: PALETTE[i % len(PALETTE)] for i, r in enumerate(ratios)}
    for i, row in cfgs.iterrows():
        e = mean_ci(row.loss)
        c = colours[round(row.ratio, 12)]
        ax.errorbar([i], [e.value], yerr=[[e.value - e.lo], [e.hi - e.value]], fmt="o", color=c, capsize=3)
        ax.scatter(np.full(row.loss.size, i) + np.linspace(-0.15, 0.15, row.loss.size), row.loss, s=8, color=c,
                   alpha=0.35)
    ax.set_xticks(range(len(cfgs)), [f"{lr:g}\n{b}" for lr, b in zip(cfgs.lr, cfgs.batch_size, strict=True)])
    ax.set_xlabel("η (top), b (bottom)")
    ax.set_ylabel("stationary train loss (nats)")
    for r, c in colours.items():
        ax.plot([], [], "o", color=c, label=f"η/b = {r:g}")
    _legend(ax, loc="upper left", ncol=1, handletextpad=0.2, borderaxespad=0.2)
    ax.set_title("(a) loss per (η, b)", fontsize=10)
    ax = axes[0][1]
    t = table.reset_index(drop=True)
    y = np.arange(len(t))[::-1]
    ax.axvspan(-1, 1, color="0.88", lw=0)
    ax.axvline(0, color="0.4", lw=0.8)
    for yi, (_, row) in zip(y, t.iterrows(), strict=True):
        same = row.expected == "equal"
        m = row["margin ±"]
        v, lo, hi = row["mean A − B"] / m, row["90% CI low"] / m, row["90% CI high"] / m
        ax.errorbar([v], [yi], xerr=[[v - lo], [hi - v]], fmt="o" if same else "s",
                    color=PALETTE[2] if same else PALETTE[3], capsize=3, ms=5)

    def short(cfg: str) -> str:
        lr, b = cfg.replace("η = ", "").split(", b = ")
        return f"{lr}/{b}"

    ax.set_yticks(y, [f"{short(a)} vs {short(b)}" for a, b in zip(t["configuration A"], t["configuration B"],
                                                                  strict=True)])
    ax.tick_params(axis="y", labelsize=SMALL)
    ax.set_xlabel("paired difference A − B / margin")
    ax.set_ylabel("pair (η/b of A vs B)")
    ax.set_title("(b) pairs: 90% interval", fontsize=10)
    handles = [ax.errorbar([], [], xerr=[], fmt="o", color=PALETTE[2], capsize=3),
               ax.errorbar([], [], xerr=[], fmt="s", color=PALETTE[3], capsize=3),
               Patch(color="0.88")]
    _below(fig, (handles, ["equal η/b (should lie inside)", "different η/b (should differ)",
                           "± equivalence margin"]))
    return fig


def replacement_panels(convex, network):
    """(a) the measured ratio of excess losses (without / with replacement) with its 95% interval, for least squares
    and the network, against (N − b)/(N − 1) and least squares' exact value; (b) the network's excess loss over the
    full-batch run along the window, both schemes (mean over replicas)."""
    fig, axes = new_figure(ncols=2, width=WIDTH / 2, height=3.0)
    ax = axes[0][0]
    rows = [("least squares", convex.ratio, convex.factor, convex.exact_without / convex.exact_with),
            ("network", network.ratio, network.factor, None)]
    for i, (name, est, c, exact) in enumerate(rows):
        ax.errorbar([est.value], [i], xerr=[[est.value - est.lo], [est.hi - est.value]], fmt="o", color=PALETTE[0],
                    capsize=4, label="measured, 95% CI" if i == 0 else None)
        ax.plot([c], [i], "|", color=PALETTE[3], ms=18, mew=2, label="(N − b)/(N − 1)" if i == 0 else None)
        if exact is not None:
            ax.plot([exact], [i], "x", color="k", ms=8, label="exact (discrete SGD)")
    ax.set_yticks([0, 1], [f"{r[0]}\nN = {m.n}, b = {m.b}" for r, m in zip(rows, (convex, network), strict=True)])
    ax.set_ylim(-0.6, 1.6)
    ax.set_xlabel("excess loss without / with")
    ax.set_title("(a) ratio of excess losses", fontsize=10)
    first = ax.get_legend_handles_labels()
    ax = axes[0][1]
    scale = 10.0 ** np.floor(np.log10(max(np.abs(network.curve_with).max(), 1e-300)))
    ax.plot(network.steps, network.curve_with / scale, color=PALETTE[4], label="with replacement")
    ax.plot(network.steps, network.curve_without / scale, color=PALETTE[1], label="without replacement")
    ax.axhline(0, color="0.4", lw=0.8)
    ax.set_xlabel("SGD step after the shared start")
    ax.set_ylabel(f"loss − full-batch loss (×{_pow10(scale)} nats)")
    ax.set_title("(b) network, mean of replicas", fontsize=10)
    second = ax.get_legend_handles_labels()
    _below(fig, (first[0] + second[0], first[1] + second[1]), ncol=3)
    return fig


def _grid(lim: float, n: int):
    s = np.linspace(-lim, lim, n)
    xx, yy = np.meshgrid(s, s, indexing="xy")
    return s, xx, yy, torch.tensor(np.stack([xx, yy], -1))


def double_well_panels(lams, finals: np.ndarray, cycles: list, lim: float = 2.2):
    """Row 1, per λ: particles (2-D histogram) with contours of e^{−Φ}/Z, the current λJ^ss/Z (arrows) and the
    noise-free path (line). Row 2: the x₁ marginal of the particles against the analytic one."""
    k = len(lams)
    fig, axes = new_figure(ncols=k, nrows=2, width=WIDTH / k, height=WIDTH / k * 0.95)
    _, xx, yy, g = _grid(lim, 60)
    _, qx, qy, gq = _grid(lim * 0.8, 11)
    for i, (lam, fin, cyc) in enumerate(zip(lams, finals, cycles, strict=True)):
        dw = DoubleWell(float(lam))
        ax = axes[0][i]
        ax.hist2d(fin[:, 0], fin[:, 1], bins=40, range=[[-lim, lim], [-lim, lim]], cmap="Greys", density=True)
        ax.contour(xx, yy, dw.density(g).numpy(), levels=5, colors=[PALETTE[0]], linewidths=1)
        cur = dw.current(gq).numpy()
        if np.abs(cur).max() > 0:
            ax.quiver(qx, qy, cur[..., 0], cur[..., 1], color=PALETTE[3], scale=0.08 * 11, width=0.008)
        ax.plot(cyc[:, 0], cyc[:, 1], color=PALETTE[2], lw=1.5)
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", xticks=[-2, 0, 2], yticks=[-2, 0, 2])
        ax.set_title(f"λ = {lam:g}", fontsize=10)
        ax.set_xlabel("$x_1$")
        if i == 0:
            ax.set_ylabel("$x_2$")
        ax2 = axes[1][i]
        ax2.hist(fin[:, 0], bins=50, range=(-2.6, 2.6), density=True, color="0.65", label="particles")
        t = np.linspace(-2.6, 2.6, 300)
        ax2.plot(t, dw.marginal_x1(t), color=PALETTE[0], lw=1.8, label=r"$\int e^{-\Phi}/Z\,dx_2$")
        ax2.set(ylim=(0, 0.5), xticks=[-2, 0, 2])
        ax2.set_xlabel("$x_1$")
        if i == 0:
            ax2.set_ylabel("density of $x_1$")
    handles = [Patch(color="0.65"),
               Line2D([], [], color=PALETTE[0], lw=1.8),
               Line2D([], [], color=PALETTE[2], lw=1.5),
               Line2D([], [], color=PALETTE[3], marker=">",
                                                                           ls="none")]
    _below(fig, (handles, ["particles", r"$e^{-\Phi}/Z$ and its marginal", "noise-free path",
                           r"current $\lambda J^{ss}/Z$"]), ncol=4)
    return fig


def circulation_panels(table: pd.DataFrame, crit: pd.DataFrame, crit_path: tuple, lam_c: float,
                       shift: pd.DataFrame, shift_curve: tuple):
    """(a) circulation rate and (b) flux through the section, measured (95% CI) against the closed forms; (c) the
    critical point of the drift near Φ's minimum against λ, with the first-order line and λ_c = e^{−1/4};
    (d) the mode of the 1-D SGD diffusion against β⁻¹ (95% CI) with x_Φ(β⁻¹) and the loss minimum x_f."""
    fig, axes = new_figure(ncols=2, nrows=2, width=WIDTH / 2, height=2.7)
    lam = table["λ"].to_numpy()
    for ax, col, exact, title, ylab in (
            (axes[0][0], "circulation", "circulation, closed form", "(a) circulation $E[x_1\\dot x_2 - x_2\\dot x_1]$",
             "rate per unit time"),
            (axes[0][1], "flux", "flux, closed form", "(b) flux through $x_2 = 0,\\ x_1 > a$", "crossings per unit time")):
        ci = table[f"{col} 95% CI"].str.strip("[]").str.split(", ", expand=True).astype(float).to_numpy()
        v = table[col].to_numpy()
        ax.errorbar(lam, v, yerr=[v - ci[:, 0], ci[:, 1] - v], fmt="o", color=PALETTE[0], capsize=4,
                    label="measured, 95% CI")
        grid = np.linspace(0, lam.max() * 1.05, 50)
        slope = table[exact].to_numpy()[-1] / lam[-1] if lam[-1] > 0 else 0.0
        ax.plot(grid, slope * grid, color=PALETTE[3], lw=1.2, label="closed form")
        ax.set_xlabel("rotation strength λ")
        ax.set_ylabel(ylab)
        ax.set_title(title, fontsize=10)
        _legend(ax, loc="upper left")
    ax = axes[1][0]
    lams_path, path = crit_path
    ok = np.isfinite(path[:, 1])
    ax.plot(lams_path[ok], path[ok, 1], color=PALETTE[0], lw=2, label="$x_2^*$ (root of the drift)")
    ax.plot(lams_path, lams_path * np.exp(-0.25), color=PALETTE[3], ls="--", lw=1.2, label=r"first order $\lambda e^{-1/4}$")
    ax.plot(lams_path[ok], np.hypot(path[ok, 0] - 1, path[ok, 1]), color=PALETTE[2], lw=1.2,
            label="distance to Φ's minimum")
    ax.axvline(lam_c, color="0.4", ls=":", lw=1.2)
    ax.text(lam_c, 0.02, r" $\lambda_c = e^{-1/4}$", fontsize=SMALL, va="bottom")
    ax.set(xlim=(0, lams_path.max()), ylim=(0, 1.05))
    ax.set_xlabel("rotation strength λ")
    ax.set_ylabel("position")
    ax.set_title("(c) the minimum of f leaves Φ's", fontsize=10)
    _legend(ax, loc="upper left")
    ax = axes[1][1]
    b = shift["β⁻¹"].to_numpy()
    m = shift["measured mode"].to_numpy()
    ax.errorbar(b, m, yerr=[m - shift["95% CI low"].to_numpy(), shift["95% CI high"].to_numpy() - m], fmt="o",
                color=PALETTE[0], capsize=4, label="measured mode, 95% CI")
    bg, xphi = shift_curve
    ax.plot(bg, xphi, color=PALETTE[3], lw=1.2, label=r"$x_\Phi(\beta^{-1})$ exact")
    ax.axhline(float(shift["loss minimum x_f"].iloc[0]), color="0.4", ls="--", lw=1, label="loss minimum $x_f$")
    ax.set_xlabel(r"temperature $\beta^{-1}$")
    ax.set_ylabel("position $x$")
    ax.set_title("(d) the potential's minimum moves", fontsize=10)
    _legend(ax, loc="upper left")
    return fig


def linear_panels(samples: np.ndarray, sigma: np.ndarray, h: np.ndarray, u: np.ndarray, force, lim: float | None = None):
    """(a) contours of f = ½xᵀHx and of Φ = ½xᵀUx (each scaled to unit trace), particles and the force j;
    (b) 2-sd covariance ellipses from the Lyapunov equation, from the particles, and what Φ = f would give."""
    x = samples
    lim = lim or 3 * np.sqrt(np.diag(sigma)).max()
    fig, axes = new_figure(ncols=2, width=WIDTH / 2, height=WIDTH / 2)
    ax = axes[0][0]
    s = np.linspace(-lim, lim, 120)
    xx, yy = np.meshgrid(s, s)
    pts = np.stack([xx, yy], -1)
    fval = 0.5 * np.einsum("...i,ij,...j->...", pts, h / np.trace(h), pts)
    pval = 0.5 * np.einsum("...i,ij,...j->...", pts, u / np.trace(u), pts)
    ax.scatter(x[:1500, 0], x[:1500, 1], s=2, color="0.7", alpha=0.5)
    lv = np.quantile(pval, [0.02, 0.08, 0.2, 0.4])
    ax.contour(xx, yy, fval, levels=lv, colors=[PALETTE[1]], linestyles="--")
    ax.contour(xx, yy, pval, levels=lv, colors=[PALETTE[0]])
    q = np.linspace(-lim * 0.8, lim * 0.8, 9)
    qx, qy = np.meshgrid(q, q)
    j = force(np.stack([qx, qy], -1))
    ax.quiver(qx, qy, j[..., 0], j[..., 1], color=PALETTE[3], width=0.007, scale=np.abs(j).max() * 12)
    ax.plot([], [], color=PALETTE[1], ls="--", label="loss f")
    ax.plot([], [], color=PALETTE[0], label="potential Φ")
    ax.plot([], [], color=PALETTE[3], marker=r"$\rightarrow$", ls="none", ms=10, label="force j = −QUx")
    _legend(ax, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2)
    ax.set(aspect="equal", xlim=(-lim, lim), ylim=(-lim, lim))
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_title("(a) f and Φ differ", fontsize=10)
    ax = axes[0][1]
    emp = np.cov(x.T)
    t = np.linspace(0, 2 * np.pi, 200)
    circ = np.stack([np.cos(t), np.sin(t)])
    for m, lab, col, ls in [(sigma, "Lyapunov Σ", PALETTE[0], "-"), (emp, "particles", PALETTE[1], "--"),
                            (np.linalg.inv(h) * np.trace(sigma) / np.trace(np.linalg.inv(h)), "if Φ = f (∝ H⁻¹)",
                             "0.5", ":")]:
        e = 2 * np.linalg.cholesky(m) @ circ
        ax.plot(e[0], e[1], color=col, ls=ls, lw=2, label=lab)
    ax.set(aspect="equal", xlim=(-lim, lim), ylim=(-lim, lim))
    ax.set_xlabel("$x_1$")
    ax.set_title("(b) stationary covariance, 2 sd", fontsize=10)
    _legend(ax, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2)
    return fig


def trajectory_panels(res):
    """(a) power spectrum of weight increments (mean over weights, then over replicas; white = 1), (b) their
    autocorrelation with the 99% white-noise band, for SGD, the equilibrium control and Brownian motion;
    (c) the full-gradient norm over the epochs after the burn-in; (d) the low-frequency power per replica."""
    from sgdbayes.experiments.sgd_variational_inference import PROCESSES

    fig, axes = new_figure(ncols=2, nrows=2, width=WIDTH / 2, height=2.7)
    cols = dict(zip(PROCESSES, (PALETTE[0], PALETTE[2], PALETTE[1]), strict=True))
    ax = axes[0][0]
    for p in PROCESSES:
        m = res.spectrum[p].mean(0)
        k = max(1, m.size // 150)  # average neighbouring bins for a readable curve
        mm = m[: m.size // k * k].reshape(-1, k).mean(1)
        ff = res.freq[: m.size // k * k].reshape(-1, k).mean(1)
        ax.plot(ff, mm, color=cols[p], lw=1.3, label=p)
    ax.axvline(res.low_freq, color="0.5", ls=":", lw=1)
    ax.set(xscale="log", yscale="log")
    _log_ticks(ax.xaxis, (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5))
    _log_ticks(ax.yaxis)
    ax.set_xlabel("frequency (cycles per epoch)")
    ax.set_ylabel("power (white = 1)")
    ax.set_title("(a) spectrum of increments", fontsize=10)
    ax = axes[0][1]
    for p in PROCESSES:
        ax.plot(res.lags[1:], res.acf[p].mean(0)[1:], color=cols[p], lw=1.3, label=p)
    ax.axhspan(-res.band, res.band, color="0.85", lw=0, label="99% band of white noise")
    ax.set_xlabel("lag (epochs)")
    ax.set_ylabel("autocorrelation")
    ax.set_title("(b) autocorrelation of increments", fontsize=10)
    legend_items = ax.get_legend_handles_labels()
    ax = axes[1][0]
    gscale = 10.0 ** np.floor(np.log10(res.grad_norm.max()))
    for r in range(res.grad_norm.shape[1]):
        ax.plot(res.epochs, res.grad_norm[:, r] / gscale, color=PALETTE[0], lw=0.8, alpha=0.6)
    ax.set_xlabel("epoch")
    ax.set_ylabel(r"$\|\nabla f\|/\sqrt{d}$" + f" (×{_pow10(gscale)})")
    ax.set_title("(c) full-gradient norm, each replica", fontsize=10)
    ax = axes[1][1]
    for i, p in enumerate(PROCESSES):
        v = res.low_power[p]
        ax.scatter(np.full(v.size, i) + np.linspace(-0.12, 0.12, v.size), v, color=cols[p], s=18)
        ax.plot([i - 0.25, i + 0.25], [v.mean()] * 2, color=cols[p], lw=2)
    ax.axhline(1, color="0.5", ls=":", lw=1)
    ax.set_xticks(range(len(PROCESSES)), ["SGD", "control", "Brownian"])
    ax.set_ylim(bottom=0)
    ax.set_ylabel(f"power below {res.low_freq:.2g}/epoch")
    ax.set_title("(d) low-frequency power", fontsize=10)
    _below(fig, legend_items, ncol=2)
    return fig


def local_entropy_panel(res):
    """The loss with a sharp and a wide minimum and its local entropy for several γ (each shifted to minimum 0)."""
    fig, axes = new_figure(width=WIDTH * 0.75, height=3.0)
    ax = axes[0][0]
    ax.plot(res.x, res.f - res.f.min(), color="k", lw=2, label="loss f")
    for i, (gam, fg) in enumerate(sorted(res.smoothed.items())):
        ax.plot(res.x, fg - fg.min(), color=PALETTE[i], label=f"local entropy, γ = {gam:g}")
        ax.plot(res.x[fg.argmin()], 0, "v", color=PALETTE[i], ms=8)
    ax.set(ylim=(-0.2, 4))
    ax.set_xlabel("weight x")
    ax.set_ylabel("value − its minimum (nats)")
    _legend(ax, loc="upper left")
    return fig
