"""National: every region side by side, and the national overview report.

The difference-in-differences of every primary indicator for every region and the nation from
analysis frames computed once for the country (`estimates`), funnel plots of each region's rate
against its size (`funnel`), the overview's numbers computed once per school year (`overview`),
their Dutch text, tables and figures (`sections`) and the report's build (`build`).

May import: every stage below it (params, registry, labels, data, analysis, report, run) and this
subpackage; only the command line sits above it.
"""
