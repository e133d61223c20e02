"""Tests for landscape.schedules: values at known points, periodic shape, sampling,
the registry and its errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from landscape import schedules as S
from landscape.schedules import make_schedule


@pytest.mark.parametrize(
    "name, kw, points",
    [
        ("constant", dict(eps=0.3), {0: 0.3, 5.5: 0.3}),
        ("linear", dict(eps=0.4, warmup=4), {0: 0.0, 1: 0.1, 2: 0.2, 4: 0.4, 100: 0.4}),
        ("linear", dict(eps=0.4, warmup=2, start=0.2), {0: 0.2, 1: 0.3, 3: 0.4}),
        ("linear", dict(eps=0.4, epochs=10), {5: 0.4, 2.5: 0.2}),  # warm-up = half
        ("cosine", dict(eps=0.4, warmup=4), {0: 0.0, 2: 0.2, 4: 0.4, 9: 0.4}),
        ("cosine", dict(eps=1.0, warmup=3), {1: 0.25}),  # (1 - cos(pi/3)) / 2
    ],
)
def test_eps_schedules_at_known_points(name, kw, points):
    s = make_schedule(name, **kw)
    for t, v in points.items():
        assert s(t) == pytest.approx(v, abs=1e-12), (t, s(t))


@pytest.mark.parametrize(
    "name, kw, points",
    [
        ("constant", dict(lr=0.1), {0: 0.1, 99: 0.1}),
        (
            "step",
            dict(lr=0.1, milestones=[100, 150]),
            {99.9: 0.1, 100: 0.01, 150: 0.001},
        ),
        ("step", dict(lr=1.0, step_size=2, gamma=0.5), {0: 1, 1.9: 1, 2: 0.5, 4: 0.25}),
        ("cosine", dict(lr=0.1, epochs=10), {0: 0.1, 5: 0.05, 10: 0.0, 20: 0.0}),
        ("cosine", dict(lr=0.1, epochs=10, final=0.02), {5: 0.06, 10: 0.02}),
        (
            "periodic",
            dict(lr=0.1, periods=[0, 10, 30]),
            {0: 0.1, 5: 0.05, 10: 0.1, 20: 0.05},
        ),
        (
            "periodic",
            dict(lr=0.2, periods=2, epochs=8),
            {0: 0.2, 2: 0.1, 4: 0.2, 8: 0.0},
        ),
        (
            "onecycle",
            dict(lr=0.2, epochs=10, pct=0.25),
            {0: 0, 2.5: 0.2, 6.25: 0.1, 10: 0},
        ),
    ],
)
def test_lr_schedules_at_known_points(name, kw, points):
    s = make_schedule(name, kind="lr", **kw)
    for t, v in points.items():
        assert s(t) == pytest.approx(v, abs=1e-12), (t, s(t))


@pytest.mark.parametrize("shape", ["linear", "cosine"])
@pytest.mark.parametrize("ramp", [0.25, 0.5, 1.0])
def test_periodic_eps_shape(shape, ramp):
    eps, bounds = 8 / 255, [0, 10, 25, 40]
    s = make_schedule("periodic", eps=eps, periods=bounds, ramp=ramp, shape=shape)
    for a, b in zip(bounds[:-1], bounds[1:]):
        ts = np.linspace(a, b, 301)[:-1]
        v = np.array([s(t) for t in ts])
        assert v[0] == 0.0  # restarts at eps_min at every boundary
        assert (np.diff(v) >= -1e-15).all()  # non-decreasing within a period
        assert (v <= eps + 1e-15).all()  # capped at the target
        if ramp < 1:
            assert v.max() == pytest.approx(eps)
        reach = a + ramp * (b - a)  # reaches the target exactly after `ramp` of it
        if ramp < 1:  # (with ramp=1 the next period starts at b)
            assert s(reach) == pytest.approx(eps)
        assert s(a + 0.99 * ramp * (b - a)) < eps
        if shape == "linear":
            assert s(a + 0.5 * ramp * (b - a)) == pytest.approx(eps / 2)
    assert s(40) == pytest.approx(eps) and s(100) == pytest.approx(eps)


def test_periodic_eps_authors_cycle_cos_setting():
    # the authors' MNIST run: cycle_cos eps_min=0, eps_max=0.6, capped at 0.4, 1 period
    s = make_schedule("periodic", eps=0.4, periods=[0, 100], peak=0.6, shape="cosine")
    for t in (0, 20, 45, 61, 80):
        assert s(t) == pytest.approx(min(0.4, 0.3 * (1 - math.cos(math.pi * t / 100))))
    s1 = make_schedule(
        "periodic", eps=0.4, periods=[0, 100], eps_min=0, eps_max=0.6, shape="cosine"
    )
    assert s1 == s
    s2 = make_schedule("periodic", eps=0.4, periods=[0, 100], start=0.1, ramp=0.5)
    assert s2(0) == pytest.approx(0.1) and s2(25) == pytest.approx(0.25)


def test_sample_is_plot_ready():
    s = make_schedule("periodic", eps=0.3, periods=3, epochs=30)
    ts, vs = s.sample(61)
    assert ts.shape == vs.shape == (61,) and ts[0] == 0 and ts[-1] == 30
    assert np.allclose(vs, [s(t) for t in ts])
    ts, vs = make_schedule("constant", eps=0.1).sample(5, end=4)
    assert ts.tolist() == [0, 1, 2, 3, 4] and vs.tolist() == [0.1] * 5
    assert make_schedule("linear", eps=0.4, warmup=2).at_epochs(4).tolist() == [
        0,
        0.2,
        0.4,
        0.4,
    ]
    with pytest.raises(ValueError, match="num must be >= 2"):
        s.sample(1)


def test_period_boundaries():
    assert S.period_boundaries(4, epochs=20) == (0, 5, 10, 15, 20)
    assert S.period_boundaries([5, 10]) == (0, 5, 10)
    assert S.period_boundaries([0, 5, 10], epochs=10) == (0, 5, 10)


@pytest.mark.parametrize(
    "call, err, match",
    [
        (
            lambda: make_schedule("warp"),
            ValueError,
            r"unknown eps schedule 'warp'; choose one of \[",
        ),
        (lambda: make_schedule("onecycle"), ValueError, "unknown eps schedule"),
        (
            lambda: make_schedule("x", kind="lr"),
            ValueError,
            "'onecycle', 'periodic', 'step'",
        ),
        (lambda: make_schedule("constant", kind="mom"), ValueError, "kind must be"),
        (
            lambda: make_schedule("constant", eps=-0.1),
            ValueError,
            "eps must be a finite number >= 0",
        ),
        (
            lambda: make_schedule("linear", eps=0.3, warmup=0),
            ValueError,
            "warmup must be .* > 0",
        ),
        (lambda: make_schedule("linear", eps=0.3), TypeError, "needs warmup"),
        (
            lambda: make_schedule("step", kind="lr", lr=0.1, step_size=0),
            ValueError,
            "step_size must be .* > 0",
        ),
        (lambda: make_schedule("step", kind="lr", lr=0.1), ValueError, "milestones"),
        (
            lambda: make_schedule("cosine", kind="lr", lr=0.0, epochs=3),
            ValueError,
            "lr must be .* > 0",
        ),
        (
            lambda: make_schedule("periodic", eps=0.3, periods=[0, 10], epochs=20),
            ValueError,
            "periods must cover the epochs",
        ),
        (
            lambda: make_schedule("periodic", eps=0.3, periods=[0, 10, 5]),
            ValueError,
            "strictly increasing",
        ),
        (
            lambda: make_schedule("periodic", eps=0.3, periods=3),
            ValueError,
            "needs the number of epochs",
        ),
        (
            lambda: make_schedule("periodic", eps=0.3, periods=[0, 4], ramp=1.5),
            ValueError,
            "ramp",
        ),
        (
            lambda: make_schedule("periodic", eps=0.3, periods=[0, 4], shape="saw"),
            ValueError,
            "shape",
        ),
        (
            lambda: make_schedule("constant", eps=0.3, warmup=2),
            TypeError,
            r"does not take \['warmup'\]",
        ),
        (lambda: make_schedule("constant", eps=0.3, value=0.2), TypeError, "not both"),
    ],
)
def test_bad_parameters_are_clear_errors(call, err, match):
    with pytest.raises(err, match=match):
        call()


def test_schedules_are_frozen_and_passthrough():
    s = make_schedule("constant", eps=0.3)
    with pytest.raises(AttributeError):
        s.value = 0.2
    assert make_schedule(s) is s
    assert s.to_dict() == {"value": 0.3, "epochs": None, "schedule": "Constant"}


def test_plot_schedule_draws_the_samples():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from landscape.plot import plot_schedule

    s = make_schedule("periodic", eps=0.3, periods=[0, 5, 10])
    ax = plot_schedule(s, num=101, label="eps")
    ts, vs = ax.lines[0].get_data()
    assert len(ts) == 101 and ts[-1] == 10 and np.allclose(vs, [s(t) for t in ts])
    plt.close("all")
