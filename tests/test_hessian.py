"""landscape.hessian against dense ground truth (float64), planted spectra, pyhessian."""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from landscape import attacks, hessian
from landscape.hessian.__main__ import main as hessian_main

RTOL_EXACT = 1e-6  # exact methods in float64
RTOL_LANCZOS = 1e-6  # top-k Lanczos at tol=1e-10 on tiny models
RTOL_POWER = 1e-2


def _dense(model, loss_fn, data):
    return hessian.dense_hessian(model, loss_fn, data)


def _top(model, loss_fn, data, num: int, seed: int = 0, **kw):
    """hessian.top_eigenvalues with a fresh generator of ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    return hessian.top_eigenvalues(model, loss_fn, data, num=num, generator=gen, **kw)


def _trace(model, loss_fn, data, num_matvecs: int, seed: int = 0, **kw):
    """hessian.trace with a fresh generator of ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    return hessian.trace(
        model, loss_fn, data, num_matvecs=num_matvecs, generator=gen, **kw
    )


def _autograd_hessian(model, loss_fn, data):
    """Independent reference: torch.autograd.functional.hessian of the weighted loss."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    flat0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    total = sum(x.shape[0] for x, _ in data)

    def f(flat):
        params, i = {}, 0
        for n, s in zip(names, shapes):
            k = int(np.prod(s))
            params[n] = flat[i : i + k].reshape(s)
            i += k
        return sum(
            loss_fn(torch.func.functional_call(model, params, (x,)), y)
            * x.shape[0]
            / total
            for x, y in data
        )

    return torch.autograd.functional.hessian(f, flat0)


class Quadratic(torch.nn.Module):
    """loss = 0.5 w^T A w (the input is ignored): its Hessian is the planted A."""

    def __init__(self, A: torch.Tensor, seed: int = 0):
        super().__init__()
        self.register_buffer("A", A)
        g = torch.Generator().manual_seed(seed)
        self.w = torch.nn.Parameter(torch.randn(A.shape[0], generator=g, dtype=A.dtype))

    def forward(self, x):
        return 0.5 * self.w @ self.A @ self.w + 0 * x.sum()


def _identity_loss(out, y):
    return out


def planted(eigs, seed=0):
    eigs = torch.as_tensor(eigs, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(
        torch.randn(len(eigs), len(eigs), generator=g, dtype=torch.float64)
    )
    A = Q @ torch.diag(eigs) @ Q.T
    A = 0.5 * (A + A.T)
    model = Quadratic(A, seed)
    data = [(torch.zeros(2, 1, dtype=torch.float64), torch.zeros(2))]
    return model, _identity_loss, data, A


# -- HVP and dense Hessian --------------------------------------------------------


def test_dense_matches_autograd_reference(tiny_case):
    model, loss_fn, data = tiny_case
    assert_close(
        _dense(model, loss_fn, data),
        _autograd_hessian(model, loss_fn, data),
        rtol=RTOL_EXACT,
        atol=1e-10,
    )


@pytest.mark.parametrize("mode", ["graph", "recompute", "jvp"])
def test_hvp_equals_dense_times_v(tiny_case, mode):
    model, loss_fn, data = tiny_case
    H = _autograd_hessian(model, loss_fn, data)
    g = torch.Generator().manual_seed(1)
    V = torch.randn(5, H.shape[0], generator=g, dtype=torch.float64).to(H.device)
    op = hessian.HessianOperator(model, loss_fn, data, mode=mode, chunk_size=3)
    # torch lacks forward-mode AD for mse_loss_backward ("ZeroTensors are immutable"):
    # an explicit mode="jvp" says so once and falls back to the double backward
    falls_back = mode == "jvp" and isinstance(loss_fn, torch.nn.MSELoss)

    def fallback_warning():
        if not falls_back:
            return contextlib.nullcontext()
        return pytest.warns(UserWarning, match="forward-over-reverse failed")

    with fallback_warning():
        assert_close(op.matmat(V), V @ H, rtol=RTOL_EXACT, atol=1e-10)  # batched
    assert op.mode == ("recompute" if falls_back else mode)
    assert_close(op.matvec(V[0]), H @ V[0], rtol=RTOL_EXACT, atol=1e-10)
    assert op.num_matvecs == 6
    # dict form keyed like named_parameters
    vd = op.to_dict(V[1])
    with fallback_warning():
        hv = hessian.hvp(model, loss_fn, data, vd, mode=mode)
    assert list(hv) == [n for n, _ in model.named_parameters()]
    assert_close(op.from_dict(hv), H @ V[1], rtol=RTOL_EXACT, atol=1e-10)


def test_auto_mode_falls_back_silently(tiny_case):
    """Auto mode batches products with vmap(jvp(grad)) and, where forward-mode AD is
    missing (MSE loss), switches to the double backward without a warning."""
    model, loss_fn, data = tiny_case
    H = _autograd_hessian(model, loss_fn, data)
    V = torch.randn(
        4, H.shape[0], generator=torch.Generator().manual_seed(2), dtype=H.dtype
    ).to(H.device)
    op = hessian.HessianOperator(model, loss_fn, data, chunk_size=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # torch's own first use of forward AD scripts its decompositions (a torch
        # DeprecationWarning about torch.jit.script): not a warning of landscape
        warnings.filterwarnings("ignore", "`torch.jit.script`", DeprecationWarning)
        assert_close(op.matmat(V), V @ H, rtol=RTOL_EXACT, atol=1e-10)


def test_batch_size_independence(tiny_case):
    model, loss_fn, data = tiny_case
    x = torch.cat([b[0] for b in data])
    y = torch.cat([b[1] for b in data])
    one = _dense(model, loss_fn, [(x, y)])
    uneven = [(x[:3], y[:3]), (x[3:10], y[3:10]), (x[10:], y[10:])]
    assert_close(_dense(model, loss_fn, uneven), one, rtol=RTOL_EXACT, atol=1e-12)
    t1 = _trace(model, loss_fn, [(x, y)], 4)
    t2 = _trace(model, loss_fn, uneven, 4)
    assert t1.estimate == pytest.approx(t2.estimate, rel=1e-9)


def test_float64_option_casts_a_copy():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2)
    )
    data = [(torch.randn(10, 4), torch.randint(0, 2, (10,)))]
    H32 = hessian.dense_hessian(model, torch.nn.CrossEntropyLoss(), data)
    H64 = hessian.dense_hessian(
        model, torch.nn.CrossEntropyLoss(), data, dtype=torch.float64
    )
    assert H32.dtype == torch.float32 and H64.dtype == torch.float64
    assert next(model.parameters()).dtype == torch.float32
    assert_close(H64.float(), H32, rtol=1e-4, atol=1e-5)


# -- eigenvalues ------------------------------------------------------------------


def test_top_eigenvalues_match_dense(tiny_case):
    model, loss_fn, data = tiny_case
    ev = torch.linalg.eigvalsh(_dense(model, loss_fn, data)).cpu()
    got = _top(model, loss_fn, data, 3, tol=1e-10)
    assert got.converged
    assert_close(
        torch.as_tensor(got.eigenvalues), ev.flip(0)[:3], rtol=RTOL_LANCZOS, atol=1e-12
    )
    assert (got.residuals < 1e-8).all()


def test_smallest_eigenvalues_match_dense(tiny_case):
    model, loss_fn, data = tiny_case
    ev = torch.linalg.eigvalsh(_dense(model, loss_fn, data)).cpu()
    got = hessian.top_eigenvalues(model, loss_fn, data, num=2, which="SA", tol=1e-10)
    assert_close(
        torch.as_tensor(got.eigenvalues), ev[:2], rtol=RTOL_LANCZOS, atol=1e-10
    )


def test_eigenvectors_are_eigenvectors_and_dicts(tiny_case):
    model, loss_fn, data = tiny_case
    H = _dense(model, loss_fn, data).cpu()
    got = hessian.top_eigenvalues(model, loss_fn, data, num=2, tol=1e-10)
    names = [n for n, _ in model.named_parameters()]
    for lam, vec in zip(got.eigenvalues, got.eigenvectors):
        assert list(vec) == names
        assert all(vec[n].shape == p.shape for n, p in model.named_parameters())
        v = torch.cat([vec[n].reshape(-1) for n in names])
        assert v.norm().item() == pytest.approx(1.0, rel=1e-9)
        assert_close(H @ v, lam * v, rtol=1e-6, atol=1e-8)


def test_power_iteration(tiny_case):
    model, loss_fn, data = tiny_case
    ev = torch.linalg.eigvalsh(_dense(model, loss_fn, data)).cpu().numpy()
    got = _top(model, loss_fn, data, 2, method="power", tol=1e-7, max_iter=3000)
    by_mag = ev[np.argsort(-np.abs(ev))][:2]
    np.testing.assert_allclose(got.eigenvalues, by_mag, rtol=RTOL_POWER)


def test_lanczos_planted_spectrum():
    lam = np.concatenate([[10.0, 7.0, 5.0], np.linspace(-1.0, 1.0, 57)])
    model, loss_fn, data, A = planted(lam)
    got = hessian.top_eigenvalues(model, loss_fn, data, num=3, tol=1e-10)
    np.testing.assert_allclose(got.eigenvalues, [10.0, 7.0, 5.0], rtol=1e-9)
    assert got.num_matvecs < len(lam)  # well-separated top: far fewer than dim products
    low = hessian.top_eigenvalues(
        model, loss_fn, data, num=1, which="SA", tol=1e-10, max_iter=60
    )
    np.testing.assert_allclose(low.eigenvalues, [-1.0], rtol=1e-6)


def test_lanczos_ritz_values_inside_spectrum():
    lam = np.linspace(0.5, 3.0, 40) ** 2
    op = hessian.MatrixOperator(planted(lam)[3])
    run = hessian.lanczos(
        op, torch.randn(3, 40, dtype=torch.float64), 12, keep_basis=True
    )
    for c in range(3):
        theta, _ = hessian.ritz(run.alphas[c], run.betas[c, :-1])
        assert theta.min() >= lam.min() - 1e-10 and theta.max() <= lam.max() + 1e-10
        Q = run.basis[c]
        assert_close(Q @ Q.T, torch.eye(12, dtype=torch.float64), atol=1e-12, rtol=0)


def test_nonconvergence_warns():
    lam = np.linspace(1.0, 1.001, 50)
    model, loss_fn, data, _ = planted(lam)
    with pytest.warns(UserWarning, match="did not converge"):
        hessian.top_eigenvalues(model, loss_fn, data, num=1, tol=1e-14, max_iter=5)


def test_bad_arguments():
    model, loss_fn, data, _ = planted([1.0, 2.0])
    with pytest.raises(ValueError, match="which"):
        hessian.top_eigenvalues(model, loss_fn, data, which="XX")
    with pytest.raises(ValueError, match="num must be"):
        hessian.top_eigenvalues(model, loss_fn, data, num=5)
    with pytest.raises(ValueError, match="empty"):
        hessian.top_eigenvalues(model, loss_fn, [])
    with pytest.raises(ValueError, match="backend"):
        hessian.trace(model, loss_fn, data, backend="nope")


# -- trace ------------------------------------------------------------------------


def test_hutchinson_converges_to_exact_trace(tiny_case):
    model, loss_fn, data = tiny_case
    exact = float(torch.trace(_dense(model, loss_fn, data)))
    t = _trace(model, loss_fn, data, 400)
    assert t.num_matvecs == 400 and t.ci_low < t.estimate < t.ci_high
    assert abs(t.estimate - exact) <= 4 * t.std_error
    assert t.std_error < 0.2 * max(
        abs(exact),
        np.abs(torch.linalg.eigvalsh(_dense(model, loss_fn, data)).cpu().numpy()).sum(),
    )


def test_hutchpp_beats_hutchinson_on_low_rank_spectrum():
    lam = np.concatenate([[100.0, 50.0, 30.0, 20.0, 10.0], 0.01 * np.ones(95)])
    model, loss_fn, data, _ = planted(lam)
    errs = {"hutchinson": [], "hutch++": []}
    for seed in range(10):
        for method in errs:
            t = _trace(model, loss_fn, data, 30, seed, method=method)
            errs[method].append(t.estimate - lam.sum())
    rms = {m: float(np.sqrt(np.mean(np.square(e)))) for m, e in errs.items()}
    assert rms["hutch++"] < 0.1 * rms["hutchinson"], rms


def test_trace_early_stop_with_tol():
    model, loss_fn, data, _ = planted(np.linspace(1.0, 2.0, 30))
    t = hessian.trace(model, loss_fn, data, num_matvecs=1000, tol=0.02)
    assert t.num_matvecs < 1000 and t.std_error <= 0.02 * abs(t.estimate)


# -- caller's model, modes, determinism --------------------------------------------


def test_model_untouched(tiny_case):
    model, loss_fn, data = tiny_case
    model.train()
    for p in model.parameters():
        p.grad = torch.full_like(p, 7.0)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    hessian.top_eigenvalues(model, loss_fn, data, num=2)
    hessian.trace(model, loss_fn, data, num_matvecs=3)
    hessian.top_eigenvalues(
        model, loss_fn, data, num=1, backend="pyhessian", max_iter=5
    )
    assert model.training and all(m.training for m in model.modules())
    for n, p in model.named_parameters():
        assert torch.equal(p.detach(), before[n])
        assert torch.equal(p.grad, torch.full_like(p, 7.0))


def test_batchnorm_model_analysed_in_eval_mode():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 4),
        torch.nn.BatchNorm1d(4),
        torch.nn.Tanh(),
        torch.nn.Linear(4, 2),
    ).double()
    model[1].running_mean.uniform_(-1, 1)
    model[1].running_var.uniform_(0.5, 2)
    data = [(torch.randn(12, 3, dtype=torch.float64), torch.randint(0, 2, (12,)))]
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    stats = model[1].running_mean.clone()
    H = hessian.dense_hessian(model, loss_fn, data)
    assert model.training and torch.equal(model[1].running_mean, stats)
    model.eval()
    H_eval = _autograd_hessian(model, loss_fn, data)
    assert_close(H, H_eval, rtol=RTOL_EXACT, atol=1e-10)


class AlwaysDropout(torch.nn.Module):
    def forward(self, x):
        return torch.nn.functional.dropout(x, 0.5, training=True)


def test_check_deterministic_catches_dropout():
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 8), AlwaysDropout(), torch.nn.Linear(8, 2)
    )
    data = [(torch.randn(16, 3), torch.randint(0, 2, (16,)))]
    with pytest.raises(hessian.NondeterministicLossError, match="Dropout"):
        hessian.top_eigenvalues(model, torch.nn.CrossEntropyLoss(), data)
    # standard Dropout is off in eval mode: deterministic, no error
    ok = torch.nn.Sequential(
        torch.nn.Linear(3, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 2)
    )
    hessian.top_eigenvalues(ok, torch.nn.CrossEntropyLoss(), data, max_iter=20)


def test_check_deterministic_catches_on_the_fly_attacks():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2))

    class Noisy:
        def __iter__(self):
            yield torch.randn(8, 3), torch.randint(0, 2, (8,))

    with pytest.raises(hessian.NondeterministicLossError):
        hessian.trace(model, torch.nn.CrossEntropyLoss(), Noisy(), num_matvecs=2)


def test_save_load_round_trip(tmp_path, tiny_case):
    model, loss_fn, data = tiny_case
    eig = hessian.top_eigenvalues(model, loss_fn, data, num=2)
    p = eig.save(tmp_path / "eig.npz")
    back = hessian.Eigenpairs.load(p)
    np.testing.assert_array_equal(back.eigenvalues, eig.eigenvalues)
    for a, b in zip(back.eigenvectors, eig.eigenvectors):
        assert a.keys() == b.keys()
        assert all(torch.equal(a[n], b[n]) for n in a)
    assert back.num_matvecs == eig.num_matvecs and back.meta["seed"] == eig.meta["seed"]
    tr = hessian.trace(model, loss_fn, data, num_matvecs=5)
    back_t = hessian.TraceEstimate.load(tr.save(tmp_path / "tr.npz"))
    assert back_t.estimate == tr.estimate and back_t.ci_high == tr.ci_high
    np.testing.assert_array_equal(back_t.samples, tr.samples)


def test_adversarial_batches_are_fixed_and_in_ball():
    """The robust Hessian's data: batches attacked once (attacks.perturb_batches)."""

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    data = [(torch.rand(6, 1, 4, 4), torch.randint(0, 3, (6,))) for _ in range(2)]
    gen = torch.Generator().manual_seed(0)
    sweep = {
        e: attacks.perturb_batches(
            model, data, attacks.PGD(eps=e, steps=3), generator=gen
        )
        for e in (0.0, 0.1)
    }
    assert torch.equal(sweep[0.0][0][0], data[0][0])
    for (xa, ya), (x, y) in zip(sweep[0.1], data):
        assert (xa - x).abs().max() <= 0.1 + 1e-6 and torch.equal(ya, y)
    lf = torch.nn.CrossEntropyLoss()
    clean = hessian.HessianOperator(model, lf, data).loss
    adv = hessian.HessianOperator(model, lf, sweep[0.1]).loss  # fixed: deterministic
    assert adv > clean


