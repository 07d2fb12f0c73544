"""Analysis: from validated tables to estimates, with their intervals and the method behind them.

The indicators and their record frames (`indicators`, `scales`), the evaluation design (`design`:
pilot and comparison schools, analysis years), what the data at hand can carry (`feasibility`:
a Dutch note for every comparison that cannot be estimated), the estimators (`comparisons` per comparison,
`fixed_effects` for two-way fixed-effects models with absorbed school effects, `survival`,
`timeseries`, `staggered` for Callaway & Sant'Anna), inference that holds with few schools
(`inference`), one table of estimates per report (`estimates`), robustness checks
(`robustness`), costs and savings (`costs`) and the care-report theme's own numbers
(`care_reports`). Nothing here formats for a reader; results carry their own method, unit, n and
interval (`statistics.Estimate`).

May import: `evaluation.params`, `evaluation.registry`, `evaluation.labels`, `evaluation.data` and
this subpackage; never report, run or national.
"""
