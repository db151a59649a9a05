"""The analysis layer: reads ledgers, writes its own files (scores, sheets, statistics, exports).

It knows no provider and no scheduler; the run path does not change for it (see
docs/architecture.md).
"""
