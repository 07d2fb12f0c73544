"""Small data sets shaped like the thin data real evaluations start from: a table the care
provider could not deliver, one school, no comparison schools, no school year before the pilot
started, one school year, a municipality without pupils.

Each case is cut from the synthetic data set (so that whatever is left is realistic), narrowed
to regio Lekstroom and its comparison schools and to a sample of pupils, to keep a render cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from evaluation.data.datamodel import TABLES
from evaluation.data.reading import write_tables

LEKSTROOM = [f"LS{i:02d}" for i in range(1, 13)]
COMPARISON = [f"ZK{i:02d}" for i in range(1, 11)]
YEARS = ["2011-2012", "2012-2013", "2013-2014", "2014-2015"]
STARTED_2013 = ["LS01", "LS02", "LS05", "LS08", "LS10"]


def narrow(tables: dict[str, pd.DataFrame], schools: list[str] | None = None,
           years: list[str] | None = None, pupil_share: float = 1.0,
           seed: int = 7) -> dict[str, pd.DataFrame]:
    """The tables of these schools and school years, for a sample of their pupils; every
    reference stays whole (a referral keeps its trajectory, a trajectory its pupil)."""
    from evaluation.data.datamodel import school_year_of

    schools = schools or LEKSTROOM + COMPARISON
    years = years or YEARS
    t = {name: frame.copy() for name, frame in tables.items()}
    t["schools"] = t["schools"][t["schools"]["school_id"].isin(schools)]
    e = t["enrolments"]
    e = e[e["school_id"].isin(schools) & e["school_year"].isin(years)]
    pupils = pd.Series(e["student_id"].unique())
    if pupil_share < 1:
        pupils = pupils.sample(frac=pupil_share, random_state=seed)
    e = e[e["student_id"].isin(pupils)]
    t["enrolments"] = e
    known = e[["student_id", "school_year"]].drop_duplicates()

    def of_pupils(frame: pd.DataFrame, date_col: str) -> pd.DataFrame:
        keyed = frame.assign(school_year=school_year_of(frame[date_col]))
        keep = keyed.merge(known, on=["student_id", "school_year"], how="left",
                           indicator=True)["_merge"].eq("both").to_numpy()
        return frame[keep & frame["school_id"].isin(schools).to_numpy()]

    t["care_reports"] = of_pupils(t["care_reports"], "report_date")
    t["trajectories"] = of_pupils(t["trajectories"], "signal_date")
    r = of_pupils(t["referrals"], "referral_date")
    t["referrals"] = r[r["trajectory_id"].isna() | r["trajectory_id"].isin(
        t["trajectories"]["trajectory_id"])]
    p = t["parent_involvement"]
    t["parent_involvement"] = p[p["trajectory_id"].isin(t["trajectories"]["trajectory_id"])]
    s = t["survey_responses"]
    s = s[s["school_id"].isin(schools) & s["school_year"].isin(years)]
    if pupil_share < 1:
        respondents = pd.Series(s["respondent_id"].unique()).sample(frac=pupil_share,
                                                                     random_state=seed)
        s = s[s["respondent_id"].isin(respondents)]
    t["survey_responses"] = s
    return {name: frame.reset_index(drop=True) for name, frame in t.items()}


def empty(tables: dict[str, pd.DataFrame], *names: str) -> dict[str, pd.DataFrame]:
    return {n: (f.iloc[0:0] if n in names else f) for n, f in tables.items()}


@dataclass(frozen=True)
class Case:
    """One thin-data case: how to cut the data, which files to leave out, the report to render
    and what its whitepaper (or the error) must say."""

    id: str
    cut: Callable[[dict[str, pd.DataFrame]], dict[str, pd.DataFrame]]
    absent: tuple[str, ...] = ()
    school_year: str = "2014-2015"
    municipality: str | None = None
    exit_code: int = 0
    says: tuple[str, ...] = ()      # in the whitepaper (or, for an error, the message)
    notes: tuple[str, ...] = ()     # among the estimate records' notes


def write_case(case: Case, tables: dict[str, pd.DataFrame], out: Path) -> Path:
    """The case's data set as CSV files, the absent tables left out."""
    write_tables(case.cut(tables), out)
    for name in case.absent:
        (out / TABLES[name].filename).unlink()
    return out


