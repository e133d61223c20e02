"""One self-contained HTML page: images inlined as data URIs, plotly.js embedded once,
no request to any other host (it opens offline, from a file, in any browser)."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

__all__ = ["CHECK_EXPLANATIONS", "page"]

# What a failed check would mean, in the words of Carlini et al. (2019), "On
# evaluating adversarial robustness", and Athalye et al. (2018).
CHECK_EXPLANATIONS: dict[str, str] = {
    "eval_mode": "The model was handed over in eval mode (it is evaluated in eval mode "
    "either way); Dropout or BatchNorm in train mode would make every attack noisy.",
    "deterministic": "Two forward passes give identical outputs. Randomness in the "
    "model hides the gradient from an attack and inflates robust accuracy.",
    "logits": "The outputs are logits, not probabilities; a softmax before the loss "
    "saturates the gradients of cross-entropy attacks.",
    "zero_gradients": "Almost no correctly classified point has an all-zero input "
    "gradient; many zero gradients mean the attacks had nothing to follow.",
    "large_eps": "At a budget covering the whole input box, PGD breaks (almost) every "
    "point. If not, the attack, not the model, is the limit.",
    "eps_monotone": "Robust accuracy does not grow with eps; growing accuracy means "
    "the attack failed at the larger budget.",
    "more_steps": "PGD with five times the steps (the best of PGD-k's step size and "
    "its own smaller one) does not do worse; a weaker result with more steps points "
    "to a noisy or masked gradient.",
    "more_restarts": "Three random restarts do not do worse than one run.",
    "black_box": "Black-box attacks, which never see a gradient, do not beat the "
    "white-box ones. When they do (the classic sign of gradient masking), the "
    "white-box robust accuracy is an over-estimate.",
}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:.25em
.6em;text-align:right}th{background:#f4f4f4}td.l,th.l{text-align:left}
.pass{color:#1a7f37;font-weight:600}.fail{color:#cf222e;font-weight:600}
.na{color:#777}img{max-width:100%}.note{color:#555;font-size:.92em}
code{background:#f4f4f4;padding:0 .2em}
"""


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * float(v):.1f} %"


def _accuracy(num: dict, png: Path) -> str:
    eps = num["eps"]
    head = "".join(f"<th>eps = {e:g}</th>" for e in eps)
    rows = [
        f'<tr><td class="l">clean</td><td colspan="{len(eps)}">'
        f"{_pct(num['clean_accuracy'])}</td></tr>"
    ]
    for name, accs in num["after_attack"].items():
        cells = "".join(f"<td>{_pct(a)}</td>" for a in accs)
        rows.append(f'<tr><td class="l">after {html.escape(name)}</td>{cells}</tr>')
    cells = "".join(f"<td><b>{_pct(a)}</b></td>" for a in num["robust_accuracy"])
    rows.append(f'<tr><td class="l"><b>robust (worst case)</b></td>{cells}</tr>')
    checks = []
    for name, c in num["checks"].items():
        tag, cls = {True: ("PASS", "pass"), False: ("FAIL", "fail")}.get(
            c["passed"], ("n/a", "na")
        )
        why = CHECK_EXPLANATIONS.get(name, "")
        checks.append(
            f'<tr><td class="l"><span class="{cls}">{tag}</span></td>'
            f'<td class="l"><code>{html.escape(name)}</code></td>'
            f'<td class="l">{html.escape(c["detail"])}</td>'
            f'<td class="l note">{html.escape(why)}</td></tr>'
        )
    failed = [n for n, c in num["checks"].items() if c["passed"] is False]
    masking = [n for n in failed if n != "eval_mode"]
    verdict = (
        "<p><b>No gradient-masking check failed</b>: nothing suggests that the "
        "robust accuracy above is inflated by masked gradients.</p>"
        if not masking
        else "<p class='fail'>Failed gradient-masking checks: "
        + ", ".join(html.escape(n) for n in masking)
        + ". Treat the robust accuracy as an upper bound: a stronger or different "
        "attack may break more points (see the last column).</p>"
    )
    if "eval_mode" in failed:
        verdict += (
            "<p class='fail'>The model was handed over in train mode. The numbers here "
            "are for eval mode; call <code>model.eval()</code> wherever else the model "
            "is used, or BatchNorm and dropout will behave differently there.</p>"
        )
    return (
        f"<p>{num['num_samples']} test points, <code>{html.escape(num['preset'])}"
        f"</code> protocol, {html.escape(num['norm'])} threat model. Each attack runs "
        "only on the points all earlier attacks missed; a point counts as robust when "
        "no attack broke it (pointwise worst case).</p>"
        f'<table><tr><th class="l"></th>{head}</tr>{"".join(rows)}</table>'
        f"{verdict}<table><tr><th>result</th><th class='l'>check</th>"
        "<th class='l'>measured</th><th class='l'>what it tests</th></tr>"
        f"{''.join(checks)}</table>{_img(png, 'robust accuracy')}"
    )


