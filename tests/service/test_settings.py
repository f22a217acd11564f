from __future__ import annotations

import pytest
from pydantic import ValidationError

from index.search import RankingWeights
from service.settings import Settings

# Every ranking weight and the environment variable that sets it.
RANKING_VARIABLES = {
    "sentence": "CITEQA_SENTENCE_WEIGHT",
    "lexical": "CITEQA_LEXICAL_WEIGHT",
    "translated": "CITEQA_TRANSLATED_WEIGHT",
    "highlight_keywords": "CITEQA_HIGHLIGHT_KEYWORD_WEIGHT",
    "confidence_margin": "CITEQA_CONFIDENCE_MARGIN",
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
