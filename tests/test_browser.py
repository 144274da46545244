"""The dashboard in a real browser: headless Chromium driven by Playwright, the network blocked
(make test-browser; needs Debian's chromium, or CHROMIUM=path)."""

from __future__ import annotations

import os
import shutil

import pandas as pd
import pytest

from tests.conftest import MALL_CONFIG, small_config

pytestmark = pytest.mark.browser

PANELS = ("overview", "sizes", "profiles", "distributions", "customers-map", "top-customers", "elbow")
MARKS = "g.trace, g.hm, image, tbody tr, .card"


def chromium_path() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("no Chromium for the browser tests: install Debian's with "
                    "`apt-get update && apt-get install -y chromium`, or set CHROMIUM=/path/to/chrome")
    return path


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright is not installed: `pip install -e '.[browser]'` (make test-browser does it)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=chromium_path(), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"])
        yield chromium
        chromium.close()


def open_page(browser, path: str):
    """The page from disk with every request beyond the file itself refused and recorded."""
    page = browser.new_page(viewport={"width": 1300, "height": 900}, accept_downloads=True)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    url = "file://" + os.path.abspath(path)

    def route(request_route):
        if request_route.request.url == url:
            request_route.continue_()
        else:
            problems.append(f"network request: {request_route.request.url}")
            request_route.abort()

    page.route("**/*", route)
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    return page, problems


@pytest.fixture(scope="module")
def mall_run(spark, tmp_path_factory):
    from segmentation.job import run_segmentation

    output = str(tmp_path_factory.mktemp("dash") / "mall")
    run_segmentation(spark, small_config(**MALL_CONFIG, **{"output.path": output}))
    return output


def marks(page, panel: str) -> int:
    return page.eval_on_selector(f"#{panel}", f"e => e.querySelectorAll('{MARKS}').length")


def test_every_panel_renders_with_no_errors_and_no_network(browser, mall_run):
    page, problems = open_page(browser, os.path.join(mall_run, "report", "dashboard.html"))
    for panel in PANELS:
        assert marks(page, panel) > 0, f"panel {panel} drew nothing"
    assert problems == []
    page.close()


def test_the_cards_say_what_the_profiles_table_says(browser, mall_run):
    page, problems = open_page(browser, os.path.join(mall_run, "report", "dashboard.html"))
    profiles = pd.read_parquet(os.path.join(mall_run, "profiles")).sort_values("segment")
    cards = page.eval_on_selector_all(".card", "cs => cs.map(c => [Number(c.dataset.segment), "
                                      "c.querySelector('.customers').textContent, c.querySelector('.share').textContent, "
                                      "c.querySelector('h3').textContent])")
    assert len(cards) == len(profiles)
    for (segment, customers, share, title), row in zip(cards, profiles.itertuples()):
        assert segment == row.segment
        assert int(customers.replace(",", "")) == row.customers
        assert share == f"{100 * row.share:.1f}%"
        assert title == f"{row.segment}: {row.segment_name}"
    assert problems == []
    page.close()


def visible(page, plot: str) -> list[int]:
    """The segments whose traces the plot draws now (a per-segment trace carries meta.segment)."""
    return page.eval_on_selector(f"#{plot}", "d => d.data.filter(t => t.meta && t.visible === true)"
                                             ".map(t => t.meta.segment)")


