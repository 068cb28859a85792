"""The report file: one HTML page holding everything it shows.  The collected data is a
JSON block; ``static/report.js`` builds the page from it, with ``report.css`` and (when
a drawing is left to the browser) ``dagre.min.js`` inlined, so opening the file makes
no network request."""
from __future__ import annotations

import json
import time
from importlib import resources

from graphc.report.collect import collect
from graphc.version import __version__


def static(name: str) -> str:
    return resources.files("graphc.report").joinpath("static", name).read_text("utf-8")


def report_data(recorders) -> dict:
    functions = []
    for i, recorder in enumerate(recorders):
        functions.append({"name": recorder.name, "backend": recorder.backend,
                          "where": recorder.where,
                          "compiles": [collect(r, f"f{i}c{r.index}", recorder.fuse)
                                       for r in recorder.compiles]})
    return {"graphc": __version__, "written": time.strftime("%Y-%m-%d %H:%M:%S"),
            "functions": functions}


def _script_text(text: str) -> str:
    """Text that cannot end the ``<script>`` element it sits in."""
    return text.replace("</", "<\\/")


def render_page(recorders) -> str:
    data = report_data(recorders)
    needs_dagre = any(p["drawing"]["engine"] == "dagre" for f in data["functions"]
                      for c in f["compiles"] for p in c["programs"])
    scripts = ([static("dagre.min.js")] if needs_dagre else []) + [static("report.js")]
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        "<title>graphc compile report</title>",
        f"<style>{static('report.css')}</style></head>",
        '<body><header><h1>graphc compile report</h1><span id="written"></span></header>',
        '<div id="layout"><nav id="functions"></nav><main id="main"></main></div>',
        f'<script type="application/json" id="report-data">'
        f'{_script_text(json.dumps(data))}</script>',
        *(f"<script>{_script_text(s)}</script>" for s in scripts),
        "</body></html>"])


def write_page(path: str, recorders) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(render_page(recorders))
