"""Scoring of answers and the figures the quality gate compares."""

import pytest

from qwenops_jobs.scoring import EvalItem, extract_choice, quality_drop_pct, quality_score, score_item, task_scores

MC = EvalItem.from_json({"id": "c1", "task": "ceval", "prompt": "中国的首都是？", "choices": ["上海", "北京", "广州", "深圳"], "answer": "B"})
DIALOGUE = EvalItem.from_json({"id": "d1", "task": "dialogue-zh", "prompt": "解释定期存款", "keywords": [["存款"], ["期限", "到期"], ["利息", "利率"]]})


@pytest.mark.parametrize(
    ("reply", "letter"),
    [("B", "B"), ("答案是 C", "C"), ("答案：D。铁", "D"), ("(A) 上海", "A"), ("b. 北京", "B"), ("The answer is C.", "C"), ("我不确定", None), ("Because", None)],
)
def test_extract_choice(reply, letter):
    assert extract_choice(reply) == letter


def test_multiple_choice_and_keyword_scores():
    assert score_item(MC, "答案是 B") == 1.0
    assert score_item(MC, "A") == 0.0
    assert score_item(DIALOGUE, "定期存款是约定期限存入，到期支取并获得利息。") == 1.0
    assert score_item(DIALOGUE, "这是一种存款。") == pytest.approx(1 / 3)


def test_quality_score_is_the_mean_of_task_means():
    items = [MC, MC, MC, DIALOGUE]
    outputs = ["B", "B", "A", "存款 期限 利息"]
    scores = task_scores(items, outputs)
    assert scores == {"ceval": pytest.approx(2 / 3, abs=1e-6), "dialogue-zh": 1.0}
    assert quality_score(scores) == pytest.approx((2 / 3 + 1) / 2, abs=1e-6)


def test_quality_drop():
    assert quality_drop_pct(0.80, 0.796) == pytest.approx(0.5)
    assert quality_drop_pct(0.80, 0.82) < 0
    assert quality_drop_pct(0.0, 0.0) == 0.0


def test_malformed_eval_items_are_refused():
    with pytest.raises(ValueError, match="4 choices"):
        EvalItem.from_json({"id": "x", "task": "ceval", "prompt": "?", "choices": ["a"], "answer": "A"})
    with pytest.raises(ValueError, match="unknown task"):
        EvalItem.from_json({"id": "x", "task": "translate", "prompt": "?"})
