"""`render --all`: the plan, the cache, failure isolation, atomic outputs and the executors.

Most tests replace the expensive part of a task (`executors.render_task`) by a stand-in that writes
small files, and run the serial executor: the plan, fingerprints, manifests and the decision what
to re-run are the real ones. The module fixture `rendered` makes two real reports (HTML only) with
the local worker pool; the failure test and the Dask test re-render from there.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import yaml

from evaluation.data.reading import DataSetError
from evaluation.params import DEFAULT_PARAMS_DIR, ParamsError
from evaluation.run import batch, executors, manifest
from evaluation.run.batch import render_all, render_all_command
from evaluation.run.executors import EXECUTORS, TaskResult
from evaluation.run.manifest import write_manifest
from evaluation.run.pipeline import PipelineError, publish
from evaluation.run.plan import Task, last_school_year, plan, school_years
from evaluation.run.sources import OUTPUT_NAMES, REPO, Sources

LOPIK = "GM0331"


def _params_copy(dst: Path) -> Path:
    shutil.copytree(DEFAULT_PARAMS_DIR, dst)
    return dst


def _edit(params_dir: Path, region: str, change) -> None:
    path = params_dir / f"{region}.yml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


@pytest.fixture
def params_dir(tmp_path) -> Path:
    return _params_copy(tmp_path / "params")


# --- the plan ----------------------------------------------------------------------------------

def test_school_years_run_from_first_to_last_inclusive():
    assert school_years("2013-2014", "2015-2016") == ["2013-2014", "2014-2015", "2015-2016"]
    assert school_years("2016-2017", "2015-2016") == []


def test_plan_has_every_region_municipality_and_school_year(params_dir):
    tasks = plan("2016-2017", params_dir)
    lek = [t for t in tasks if t.region == "lekstroom"]
    zk = [t for t in tasks if t.region == "zuid-kennemerland"]
    # Lekstroom: pilots from 2013-2014; the region and its 5 municipalities in 4 school years,
    # except Lopik, whose only school starts in 2014-2015 (municipalities count by school
    # location): before that a Lopik report has no pilot school to evaluate.
    assert {t.school_year for t in lek} == {"2013-2014", "2014-2015", "2015-2016", "2016-2017"}
    assert len(lek) == 4 * 6 - 1
    assert {t.unit_name for t in lek} == {None, "Houten", "IJsselstein", "Lopik", "Nieuwegein",
                                           "Vianen"}
    assert "lekstroom/lopik/2013-2014" not in {t.key for t in tasks}
    # Zuid-Kennemerland: pilots from 2016-2017 only; the region and the 3 municipalities with a
    # pilot school (Zandvoort's one school has none).
    assert {t.school_year for t in zk} == {"2016-2017"}
    assert {t.unit_name for t in zk} == {None, "Bloemendaal", "Haarlem", "Heemstede"}
    assert len({t.key for t in tasks}) == len(tasks)
    assert "lekstroom/lopik/2014-2015" in {t.key for t in tasks}
    assert "lekstroom/2014-2015" in {t.key for t in tasks}
    lopik = next(t for t in tasks if t.key == "lekstroom/lopik/2014-2015")
    assert lopik.municipality == LOPIK and lopik.formats == ("html", "pdf")
    assert lopik.notebooks[0].startswith("00-") and len(lopik.notebooks) >= 8
    assert lopik.params.municipality == LOPIK and lopik.params.school_year == "2014-2015"


def test_plan_narrows_to_region_year_and_formats(params_dir):
    tasks = plan("2016-2017", params_dir, region="lekstroom", school_year="2015-2016",
                 formats=["html"])
    assert [t.key for t in tasks][:2] == ["lekstroom/2015-2016", "lekstroom/houten/2015-2016"]
    assert len(tasks) == 6 and all(t.formats == ("html",) for t in tasks)
    with pytest.raises(ParamsError, match="utrecht"):
        plan("2016-2017", params_dir, region="utrecht")
    with pytest.raises(ParamsError, match="no report"):
        plan("2016-2017", params_dir, region="zuid-kennemerland", school_year="2014-2015")


def test_plan_ends_at_the_last_school_year_of_the_data(params_dir, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "enrolments.csv").write_text(
        "student_id,school_id,school_year\nA,LS01,2013-2014\nB,LS01,2014-2015\n", encoding="utf-8")
    assert last_school_year(data) == "2014-2015"
    assert last_school_year(None, params_dir) == "2016-2017"  # synthetic.last_school_year
    tasks = plan(last_school_year(data), params_dir)
    assert {t.school_year for t in tasks} == {"2013-2014", "2014-2015"}
    assert not [t for t in tasks if t.region == "zuid-kennemerland"]  # no pilot year yet


@pytest.mark.parametrize("content, last", [
    ("\ufeffstudent_id,school_id,school_year\nA,LS01, 2015-2016 \n\nB,LS01,2014-2015\n",
     "2015-2016"),  # a byte-order mark, spaces around a value, a blank line
    ("student_id,school_id,school_year\nA,LS01,2013-2014,extra\nB,LS01,2014-2015\n",
     "2014-2015"),  # a ragged row: read row by row (the validation names it later)
    ("student_id,school_id,school_year\nA,LS01,2013-2014\nB,LS01,\nC,LS01,ergens\n",
     "2013-2014"),  # an empty and a malformed year leave the plan alone
])
def test_last_school_year_reads_the_column_as_the_validation_does(tmp_path, content, last):
    (tmp_path / "enrolments.csv").write_text(content, encoding="utf-8")
    assert last_school_year(tmp_path) == last


@pytest.mark.parametrize("content", ["", "student_id,school_id\nA,LS01\n",
                                     "student_id,school_id,school_year\n"])
def test_last_school_year_names_the_file_without_years(tmp_path, content):
    (tmp_path / "enrolments.csv").write_text(content, encoding="utf-8")
    with pytest.raises(DataSetError, match="enrolments.csv: no school_year values"):
        last_school_year(tmp_path)


def test_plan_follows_the_count_by_parameter(params_dir):
    _edit(params_dir, "lekstroom", lambda d: d.setdefault("analysis", {}).update(
        count_by="residence"))
    tasks = plan("2014-2015", params_dir)
    assert {t.count_by for t in tasks if t.region == "lekstroom"} == {"residence"}
    # Pupils living in Lopik may attend any pilot school: Lopik has a report from 2013-2014.
    assert "lekstroom/lopik/2013-2014" in {t.key for t in tasks}
    assert {t.count_by for t in tasks if t.region == "zuid-kennemerland"} == set()  # none yet
    assert {t.count_by for t in plan("2016-2017", params_dir)
            if t.region == "zuid-kennemerland"} == {"school"}


def test_plan_validates_params_before_anything_runs(params_dir):
    _edit(params_dir, "lekstroom", lambda d: d.update(analysis={"alpha": 2}))
    with pytest.raises(ParamsError, match="analysis.alpha"):
        plan("2014-2015", params_dir)


# --- the cache (with a stand-in for the expensive render) ---------------------------------------

@pytest.fixture
def fake_render(monkeypatch):
    """Replace the render of a task by writing small files; returns the keys rendered."""
    calls: list[str] = []
    fail: set[str] = set()

    def render_task(job, session, log):
        if job.task.key in fail:
            raise PipelineError(f"notebook 00-data-quality.ipynb failed in cell 3 (planted for "
                                f"{job.task.key})")
        out = job.context.output_root / job.task.key
        out.mkdir(parents=True, exist_ok=True)
        files = {}
        for kind in (*job.task.formats, "xlsx"):
            files[kind] = out / OUTPUT_NAMES[kind]
            files[kind].write_text(f"{job.task.key} {job.fingerprint['params'][:8]}")
        write_manifest(job.task, job.fingerprint, out, files, "fake", 0.0)
        calls.append(job.task.key)
        return TaskResult(job.task.key, job.task.label, "done")

    monkeypatch.setattr(executors, "render_task", render_task)
    return calls, fail


def _run(params_dir, data, out, **kw):
    return render_all(executor="serial", data_dir=data, output_root=out,
                      build_root=out.parent / "_build", params_dir=params_dir,
                      renderer="builtin", progress=False, formats=["html"], **kw)


def test_second_run_with_nothing_changed_does_no_work(fake_render, params_dir, synthetic_dir,
                                                       tmp_path, capsys):
    calls, _ = fake_render
    out = tmp_path / "_output"
    first = _run(params_dir, synthetic_dir, out)
    assert first.count("done") == len(first.results) == 27 and len(calls) == 27
    calls.clear()
    second = _run(params_dir, synthetic_dir, out)
    assert calls == [] and second.count("cached") == 27
    code = render_all_command(None, None, True, ["html"], "serial", None, None, synthetic_dir, [],
                              out, params_dir, "builtin", tmp_path / "_build")
    assert code == 0 and calls == []
    assert "Nothing to do: all 27 reports are up to date" in capsys.readouterr().out


def test_one_changed_params_value_reruns_only_its_dependants(fake_render, params_dir,
                                                             synthetic_dir, tmp_path):
    calls, _ = fake_render
    out = tmp_path / "_output"
    _run(params_dir, synthetic_dir, out)

    # A value of Zuid-Kennemerland's own report: only its 4 reports re-run.
    calls.clear()
    _edit(params_dir, "zuid-kennemerland", lambda d: d["region"].update(intro="Nieuwe inleiding."))
    _run(params_dir, synthetic_dir, out)
    assert len(calls) == 4 and all(k.startswith("zuid-kennemerland/") for k in calls)

    # Lekstroom's significance level: its 23 reports, none of Zuid-Kennemerland's.
    calls.clear()
    _edit(params_dir, "lekstroom", lambda d: d.setdefault("analysis", {}).update(alpha=0.01))
    _run(params_dir, synthetic_dir, out)
    assert len(calls) == 23 and all(k.startswith("lekstroom/") for k in calls)

    # A Zuid-Kennemerland school is a comparison school of Lekstroom: both regions depend on it.
    calls.clear()
    _edit(params_dir, "zuid-kennemerland",
          lambda d: d["region"]["schools"][2].update(pilot_start="2016-08-01"))
    _run(params_dir, synthetic_dir, out)
    assert len(calls) == 27

    # An override on the command line is a params change of every report.
    calls.clear()
    _run(params_dir, synthetic_dir, out, overrides=["disclosure.min_count=11"])
    assert len(calls) == 27


def _sources_copy(dest: Path, notebooks: Path = REPO / "notebooks",
                  reports: Path = REPO / "reports", quarto: Path = REPO / "_quarto.yml") -> Sources:
    """A copy of the report sources (notebooks, reports, _quarto.yml) to change or to pin."""
    shutil.copytree(notebooks, dest / "notebooks",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    shutil.copytree(reports, dest / "reports")
    shutil.copy2(quarto, dest / "_quarto.yml")
    return Sources(dest / "_quarto.yml", dest / "reports", dest / "notebooks")


def test_changed_data_notebook_or_format_reruns(fake_render, params_dir, synthetic_dir, tmp_path):
    calls, _ = fake_render
    out = tmp_path / "_output"
    sources = tmp_path / "sources"
    src = _sources_copy(sources)
    data = tmp_path / "data"
    shutil.copytree(synthetic_dir, data)
    keys = {"select": lambda t: t.school_year == "2016-2017"}
    _run(params_dir, data, out, sources=src, **keys)
    for change in (lambda: (sources / "reports" / "whitepaper.css").write_text("body{}\n", "utf-8"),
                   lambda: (data / "schools.csv").write_text(
                       (data / "schools.csv").read_text("utf-8") + "\n", "utf-8")):
        calls.clear()
        change()
        _run(params_dir, data, out, sources=src, **keys)
        assert len(calls) == 10  # every report of 2016-2017
    calls.clear()
    result = render_all(executor="serial", data_dir=data, output_root=out,
                        build_root=tmp_path / "_build", params_dir=params_dir, renderer="builtin",
                        progress=False, formats=["html", "pdf"], sources=src, **keys)
    assert len(calls) == 10 and result.count("done") == 10  # the PDF was not there yet


def test_a_failing_report_does_not_stop_the_others(fake_render, params_dir, synthetic_dir,
                                                   tmp_path, capsys):
    calls, fail = fake_render
    out = tmp_path / "_output"
    _run(params_dir, synthetic_dir, out, school_year="2014-2015")
    before = (out / "lekstroom/lopik/2014-2015/whitepaper.html").read_text()
    manifest = (out / "lekstroom/lopik/2014-2015/.manifest.json").read_text()
    _edit(params_dir, "lekstroom", lambda d: d.setdefault("analysis", {}).update(alpha=0.01))
    fail.add("lekstroom/lopik/2014-2015")
    calls.clear()
    code = render_all_command("lekstroom", "2014-2015", False, ["html"], "serial", None, None,
                              synthetic_dir, [], out, params_dir, "builtin", tmp_path / "_build")
    assert code == 1
    assert len(calls) == 5  # the other reports of the region were made
    printed = capsys.readouterr().out
    assert "failed" in printed and "00-data-quality.ipynb" in printed
    # The last good output of the failed report is untouched, and still listed in the index.
    assert (out / "lekstroom/lopik/2014-2015/whitepaper.html").read_text() == before
    assert (out / "lekstroom/lopik/2014-2015/.manifest.json").read_text() == manifest
    assert "lekstroom/lopik/2014-2015/whitepaper.html" in (out / "index.html").read_text()
    # The next run retries only the failed report.
    fail.clear()
    calls.clear()
    _run(params_dir, synthetic_dir, out, school_year="2014-2015")
    assert calls == ["lekstroom/lopik/2014-2015"]


def test_a_single_render_counts_as_done_for_the_batch(fake_render, synthetic_dir, tmp_path):
    from evaluation.params import load_params
    from evaluation.run.manifest import record_single_render

    calls, _ = fake_render
    out = tmp_path / "_output" / "lekstroom" / "lopik" / "2014-2015"
    out.mkdir(parents=True)
    for name in OUTPUT_NAMES.values():
        (out / name).write_text("made by render_report")
    params = load_params("lekstroom", "2014-2015", municipality="Lopik")
    record_single_render(params, synthetic_dir, [], DEFAULT_PARAMS_DIR, "builtin", ["html", "pdf"],
                         "builtin", out, 1.0)
    result = render_all(executor="serial", data_dir=synthetic_dir, output_root=tmp_path / "_output",
                        build_root=tmp_path / "_build", renderer="builtin", progress=False,
                        school_year="2014-2015", region="lekstroom")
    assert "lekstroom/lopik/2014-2015" not in calls and len(calls) == 5
    assert {r.key: r.status for r in result.results}["lekstroom/lopik/2014-2015"] == "cached"


def test_render_all_needs_all_or_a_region(tmp_path):
    with pytest.raises(PipelineError, match="--region"):
        render_all_command(None, None, False, None, "local", None, None, None, [], tmp_path,
                           DEFAULT_PARAMS_DIR, "builtin")


def test_executors_are_a_registry():
    assert {"local", "serial", "dask"} <= set(EXECUTORS)
    with pytest.raises(PipelineError, match="unknown executor"):
        render_all(executor="threads", output_root=Path("unused"))


def test_only_one_run_at_a_time_per_build_folder(tmp_path):
    with batch._run_lock(tmp_path), pytest.raises(PipelineError, match="another"):  # noqa: SIM117
        with batch._run_lock(tmp_path):
            pass


# --- atomic outputs ----------------------------------------------------------------------------

def test_publish_replaces_outputs_whole_or_not_at_all(tmp_path, monkeypatch):
    new = tmp_path / "new"
    new.mkdir()
    for kind in ("html", "pdf", "xlsx"):
        (new / OUTPUT_NAMES[kind]).write_text(f"new {kind}")
    dest = tmp_path / "out"
    dest.mkdir()
    for kind in ("html", "pdf", "xlsx"):
        (dest / OUTPUT_NAMES[kind]).write_text(f"old {kind}")
    outputs = {k: new / OUTPUT_NAMES[k] for k in ("html", "pdf", "xlsx")}

    real_copy = shutil.copy2
    copies = []

    def failing_copy(src, dst, *a, **kw):
        copies.append(src)
        if len(copies) == 3:
            raise OSError("disk full")
        return real_copy(src, dst, *a, **kw)

    monkeypatch.setattr(shutil, "copy2", failing_copy)
    with pytest.raises(OSError, match="disk full"):
        publish(outputs, dest)
    assert sorted(p.name for p in dest.iterdir()) == sorted(OUTPUT_NAMES.values())
    assert all(p.read_text().startswith("old") for p in dest.iterdir())
    monkeypatch.setattr(shutil, "copy2", real_copy)
    placed = publish(outputs, dest)
    assert sorted(p.name for p in dest.iterdir()) == sorted(OUTPUT_NAMES.values())
    assert all(p.read_text().startswith("new") for p in placed.values())


# --- real renders ------------------------------------------------------------------------------

def _two_reports(task: Task) -> bool:
    """Two small municipality reports (the region's own report takes longer)."""
    return task.school_year == "2014-2015" and task.unit_name in ("Lopik", "Vianen")


@pytest.fixture(scope="module")
def project(tmp_path_factory, synthetic_dir):
    """A snapshot of params and sources, so that edits elsewhere in the repository while the
    tests run do not count as changes; the package hash is pinned for the same reason."""
    root = tmp_path_factory.mktemp("batch")
    params = _params_copy(root / "params")
    sources = _sources_copy(root / "sources")
    with pytest.MonkeyPatch.context() as mp:
        pinned = manifest.package_hash()
        mp.setattr(manifest, "package_hash", lambda: pinned)
        mp.setattr(batch, "package_hash", lambda: pinned)
        yield root, params, sources, synthetic_dir


def _render(project, executor="local", out="_output", **kw):
    root, params, sources, data = project
    return render_all(executor=executor, workers=2, data_dir=data, output_root=root / out,
                      build_root=root / f"{out}-build", params_dir=params, renderer="builtin",
                      formats=["html"], select=_two_reports, sources=sources, progress=False,
                      **kw)


@pytest.fixture(scope="module")
def rendered(project):
    first = _render(project)
    mtimes = {p: p.stat().st_mtime_ns for p in (project[0] / "_output").rglob("*") if p.is_file()}
    second = _render(project)
    return first, second, mtimes


def test_real_batch_renders_both_reports_with_workbooks(rendered, project):
    first, _, _ = rendered
    assert [r.status for r in first.results] == ["done", "done"], first.failed
    out = project[0] / "_output"
    for key in ("lekstroom/lopik/2014-2015", "lekstroom/vianen/2014-2015"):
        folder = out / key
        assert (folder / "whitepaper.html").read_text(encoding="utf-8").count("<h1") >= 1
        assert (folder / "whitepaper.xlsx").stat().st_size > 5000
        assert not (folder / "whitepaper.pdf").exists()
        manifest = json.loads((folder / ".manifest.json").read_text())
        assert set(manifest["outputs"]) == {"html", "xlsx"}
        assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]
    lopik = (out / "lekstroom/lopik/2014-2015/whitepaper.html").read_text(encoding="utf-8")
    assert "Gemeente Lopik" in lopik


