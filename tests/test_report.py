"""``landscape.report``: one self-contained HTML report on a user's model or a
checkpoint the tests train; numbers checked against direct computations; resumable;
rendered offline in headless Chromium where one is installed."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import re
import shutil
import socket
import subprocess
import threading

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from landscape import report, train  # noqa: E402

TINY = dataclasses.replace(
    report.BUDGETS["quick"],
    name="tiny",
    eval_num=48,
    eval_scale=0.1,
    check_samples=16,
    hessian_num=32,
    num_eigenvalues=2,
    density_max_iter=6,
    attack_steps=2,
    surface_num=32,
    grid=3,
    scatter_num=16,
    scatter_directions=1,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class UserNet(nn.Module):
    """What a user writes: conv, BatchNorm, dropout, a residual block."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4))
        self.block = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4))
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(4 * 64, 3))

    def forward(self, x):
        h = torch.relu(self.stem(x))
        return self.head(torch.relu(h + self.block(h)))


def _data(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = 0.15 * torch.rand(n, 1, 8, 8, generator=g)
    for c in range(3):  # class c brightens row band c: learnable in a few steps
        x[y == c, :, 2 * c : 2 * c + 3] += 0.6
    return x.clamp(0, 1), y


@pytest.fixture(scope="module")
def user_case(tmp_path_factory):
    torch.manual_seed(0)
    model = UserNet()
    x, y = _data(96, 0)
    opt = torch.optim.Adam(model.parameters(), 0.01)
    for _ in range(6):  # a few steps: accurate, with a loss well above zero
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=16, num_workers=0
    )
    test = _data(48, 1)
    out = tmp_path_factory.mktemp("report")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rep = report.build_report(
        model, nn.CrossEntropyLoss(), loader, test_data=test, eps=0.1, out_dir=out,
        budget=TINY, title="user model", generator=_gen(),
    )  # fmt: skip
    return model, loader, test, out, rep, state


def test_report_numbers_match_direct_computations(user_case):
    model, loader, (xt, yt), out, rep, state = user_case
    for k, v in model.state_dict().items():  # the caller's model is left alone
        assert torch.equal(v, state[k]), k
    assert not model.training
    num = json.loads(rep.json.read_text())["sections"]
    with torch.no_grad():
        clean = (model(xt).argmax(1) == yt).float().mean().item()
    acc = num["accuracy"]
    assert acc["clean_accuracy"] == pytest.approx(clean, abs=1e-6)
    assert acc["num_samples"] == 48
    assert all(r <= clean + 1e-9 for r in acc["robust_accuracy"])
    assert acc["robust_accuracy"] == sorted(acc["robust_accuracy"], reverse=True)
    # surface centre = the plain loss on the first surface_num training points
    x, y = next(iter(torch.utils.data.DataLoader(loader.dataset, batch_size=32)))
    with torch.no_grad():
        plain = nn.functional.cross_entropy(model(x), y).item()
    assert num["surface"]["clean"]["center_loss"] == pytest.approx(plain, rel=1e-5)
    assert num["surface"]["adversarial"]["center_loss"] > plain
    top = num["curvature"]["clean"]["top_eigenvalues"]
    assert len(top) == 2 and top[0] >= top[1]
    assert num["scattering"]["eps"] == [0.0, 0.05, 0.1]
    assert set(rep.figures) == {"accuracy", "curvature", "surface", "scattering"}
    assert all(p.stat().st_size > 1000 for p in rep.figures.values())


def test_report_page_is_self_contained(user_case):
    *_, out, rep, _ = user_case
    text = rep.html.read_text()
    assert "<title>user model</title>" in text
    # the markup outside script bodies (plotly.js holds map-attribution URLs as
    # strings, which are never fetched for a surface plot; the browser test checks)
    markup = re.sub(r"(<script[^>]*>).*?</script>", r"\1", text, flags=re.S)
    srcs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", markup)
    assert srcs and all(s.startswith("data:") or s.startswith("#") for s in srcs), [
        s[:60] for s in srcs if not s.startswith("data:")
    ]
    assert markup.count("<img ") == 4 and markup.count("data:image/png;base64,") == 4
    assert "Plotly.newPlot" in text and not re.search(r"<script[^>]*\bsrc=", markup)
    for name in report.CHECK_EXPLANATIONS:  # every masking check is explained
        assert f"<code>{name}</code>" in text


