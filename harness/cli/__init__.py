"""The command line: the parser and the run-path verbs (`main`), and one module per verb group
(`answers`: score, annotate; `results`: stats, export; `report`).
"""
