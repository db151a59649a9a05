"""The ledger: the line format (`record`, `file`: seal, parse, CRC), the writer and the
resume index (`file`), several ledgers read as one (`sets`, `shards`), `merge`,
and the files verbs write beside it (`targets`).
"""
