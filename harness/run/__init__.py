"""The run path: validating and preparing a run (`prepare`), executing it (`execute`, the one
entrance `run_pending`), the ledger a run holds and reads once (`run_ledger`), choosing failed
jobs for `rerun` (`rerun`), budget caps (`caps`, `budget`), jobs and the records of finished ones
(`records`), lanes and the scheduler, batch lanes, limits, adaptive concurrency, progress,
provenance, the preflight request, the status summary and its table (`summary`), the summary a
run prints when it ends, tallied in its one reading of the ledger (`closing_summary`), what both
hold and how a ledger line adds to them (`tally`), the verbs that look at a run before or beside
it (`plan`, `doctor`, `open_batches`) and the judge runs the analysis layer asks for
(`judge_runs`).
"""
