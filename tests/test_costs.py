"""Costs and avoided costs: checked by hand on a small case, intervals, example labelling, and a
run on the synthetic data."""

from __future__ import annotations

import json
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from pydantic import ValidationError  # noqa: E402

from evaluation.analysis.costs import (  # noqa: E402
    DOUBLE_INTAKE,
    EXAMPLE_COSTS_FILE,
    REFERRALS,
    Costs,
    cost_benefit,
    cost_records,
    load_costs,
)
from evaluation.analysis.estimates import EstimateSet  # noqa: E402
from evaluation.analysis.methods import DID  # noqa: E402
from evaluation.params import load_params, region_files  # noqa: E402
from evaluation.report.costs import (  # noqa: E402
    cost_figure,
    cost_inputs_table,
    cost_sentence,
    cost_table,
    example_warning,
)

YEAR = "2014-2015"
SCHOOLS = ["LS01", "LS02", "LS03"]


def item(value: float, unit: str = "euro", source: str = "tarief gemeente Nieuwegein 2014"):
    return {"value": value, "unit": unit, "source": source}


def make_costs(example: bool = False, light_replaces_avoided: bool = True) -> Costs:
    src = "voorbeeldwaarde, te vervangen" if example else "tarief gemeente Nieuwegein 2014"
    return Costs.model_validate({
        "example": example,
        "core_team_hours_per_week": item(10, "uur", src),
        "hourly_rate": item(100, "euro per uur", src),
        "weeks_per_school_year": item(40, "weken", src),
        "coordination_per_school_year": item(20000, "euro", src),
        "intake": item(300, "euro per intake", src),
        "trajectory": {"light": item(1000, source=src), "specialised": item(10000, source=src),
                       "jggz": item(7000, source=src), "residential": item(50000, source=src)},
        "light_replaces_avoided": light_replaces_avoided,
    })


@pytest.fixture(scope="module")
def params():
    return load_params("lekstroom", YEAR)


def fake_es(params, rr=(0.6, 0.45, 0.8), dd=(-20.0, -26.0, -14.0), counts=(10, 12, 8),
            pupils=(1000, 1200, 800), trajectories=200) -> EstimateSet:
    """Three pilot schools in the report year with known counts, pupils and estimates."""
    table = pd.DataFrame([
        {"indicator": REFERRALS, "comparison": DID, "unit": "rate ratio",
         "estimate": rr[0], "ci_low": rr[1], "ci_high": rr[2]},
        {"indicator": DOUBLE_INTAKE, "comparison": DID, "unit": "procentpunt",
         "estimate": dd[0], "ci_low": dd[1], "ci_high": dd[2]},
    ])
    design = pd.DataFrame({"school_id": [*SCHOOLS, "ZK01"],
                           "group": ["pilot", "pilot", "pilot", "comparison"]})
    after = pd.DataFrame({"school_id": SCHOOLS, "residence_code": "GM0356",
                          "school_year": YEAR, "count": list(counts), "exposure": list(pupils),
                          "group": "pilot", "period": "after", "treated": 1})
    before = after.assign(school_year="2012-2013", period="before", treated=0, count=20)
    comparison = after.iloc[:1].assign(school_id="ZK01", group="comparison", period=pd.NA,
                                       treated=0, count=50)
    refs = pd.concat([before, after, comparison], ignore_index=True)
    refs["period"] = refs["period"].astype("string")
    intakes = pd.DataFrame({"school_id": "LS01", "school_year": YEAR, "success": False,
                            "group": "pilot", "period": "after", "treated": 1},
                           index=range(trajectories))
    intakes = pd.concat([intakes, intakes.assign(period=pd.NA, school_id="ZK01",
                                                 group="comparison")], ignore_index=True)
    intakes["period"] = intakes["period"].astype("string")
    return EstimateSet(table, params, design, ["2012-2013", "2013-2014", YEAR],
                       {REFERRALS: refs, DOUBLE_INTAKE: intakes})


