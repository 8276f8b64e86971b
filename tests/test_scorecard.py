"""The claims scorecard: rows replaced by id, fixed order, validated verdicts, README section."""

import pytest

from uncertsam_utils.scorecard import Claim, read_claims, render_section, update_claims, update_readme
from uncertsam_utils.scorecard.readme import BEGIN, END, section_of


def claim(id_, verdict="holds", source="paper", evidence="Δ +0.010 [0.002, 0.018]"):
    return Claim(id=id_, source=source, statement=f"statement of {id_}", paper_verdict="holds" if source == "paper"
                 else "not tested", verdict=verdict, evidence=evidence, test="paired bootstrap", rests_on="384 images",
                 notebook="06")


def test_update_replaces_by_id_keeps_others_and_orders(tmp_path):
    stem = tmp_path / "claims"
    update_claims([claim("ours-b", source="ours"), claim("paper-varnet-worst")], stem)
    update_claims([claim("paper-laplace-correlates-best", "does not hold"), claim("paper-varnet-worst", "inconclusive")],
                  stem)
    rows = read_claims(stem)
    assert [c.id for c in rows] == ["paper-laplace-correlates-best", "paper-varnet-worst", "ours-b"]
    assert rows[1].verdict == "inconclusive"
    md = (tmp_path / "claims.md").read_text()
    assert "3 claims: 1 does not hold, 1 inconclusive, 1 holds" not in md  # counts follow VERDICTS order
    assert "1 holds, 1 does not hold, 1 inconclusive" in md and "**inconclusive**" in md


def test_a_typed_or_multiline_verdict_is_refused():
    with pytest.raises(ValueError, match="verdict"):
        claim("x", verdict="mostly holds")
    with pytest.raises(ValueError, match="evidence"):
        claim("x", evidence="a\nb")


def test_round_trip_keeps_every_field_including_commas_and_pipes(tmp_path):
    original = claim("ours-x", source="ours", evidence="ρ 0.61, [0.58, 0.64] | n = 3 seeds")
    update_claims([original], tmp_path / "c")
    assert read_claims(tmp_path / "c") == [original]


def test_readme_section_is_regenerated_between_markers(tmp_path):
    update_claims([claim("paper-varnet-worst", "does not hold")], tmp_path / "claims")
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{BEGIN}\nstale text\n{END}\noutro\n")
    assert update_readme(readme, tmp_path / "claims")
    text = readme.read_text()
    assert "stale text" not in text and text.startswith("intro\n") and text.endswith(f"{END}\noutro\n")
    assert section_of(text) == render_section(tmp_path / "claims")
    assert "**does not hold**" in section_of(text)
    assert not update_readme(readme, tmp_path / "claims")  # idempotent
    readme.write_text("no markers\n")
    with pytest.raises(ValueError, match="markers"):
        update_readme(readme, tmp_path / "claims")


def test_the_committed_readme_section_is_the_committed_scorecard():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert section_of(readme) == render_section(root / "tables" / "claims")
    rows = read_claims(root / "tables" / "claims")
    from uncertsam_utils.scorecard import ORDER

    assert [c.id for c in rows if c.source == "paper"] == list(ORDER)  # a verdict for each of the paper's six


def test_reproduce_rewrites_the_section_only_for_the_checkouts_own_tables(tmp_path, monkeypatch):
    from uncertsam_utils import reproduce

    (tmp_path / "tables").mkdir()
    update_claims([claim("paper-varnet-worst", "does not hold")], tmp_path / "tables" / "claims")
    (tmp_path / "README.md").write_text(f"intro\n{BEGIN}\n{END}\n")
    monkeypatch.setattr(reproduce, "project_root", lambda: tmp_path)
    monkeypatch.setattr(reproduce, "tables_dir", lambda: tmp_path / "tables")
    assert reproduce.update_results_section() == tmp_path / "README.md"
    assert "**does not hold**" in section_of((tmp_path / "README.md").read_text())
    assert reproduce.update_results_section() is None  # unchanged
    monkeypatch.setattr(reproduce, "tables_dir", lambda: tmp_path / "elsewhere")
    update_claims([claim("paper-varnet-worst", "holds")], tmp_path / "tables" / "claims")
    assert reproduce.update_results_section() is None  # outputs sent elsewhere: the README is left alone
