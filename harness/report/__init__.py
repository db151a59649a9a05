"""`harness report`: one self-contained HTML file of a run's results, to open offline, share, or
attach to a paper's supplement (the `status` summaries are `harness.run.summary`).

    read.py      one pass over the ledger: run lines, every result line (the timeline), and the
                 latest record of every key (the record browser's rows, each answer's uncertainty)
    browser.py   those rows as the page's compressed payload, within a size budget
    overview.py  runs (provenance), variants with done / failed / pending, cost, wall time
    figures.py   the figures (matplotlib): inline SVG, and SVG + PNG files for a paper
    page.py      the page assembled from the template files in assets/ and written whole

The statistics are `harness.analysis.stats`' (rates, comparisons, AUROC); nothing is recomputed.
"""

from harness.report.page import Built, ReportRequest, build_report

__all__ = ["Built", "ReportRequest", "build_report"]
