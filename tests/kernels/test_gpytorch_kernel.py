"""NNGPKernel: equal to the plain functions, and trainable in an ordinary GPyTorch ExactGP."""

import math

import gpytorch
import pytest
import torch

from sgdbayes.kernels import NNGPKernel, nngp_cnn, nngp_fcn

F64 = torch.float64


def _x(n, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    # rows of different norms, so that σ_w and σ_b are separately identifiable
    return torch.randn(n, d, generator=g, dtype=F64) * (0.3 + 2.0 * torch.rand(n, 1, generator=g, dtype=F64))


def test_values_match_functions():
    x, y = _x(30, 5), _x(11, 5, seed=1)
    for phi in ("relu", "erf"):
        kern = NNGPKernel(depth=2, nonlinearity=phi, sigma_w=1.4, sigma_b=0.3)
        kw = dict(depth=2, sigma_w=1.4, sigma_b=0.3, nonlinearity=phi)
        with torch.no_grad():
            torch.testing.assert_close(kern(x).to_dense(), nngp_fcn(x, **kw), rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(kern(x, y).to_dense(), nngp_fcn(x, y, **kw), rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(kern(x, diag=True), torch.diagonal(nngp_fcn(x, **kw)), rtol=1e-12,
                                       atol=1e-12)
        # with gradients on (the training path) the values are the same
        torch.testing.assert_close(kern(x, y).to_dense().detach(), nngp_fcn(x, y, **kw), rtol=1e-12, atol=1e-12)
    assert kern(x.float()).to_dense().dtype == torch.float32


def test_cnn_architecture():
    x = torch.randn(7, 2 * 5 * 5, generator=torch.Generator().manual_seed(2), dtype=F64)
    kern = NNGPKernel(depth=2, architecture="cnn", image_shape=(2, 5, 5), sigma_w=1.2, sigma_b=0.4)
    with torch.no_grad():
        got = kern(x).to_dense()
        diag = kern(x, diag=True)
    want = nngp_cnn(x, depth=2, sigma_w=1.2, sigma_b=0.4, image_shape=(2, 5, 5))
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(diag, torch.diagonal(want), rtol=1e-12, atol=1e-12)


class _GP(gpytorch.models.ExactGP):
    def __init__(self, x, y, likelihood, kernel):
        super().__init__(x, y, likelihood)
        self.mean_module = gpytorch.means.ZeroMean()
        self.covar_module = kernel

    def forward(self, x):
        return gpytorch.distributions.MultivariateNormal(self.mean_module(x), self.covar_module(x))


def _nll(p, x, y, noise):
    """-log N(y; 0, K(σ_w, σ_b) + noise·I) written out directly (no GPyTorch), differentiable in p = (σ_w, σ_b)."""
    k = nngp_fcn(x, depth=2, sigma_w=p[0], sigma_b=p[1]) + noise * torch.eye(len(y), dtype=F64)
    chol = torch.linalg.cholesky(k)
    alpha = torch.cholesky_solve(y[:, None], chol)
    return 0.5 * (y[:, None] * alpha).sum() + torch.log(torch.diagonal(chol)).sum() + 0.5 * len(y) * math.log(
        2 * math.pi)


def _standard_errors(p, x, y, noise, eps=1e-5):
    """√diag(H⁻¹) with H the observed information (Hessian of the NLL by central differences of its gradient)."""
    def grad(q):
        q = q.clone().requires_grad_(True)
        return torch.autograd.grad(_nll(q, x, y, noise), q)[0]

    h = torch.stack([(grad(p + eps * e) - grad(p - eps * e)) / (2 * eps) for e in torch.eye(2, dtype=F64)])
    return torch.sqrt(torch.diagonal(torch.linalg.inv(0.5 * (h + h.T))))


def test_exact_gp_fit_recovers_hyperparameters():
    """Data drawn from the NNGP prior (σ_w, σ_b) = (1.6, 0.5) plus known noise; fitting from (1, 1) in an ordinary
    ExactGP raises the marginal likelihood to at least its value at the truth, agrees with the likelihood written
    out by hand, and lands within 4 standard errors (observed information) of the truth."""
    n, noise, true = 150, 1e-2, (1.6, 0.5)
    x = _x(n, 4, seed=3)
    k = nngp_fcn(x, depth=2, sigma_w=true[0], sigma_b=true[1])
    chol = torch.linalg.cholesky(k + noise * torch.eye(n, dtype=F64))
    y = chol @ torch.randn(n, generator=torch.Generator().manual_seed(4), dtype=F64)

    lik = gpytorch.likelihoods.GaussianLikelihood().double()
    lik.noise = noise
    lik.raw_noise.requires_grad_(False)
    model = _GP(x, y, lik, NNGPKernel(depth=2, sigma_w=1.0, sigma_b=1.0)).double()
    mll = gpytorch.mlls.ExactMarginalLogLikelihood(lik, model)
    model.train()
    lik.train()

    def objective():
        return -mll(model(x), y)

    kern = model.covar_module
    with torch.no_grad():
        start = objective().item()
    opt = torch.optim.LBFGS([kern.raw_sigma_w, kern.raw_sigma_b], lr=1.0, max_iter=40, tolerance_grad=1e-9,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = objective()
        loss.backward()
        return loss

    opt.step(closure)
    fitted = objective().item()
    p_hat = torch.cat([kern.sigma_w.detach().reshape(1), kern.sigma_b.detach().reshape(1)])
    assert abs(fitted * n - _nll(p_hat, x, y, noise).item()) < 1e-8 * n   # GPyTorch's mll is log p(y) / n
    kern.sigma_w, kern.sigma_b = true
    with torch.no_grad():
        at_truth = objective().item()
    assert fitted < start - 1.0, (start, fitted)          # per-datum negative log marginal likelihood
    assert fitted <= at_truth + 1e-8, (fitted, at_truth)  # the fit is a maximum of the likelihood
    se = _standard_errors(p_hat, x, y, noise)
    z = (p_hat - torch.tensor(true, dtype=F64)) / se
    assert z.abs().max() < 4, (p_hat.tolist(), se.tolist())
    assert se[0] < 0.05 * true[0] and se[1] < 0.5 * true[1], se   # and the data do pin the truth down


def test_bad_arguments():
    with pytest.raises(ValueError, match="architecture.*'rnn'"):
        NNGPKernel(depth=1, architecture="rnn")
    with pytest.raises(ValueError, match="image_shape"):
        NNGPKernel(depth=1, architecture="cnn")
    with pytest.raises(ValueError, match="depth.*-1"):
        NNGPKernel(depth=-1)
    with pytest.raises(ValueError, match="nonlinearity.*'sin'"):
        NNGPKernel(depth=1, nonlinearity="sin")
    with pytest.raises(ValueError, match="sigma_b.*0"):
        NNGPKernel(depth=1, sigma_b=0.0)
    kern = NNGPKernel(depth=1)
    with pytest.raises(ValueError, match=r"sigma_w.*-2.0"):
        kern.sigma_w = -2.0