def test_report_resumes_from_its_cache(user_case, tmp_path):
    model, loader, test, shared, rep, _ = user_case
    out = shutil.copytree(shared, tmp_path / "rep")  # the other tests read `shared`
    again = report.build_report(
        model, None, loader, test_data=test, eps=0.1, out_dir=out, budget=TINY,
        generator=_gen(),
    )  # fmt: skip
    assert set(again.cached) == {"accuracy", "curvature", "surface", "scattering"}
    assert again.numbers["sections"] == rep.numbers["sections"]
    (out / "cache" / "curvature.json").unlink()  # as if killed inside this section
    resumed = report.build_report(
        model, None, loader, test_data=test, eps=0.1, out_dir=out, budget=TINY,
        generator=_gen(),
    )  # fmt: skip
    assert "curvature" not in resumed.cached and len(resumed.cached) == 3
    other = report.build_report(
        model, None, loader, test_data=test, eps=0.05, out_dir=out, budget=TINY,
        sections=["surface"], generator=_gen(),
    )  # fmt: skip
    assert other.cached == ()  # another eps is another report: nothing reused
    seeded = report.build_report(
        model, None, loader, test_data=test, eps=0.1, out_dir=out, budget=TINY,
        sections=["surface"], generator=_gen(1),
    )  # fmt: skip
    assert seeded.cached == ()  # another seed is another report too


def test_report_rejects_bad_input(tmp_path):
    model = nn.Linear(4, 2)
    data = (torch.rand(8, 4), torch.zeros(8, dtype=torch.long))
    with pytest.raises(ValueError, match="unknown sections"):
        report.build_report(model, None, data, eps=0.1, out_dir=tmp_path,
                            sections=["hessian"])  # fmt: skip
    with pytest.raises(ValueError, match="budget must be one of"):
        report.build_report(model, None, data, eps=0.1, out_dir=tmp_path, budget="x")
    with pytest.raises(ValueError, match="eps must be positive"):
        report.build_report(model, None, data, eps=0.0, out_dir=tmp_path)
    with pytest.raises(ValueError, match=r"\(x, y\) batches"):
        report.build_report(model, None, [torch.rand(4)], eps=0.1, out_dir=tmp_path)