# -- pyhessian --------------------------------------------------------------------


def _mlp32(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)
    )
    x, y = torch.randn(32, 5), torch.randint(0, 3, (32,))
    return model, torch.nn.CrossEntropyLoss(), x, y


def test_raw_pyhessian_accumulates_gradients_and_wrapper_does_not():
    from pyhessian import hessian as PyHessian

    model, lf, x, y = _mlp32()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        h1 = PyHessian(model, lf, data=(x, y), cuda=False)
        h2 = PyHessian(model, lf, data=(x, y), cuda=False)  # grads of h1 still in .grad
        torch.manual_seed(3)
        e1 = h1.eigenvalues(maxIter=200, tol=1e-6)[0][0]
        torch.manual_seed(3)
        e2 = h2.eigenvalues(maxIter=200, tol=1e-6)[0][0]
    assert e2 == pytest.approx(2 * e1, rel=1e-3)  # the bug: doubled curvature
    assert not model.training  # and pyhessian left the model in eval mode

    model, lf, x, y = _mlp32()
    a, b = (
        _top(model, lf, [(x, y)], 1, 3, backend="pyhessian", tol=1e-6, max_iter=200)
        for _ in range(2)  # twice on the same model: no gradient left behind
    )
    assert a.eigenvalues[0] == pytest.approx(b.eigenvalues[0], rel=1e-9)
    assert model.training and all(p.grad is None for p in model.parameters())