def test_real_second_run_does_nothing_and_touches_nothing(rendered, project):
    _, second, mtimes = rendered
    assert [r.status for r in second.results] == ["cached", "cached"]
    assert second.seconds < 15
    now = {p: p.stat().st_mtime_ns for p in (project[0] / "_output").rglob("*") if p.is_file()
           and p.name != "index.html"}
    assert now == {p: t for p, t in mtimes.items() if p.name != "index.html"}


def test_workbook_has_the_cost_tables_marked_as_example_values(rendered, project):
    from openpyxl import load_workbook

    book = load_workbook(project[0] / "_output/lekstroom/vianen/2014-2015/whitepaper.xlsx",
                         read_only=True)
    captions = {name: str(next(book[name].iter_rows(max_row=1, values_only=True))[0])
                for name in book.sheetnames}
    costs = [n for n, c in captions.items() if c.startswith("Kosten van de pilot")]
    assert costs, captions
    assert "VOORBEELDTARIEVEN" in captions[costs[0]]
    rows = list(book[costs[0]].iter_rows(values_only=True))
    assert any(r and r[0] == "Kosten pilot per schooljaar" and str(r[1]).startswith("€")
               for r in rows)


def test_workbook_numbers_are_the_reports_estimates(rendered, project):
    from openpyxl import load_workbook

    from evaluation.report.workbook import ESTIMATE_COLUMNS

    root = project[0]
    estimates = pd.read_parquet(root / "_output-build/lekstroom/vianen/2014-2015/estimates.parquet")
    book = load_workbook(root / "_output/lekstroom/vianen/2014-2015/whitepaper.xlsx",
                         read_only=True)
    rows = list(book["Schattingen"].iter_rows(min_row=3, values_only=True))
    header, body = rows[0], rows[1:]
    col = header.index(ESTIMATE_COLUMNS["estimate"])
    assert len(body) == len(estimates)
    for value, expected in zip([r[col] for r in body], estimates["estimate"], strict=True):
        assert (value is None and pd.isna(expected)) or value == pytest.approx(expected, rel=1e-15)


