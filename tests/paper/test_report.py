"""``agentwatt paper --fast``: every section is in the report, and Table IV's formula cells print
exactly as the paper does (docs/paper.md §2.10)."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from agentwatt.sim.facility import paper_formula_power_w
from agentwatt.paper.rows import Row, fmt_power
from agentwatt.paper.values import PAPER
from agentwatt.cli.paper import paper_cmd

# Table IV as printed in the paper (docs/paper.md §2.10 [Q]); Table III's Wh/query (§2.9 [Q]).
TABLE4_PRINTED = {
    ("8b", "sharegpt"): (0.32, "1.0 MW", "182.7 MW"), ("8b", "reflexion"): (41.53, "123.6 MW", "23.7 GW"),
    ("8b", "lats"): (22.76, "67.7 MW", "13.0 GW"), ("70b", "sharegpt"): (2.55, "7.6 MW", "1.5 GW"),
    ("70b", "reflexion"): (348.41, "1.0 GW", "198.9 GW"), ("70b", "lats"): (158.48, "471.5 MW", "90.5 GW"),
}
HEADERS = ("## Main results", "## Fig. 4", "## Figs. 5–7", "## Figs. 9 and 12", "## Fig. 11", "## Figs. 14 and 16",
           "## Table III", "## Table IV")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("paper")
    result = CliRunner().invoke(paper_cmd, ["--out", str(out), "--fast"])
    assert result.exit_code == 0, result.output
    return out


def test_report_has_every_table_and_figure(report):
    md = (report / "report.md").read_text(encoding="utf-8")
    for h in HEADERS:
        assert h in md, h
    assert "| quantity | ours | paper | ours/paper | target |" in md
    doc = json.loads((report / "report.json").read_text(encoding="utf-8"))
    for s in doc["sections"]:
        assert s["rows"], s["key"]
        for name in s["figures"]:
            assert (report / name).read_bytes()[:4] == b"\x89PNG"
            assert f"]({name})" in md


def test_every_checked_row_shows_its_verdict(report):
    doc = json.loads((report / "report.json").read_text(encoding="utf-8"))
    md = (report / "report.md").read_text(encoding="utf-8")
    rows = [r for s in doc["sections"] for r in s["rows"]]
    assert any(r["ok"] is False for r in rows) == ("✗" in md)
    assert all(r["ok"] in (True, False, None) for r in rows)
    for key in ("fig11.sharegpt_peak_qps", "fig11.react_hotpotqa_peak_qps", "fig11.react_webshop_peak_qps",
                "table3.8b.reflexion.wh", "table3.70b.lats.wh", "fig4.lats_llm_calls"):
        assert any(r["paper_key"] == key and r["ok"] is not None for r in rows), key


def test_table4_formula_cells_equal_the_papers_print(report):
    for (model, wl), (wh, low, high) in TABLE4_PRINTED.items():
        assert fmt_power(paper_formula_power_w(wh, 71.4e6)) == low
        assert fmt_power(paper_formula_power_w(wh, 13.7e9)) == high
    doc = json.loads((report / "report.json").read_text(encoding="utf-8"))
    cells = {r["paper_key"]: r for s in doc["sections"] if s["key"] == "table4" for r in s["rows"]
             if r["check"] == "equal"}
    assert len(cells) == 12
    for (model, wl), (_, low, high) in TABLE4_PRINTED.items():
        for level, printed in (("low", low), ("high", high)):
            cell = cells[f"table4.{model}.{wl}.{level}_w"]
            assert cell["ours_text"] == cell["paper_text"] == printed
            assert cell["ok"] is True


def test_paper_values_name_their_source():
    for key, v in PAPER.items():
        assert v.source.startswith("§2."), key


def test_row_checks():
    assert Row("x", 1.1, "fig11.sharegpt_peak_qps", tol=0.2).ok is False      # 1.1 vs 6.4
    assert Row("x", 6.0, "fig11.sharegpt_peak_qps", tol=0.2).ok is True
    assert Row("x", 30.0, "fig4.math_axis_max", check="max").ok is True
    assert Row("x", None, "fig4.math_axis_max", check="max").ok is False       # a missing value is a miss
    assert Row("x", 1.0, None, check="info").ok is None
    assert fmt_power(0.952e6) == "1.0 MW" and fmt_power(1036.5e6) == "1.0 GW"


# Simulated rows that match the paper within their tolerance today (--fast): a change of the
# simulator that moves one out of tolerance must be seen, not only a change of the report's layout.
MATCHING_ROWS = ("fig11.sharegpt_peak_qps", "sec4c.react_hotpotqa_mean_s", "fig7.sharegpt_p95_s",
                 "fig7.react_hotpotqa_p95_s", "fig5.llm_share", "fig11.react_hotpotqa_seq_qps", "table3.70b.lats.wh")


def test_simulated_rows_match_the_paper(report):
    doc = json.loads((report / "report.json").read_text(encoding="utf-8"))
    rows = {r["paper_key"]: r for s in doc["sections"] for r in s["rows"] if r["paper_key"]}
    for key in MATCHING_ROWS:
        r = rows[key]
        assert r["ok"] is True, (key, r["ours"], r["paper"], r["tolerance"])
        assert r["ours"] == pytest.approx(PAPER[key].value, rel=r["tolerance"]), key


def test_html_report_embeds_every_table_and_figure(report):
    """Issue 17: report.html beside report.md, self-contained (figures as data URIs, nothing fetched)."""
    import re
    text = (report / "report.html").read_text(encoding="utf-8")
    doc = json.loads((report / "report.json").read_text(encoding="utf-8"))
    names = [n for s in doc["sections"] for n in s["figures"]]
    assert text.count("<img ") == text.count("<img alt=") == len(names) > 0
    assert all(f'alt="{n}"' in text for n in names)
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=\"(?!data:)", text)
    assert all(s["title"] in text for s in doc["sections"])