def test_choosing_a_segment_focuses_every_panel_and_a_second_compares(browser, mall_run, tmp_path):
    page, problems = open_page(browser, os.path.join(mall_run, "report", "dashboard.html"))
    segments = page.eval_on_selector_all(".card", "cs => cs.map(c => Number(c.dataset.segment))")
    plots = ("sizes-plot", "profiles-plot", "distributions-plot", "map-plot")
    for plot in plots:
        assert visible(page, plot) == segments
    map_points = page.eval_on_selector("#map-plot", "e => e.querySelectorAll('.scatterlayer .point').length")
    first, second = segments[0], segments[-1]

    page.click(f".card[data-segment='{first}']")
    for plot in plots:
        assert visible(page, plot) == [first], plot
    for panel in PANELS[1:]:
        assert page.get_attribute(f"#{panel}", "data-visible-segments") == str(first)
    focused_points = page.eval_on_selector("#map-plot", "e => e.querySelectorAll('.scatterlayer .point').length")
    assert 0 < focused_points < map_points  # the drawn marks changed, not only the state
    rows = page.eval_on_selector_all("#top-customers tbody tr", "rs => rs.map(r => Number(r.dataset.segment))")
    assert rows and set(rows) == {first}
    assert page.input_value("#focus") == str(first)

    page.click(f".card[data-segment='{second}']")  # a second choice compares the two
    for plot in plots:
        assert visible(page, plot) == sorted([first, second]), plot
    assert page.input_value("#compare") == str(second)

    page.select_option("#rank-column", index=0)
    with page.expect_download() as download:
        page.click("#download-csv")
    saved = tmp_path / "top.csv"
    download.value.save_as(saved)
    table = pd.read_csv(saved)
    assert len(table) == len(page.query_selector_all("#top-customers tbody tr"))
    assert set(table["segment"]) <= {first, second}

    page.click("#clear")
    for plot in plots:
        assert visible(page, plot) == segments
    # The legend hides a segment (Plotly acts on a click once its double-click delay has passed).
    page.locator("#map-plot .legend .traces .legendtoggle").first.click()
    page.wait_for_function("() => document.getElementById('map-plot').data[0].visible === 'legendonly'",
                           timeout=5000)
    assert visible(page, "map-plot") == segments[1:]
    assert problems == []
    page.close()


@pytest.fixture(scope="module")
def predicted_run(spark, tmp_path_factory):
    """A transactions run with --predict-days 90 and the score job on the same transactions."""
    from segmentation.config import load_config
    from segmentation.job import run_segmentation
    from segmentation.score import score_customers
    from segmentation.synthetic import PurchaseProcess, simulate_purchases

    folder = tmp_path_factory.mktemp("dash-predict")
    tx, _ = simulate_purchases(1500, PurchaseProcess(days=630), seed=5)
    inputs = str(folder / "tx.csv")
    tx.assign(date=tx["date"].dt.strftime("%Y-%m-%d")).to_csv(inputs, index=False)
    output, scored = str(folder / "out"), str(folder / "scored")
    run_segmentation(spark, small_config(**{"input.kind": "transactions", "input.path": inputs, "input.format": "csv",
                                            "output.path": output, "predict.days": 90, "predict.gbt_iterations": 8,
                                            "k.max": 4, "lineage.previous": "none"}))
    cfg = load_config(None, {"input.kind": "transactions", "input.path": inputs, "input.format": "csv"}).input
    score_customers(spark, f"{output}/model", cfg, scored, prediction_model=f"{output}/prediction_model")
    return output, scored


def test_a_run_with_predictions_shows_them_and_its_at_risk_customers(browser, predicted_run):
    output, _ = predicted_run
    page, problems = open_page(browser, os.path.join(output, "report", "dashboard.html"))
    for panel in (*PANELS, "predictions"):
        assert marks(page, panel) > 0, f"panel {panel} drew nothing"
    profiles = pd.read_parquet(os.path.join(output, "profiles")).sort_values("segment")
    revenue = page.eval_on_selector("#expected-revenue-plot", "d => d.data.map(t => t.y[0])")
    assert revenue == pytest.approx(profiles["expected_revenue"].tolist())
    risky = page.eval_on_selector_all("#predictions tbody tr", "rs => rs.map(r => Number(r.dataset.segment))")
    labels = pd.read_parquet(os.path.join(output, "labels"))
    assert len(risky) == min(100, int((labels["churn_risk"] == "high").sum()))
    first = int(profiles["segment"].iloc[0])
    page.click(f".card[data-segment='{first}']")
    assert set(page.eval_on_selector_all("#predictions tbody tr", "rs => rs.map(r => Number(r.dataset.segment))")) \
        <= {first}
    assert problems == []
    page.close()