def test_balance_by_hand(params):
    costs = make_costs()
    cb = cost_benefit(fake_es(params), costs, mix={"specialised": 1.0})
    # Hand arithmetic from the inputs above.
    pilot = 3 * 10 * 40 * 100 + 20000  # schools x hours x weeks x rate + coordination
    observed, rr = 10 + 12 + 8, 0.6
    avoided = observed / rr - observed  # counterfactual minus observed: 20 trajectories
    saving = 10000 - 1000  # a light trajectory takes the heavy one's place
    double = 0.20 * 200  # 20 percentage points of 200 trajectories
    avoided_costs = avoided * saving + double * 300
    net = avoided_costs - pilot
    assert cb.pilot_costs == pytest.approx(pilot)
    assert cb.avoided_referrals.point == pytest.approx(20.0)
    assert cb.avoided_double_intakes.point == pytest.approx(40.0)
    assert cb.avoided_costs.point == pytest.approx(avoided_costs)
    assert cb.net.point == pytest.approx(net)  # 180.000 + 12.000 - 140.000 = 52.000
    assert cb.net_per_pupil.point == pytest.approx(net / 3000)
    assert cb.cost_per_avoided.point == pytest.approx(pilot / avoided)
    assert cb.break_even == pytest.approx(pilot / saving)
    assert cb.pupils == 3000 and cb.observed_referrals == 30 and cb.trajectories == 200


def test_break_even_is_pilot_costs_over_trajectory_cost(params):
    cb = cost_benefit(fake_es(params), make_costs(light_replaces_avoided=False),
                      mix={"specialised": 1.0})
    assert cb.break_even == pytest.approx((3 * 10 * 40 * 100 + 20000) / 10000)


def test_mix_prices_the_avoided_levels(params):
    cb = cost_benefit(fake_es(params), make_costs(),
                      mix={"specialised": 0.5, "jggz": 0.3, "residential": 0.2})
    assert cb.saving_per_trajectory == pytest.approx(0.5 * 10000 + 0.3 * 7000 + 0.2 * 50000
                                                     - 1000)


def test_intervals_contain_point_and_widen(params):
    costs = make_costs()
    narrow = cost_benefit(fake_es(params, rr=(0.6, 0.6 / 1.2, 0.6 * 1.2),
                                  dd=(-20.0, -22.0, -18.0)), costs, mix={"specialised": 1.0})
    wide = cost_benefit(fake_es(params, rr=(0.6, 0.6 / 2.0, 0.6 * 2.0),
                                dd=(-20.0, -35.0, -5.0)), costs, mix={"specialised": 1.0})
    for cb in (narrow, wide):
        for r in (cb.avoided_referrals, cb.avoided_double_intakes, cb.avoided_costs, cb.net,
                  cb.net_per_pupil, cb.cost_per_avoided):
            assert r.low <= r.point <= r.high
    for name in ("avoided_referrals", "avoided_double_intakes", "net"):
        n, w = getattr(narrow, name), getattr(wide, name)
        assert w.high - w.low > n.high - n.low
    # The same seed gives the same interval.
    again = cost_benefit(fake_es(params, rr=(0.6, 0.5, 0.72), dd=(-20.0, -22.0, -18.0)), costs,
                         mix={"specialised": 1.0})
    assert again.net == cost_benefit(fake_es(params, rr=(0.6, 0.5, 0.72),
                                             dd=(-20.0, -22.0, -18.0)), costs,
                                     mix={"specialised": 1.0}).net
    # An upper rate ratio above 1 (perhaps no trajectory avoided): cost per avoided unbounded.
    assert math.isinf(wide.cost_per_avoided.high)