def test_pyhessian_density_is_broken_on_this_torch():
    from pyhessian import hessian as PyHessian

    model, lf, x, y = _mlp32()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        h = PyHessian(model, lf, data=(x, y), cuda=False)
        with pytest.raises(
            RuntimeError, match="deprecated since version 1.9 and is now removed"
        ):
            h.density(iter=5, n_v=1)


def test_agreement_with_pyhessian():
    model, lf, x, y = _mlp32()
    data = [(x[:20], y[:20]), (x[20:], y[20:])]  # dataloader path of pyhessian
    ours = hessian.top_eigenvalues(
        model, lf, data, num=2, which="LM", tol=1e-8, dtype=torch.float64
    )
    theirs = _top(model, lf, data, 2, backend="pyhessian", tol=1e-6, max_iter=300)
    np.testing.assert_allclose(theirs.eigenvalues, ours.eigenvalues, rtol=2e-2)
    exact = float(
        torch.trace(hessian.dense_hessian(model, lf, data, dtype=torch.float64))
    )
    t = _trace(model, lf, data, 300, backend="pyhessian", tol=1e-4)
    assert abs(t.estimate - exact) <= 4 * t.std_error + 1e-3 * abs(exact)


# -- command line -----------------------------------------------------------------


def test_cli_on_checkpoint_and_state_dict(
    tmp_path, data_root, capsys, lenet_checkpoint
):
    net = lenet_checkpoint
    torch.save(net.state_dict(), tmp_path / "sd.pt")
    out = tmp_path / "out"
    args = [
        "--data-root",
        str(data_root),
        "--num-samples",
        "64",
        "--batch-size",
        "32",
        "--num-eigenvalues",
        "2",
        "--trace",
        "--num-matvecs",
        "6",
        "--density",
        "--density-max-iter",
        "5",
        "--num-runs",
        "2",
        "--eps",
        "0",
        "0.1",
        "--steps",
        "2",
        "--out",
        str(out),
    ]
    assert hessian_main([str(tmp_path / "ck.pt"), *args]) == 0
    eig = hessian.Eigenpairs.load(out / "eigenpairs_eps0.1.npz")
    assert eig.eigenvalues.shape == (2,) and eig.eigenvalues[0] >= eig.eigenvalues[1]
    assert (out / "density_eps0.npz").exists() and (out / "trace_eps0.npz").exists()
    clean = hessian.Eigenpairs.load(out / "eigenpairs_eps0.npz").eigenvalues
    # a plain state_dict needs --arch
    assert hessian_main([str(tmp_path / "sd.pt"), *args]) == 2
    assert "--arch" in capsys.readouterr().err
    sd_args = [
        "--arch",
        "lenet",
        "--arch-kwargs",
        '{"width": 0.5, "hidden_size": 16}',
    ]
    out2 = tmp_path / "out2"
    assert (
        hessian_main([str(tmp_path / "sd.pt"), *sd_args, *args[:8], "--out", str(out2)])
        == 0
    )
    again = hessian.Eigenpairs.load(out2 / "eigenpairs_eps0.npz").eigenvalues
    np.testing.assert_allclose(again, clean, rtol=1e-4)  # same weights and data