def test_a_failing_notebook_fails_its_report_only_and_keeps_the_last_good_output(rendered,
                                                                                   project):
    root, params, sources, data = project
    out = root / "_output"
    lopik = out / "lekstroom/lopik/2014-2015"
    before = {p.name: p.read_bytes() for p in lopik.iterdir()}
    # A copy of the sources in which the first notebook fails for Lopik only.
    broken = _sources_copy(root / "broken", sources.notebooks_dir, sources.reports_dir,
                           sources.quarto_file)
    path = broken.notebooks_dir / "00-data-quality.ipynb"
    nb = nbformat.read(path, as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(
        f'if municipality == "{LOPIK}":\n    raise RuntimeError("geplante testfout")'))
    nbformat.write(nb, path)
    result = _render((root, params, broken, data))
    status = {r.key: r for r in result.results}
    assert status["lekstroom/vianen/2014-2015"].status == "done"
    failed = status["lekstroom/lopik/2014-2015"]
    assert failed.status == "failed"
    assert "00-data-quality.ipynb" in failed.error and "geplante testfout" in failed.error
    assert re.search(r"cell \d+", failed.error)
    assert {p.name: p.read_bytes() for p in lopik.iterdir()} == before


@pytest.fixture(scope="module")
def national_set(tmp_path_factory):
    """A small national data set in Parquet with its own params (as `data synthetic --scale`)."""
    from evaluation.data.synthetic_national import write_national

    out = tmp_path_factory.mktemp("national-set")
    write_national(out, 20_000, "parquet")
    return out