def _curvature(num: dict, png: Path) -> str:
    rows = []
    for tag in ("clean", "adversarial"):
        n = num[tag]
        top = ", ".join(f"{v:.4g}" for v in n["top_eigenvalues"])
        rows.append(
            f'<tr><td class="l">{tag}</td><td class="l">{top}</td>'
            f"<td>{n['ritz_min']:.4g}</td><td>{n['negative_mass']:.3g}</td>"
            f"<td>{'yes' if n['converged'] else 'no'}</td><td>{n['hvps']}</td></tr>"
        )
    return (
        f"<p>Hessian of the mean loss over {num['num_samples']} training points, "
        "clean and adversarial (the points attacked once at these weights, then held "
        "fixed). The top eigenvalue is the sharpest curvature; Liu et al. (2020) find "
        "the adversarial loss of a trained robust model sharper than its clean loss. "
        "Negative mass is the share of the spectrum (quadrature weight) on clearly "
        "negative eigenvalues: a visible share, or a smallest Ritz value far below "
        "zero, means the weights are not at a minimum of that loss (a saddle or a "
        "slope).</p>"
        "<table><tr><th class='l'>loss</th><th class='l'>top eigenvalues</th>"
        "<th>smallest Ritz value</th><th>negative mass</th><th>converged</th>"
        f"<th>HVPs</th></tr>{''.join(rows)}</table>{_img(png, 'curvature')}"
    )


def _surface(num: dict, png: Path, div3d: str) -> str:
    c, a = num["clean"], num["adversarial"]
    return (
        f"<p>Loss on a {len(num['grid'])} x {len(num['grid'])} grid spanned by two "
        "random filter-normalised directions (Li et al., 2018) around the model (the "
        f"star), on {num['num_samples']} training points. The adversarial surface "
        "holds the examples attacked at the centre fixed. At the centre: clean loss "
        f"{c['center_loss']:.4g}, adversarial {a['center_loss']:.4g}; over the grid "
        f"the clean loss spans {c['min_loss']:.4g} to {c['max_loss']:.4g}, the "
        f"adversarial {a['min_loss']:.4g} to {a['max_loss']:.4g}. Both panels share "
        "one colour scale.</p>"
        f"{_img(png, 'loss surfaces')}<h3>Interactive 3D</h3><p class='note'>Drag to "
        f"rotate, scroll to zoom, hover for values.</p>{div3d}"
    )


def _scattering(num: dict, png: Path) -> str:
    head = "".join(f"<th>s = {s:g}</th>" for s in num["scales"])
    rows = []
    for e, ratios, exc in zip(num["eps"], num["median_ratio"], num["median_excess"]):
        cells = "".join(f"<td>{r:.4g}</td>" for r in ratios)
        rows.append(f"<tr><td>{e:g}</td>{cells}<td>{exc:.4g}</td></tr>")
    return (
        "<p>Gradient scattering (Liu et al., 2020, Proposition 2): the ratio "
        "<code>||g(w + s v) - g(w)|| / ||s v||</code> of the adversarial loss along "
        "random directions <code>v</code>, with the adversarial examples recomputed "
        "at every point. For a smooth loss (eps = 0) it stays bounded as s shrinks; "
        "for eps &gt; 0 the gradient jumps by about <code>2 eps L</code> however small "
        "the step, so the ratio grows like 1/s and the excess (the intercept as "
        "s &rarr; 0) grows with eps.</p>"
        f"<table><tr><th>eps</th>{head}<th>excess</th></tr>{''.join(rows)}</table>"
        f"{_img(png, 'scattering')}"
    )


def page(title: str, intro: str, numbers: dict, pngs: dict, div3d: str | None) -> str:
    """The report page.

    Args:
        title: page title and heading.
        intro: an HTML paragraph about the model and data.
        numbers: ``{section: numbers}`` for the sections that ran.
        pngs: ``{section: png path}``.
        div3d: the plotly figure as an HTML ``<div>`` with plotly.js inlined.

    Returns:
        The HTML text.
    """
    parts: list[Any] = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>{intro}",
    ]
    heads = {
        "accuracy": "Robust accuracy and gradient-masking checks",
        "curvature": "Curvature: top eigenvalues and spectral density",
        "surface": "Loss surface: clean and adversarial",
        "scattering": "Gradient scattering",
    }
    for name, num in numbers.items():
        parts.append(f"<h2 id='{name}'>{heads[name]}</h2>")
        if name == "surface":
            parts.append(_surface(num, pngs[name], div3d or ""))
        else:
            parts.append({"accuracy": _accuracy, "curvature": _curvature,
                          "scattering": _scattering}[name](num, pngs[name]))  # fmt: skip
    parts.append(
        "<p class='note'>Every number on this page is in <code>report.json</code>; "
        "the figures are also saved as PNG files next to it.</p></body></html>"
    )
    return "".join(parts)