SHARE = 0.15  # of the pupils: enough records for some estimates, a render of seconds


def base(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    return narrow(tables, pupil_share=SHARE)


NO_COMPARISON = "niet te bepalen: geen vergelijkingsscholen in de gegevens"
NO_BASELINE = ("niet te bepalen: de gegevens hebben geen schooljaar vóór de start van de pilot "
               "op een pilotschool")

CASES = (
    Case("care_reports_absent", base, absent=("care_reports",),
         says=("Er zijn geen zorgmeldingen aangeleverd.",
               "niet te bepalen: er zijn geen zorgmeldingen aangeleverd",
               "Geen figuur: er zijn geen zorgmeldingen aangeleverd."),
         notes=("niet te bepalen: er zijn geen zorgmeldingen aangeleverd",)),
    Case("referrals_empty", lambda t: empty(base(t), "referrals"),
         says=("Er zijn geen verwijzingen aangeleverd.",
               "Niet te bepalen. Er zijn geen verwijzingen aangeleverd; daarom is voor dit thema",
               "Geen tabel naar verwijzer"),
         notes=("niet te bepalen: er zijn geen verwijzingen aangeleverd",)),
    Case("parent_involvement_absent", base, absent=("parent_involvement",),
         says=("Er zijn geen gegevens over ouderbetrokkenheid aangeleverd.",
               "niet te bepalen: er zijn geen gegevens over ouderbetrokkenheid aangeleverd"),
         notes=("niet te bepalen: er zijn geen gegevens over ouderbetrokkenheid aangeleverd",)),
    Case("survey_empty", lambda t: empty(base(t), "survey_responses"),
         says=("Er zijn geen antwoorden op de tevredenheidsvragenlijst aangeleverd.",
               "Geen betrouwbaarheid van de schalen"),
         notes=("niet te bepalen: er zijn geen antwoorden op de tevredenheidsvragenlijst "
                "aangeleverd",)),
    Case("one_school", lambda t: narrow(t, ["LS01"], pupil_share=0.5),
         says=("Van 11 van de 12 pilotscholen zijn geen gegevens over schooljaar 2014-2015.",
               "Er zijn geen gegevens van vergelijkingsscholen over schooljaar 2014-2015.",
               "gegevens van maar één pilotschool (minstens twee nodig)"),
         notes=(NO_COMPARISON,
                "niet te bepalen: gegevens van maar één pilotschool (minstens twee nodig)")),
    Case("no_comparison_schools", lambda t: narrow(t, LEKSTROOM, pupil_share=SHARE),
         says=("Er zijn geen gegevens van vergelijkingsscholen over schooljaar 2014-2015.",
               "Geen van de 8 hoofdindicatoren kon met vergelijkingsscholen worden vergeleken",
               NO_COMPARISON),
         notes=(NO_COMPARISON,)),
    Case("no_year_before_the_start",
         lambda t: narrow(t, STARTED_2013 + COMPARISON, ["2013-2014", "2014-2015"],
                          pupil_share=SHARE),
         says=("De gegevens beginnen in schooljaar 2013-2014, toen de pilot op elke pilotschool "
               "met gegevens al liep", NO_BASELINE),
         notes=(NO_BASELINE,)),
    Case("one_school_year", lambda t: narrow(t, years=["2014-2015"], pupil_share=SHARE),
         says=("De gegevens beslaan alleen schooljaar 2014-2015", NO_BASELINE),
         notes=(NO_BASELINE,)),
    Case("municipality_without_pupils",
         lambda t: narrow(t, [s for s in LEKSTROOM + COMPARISON if s != "LS12"],
                          pupil_share=SHARE), municipality="Lopik",
         says=("In de gegevens staan voor schooljaar 2014-2015 geen leerlingen van de "
               "pilotscholen in gemeente Lopik.",
               "geen gegevens van pilotscholen in schooljaar 2014-2015"),
         notes=("niet te bepalen: geen gegevens van pilotscholen in schooljaar 2014-2015",)),
    Case("report_year_without_data", base, school_year="2030-2031", exit_code=2,
         says=("school year 2030-2031: no data",
               "school years 2011-2012, 2012-2013, 2013-2014, 2014-2015")),
)
