"""No published table or figure reveals a small group: every count a report shows has passed
disclosure control, whatever the thresholds."""

import pandas as pd
import pytest

from evaluation.analysis.care_reports import analyse
from evaluation.registry import INDICATORS
from evaluation.report import care_reports, findings, plots
from evaluation.report.disclosure import PublishedTable, check_published
from evaluation.report.notebook import setup


def _published(run) -> list[PublishedTable]:
    """Every count-bearing table the notebooks publish, as numbers (before formatting)."""
    es = run.estimates
    rule = run.params.disclosure
    tables = [findings.key_figures(es)[1],
              findings.referrals_by_referrer(es, run.data.tables)]
    a = analyse(run.data.tables, run.params, run.params_dir)
    shown = care_reports.school_table(a)
    for col in ("Meldingen vóór", f"Meldingen {run.params.school_year}"):
        numbers = shown[col].map(lambda c: pd.NA if c == "·" else int(c.replace(".", "")))
        tables.append(PublishedTable(f"school_table:{col}", numbers.to_frame(), [col], ""))
    # Figures: every plotted value rests on at least min_count records.
    for ind in INDICATORS:
        if ind == "indication_free_days":
            continue
        yv = plots.yearly_values(es, ind)
        plotted = yv[yv["value"].notna()]
        assert (plotted["n"] >= rule.min_count).all(), ind
    return tables


@pytest.mark.parametrize("overrides", [[], ["disclosure.min_count=50", "disclosure.rounding_base=10"]])
def test_no_published_table_holds_a_cell_below_the_threshold(overrides):
    run = setup("lekstroom", "2014-2015", "", overrides)
    check_published(_published(run), run.params.disclosure)


def test_a_raised_threshold_hides_more_cells():
    low = setup("lekstroom", "2014-2015")
    high = setup("lekstroom", "2014-2015", "", ["disclosure.min_count=200"])
    hidden = [findings.referrals_by_referrer(r.estimates, r.data.tables).frame.isna().sum().sum()
              for r in (low, high)]
    assert hidden[1] > hidden[0]
