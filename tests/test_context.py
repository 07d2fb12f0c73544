"""Regional context from CBS open data: the loader reads the real shape of the API (the excerpt
in ../shared/data/cbs, read in place and never copied into the repository), keeps the office's
suppressed cells missing, labels values by their metadata or else by their keys, and never fails
a render: without a cached extract it says so, and a refresh without network changes nothing.

The metadata titles below are fictional on purpose: they test the labelling mechanism, not CBS's
definitions. Every figure compared comes from the excerpt file itself.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import cbsodata
import pandas as pd
import pytest
import requests

from evaluation.data import context
from evaluation.data.context import (
    NOT_REACHABLE,
    UNAVAILABLE,
    ContextRefreshError,
    context_refresh_command,
    load_context,
    read_extract,
    refresh,
    store_extract,
)
from evaluation.params import load_regions
from evaluation.report import formatting as f
from evaluation.report.context import context_markdown, latest_period

EXCERPT = Path(__file__).resolve().parents[2] / "shared/data/cbs/85098NED-2022-excerpt.csv"
TABLE = "85098NED"
AMELAND = "GM0060"  # the small island whose figures the office mostly leaves out


@pytest.fixture(scope="module")
def excerpt() -> Path:
    if not EXCERPT.is_file():
        pytest.skip(f"CBS excerpt not found at {EXCERPT}: these tests read the shared real "
                    "excerpt in place (it is not part of the repository)")
    return EXCERPT


@pytest.fixture(scope="module")
def rows(excerpt) -> list[dict[str, str]]:
    """The excerpt exactly as text, one dict per line."""
    with excerpt.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def measures(rows) -> list[str]:
    return [k for k in rows[0] if k not in ("RegioS", "Perioden")]


@pytest.fixture
def cache(excerpt, tmp_path) -> Path:
    """A cache holding the excerpt (a copy in this test's tmp_path), without metadata."""
    out = tmp_path / "cache"
    store_extract(out, TABLE, pd.read_csv(excerpt, dtype=str, keep_default_na=False),
                  source={"table_id": TABLE, "note": "shared excerpt, see its SOURCES.md"})
    return out


def _fictional_properties(keys: list[str]) -> list[dict]:
    """DataProperties in the API's shape with made-up titles and units (a test of the mechanism)."""
    dims = [{"Type": "GeoDimension", "Key": "RegioS", "Title": "Regio's"},
            {"Type": "TimeDimension", "Key": "Perioden", "Title": "Perioden"}]
    topics = [{"Type": "Topic", "Key": k, "Title": f"Fictieve maat {i}",
               "Unit": "fictieve eenheid", "Decimals": 1}
              for i, k in enumerate(keys, start=1)]
    return dims + topics


def _snapshot(folder: Path) -> dict[str, bytes]:
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


# --- reading the extract -----------------------------------------------------------------------


def test_read_extract_tidies_the_api_shape(excerpt, rows, measures):
    long = read_extract(excerpt)
    assert list(long.columns) == ["region_code", "period", "year", "measure_key", "value"]
    assert set(long["period"]) == {"2022JJ00"}
    assert set(long["year"]) == {2022}
    assert long["region_code"].nunique() == 10
    assert long["region_code"].iloc[0] == "GM0014"
    assert list(dict.fromkeys(long["measure_key"])) == measures
    assert all(k.rsplit("_", 1)[1].isdigit() for k in measures)
    assert str(long["year"].dtype) == "Int64" and str(long["value"].dtype) == "Float64"
    assert len(long) == len(rows) * len(measures)


def test_every_value_is_the_files_and_empty_cells_stay_missing(excerpt, rows, measures):
    long = read_extract(excerpt).set_index(["region_code", "measure_key"])["value"]
    for row in rows:
        for key in measures:
            value = long[(row["RegioS"], key)]
            if row[key] == "":
                assert pd.isna(value), (row["RegioS"], key)
            else:
                assert value == float(row[key]), (row["RegioS"], key)


def test_amelands_suppressed_cells_stay_missing(excerpt, rows, measures):
    ameland = next(r for r in rows if r["RegioS"] == AMELAND)
    empty = [k for k in measures if ameland[k] == ""]
    assert len(empty) >= 3, "the excerpt's Ameland row should show the office's suppression"
    values = read_extract(excerpt).query("region_code == @AMELAND").set_index("measure_key")
    assert values.loc[empty, "value"].isna().all()
    published = [k for k in measures if k not in empty]
    assert values.loc[published, "value"].notna().all()


def test_read_extract_names_a_cell_that_is_not_a_number(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("RegioS,Perioden,Maat_1\nGM0014,2022JJ00,veel\n", encoding="utf-8")
    with pytest.raises(ValueError, match="Maat_1 of GM0014 2022JJ00"):
        read_extract(bad)


def test_period_labels():
    assert context.period_label("2022JJ00") == "2022"
    assert context.period_label("2022KW03") == "2022 kwartaal 3"
    assert context.period_label("2022JJ00", {"2022JJ00": "2022*"}) == "2022*"
    assert latest_period(pd.Series(["2021JJ00", "2022KW01", "2022JJ00"])) == "2022JJ00"


# --- reading the cache for a report ------------------------------------------------------------


def test_without_metadata_values_are_labelled_by_their_keys(cache, rows, measures):
    result = load_context(cache, TABLE, ["GM0014", AMELAND], {"GM0014": "Groningen",
                                                              AMELAND: "Ameland"})
    assert result.status == "available" and result.available
    assert result.labelled_by == "keys"
    assert [m.label for m in result.measures] == measures
    assert "sleutels van de open-data-API" in result.message
    md = context_markdown(result)
    header = next(line for line in md.splitlines() if line.startswith("| Gemeente"))
    assert all(k in header for k in measures)
    groningen = next(r for r in rows if r["RegioS"] == "GM0014")
    line = next(line for line in md.splitlines() if line.startswith("| Groningen"))
    assert f.number(float(groningen[measures[0]]), 1) in line
    ameland_line = next(line for line in md.splitlines() if line.startswith("| Ameland"))
    assert ameland_line.count(f.SUPPRESSED) == sum(
        r[k] == "" for r in rows if r["RegioS"] == AMELAND for k in measures)


def test_with_metadata_values_carry_title_and_unit(excerpt, tmp_path, measures):
    cache = tmp_path / "cache"
    store_extract(cache, TABLE, pd.read_csv(excerpt, dtype=str, keep_default_na=False),
                  metadata={"DataProperties": _fictional_properties(measures)},
                  source={"table_id": TABLE, "downloaded_at": "2026-03-02T10:00:00+00:00"})
    result = load_context(cache, TABLE, ["GM0014"], {"GM0014": "Groningen"})
    assert result.labelled_by == "metadata"
    assert result.measures[0].label == "Fictieve maat 1 (fictieve eenheid)"
    assert "metadata van de tabel" in result.message
    assert "gedownload op 2 maart 2026" in result.message
    assert "periode 2022" in result.message
    assert "Fictieve maat 1 (fictieve eenheid)" in context_markdown(result)


def test_an_empty_cache_says_context_data_is_unavailable(tmp_path):
    for cache in (tmp_path / "missing", tmp_path):
        result = load_context(cache, TABLE, ["GM0356"])
        assert result.status == "unavailable"
        assert result.message.startswith("Contextgegevens van het CBS waren niet beschikbaar")
        assert "`" not in result.message and "evaluation" not in result.message  # no command
        assert context_markdown(result) == UNAVAILABLE
        assert result.data.empty


def test_an_unreadable_cache_does_not_fail_the_render(tmp_path):
    folder = tmp_path / TABLE
    folder.mkdir()
    (folder / "data.csv").write_text("geen,extract\n1,2\n", encoding="utf-8")
    result = load_context(tmp_path, TABLE, ["GM0356"])
    assert result.status == "unavailable" and "unreadable" in result.detail


def test_lekstroom_is_not_in_the_excerpt(cache):
    region = next(r for r in load_regions() if r.id == "lekstroom")
    codes = [m.code for m in region.municipalities]
    names = {m.code: m.name for m in region.municipalities}
    result = load_context(cache, TABLE, codes, names)
    assert result.status == "not_in_extract"
    assert result.missing == codes
    assert result.data.empty
    assert all(f"{names[c]} ({c})" in result.message for c in codes)
    assert TABLE in result.message and "2022" in result.message
    assert result.message.endswith(UNAVAILABLE)
    assert context_markdown(result) == result.message


def test_a_municipality_missing_from_the_extract_is_named_not_filled(cache):
    result = load_context(cache, TABLE, ["GM0014", "GM0356"], {"GM0356": "Nieuwegein"})
    assert result.status == "available" and result.missing == ["GM0356"]
    assert "Nieuwegein (GM0356) staat niet in dit extract" in result.message
    assert "Nieuwegein" not in context_markdown(result).split("\n\n")[1]


# --- refresh -----------------------------------------------------------------------------------


def _offline(monkeypatch) -> None:
    def down(*_args, **_kwargs):
        raise requests.exceptions.ConnectionError("Failed to resolve 'opendata.cbs.nl'")

    for name in ("download_data", "get_data", "get_meta"):
        monkeypatch.setattr(cbsodata, name, down)


def test_refresh_without_network_fails_cleanly_and_leaves_the_cache(cache, monkeypatch, capsys):
    _offline(monkeypatch)
    before = _snapshot(cache)
    with pytest.raises(ContextRefreshError, match=NOT_REACHABLE):
        refresh(cache, [TABLE], ["GM0356"])
    assert _snapshot(cache) == before
    assert sorted(p.name for p in cache.iterdir()) == [TABLE]  # no staging folder left behind
    assert context_refresh_command(cache, [TABLE], None) == 2
    assert "CBS open data not reachable; the cache was not changed" in capsys.readouterr().err
    assert load_context(cache, TABLE, ["GM0014"]).available


def test_refresh_without_network_creates_no_cache(tmp_path, monkeypatch):
    _offline(monkeypatch)
    with pytest.raises(ContextRefreshError, match="the cache was not changed"):
        refresh(tmp_path / "cache", [TABLE])
    assert not (tmp_path / "cache").exists()


def _fake_download(rows: list[dict[str, str]], measures: list[str], calls: list) -> object:
    """download_data answering like the API, with the excerpt's figures and fictional metadata."""

    def download(table_id, typed=False, filters=None, **_kwargs):
        calls.append((table_id, filters))
        if table_id != TABLE:
            raise requests.exceptions.ConnectionError("connection reset")
        data = [{"ID": i, "RegioS": f"{r['RegioS']}  ", "Perioden": r["Perioden"],
                 **{k: float(r[k]) if r[k] else None for k in measures}}
                for i, r in enumerate(rows)]
        return {"TableInfos": [{"Title": "Fictieve tabeltitel", "Modified": "2026-01-01"}],
                "TypedDataSet": data,
                "DataProperties": _fictional_properties(measures),
                "RegioS": [{"Key": f"{r['RegioS']}  ", "Title": f"Gemeente {r['RegioS']}"}
                           for r in rows],
                "Perioden": [{"Key": "2022JJ00", "Title": "2022"}]}

    return download


def test_refresh_writes_data_metadata_and_source(tmp_path, monkeypatch, rows, measures):
    calls: list = []
    monkeypatch.setattr(cbsodata, "download_data", _fake_download(rows, measures, calls))
    when = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
    cache = tmp_path / "cache"
    [folder] = refresh(cache, [TABLE], ["GM0014", AMELAND], now=when)
    assert folder == cache / TABLE
    assert sorted(p.name for p in cache.iterdir()) == [TABLE]
    names = {p.name for p in folder.iterdir()}
    assert {"data.csv", "DataProperties.json", "TableInfos.json", "RegioS.json",
            "SOURCE.json"} <= names
    source = json.loads((folder / "SOURCE.json").read_text(encoding="utf-8"))
    assert source["table_id"] == TABLE
    assert source["downloaded_at"] == "2026-03-02T10:00:00+00:00"
    assert source["api_url"].startswith("https://opendata.cbs.nl/") and TABLE in source["api_url"]
    [(table, filters)] = calls
    assert "GM0014" in filters and AMELAND in filters and "NL01" in filters
    assert source["filters"] == filters
    text = (folder / "data.csv").read_text(encoding="utf-8")
    assert "GM0014  " not in text and "ID" not in text.splitlines()[0].split(",")
    result = load_context(cache, TABLE, [AMELAND])
    assert result.available and result.labelled_by == "metadata"
    assert result.names[AMELAND] == f"Gemeente {AMELAND}"  # from the cached region list
    assert "gedownload op 2 maart 2026" in result.message
    ameland = next(r for r in rows if r["RegioS"] == AMELAND)
    got = result.data.set_index("measure_key")["value"]
    for k in measures:
        assert pd.isna(got[k]) if ameland[k] == "" else got[k] == float(ameland[k])


def test_refresh_replaces_an_old_extract_only_when_every_table_arrived(
        cache, monkeypatch, rows, measures):
    calls: list = []
    monkeypatch.setattr(cbsodata, "download_data", _fake_download(rows, measures, calls))
    before = _snapshot(cache)
    with pytest.raises(ContextRefreshError, match="the cache was not changed"):
        refresh(cache, [TABLE, "99999NED"])  # the second table fails halfway
    assert _snapshot(cache) == before
    assert refresh(cache, [TABLE]) == [cache / TABLE]
    assert _snapshot(cache) != before
    assert sorted(p.name for p in cache.iterdir()) == [TABLE]


def test_refresh_refuses_malformed_ids_before_any_download(tmp_path, monkeypatch):
    _offline(monkeypatch)
    with pytest.raises(ContextRefreshError, match="table ids look like"):
        refresh(tmp_path, ["85098NED' or 1 eq 1"])
    with pytest.raises(ContextRefreshError, match="municipality codes"):
        refresh(tmp_path, [TABLE], ["Nieuwegein"])
    assert list(tmp_path.iterdir()) == []
