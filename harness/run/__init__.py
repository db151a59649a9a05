"""The run path: preparing a run and executing it (`run`), jobs, lanes and the scheduler, batch
lanes, limits, budgets, adaptive concurrency, progress, provenance, the preflight request,
the status summary (`summary`), and the verbs that look at a run before or beside it
(`plan`, `doctor`, `open_batches`).
"""
