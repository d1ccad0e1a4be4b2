"""`search --html PAGE`: one self-contained page (thumbnails inline as JPEG data, no network)
showing the query's frames and each hit's, with score, span and labels."""

from __future__ import annotations

from pathlib import Path


from ..errors import PRPError
from ..runtime.thumbnails import image_data, spread_frames
from .library import Hit, Library, parse_query

THUMBS = 4  # frames a strip shows, spread over the span
THUMB_HEIGHT = 72

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>prp-deploy search: {{ query }}</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; } td, th { padding: 4px 10px; border-bottom: 1px solid #ddd; text-align: left; vertical-align: middle; }
.strip img { height: {{ height }}px; margin-right: 2px; } .missing { color: #a00; } .score { font-variant-numeric: tabular-nums; }
</style></head><body>
<h1>Search by example</h1>
<p>Library <code>{{ library }}</code> ({{ videos }} videos, {{ windows }} windows; model <code>{{ model }}</code>); ranked by {{ by }}.</p>
<h2>Query</h2>
<table><tr><td class="strip" id="query">{% for t in query_strip.images %}<img alt="query frame" src="data:image/jpeg;base64,{{ t }}">{% endfor %}
{% if query_strip.error %}<span class="missing">{{ query_strip.error }}</span>{% endif %}</td>
<td><code>{{ query }}</code></td></tr></table>
<h2>{{ hits|length }} hits</h2>
<table id="hits"><tr><th>rank</th><th>score</th><th>frames</th><th>source</th><th>span (s)</th><th>labels</th></tr>
{% for h in hits %}<tr class="hit"><td>{{ h.rank }}</td><td class="score">{{ "%.4f"|format(h.score) }}</td>
<td class="strip">{% for t in h.strip.images %}<img alt="hit frame" src="data:image/jpeg;base64,{{ t }}">{% endfor %}
{% if h.strip.error %}<span class="missing">{{ h.strip.error }}</span>{% endif %}</td>
<td><code>{{ h.source }}</code></td><td>{{ h.span }}</td><td>{{ h.labels }}</td></tr>
{% endfor %}</table>
</body></html>
"""


def strip(source: str, start_s: float | None, end_s: float | None, n: int = THUMBS, height: int = THUMB_HEIGHT) -> dict:
    """{"images": [base64 JPEG, ...], "error": str|None}: n frames spread over the span (the whole video without one)."""
    frames = spread_frames(source, n, start_s, end_s)
    if not frames:
        return {"images": [], "error": "cannot be opened or no frame decoded"}
    return {"images": [image_data(f, height) for f in frames], "error": None}


def write_page(page: Path, lib: Library, query: str, hits: list[Hit], by: str) -> None:
    try:
        import jinja2
    except ImportError:
        raise PRPError("--html needs Jinja2: pip install 'prp-deploy[search]'") from None
    path, qs, qe = parse_query(query)
    meta = lib.meta
    rows = [{"rank": h.rank, "score": h.score, "source": h.source, "strip": strip(h.source, h.start_s if by == "window" else None,
                                                                                 h.end_s if by == "window" else None),
             "span": f"{h.start_s:.2f}-{h.end_s:.2f}" if h.start_s is not None else "",
             "labels": ", ".join(f"{l} {s:.2f}" for l, s in h.labels[:3])} for h in hits]
    env = jinja2.Environment(autoescape=True)
    text = env.from_string(TEMPLATE).render(query=query, library=str(lib.path), videos=meta["counts"]["videos"],
                                            windows=meta["counts"]["windows"], model=meta["model"]["path"], by=by,
                                            query_strip=strip(path, qs, qe), hits=rows, height=THUMB_HEIGHT)
    page = Path(page)
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(text)


__all__ = ["strip", "write_page"]
