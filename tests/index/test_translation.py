from __future__ import annotations

import pytest

from index.lexical import Concept
from index.translation import QueryTranslator, cc_cedict_translator

ENTRIES = [
    ("台积电", ["Taiwan Semiconductor Manufacturing Company (TSMC), founded in 1987 (abbreviated name)"]),
    ("市值", ["market capitalization", " market value"]),
    ("市场", ["market", "marketplace"]),
    ("价值", ["value", "worth"]),
    ("格力", ["Gree (brand)"]),
    ("价格", ["price"]),
    ("姓", ["surname Xing", "variant of 性"]),
    ("手机", ["cell phone", "mobile phone", "CL:部[bu4],支[zhi1]"]),
    ("把", ["to hold", "to tell sb sth"]),
    (
        "百度",
        ["Baidu, Internet portal and search engine, www.baidu.com, listed as BIDU on NASDAQ since 1999"],
    ),
    ("腾讯", ["see 騰訊控股有限公司|腾讯控股有限公司[Teng2 xun4 Kong4 gu3 You3 xian4 Gong1 si1]"]),
    ("腾讯控股有限公司", ["Tencent Holdings Limited"]),
]


@pytest.fixture(scope="module")
def translator() -> QueryTranslator:
    return QueryTranslator(ENTRIES)


def weights(concept: Concept) -> dict[str, float]:
    return {alternative.text: alternative.weight for alternative in concept.alternatives}


def test_each_content_word_becomes_a_concept_of_its_possible_translations(
    translator: QueryTranslator,
) -> None:
    concepts = translator.translate("What was TSMC's market value?")
    assert [concept.word for concept in concepts] == ["tsmc", "market", "valu"]
    tsmc, market, value = concepts
    assert weights(tsmc) == {"台积电": 1.0}
    # "market value" is a whole gloss of 市值 in this question; "market" alone fully glosses 市场.
    assert weights(market) == {"市值": 1.0, "市场": 1.0}
    assert weights(value) == {"市值": 1.0, "价值": 1.0}


def test_a_translation_weighs_the_share_of_its_gloss_the_question_holds(translator: QueryTranslator) -> None:
    (phone,) = translator.translate("Which phone?")
    assert weights(phone) == {"手机": 0.5}  # "mobile phone", "cell phone": one word of two


def test_words_are_stemmed_and_parenthesised_notes_ignored(translator: QueryTranslator) -> None:
    concepts = translator.translate("Gree's prices")
    assert [weights(concept) for concept in concepts] == [{"格力": 1.0}, {"价格": 1.0}]


def test_a_name_before_a_comma_and_an_entry_s_see_reference_give_translations(
    translator: QueryTranslator,
) -> None:
    baidu, tencent = translator.translate("Baidu Tencent")
    assert weights(baidu) == {"百度": 1.0}  # the whole gloss is a description of too many words
    assert weights(tencent) == {"腾讯": pytest.approx(1 / 3), "腾讯控股有限公司": pytest.approx(1 / 3)}


def test_stopwords_question_words_and_non_translations_give_no_concept(translator: QueryTranslator) -> None:
    assert translator.translate("What is the surname of it?") == []
    (tell,) = translator.translate("Did they tell someone?")  # "to tell sb sth": sb and sth are placeholders
    assert weights(tell) == {"把": 1.0}
    assert translator.translate("variant") == []


def test_with_source_words_every_content_word_is_a_concept_that_also_holds_the_word_as_written(
    translator: QueryTranslator,
) -> None:
    concepts = translator.translate("Which phones did Xiaomi ship?", with_source_words=True)
    assert [weights(concept) for concept in concepts] == [
        {"phones": 1.0, "手机": 0.5},
        {"xiaomi": 1.0},
        {"ship": 1.0},
    ]


def test_a_translation_carries_the_index_terms_jieba_gives_it(translator: QueryTranslator) -> None:
    (tsmc,) = translator.translate("TSMC")
    assert tsmc.alternatives[0].terms == ("台积", "电")


def test_the_cc_cedict_translator_knows_company_names_and_common_words() -> None:
    translator = cc_cedict_translator()
    found = {concept.word: weights(concept) for concept in translator.translate("Intel's quantum chip")}
    assert found["intel"]["英特尔"] == 1.0
    assert found["quantum"]["量子"] == 1.0
    assert "芯片" in found["chip"]
