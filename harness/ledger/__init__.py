"""The ledger: the line format (`record`, `lines`: seal, parse, CRC), the writer (`writer`), the
resume index (`index`), several ledgers read as one (`sets`, `shards`), `merge`, and the files
verbs write beside it (`targets`).
"""
