"""The documentation site (issue 28, "docs that read well"): ``mkdocs build --strict``
passes with its warnings visible (no ``--quiet``); the API pages show no raw Sphinx
roles (``:func:`hvp```), each page has one title, and every public package of
``landscape`` is in the API menu. Where a headless Chromium is installed, the pages
are also checked as a browser renders them."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

import landscape

pytest.importorskip("mkdocs")
pytest.importorskip("mkdocstrings_handlers.python")
yaml = pytest.importorskip("yaml")

_ROLE = re.compile(r":[a-z]+:`")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert "WARNING" not in log, log[-4000:]
    return out


def _api_pages(site: Path) -> list[Path]:
    pages = sorted((site / "api").glob("*/index.html"))
    assert len(pages) >= 15
    return pages


def _text(page: Path) -> str:
    body = page.read_text()
    body = re.sub(r"<script.*?</script>", "", body, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", body))


def test_api_pages_show_no_raw_roles_and_link_them(site):
    linked = 0
    for page in _api_pages(site):
        text = _text(page)
        raw = _ROLE.findall(text)
        assert not raw, (page, raw[:5])
        assert "``" not in text, page
        linked += page.read_text().count('class="autorefs autorefs-internal"')
    # the roles became links: hessian's docstrings alone name dozens of objects
    assert linked > 100
    hessian = (site / "api" / "hessian" / "index.html").read_text()
    assert 'href="#landscape.hessian.hvp"' in hessian


def test_one_title_per_page(site):
    for page in [
        *_api_pages(site),
        site / "index.html",
        site / "report" / "index.html",
    ]:
        h1 = re.findall(r"<h1[\s>]", page.read_text())
        assert len(h1) == 1, (page, len(h1))


def test_every_package_is_in_the_api_menu(site):
    cfg = yaml.safe_load((REPO / "mkdocs.yml").read_text().replace("!!python", "#"))
    (api,) = [e["API reference"] for e in cfg["nav"] if "API reference" in e]
    menu = {next(iter(e)) for e in api}
    public = {
        f"landscape.{p.stem if p.suffix else p.name}"
        for p in Path(landscape.__file__).parent.iterdir()
        if not p.name.startswith("_")
        and (p.suffix == ".py" or (p / "__init__.py").exists())
    }
    assert public <= menu, sorted(public - menu)
    for name in public:  # and each has its page
        assert (site / "api" / name.split(".")[1] / "index.html").exists(), name


def test_pages_in_a_browser(site, tmp_path):
    browser = next(
        (shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")
         if shutil.which(b)),
        None,
    )  # fmt: skip
    if browser is None:
        pytest.skip("no headless Chromium installed (apt-get install chromium)")
    for name in ("hessian", "plot", "connectivity"):
        page = site / "api" / name / "index.html"
        proc = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu",
             f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        dom = proc.stdout
        assert proc.returncode == 0 and "<h1" in dom, proc.stderr[-2000:]
        text = html.unescape(re.sub(r"<[^>]+>", "", dom))
        assert not _ROLE.findall(text), name
        assert len(re.findall(r"<h1[\s>]", dom)) == 1, name
