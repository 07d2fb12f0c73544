"""Data: what the evaluation reads, before any indicator is computed.

The record-level data model (`datamodel`: tables, fields, allowed values, the data dictionary),
reading data folders of CSV or Parquet (`reading`, `parquet`), validation that keeps every rejected
row with its file, row, field and reason (`validation`), the import of real exports with
pseudonymisation and quarantine (`importing`, `pseudonymisation`), the synthetic generators with
their planted effects (`synthetic` for the regions in params, `synthetic_national` for the whole
country) and the CBS context cache (`context`).

May import: `evaluation.params`, `evaluation.registry`, `evaluation.labels` and other modules of
this subpackage; never analysis, report, run or national.
"""
