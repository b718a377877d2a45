"""The tiny model's corpus: deterministic, the committed evaluation sets are what the generator
gives, and the split keeps held-out passages and multiple-choice questions out of training."""

import json
from pathlib import Path

from qwenops_jobs.tinymodel import corpus

DATA = Path(corpus.__file__).resolve().parent.parent / "data"


def test_regenerating_the_evaluation_sets_gives_the_committed_files():
    for name, make in corpus.DATA_FILES.items():
        assert corpus.jsonl(make()) == (DATA / name).read_text(encoding="utf-8"), (
            f"{name} differs from the generator: run python -m qwenops_jobs.tinymodel.corpus --write-data"
        )


def test_generation_is_deterministic():
    assert corpus.training_docs() == corpus.training_docs()
    assert corpus.heldout_items() == corpus.heldout_items()
    assert corpus.mc_items() == corpus.mc_items()


def test_set_sizes_and_shapes():
    heldout = [json.loads(line) for line in (DATA / "heldout_zh.jsonl").read_text(encoding="utf-8").splitlines()]
    mc = [json.loads(line) for line in (DATA / "mc_zh.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(heldout) >= 400 and len(mc) >= 400
    assert all(set(item) == {"id", "text"} and item["text"] for item in heldout)
    assert len({item["id"] for item in heldout}) == len(heldout)
    assert len({item["id"] for item in mc}) == len(mc)
    for item in mc:
        assert set(item) == {"id", "task", "prompt", "choices", "answer"}
        assert item["task"] == "mc-zh" and item["answer"] in "ABCD"
        assert len(item["choices"]) == 4 and len(set(item["choices"])) == 4
        assert item["prompt"].startswith("问：") and item["prompt"].endswith("\n答：")
    # Answer positions are spread over the four letters.
    counts = {letter: sum(1 for item in mc if item["answer"] == letter) for letter in "ABCD"}
    assert min(counts.values()) > len(mc) / 8


def test_the_split_keeps_evaluation_text_out_of_training():
    training = "\n".join(corpus.training_docs())
    for item in corpus.heldout_items():
        assert item["text"] not in training
        for sentence in item["text"].split("。"):
            assert not sentence or sentence + "。" not in training, sentence
    for item in corpus.mc_items():
        question = item["prompt"][len("问：") : -len("\n答：")]
        assert question not in training


def test_every_question_asks_a_fact_the_training_text_states():
    docs = corpus.training_docs()
    facts = {(f.subject, f.value) for f in corpus.facts()}
    by_subject = {}
    for subject, value in facts:
        by_subject.setdefault(subject, set()).add(value)
    for item in corpus.mc_items():
        answer = item["choices"]["ABCD".index(item["answer"])]
        subject = next(s for s in by_subject if s in item["prompt"])
        assert answer in by_subject[subject]
        assert any(subject in doc and answer in doc for doc in docs)


def test_the_bundled_corpus_is_read_in_every_format():
    texts = corpus.knowledge_base_texts()
    joined = "\n".join(texts)
    assert "入职满一年不满三年" in joined  # Markdown
    assert "系统密码至少十二位" in joined  # GBK plain text
    assert "30 天内" in joined and "console.log" not in joined and "<p>" not in joined  # HTML
    assert "工作日加班可以调休吗" in joined  # JSON Lines
    assert not any(path.suffix == ".pdf" for path in corpus.knowledge_base_files())
    assert any("中国的首都是哪座城市" in text for text in corpus.builtin_eval_texts())


def test_calibration_text_is_generated_training_text():
    texts = corpus.calibration_texts(10)
    assert len(texts) == 10
    assert all(text in corpus.generated_training_docs(2) for text in texts)