def test_report_cli_on_a_checkpoint_the_tests_train(data_root, tmp_path, capsys):
    from landscape import data, models

    x, y = data.load_dataset("mnist", data_root, num_samples=64)
    from landscape import attacks

    cfg = train.TrainConfig(
        epochs=1, batch_size=32, optimizer="adam", lr=1e-3,
        attack=attacks.PGD(eps=0.1, steps=1), seed=0, model="mlp",
        model_kwargs={"dataset": "mnist", "width": 16},
        runtime=train.Runtime(eval_num=0, co_check_num=0),
    )  # fmt: skip
    run = tmp_path / "run"
    train.adversarial_train(
        models.build("mlp", dataset="mnist", width=16), (x, y), cfg, run_dir=run
    )
    out = tmp_path / "rep"
    argv = [str(run), "--dataset", "mnist", "--data-root", str(data_root), "-o",
            str(out), "--sections", "accuracy", "surface", "--no-progress"]  # fmt: skip
    assert report.main(argv) == 0
    assert "wrote" in capsys.readouterr().out
    num = json.loads((out / "report.json").read_text())
    assert num["eps"] == 0.1  # the run's training eps
    assert set(num["sections"]) == {"accuracy", "surface"}
    assert report.main([str(tmp_path / "missing"), "--dataset", "mnist"]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and len(err.strip().splitlines()) == 1


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


class _Trap:
    """A local proxy that only records who knocks: any request the page makes to
    another host goes through it (Chromium's --proxy-server) and is answered with
    nothing, so no request leaves the machine and each one is seen by its first
    line. A connection closed without sending a byte (a speculative preconnect)
    carries no request and is not counted."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.requests: list[bytes] = []
        self._stop = False
        self._conns: list[threading.Thread] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _read(self, conn):
        conn.settimeout(20.0)  # a loaded machine may take seconds to send the line
        try:
            head = conn.recv(200)
        except OSError:
            head = b"<no request line within 20 s>"
        finally:
            conn.close()
        if head:
            self.requests.append(head)

    def _serve(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            t = threading.Thread(target=self._read, args=(conn,), daemon=True)
            t.start()
            self._conns.append(t)

    def close(self):
        self._stop = True
        self.thread.join(2)
        for t in self._conns:
            t.join(25)
        self.sock.close()


_SERVICES = (  # Chromium's own background calls (not the page's)
    "optimizationguide-pa.googleapis.com",
    "update.googleapis.com",
    "safebrowsing.googleapis.com",
    "content-autofill.googleapis.com",
)


def _chromium_service(host: str) -> bool:
    return host.endswith(("google.com", "gvt1.com")) or host in _SERVICES


def _host(request: bytes) -> str:
    """``example.org`` from ``GET http://example.org/x ...`` or ``CONNECT h:443``."""
    parts = request.split(b" ")
    if len(parts) < 2:
        return "?"
    target = parts[1].decode("latin-1")
    return re.sub(r"^[a-z]+://", "", target).split("/")[0].split(":")[0]


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium not installed")
def test_report_renders_offline_in_headless_chromium(user_case, tmp_path):
    *_, rep, _ = user_case
    probe = rep.html.read_text().replace(
        "</body>",
        # re-measured every 200 ms (virtual time) until Chromium dumps the DOM, so a
        # slow machine only delays the numbers, never leaves them unset
        "<script>(function tick() {"
        "document.body.dataset.imgs = [...document.images]"
        ".filter(i => i.complete && i.naturalWidth > 0).length;"
        "document.body.dataset.plots = document.querySelectorAll("
        "'.js-plotly-plot .gl-container, .js-plotly-plot canvas').length;"
        "setTimeout(tick, 200);})();</script></body>",
    )
    page = tmp_path / "probe.html"
    page.write_text(probe)
    trap = _Trap()
    try:
        cmd = [
            _chromium(), "--headless", "--no-sandbox", "--disable-gpu",
            "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-default-apps",
            "--disable-features=OptimizationHints,NetworkTimeServiceQuerying",
            f"--proxy-server=http://127.0.0.1:{trap.port}",
            "--proxy-bypass-list=<-loopback>", "--virtual-time-budget=30000",
            "--dump-dom", page.as_uri(),
        ]  # fmt: skip
        dom = subprocess.run(cmd, capture_output=True, text=True, timeout=300).stdout
    finally:
        trap.close()
    # Chromium itself calls its own services (www/accounts/clients2.google.com) even
    # for an empty page; everything else would come from the report page (a CDN,
    # web fonts, MathJax). The trap answers nothing: no request left the machine.
    hosts = {_host(r) for r in trap.requests}
    assert all(_chromium_service(h) for h in hosts), hosts
    # the four figures are in the rendered page; when they decode is up to the
    # machine's load (the dump may come first), so each PNG is decoded here instead
    assert len(re.findall(r"<img ", dom)) == 4 and "data-imgs=" in dom
    from PIL import Image

    for data in re.findall(r'src="data:image/png;base64,([^"]+)"', dom):
        with Image.open(io.BytesIO(base64.b64decode(data))) as im:
            im.verify()
    assert "js-plotly-plot" in dom and 'class="main-svg"' in dom  # plotly drew
    assert not re.search(r'data-plots="0"', dom)  # the 3D scenes have canvases


def _accuracy_numbers(failed: set) -> dict:
    return {
        "num_samples": 10, "preset": "quick", "norm": "linf", "eps": [0.1],
        "clean_accuracy": 0.9, "robust_accuracy": [0.5],
        "after_attack": {"pgd-20": [0.5]},
        "checks": {n: {"passed": n not in failed, "detail": ""}
                   for n in report.CHECK_EXPLANATIONS},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("failed", "upper_bound", "eval_advice"),
    [(set(), False, False), ({"eval_mode"}, False, True),
     ({"black_box"}, True, False), ({"black_box", "eval_mode"}, True, True)],
)  # fmt: skip
def test_report_verdict_names_what_failed(tmp_path, failed, upper_bound, eval_advice):
    """A model left in train mode is a usage slip, not masked gradients: the page
    said 'treat the robust accuracy as an upper bound' for it too."""
    from landscape.report import _html

    png = tmp_path / "a.png"
    png.write_bytes(b"\\x89PNG")
    text = _html.page(
        "t", "", {"accuracy": _accuracy_numbers(failed)}, {"accuracy": png}, None
    )
    assert ("upper bound" in text) == upper_bound
    assert ("call <code>model.eval()</code>" in text) == eval_advice


def test_budget_names_mean_the_evaluation_presets():
    """One name, one meaning (issue 28): the report's ``quick`` budget evaluates with
    evaluate's ``quick`` preset (PGD-20) at its published strength, and so on; the
    fixed adversarial examples are one PGD run with the quick preset's steps (the
    quick budget was PGD-5 with the protocol scaled to 1/4 before)."""
    from landscape import evaluate
    from landscape.report._cli import _parser

    assert set(report.BUDGETS) == {"quick", "standard", "reviewer"}
    budget = next(a for a in _parser()._actions if a.dest == "budget")
    assert set(budget.choices) == set(report.BUDGETS)
    (quick,) = evaluate.preset_attacks("quick", 0.3)
    for name, b in report.BUDGETS.items():
        assert b.eval_preset == name and b.eval_scale == 1.0, b
        assert b.attack_steps == quick.steps == 20, b