def test_the_score_job_dashboard_shows_the_scored_customers(browser, predicted_run):
    _, scored = predicted_run
    page, problems = open_page(browser, os.path.join(scored, "report", "dashboard.html"))
    for panel in ("overview", "sizes", "profiles", "distributions", "customers-map", "top-customers"):
        assert marks(page, panel) > 0, f"panel {panel} drew nothing"
    assert page.query_selector("#elbow") is None  # a score run has no elbow
    labels = pd.read_parquet(os.path.join(scored, "labels"))
    counts = labels.groupby("segment", observed=True).size()
    cards = page.eval_on_selector_all(".card", "cs => cs.map(c => [Number(c.dataset.segment), Number(c.dataset.customers)])")
    assert cards == [[int(s), int(n)] for s, n in counts.items()]
    assert problems == []
    page.close()


def test_the_controls_switch_units_rank_filter_and_feature(browser, mall_run):
    page, problems = open_page(browser, os.path.join(mall_run, "report", "dashboard.html"))
    profiles = pd.read_parquet(os.path.join(mall_run, "profiles")).sort_values("segment")
    dimensions = page.evaluate("() => window.dashboard.data.dimensions")
    bars = "d => d.data.flatMap(t => t.y)"
    assert page.eval_on_selector("#profiles-plot", bars) == pytest.approx(
        profiles[[f"{d}_centroid_z" for d in dimensions]].to_numpy().ravel().tolist())
    page.select_option("#profile-units", "original")
    assert page.eval_on_selector("#profiles-plot", bars) == pytest.approx(
        profiles[[f"{d}_centroid" for d in dimensions]].to_numpy().ravel().tolist())
    for plot, title in (("map-plot", None), ("elbow-plot", "K"), ("sizes-plot", None)):  # axis titles drawn
        drawn = page.eval_on_selector(f"#{plot}", "d => d.querySelector('.g-xtitle, .g-ytitle') ? "
                                                  "Array.from(d.querySelectorAll('.xtitle, .ytitle')).map(t => t.textContent) : []")
        assert drawn and "Click to enter" not in " ".join(drawn), plot
        assert title is None or title in drawn
    page.select_option("#distribution-feature", dimensions[1])
    assert page.eval_on_selector("#distributions-plot", "d => d._fullLayout.yaxis.title.text") == dimensions[1]
    boxes = page.eval_on_selector("#distributions-plot", "d => d.data.map(t => [t.meta.segment, t.y])")
    sample = page.evaluate("() => window.dashboard.data.samples")
    frame = pd.DataFrame(sample["rows"], columns=sample["columns"])
    for segment, ys in boxes:  # each box is its segment's sample of the chosen feature
        assert ys == frame.loc[frame["segment"] == segment, dimensions[1]].tolist()
    labels = pd.read_parquet(os.path.join(mall_run, "labels"))
    column = dimensions[1]
    page.select_option("#rank-column", column)
    first = page.eval_on_selector_all("#top-customers tbody tr", "rs => rs.length && rs[0].children[0].textContent")
    assert float(page.eval_on_selector("#top-customers thead", f"h => Array.from(h.querySelectorAll('th')).findIndex("
                                       f"t => t.textContent === {column!r})") >= 0)
    shown = page.eval_on_selector_all(
        "#top-customers tbody tr", f"rs => rs.map(r => r.children[Array.from(document.querySelectorAll("
        f"'#top-customers th')).findIndex(t => t.textContent === {column!r})].textContent)")
    assert float(shown[0].replace(",", "")) == labels[column].max()  # ranked by the chosen column
    page.fill("#customer-filter", str(first))
    rows = page.eval_on_selector_all("#top-customers tbody tr",
                                     "rs => rs.map(r => Array.from(r.children).map(c => c.textContent))")
    assert [str(first)] in [row[:1] for row in rows] and len(rows) < len(shown)
    assert all(any(str(first) in cell for cell in row) for row in rows)  # each kept row has it in a cell
    assert problems == []
    page.close()
