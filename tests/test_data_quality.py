"""The data-quality annex counts what the import quarantined, so that nothing is dropped unseen."""

import json

from evaluation.report import data_quality


def test_annex_shows_import_counts_and_reasons(tmp_path):
    report = {"tables": {"enrolments": {"sources": ["leerlingen.csv"], "read": 8, "accepted": 7,
                                        "quarantined": 1}},
              "reasons": [{"table": "enrolments", "field": "grade", "reason": "out_of_range",
                           "rows": 1}]}
    (tmp_path / data_quality.IMPORT_REPORT).write_text(json.dumps(report))
    counts = data_quality.import_counts(tmp_path)
    assert counts.iloc[0].to_dict() == {"Tabel": "Inschrijvingen", "Bron": "leerlingen.csv",
                                        "Ingelezen": "8", "Geaccepteerd": "7",
                                        "Apart gezet": "1"}
    reasons = data_quality.import_reasons(tmp_path)
    assert reasons.iloc[0]["Reden"] == "getal buiten het toegestane bereik"


def test_annex_says_when_data_did_not_come_through_the_import(tmp_path):
    assert data_quality.import_counts(tmp_path) is None
    assert data_quality.import_counts(None) is None
