"""`render` audits every output before it moves it into place: a report that shows an identifier
or a small cell is never published, and the last good report stays."""

import pytest

from evaluation.report.rendering import RenderResult
from evaluation.run import pipeline


@pytest.fixture
def fake_render(monkeypatch, tmp_path):
    """The pipeline without notebooks: the 'rendered' HTML is whatever the test writes."""
    monkeypatch.setattr(pipeline, "compute_estimates", lambda *a, **k: None)
    monkeypatch.setattr(pipeline, "execute_notebooks", lambda *a, **k: [])
    page = {"html": "<html lang='nl'><body><p>Niets bijzonders.</p></body></html>"}

    def render(qmd, formats, out_dir, prefer):
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / "whitepaper.html"
        path.write_text(page["html"], encoding="utf-8")
        return RenderResult("fake", {"html": path})

    monkeypatch.setattr("evaluation.report.rendering.render", render)
    return page


def test_a_report_showing_a_pupil_identifier_is_not_published(fake_render, synthetic_dir,
                                                               tmp_path):
    out = tmp_path / "_output"
    kw = dict(data_dir=synthetic_dir, formats=["html"], output_root=out,
              build_root=tmp_path / "_build", log=lambda _m: None)
    good = pipeline.render_report("lekstroom", "2014-2015", **kw)
    published = good.outputs["html"].read_text()

    student = (synthetic_dir / "enrolments.csv").read_text().splitlines()[1].split(",")[0]
    fake_render["html"] = f"<html lang='nl'><body><p>Leerling {student}</p></body></html>"
    with pytest.raises(pipeline.PipelineError, match="audit"):
        pipeline.render_report("lekstroom", "2014-2015", **kw)
    # The last good report is still in place.
    assert good.outputs["html"].read_text() == published