def test_dask_executor_on_a_small_national_set_equals_local(national_set, tmp_path):
    """Two fictional regions' reports of the national set, on a local Dask cluster with two
    workers (reading the Parquet files from the shared folder) and with the local executor: the
    same estimates and the same figures in the reports."""
    import distributed

    params = national_set / "params"
    regions = sorted(p.stem for p in params.glob("regio-*.yml"))

    def chosen(task: Task) -> bool:
        return task.unit_name is None and task.school_year == "2016-2017" and task.region in keep

    last = last_school_year(national_set, params)
    planned = {t.region for t in plan(last, params) if t.unit_name is None
               and t.school_year == "2016-2017"}
    keep = [r for r in regions if r in planned][:2]
    assert len(keep) == 2

    def run(executor: str, out: str, **kw):
        return render_all(executor=executor, workers=2, data_dir=national_set,
                          output_root=tmp_path / out, build_root=tmp_path / f"{out}-build",
                          params_dir=params, renderer="builtin", formats=["html"],
                          select=chosen, progress=False, **kw)

    local = run("local", "local")
    assert [r.status for r in local.results] == ["done", "done"], local.failed
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        remote = run("dask", "dask", scheduler=cluster.scheduler_address)
    assert [r.status for r in remote.results] == ["done", "done"], remote.failed
    figures = re.compile(r"\d+,\d+")
    body = re.compile(r"<main.*</main>|<body.*</body>", re.S)
    for region in keep:
        key = f"{region}/2016-2017"
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / f"local-build/{key}/estimates.parquet"),
            pd.read_parquet(tmp_path / f"dask-build/{key}/estimates.parquet"))
        html = [(tmp_path / f"{out}/{key}/whitepaper.html").read_text(encoding="utf-8")
                for out in ("local", "dask")]
        found = [figures.findall(body.search(h).group()) for h in html]
        assert found[0] == found[1] and len(found[0]) > 20


