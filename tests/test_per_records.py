"""`report.per_records`: what a notebook derives several times from the same records is computed
once per records frame, and never handed out stale."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd

from evaluation.report.per_records import per_records


def _es(frame: pd.DataFrame, min_count: int = 5, year: str = "2014-2015") -> SimpleNamespace:
    params = SimpleNamespace(school_year=year, disclosure=SimpleNamespace(min_count=min_count))
    return SimpleNamespace(data={"x": frame}, params=params)


def test_computed_once_per_frame_and_settings_with_copies_handed_out():
    calls = []

    @per_records
    def total(es, indicator_id):
        calls.append(indicator_id)
        return pd.DataFrame({"total": [es.data[indicator_id]["v"].sum()]})

    frame = pd.DataFrame({"v": [1, 2, 3]})
    es = _es(frame)
    first = total(es, "x")
    first.loc[0, "total"] = -1  # a caller changing its copy changes nothing for the next
    assert total(es, "x")["total"].tolist() == [6]
    assert len(calls) == 1
    assert total(_es(frame, min_count=10), "x")["total"].tolist() == [6]  # other threshold
    assert total(_es(frame, year="2015-2016"), "x")["total"].tolist() == [6]  # other year
    assert len(calls) == 3
    other = pd.DataFrame({"v": [10, 20]})  # another estimate set's records: computed for it
    assert total(_es(other), "x")["total"].tolist() == [30]
    assert len(calls) == 4


def test_a_frame_gone_is_never_confused_with_a_new_one():
    @per_records
    def first_value(es, indicator_id):
        return es.data[indicator_id].head(1).copy()

    for value in range(50):  # new frames, often at a freed frame's address
        assert first_value(_es(pd.DataFrame({"v": [value]})), "x")["v"].tolist() == [value]
