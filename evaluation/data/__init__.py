"""Data: from source files to validated, pseudonymised tables of the data model.

The data model and data dictionary (`datamodel`), reading and writing a data set of CSV files
(`reading`) or Parquet files (`parquet`), validation with every rejected row kept with its reason
(`validation`), plausibility warnings that reject nothing (`plausibility`), the import of real
exports (`exports` reads source files and converts their values, `mapping` reads the mapping file,
`quarantine` words why a row was set aside, `importing` runs the import and writes the quarantine
and its report), pseudonymisation (`pseudonymisation`), the synthetic generators with planted effects
(`synthetic`, `synthetic_national`) and the cache of CBS open data (`context`).

May import: `evaluation.params`, `evaluation.registry`, `evaluation.labels` and this subpackage;
never analysis, report, run or national.
"""
