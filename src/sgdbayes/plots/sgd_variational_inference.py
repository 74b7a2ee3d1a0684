"""Figures of the chapter "SGD performs variational inference" (Chaudhari & Soatto 2018). Each takes results and
returns a Figure; computation lives in :mod:`sgdbayes.noise` and :mod:`sgdbayes.sde`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
import torch

from sgdbayes.plots import PALETTE, new_figure


def spectra_histograms(spectra: dict[str, dict[float, "object"]]):
    """Histograms of log10 of the nonzero eigenvalues of D, one panel per network, one colour per checkpoint."""
    fig, axes = new_figure(ncols=len(spectra), width=4.4, height=3.4)
    for ax, (name, by_frac) in zip(axes[0], spectra.items()):
        lo = min(np.log10(s.nonzero.min()) for s in by_frac.values() if s.nonzero.size)
        hi = max(np.log10(s.nonzero.max()) for s in by_frac.values() if s.nonzero.size)
        bins = np.linspace(lo, hi, 30)
        for i, (frac, s) in enumerate(sorted(by_frac.items())):
            ax.hist(np.log10(s.nonzero), bins=bins, histtype="step", lw=2, color=PALETTE[i],
                    label=f"{frac:.0%} of training (rank {s.rank_fraction:.2%} of d)")
        d = next(iter(by_frac.values())).d
        ax.set(title=f"{name} (d = {d:,})", xlabel=r"$\log_{10}\lambda(D)$ (loss² per unit weight²)",
               ylabel="number of eigenvalues", yscale="log")
        ax.legend(fontsize="xx-small", loc="best")
    return fig


def temperature_panels(df: pd.DataFrame):
    """Stationary train loss and test error per (η, b), coloured by η/b; mean ± sd over seeds."""
    d = df.copy()
    d["config"] = [f"η={lr:g}\nb={b}" for lr, b in zip(d.lr, d.batch_size)]
    d["η/b"] = [f"{r:.4g}" for r in d.ratio]
    order = d.sort_values(["ratio", "lr"]).config.unique()
    fig, axes = new_figure(ncols=2, width=5.2, height=3.6)
    for ax, col, lab in zip(axes[0], ["loss", "test_error"], ["stationary train loss (nats)", "test error (fraction)"]):
        sns.pointplot(data=d, x="config", y=col, hue="η/b", order=order, errorbar="sd", capsize=0.15,
                      linestyle="none", ax=ax, palette="colorblind")
        sns.stripplot(data=d, x="config", y=col, hue="η/b", order=order, ax=ax, palette="colorblind", alpha=0.35,
                      legend=False, size=4)
        ax.set(xlabel="learning rate η and batch size b", ylabel=lab)
        ax.tick_params(axis="x", labelsize="x-small")
    axes[0][1].get_legend().remove()
    axes[0][0].legend(title="η/b", fontsize="x-small", title_fontsize="x-small")
    return fig


def _grid(lim: float, n: int):
    s = np.linspace(-lim, lim, n)
    xx, yy = np.meshgrid(s, s, indexing="xy")
    return s, xx, yy, torch.tensor(np.stack([xx, yy], -1))


def double_well_panels(wells: list, finals: list[torch.Tensor], cycles: list[np.ndarray | None], lim: float = 2.2):
    """Row 1: particles (2-D histogram) with contours of e^{−Φ}/Z, the current λJ^ss/Z (arrows) and the noise-free
    path (line). Row 2: the x₁ marginal of the particles against the analytic one."""
    k = len(wells)
    fig, axes = new_figure(ncols=k, nrows=2, width=3.7, height=3.3)
    s, xx, yy, g = _grid(lim, 60)
    sq, qx, qy, gq = _grid(lim * 0.8, 13)
    for i, (dw, fin, cyc) in enumerate(zip(wells, finals, cycles)):
        ax = axes[0][i]
        f = fin.detach().cpu().numpy()
        ax.hist2d(f[:, 0], f[:, 1], bins=50, range=[[-lim, lim], [-lim, lim]], cmap="Greys", density=True)
        ax.contour(xx, yy, dw.density(g).numpy(), levels=6, colors=[PALETTE[0]], linewidths=1)
        cur = dw.current(gq).numpy()
        if np.abs(cur).max() > 0:
            ax.quiver(qx, qy, cur[..., 0], cur[..., 1], color=PALETTE[3], scale=np.abs(cur).max() * 14, width=0.006)
        if cyc is not None:
            ax.plot(cyc[:, 0], cyc[:, 1], color=PALETTE[2], lw=1.5)
        ax.set(title=f"λ = {dw.lam:g}", xlabel="$x_1$ (weight units)", ylabel="$x_2$ (weight units)", aspect="equal",
               xlim=(-lim, lim), ylim=(-lim, lim))
        ax2 = axes[1][i]
        ax2.hist(f[:, 0], bins=60, range=(-lim * 1.2, lim * 1.2), density=True, color="0.6", label="particles")
        t = np.linspace(-lim * 1.2, lim * 1.2, 300)
        ax2.plot(t, dw.marginal_x1(t), color=PALETTE[0], lw=2, label=r"$\int e^{-\Phi}/Z\,dx_2$")
        ax2.set(xlabel="$x_1$ (weight units)", ylabel="density (per unit $x_1$)")
        if i == 0:
            ax2.legend(fontsize="x-small")
    return fig


def linear_panels(sde, samples: torch.Tensor, lim: float | None = None):
    """Left: contours of f = ½xᵀHx and of Φ = ½xᵀUx (scaled to equal trace), particles, the rotating force j.
    Right: covariance ellipses (2 sd) from the Lyapunov equation and from the particles."""
    x = samples.detach().cpu().numpy()
    sig = sde.covariance()
    lim = lim or 3 * np.sqrt(np.diag(sig)).max()
    fig, axes = new_figure(ncols=2, width=4.6, height=4.2)
    ax = axes[0][0]
    s = np.linspace(-lim, lim, 120)
    xx, yy = np.meshgrid(s, s)
    pts = np.stack([xx, yy], -1)
    u, h = sde.U(), sde.F
    fval = 0.5 * np.einsum("...i,ij,...j->...", pts, h / np.trace(h), pts)
    pval = 0.5 * np.einsum("...i,ij,...j->...", pts, u / np.trace(u), pts)
    ax.scatter(x[:2000, 0], x[:2000, 1], s=2, color="0.7", alpha=0.5)
    lv = np.quantile(pval, [0.02, 0.08, 0.2, 0.4])
    c1 = ax.contour(xx, yy, fval, levels=lv, colors=[PALETTE[1]], linestyles="--")
    c2 = ax.contour(xx, yy, pval, levels=lv, colors=[PALETTE[0]])
    q = np.linspace(-lim * 0.8, lim * 0.8, 11)
    qx, qy = np.meshgrid(q, q)
    j = sde.force(np.stack([qx, qy], -1))
    ax.quiver(qx, qy, j[..., 0], j[..., 1], color=PALETTE[3], width=0.005, scale=np.abs(j).max() * 16)
    ax.plot([], [], color=PALETTE[1], ls="--", label="loss f (scaled)")
    ax.plot([], [], color=PALETTE[0], label="potential Φ (scaled)")
    ax.plot([], [], color=PALETTE[3], marker=r"$\rightarrow$", ls="none", label="force j = −QUx")
    ax.legend(fontsize="x-small", loc="lower right")
    ax.set(xlabel="$x_1$ (weight units)", ylabel="$x_2$ (weight units)", aspect="equal", title="f and Φ differ")
    ax = axes[0][1]
    emp = np.cov(x.T)
    t = np.linspace(0, 2 * np.pi, 200)
    circ = np.stack([np.cos(t), np.sin(t)])
    for m, lab, col, ls in [(sig, "Lyapunov Σ", PALETTE[0], "-"), (emp, "particles", PALETTE[1], "--"),
                            (np.linalg.inv(h) * np.trace(sig) / np.trace(np.linalg.inv(h)), "∝ H⁻¹ (if Φ = f)",
                             "0.5", ":")]:
        e = 2 * np.linalg.cholesky(m) @ circ
        ax.plot(e[0], e[1], color=col, ls=ls, lw=2, label=lab)
    ax.set(xlabel="$x_1$ (weight units)", ylabel="$x_2$ (weight units)", aspect="equal",
           title="stationary covariance (2 sd)")
    ax.legend(fontsize="x-small")
    return fig


def trajectory_panels(freq, mean, sd, freq_b, mean_b, sd_b, lags, acf, acf_b, band, steps, grad_norm):
    """FFT of increments, autocorrelation (mean ± sd over weights) with the 99% band, and ‖∇f‖/√d over training;
    SGD against Brownian motion."""
    fig, axes = new_figure(ncols=3, width=4.2, height=3.4)
    ax = axes[0][0]
    for f, m, s_, lab, c in [(freq, mean, sd, "SGD (tiny-fc)", PALETTE[0]), (freq_b, mean_b, sd_b, "Brownian motion", PALETTE[1])]:
        ax.plot(f, m, color=c, label=lab, lw=1.2)
        ax.fill_between(f, np.maximum(m - s_, 1e-3), m + s_, color=c, alpha=0.2)
    ax.set(xscale="log", yscale="log", xlabel="frequency (cycles per epoch)",
           ylabel="power of weight increments\n(per unit variance)", title="spectrum of increments")
    ax.legend(fontsize="x-small")
    ax = axes[0][1]
    for a, lab, c in [(acf, "SGD (tiny-fc)", PALETTE[0]), (acf_b, "Brownian motion", PALETTE[1])]:
        m, s_ = a.mean(1), a.std(1)
        ax.plot(lags, m, color=c, label=lab)
        ax.fill_between(lags, m - s_, m + s_, color=c, alpha=0.2)
    ax.axhspan(-band, band, color="0.6", alpha=0.4, label="99% white-noise band")
    ax.set(xlabel="lag (epochs)", ylabel="autocorrelation of increments", title="autocorrelation")
    ax.legend(fontsize="x-small")
    ax = axes[0][2]
    ax.plot(steps, grad_norm, color=PALETTE[0])
    ax.set(yscale="log", xlabel="epoch", ylabel=r"$\|\nabla f\|/\sqrt{d}$ (loss per weight)",
           title="full-gradient norm")
    return fig


def local_entropy_panel(x: np.ndarray, f: np.ndarray, smoothed: dict[float, np.ndarray]):
    """The loss with a sharp and a wide minimum, and its local entropy for several γ (shifted to min 0)."""
    fig, axes = new_figure(width=6.0, height=3.6)
    ax = axes[0][0]
    ax.plot(x, f - f.min(), color="k", lw=2, label="loss f")
    for i, (gam, fg) in enumerate(sorted(smoothed.items())):
        ax.plot(x, fg - fg.min(), color=PALETTE[i], label=f"local entropy, γ = {gam:g}")
        ax.plot(x[fg.argmin()], 0, "v", color=PALETTE[i], ms=9)
    ax.set(ylim=(-0.2, 4), xlabel="weight x (weight units)", ylabel="value − its minimum (nats)")
    ax.legend(fontsize="x-small")
    return fig