# --- shared work and order within a batch ------------------------------------------------------

def test_longest_reports_go_first(params_dir, tmp_path):
    from evaluation.run.batch import longest_first
    from evaluation.run.executors import Context, Job

    tasks = [t for t in plan("2014-2015", params_dir) if t.params.region.id == "lekstroom"]
    tasks = [t for t in tasks if t.school_year == "2014-2015"]
    ctx = Context(tmp_path, params_dir, (), tmp_path / "out", tmp_path / "build", "builtin")
    jobs = [Job(t, ctx, {}) for t in reversed(tasks)]
    # Without history: the region's report first, then municipalities with more schools.
    order = [j.task for j in longest_first(jobs, tmp_path / "out")]
    assert order[0].municipality is None
    own = [sum(s.municipality == t.params.municipality for s in t.params.region.schools)
           for t in order[1:]]
    assert own == sorted(own, reverse=True)
    # With history: the longest last render first, unknown ones before known ones.
    slow, fast = order[-1], order[1]
    for task, seconds in ((slow, 90.0), (fast, 5.0)):
        (tmp_path / "out" / task.key).mkdir(parents=True)
        write_manifest(task, {}, tmp_path / "out" / task.key, {}, "builtin", seconds)
    again = [j.task.key for j in longest_first(jobs, tmp_path / "out")]
    assert again[-2:] == [slow.key, fast.key]
    assert again[0] == order[0].key


def test_a_batch_validates_once_and_its_workers_read_that(synthetic_dir, tmp_path, monkeypatch):
    import os

    from evaluation.data import validation
    from evaluation.run import pipeline

    expected = validation.validate_dir(synthetic_dir)
    with pipeline.sharing_validated(synthetic_dir, tmp_path / "build") as path:
        assert path.is_file()
        assert os.environ[pipeline.SHARED_VALIDATION_ENV] == str(path.parent)
        # A worker or kernel (a fresh memo) reads the file and never validates.
        pipeline._MEMO.clear()
        monkeypatch.setattr(validation, "validate_dir", lambda _d: pytest.fail("validated"))
        got = pipeline.cached_validate_dir(synthetic_dir)
        for name, frame in expected.tables.items():
            pd.testing.assert_frame_equal(got.tables[name], frame)
        pd.testing.assert_frame_equal(got.problems, expected.problems)
    assert pipeline.SHARED_VALIDATION_ENV not in os.environ
    # The next batch writes its own file: none is reused across runs.
    monkeypatch.undo()
    pipeline._MEMO.clear()
    with pipeline.sharing_validated(synthetic_dir, tmp_path / "build") as again:
        assert again == path and len(list(path.parent.glob("*.pickle"))) == 1
