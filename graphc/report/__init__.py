"""The compile report: one self-contained HTML file per run showing what the compiler
did with every function ``graphc.compile`` compiled (``docs/report.md``).

Turned on by ``graphc.compile(..., report="DIR")``, ``GRAPHC_REPORT=DIR`` or ``python -m
graphc report SCRIPT.py``; the file is written when the process exits, or by ``write()``.

=============  ==========================================================================
record.py      what a compiled function tells the report: each compile's stages (graphs,
               fusion report, loop IR, code), its guards, the recompile reason or the
               graph break; the run's recorders and its file
collect.py     a recorded compile as plain data: IR stages with what each pass changed,
               kernels with their ops, unfused edges, loop IR, code and profile
drawing.py     the dataflow graph with fusion groups as clusters: Graphviz ``dot``
               renders SVG when installed, else the page lays it out with dagre
memory.py      the memory plan as buffer lifetimes over kernel index, with the peak
page.py        the HTML file: the data as JSON, the script, styles and dagre inlined
static/        report.js, report.css, dagre.min.js (MIT, ``static/dagre.LICENSE``)
=============  ==========================================================================
"""
from graphc.report.record import recorder_for, write

__all__ = ["recorder_for", "write"]