@pytest.mark.parametrize("example", [True, False])
def test_example_values_are_said_to_be_examples(params, example):
    cb = cost_benefit(fake_es(params), make_costs(example=example), mix={"specialised": 1.0})
    table = cost_table(cb)
    texts = [cost_sentence(cb), table.attrs["caption"], example_warning(cb)]
    if example:
        assert all("voorbeeld" in t.lower() for t in texts)
        assert "(voorbeeldtarieven)" in cost_sentence(cb)
        assert "voorbeeld" not in cost_sentence(cb, tag=False)
        # named once per section, not per row: the inputs table keeps what each value stands
        # for, the notes do not repeat the sources
        inputs = cost_inputs_table(cb)
        assert not inputs["Bron"].str.contains("te vervangen").any()
        assert "voorbeeld" not in table.attrs["notes"].lower()
        fig = cost_figure(cb)
        assert "VOORBEELD" in fig.axes[0].get_title()
        plt.close(fig)
    else:
        assert not any("voorbeeld" in t.lower() for t in texts)
        assert not table.apply(lambda c: c.str.lower().str.contains("voorbeeld")).any().any()
    assert all(r["example"] is example for r in cost_records(cb))


def test_euro_formatting_and_records(params):
    cb = cost_benefit(fake_es(params), make_costs(), mix={"specialised": 1.0})
    table = cost_table(cb).set_index("Post")
    assert table.loc["Kosten pilot per schooljaar", "Waarde"] == "€ 140.000"
    assert table.loc["Saldo (vermeden kosten min kosten pilot)", "Waarde"] == "€ 52.000"
    assert "bespaart" in cost_sentence(cb) or "saldo" in cost_sentence(cb)
    records = json.loads(json.dumps(cost_records(cb)))
    net = next(r for r in records if r["item"] == "net")
    assert net["value"] == pytest.approx(52000)


def test_example_flag_cannot_hide_example_sources():
    with pytest.raises(ValidationError, match="example"):
        Costs.model_validate({**make_costs(example=True).model_dump(), "example": False})


def test_example_file_is_an_example_and_no_region():
    costs = load_costs()
    assert costs.example is True
    assert all(i.source.startswith("voorbeeldwaarde") for i in costs.items().values())
    assert EXAMPLE_COSTS_FILE not in region_files().values()


def test_withheld_when_report_year_counts_are_small(params):
    cb = cost_benefit(fake_es(params, counts=(2, 3, 1)), make_costs(), mix={"specialised": 1.0})
    assert math.isnan(cb.net.point) and cb.withheld
    assert "niet berekend" in cost_sentence(cb)
    assert cb.pilot_costs > 0


def test_municipality_by_residence_attributes_costs(params):
    p = load_params("lekstroom", YEAR, ["analysis.count_by=residence"], municipality="GM0356")
    es = fake_es(p, pupils=(400, 500, 100))
    enrol = pd.DataFrame({"school_id": [f"LS{i:02d}" for i in range(1, 13) for _ in range(10)],
                          "school_year": YEAR})
    enrol = pd.concat([enrol] * 100, ignore_index=True)  # 1.000 pupils per school
    cb = cost_benefit(es, make_costs(), tables={"enrolments": enrol}, mix={"specialised": 1.0})
    share = (400 + 500 + 100) / 1000  # school equivalents
    assert cb.pilot_costs == pytest.approx(share * 10 * 40 * 100 + 20000 * 1000 / 12000)
    with pytest.raises(ValueError, match="tables"):
        cost_benefit(es, make_costs(), mix={"specialised": 1.0})


def test_synthetic_data_gives_finite_figures():
    from evaluation.analysis.estimates import estimate_all
    from evaluation.report.notebook import setup

    run = setup("lekstroom", YEAR)
    # Only the indicators the costs read: the full estimate set takes too long for this test.
    es = estimate_all(run.data.tables, run.params, run.params_dir, [REFERRALS, DOUBLE_INTAKE])
    cb = cost_benefit(es, load_costs(), tables=run.data.tables)
    for r in (cb.avoided_referrals, cb.avoided_costs, cb.net, cb.net_per_pupil):
        assert all(math.isfinite(v) for v in (r.point, r.low, r.high))
    assert math.isfinite(cb.break_even) and cb.pilot_costs > 0
    assert sum(cb.mix.values()) == pytest.approx(1.0)
    assert cb.avoided_referrals.point > 0  # the synthetic data plant fewer referrals
    assert len(cost_table(cb)) == 11
    fig = cost_figure(cb)
    plt.close(fig)
