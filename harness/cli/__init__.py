"""The command line: `main` (the entry point and the parser's assembly), and one module per verb
group, each adding its verbs to the parser (`run`: run, rerun, plan, doctor; `ledgers`: status,
merge, batches; `answers`: score, annotate; `results`: stats, export; `query`;
`report`; `options`), with
`selection`: the options that pick prompts, shared by `run` and `ledgers`.
"""
