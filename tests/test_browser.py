"""The pages the toolkit writes, checked in a real headless browser (Debian's
chromium-headless-shell or chromium, driven by Playwright): report.html and `search --html`.
No console error, every image decoded, the numbers on the page equal the files they come
from (read back from the DOM), and a screenshot that is not blank. CI must run them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

BROWSERS = ("chromium-headless-shell", "chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run"]  # this machine's network is closed: no background connections to fail


@pytest.fixture(scope="module")
def browser():
    exe = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if exe is None or sync_playwright is None:
        why = "no chromium-headless-shell or chromium on PATH (apt install chromium-headless-shell)" if exe is None else "playwright missing (dev extra)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the browser tests: {why}")
        pytest.skip(why)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=FLAGS)
        yield b
        b.close()


def load(browser, page_file: Path, shot: Path) -> tuple[object, list[str]]:
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: errors.append(f"fetched {r.url}") if not r.url.startswith(("file:", "data:")) else None)
    page.goto(page_file.absolute().as_uri())
    page.wait_for_load_state("load")
    page.screenshot(path=str(shot), full_page=True)
    return page, errors


def assert_images_decoded(page, at_least: int) -> None:
    widths = page.evaluate("Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0)")
    assert len(widths) >= at_least and all(w > 0 for w in widths), widths


def assert_not_blank(shot: Path) -> None:
    img = cv2.imread(str(shot))
    assert img is not None and img.shape[0] > 200
    assert float(img.std()) > 20 and (img < 128).mean() > 0.01  # more than a white page with a line of text


def lookup(doc: dict, path: str):
    """'recognition.top1' → doc["recognition"]["top1"]; a key with dots (a file name) after 'artifacts.'."""
    if path.startswith("artifacts."):
        return doc["artifacts"][path[len("artifacts."):]]
    for part in path.split("."):
        doc = doc[part]
    return doc


def test_report_renders_with_the_runs_numbers(browser, evaluated_run, tmp_path):
    run = evaluated_run
    from prp_deploy.reports.html import write_report

    write_report(run)
    page, errors = load(browser, run / "report.html", tmp_path / "report.png")
    assert errors == []
    ev, parity = json.loads((run / "eval.json").read_text()), json.loads((run / "export" / "parity.json").read_text())
    values = page.evaluate("Array.from(document.querySelectorAll('[data-value]')).map(e => [e.dataset.value, e.textContent.trim()])")
    keys = {k for k, _ in values}
    assert {"eval:recognition.top1", "eval:retrieval.top1", "parity:passed", "parity:artifacts.model.onnx"} <= keys
    for key, text in values:
        source, path = key.split(":", 1)
        truth = lookup(ev if source == "eval" else parity, path)
        if isinstance(truth, bool):
            assert text == ("PASSED" if truth else "FAILED"), key
        elif isinstance(truth, int):
            assert text == str(truth), key
        else:
            assert text == f"{truth:.2f}", key
    classes = len(ev["classes"])
    per_class = page.evaluate("document.querySelectorAll('#per-class tr').length")
    assert per_class == classes + 1
    hits = page.evaluate("document.querySelectorAll('.thumbs td.hit, .thumbs td.miss').length")
    assert hits == sum(len(e["hits"]) for e in ev["retrieval"]["examples"]) > 0
    # curves, learning rate, confusion, a cosine histogram per artefact, retrieval thumbnails, explain grids
    assert_images_decoded(page, 3 + len(parity["artifacts"]) + hits + 1)
    assert page.evaluate("document.querySelectorAll('img[alt=\"explain maps\"]').length") >= 1
    assert_not_blank(tmp_path / "report.png")


def test_search_page_renders_its_hits(browser, library, exported, tmp_path):
    query = sorted((exported.parent.parent / "data" / "UCF-101").rglob("*.avi"))[3]
    page_file = tmp_path / "hits.html"
    r = subprocess.run([sys.executable, "-m", "prp_deploy", "search", str(query), "--library", str(library.path), "--topk", "5",
                        "--html", str(page_file)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(l) for l in r.stdout.splitlines()]
    page, errors = load(browser, page_file, tmp_path / "hits.png")
    assert errors == []
    rows = page.evaluate("Array.from(document.querySelectorAll('tr.hit')).map(r => Array.from(r.cells).map(c => c.textContent.trim()))")
    assert [int(r[0]) for r in rows] == [l["rank"] for l in lines]
    assert [r[1] for r in rows] == [f"{l['score']:.4f}" for l in lines]
    assert [r[3] for r in rows] == [l["source"] for l in lines]
    assert_images_decoded(page, 4 * (1 + len(lines)))
    assert_not_blank(tmp_path / "hits.png")
