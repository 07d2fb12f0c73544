"""Report: what readers see, made from the analysis' results.

Disclosure control of every published count, rate and figure (`disclosure`), Dutch number
formatting (`formatting`), the house-style figures (`plots`), the tables and sentences of the
findings (`findings`, `care_reports`, `costs`, `context`, `data_quality`), what the data lack
(`coverage`), the colophon's
provenance (`provenance`), what every notebook calls first (`notebook`), rendering with Quarto or
the built-in renderer (`rendering`), the Excel workbook (`workbook`), the site index (`site`) and
the publication audit that nothing personal and no small cell leaves the build (`audit`).

May import: `evaluation.params`, `evaluation.registry`, `evaluation.labels`, `evaluation.data`,
`evaluation.analysis` and this subpackage; never run or national.
"""
