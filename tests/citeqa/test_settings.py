"""Settings: read once from `CITEQA_*` variables, each one documented, each ranking weight passed on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from citeqa.errors import InvalidSettings
from citeqa.settings import Settings, get_settings
from index.search import RankingWeights
from tests.conftest import REPO_ROOT

# Every ranking weight and the environment variable that sets it.
RANKING_VARIABLES = {
    "sentence": "CITEQA_SENTENCE_WEIGHT",
    "lexical": "CITEQA_LEXICAL_WEIGHT",
    "translated": "CITEQA_TRANSLATED_WEIGHT",
    "highlight_keywords": "CITEQA_HIGHLIGHT_KEYWORD_WEIGHT",
    "answerable_intercept": "CITEQA_ANSWERABLE_INTERCEPT",
    "answerable_relevance": "CITEQA_ANSWERABLE_RELEVANCE",
    "answerable_margin": "CITEQA_ANSWERABLE_MARGIN",
    "answerable_cjk": "CITEQA_ANSWERABLE_CJK",
    "answerable_coverage": "CITEQA_ANSWERABLE_COVERAGE",
    "answerable_coverage_top": "CITEQA_ANSWERABLE_COVERAGE_TOP",
    "answerable_coverage_sentence": "CITEQA_ANSWERABLE_COVERAGE_SENTENCE",
    "answerable_missing": "CITEQA_ANSWERABLE_MISSING",
    "answerable_unheld": "CITEQA_ANSWERABLE_UNHELD",
    "answerable_threshold_cjk": "CITEQA_ANSWERABLE_THRESHOLD_CJK",
    "answerable_threshold_other": "CITEQA_ANSWERABLE_THRESHOLD_OTHER",
}


def test_by_default_the_search_gets_the_measured_ranking_weights(monkeypatch) -> None:
    for variable in RANKING_VARIABLES.values():
        monkeypatch.delenv(variable, raising=False)
    assert Settings().ranking_weights() == RankingWeights()


def test_every_ranking_weight_can_be_set_from_its_environment_variable(monkeypatch) -> None:
    assert set(RANKING_VARIABLES) == set(RankingWeights.model_fields)
    for position, variable in enumerate(RANKING_VARIABLES.values()):
        monkeypatch.setenv(variable, str(0.125 * (position + 1) % 1))
    weights = Settings().ranking_weights()
    for position, name in enumerate(RANKING_VARIABLES):
        assert getattr(weights, name) == pytest.approx(0.125 * (position + 1) % 1), name


def test_a_ranking_weight_out_of_its_bounds_is_refused_naming_the_setting(monkeypatch) -> None:
    monkeypatch.setenv("CITEQA_SENTENCE_WEIGHT", "3")
    with pytest.raises(ValidationError, match="sentence_weight"):
        Settings()


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    """`get_settings` reads the environment once per process; these tests change it."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_get_settings_reads_the_environment_once(monkeypatch, fresh_settings) -> None:
    monkeypatch.setenv("CITEQA_PORT", "8123")
    first = get_settings()
    monkeypatch.setenv("CITEQA_PORT", "8124")
    assert get_settings() is first
    assert first.port == 8123


def test_get_settings_names_every_variable_with_a_bad_value(monkeypatch, fresh_settings) -> None:
    monkeypatch.setenv("CITEQA_PORT", "0")
    monkeypatch.setenv("CITEQA_BATCH_SIZE", "many")
    with pytest.raises(InvalidSettings) as raised:
        get_settings()
    assert "CITEQA_PORT" in raised.value.message
    assert "CITEQA_BATCH_SIZE" in raised.value.message


def test_a_rule_between_settings_is_reported_by_its_own_message(monkeypatch, fresh_settings) -> None:
    monkeypatch.setenv("CITEQA_CHUNK_SIZE", "100")
    monkeypatch.setenv("CITEQA_CHUNK_OVERLAP", "100")
    with pytest.raises(InvalidSettings, match=r"CITEQA_CHUNK_OVERLAP \(100\) must be smaller than"):
        get_settings()


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_setting_is_documented_in_the_readme(field: str) -> None:
    assert f"`CITEQA_{field.upper()}`" in (REPO_ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("value", "hosts"),
    [
        ("citeqa.example.org", ["citeqa.example.org"]),
        (
            " citeqa.example.org, *.Corp.example ,localhost",
            ["citeqa.example.org", "*.corp.example", "localhost"],
        ),
        ('["citeqa.example.org", "::1"]', ["citeqa.example.org", "::1"]),
        ("*", ["*"]),
    ],
)
def test_allowed_hosts_are_read_as_a_comma_separated_or_json_list(
    monkeypatch, value: str, hosts: list[str]
) -> None:
    monkeypatch.setenv("CITEQA_ALLOWED_HOSTS", value)
    assert Settings().allowed_hosts == hosts


def test_by_default_only_the_loopback_names_are_allowed_hosts(monkeypatch) -> None:
    monkeypatch.delenv("CITEQA_ALLOWED_HOSTS", raising=False)
    assert Settings().allowed_hosts == ["localhost", "127.0.0.1", "::1"]


@pytest.mark.parametrize("value", ["", " , ", "[]"])
def test_an_empty_list_of_allowed_hosts_is_refused_saying_what_to_set(
    monkeypatch, fresh_settings, value: str
) -> None:
    monkeypatch.setenv("CITEQA_ALLOWED_HOSTS", value)
    with pytest.raises(InvalidSettings, match=r"CITEQA_ALLOWED_HOSTS: .*at least one host name, or \*"):
        get_settings()
