"""The tiny model's Chinese corpus and its deterministic split (pure Python, no torch).

Two sources:

1. Bundled text: ``samples/knowledge-base/docs/**`` (Markdown, plain text in UTF-8 or GBK,
   JSON Lines string fields, HTML with scripts, styles and tags removed; PDFs are skipped) and
   the prompts/choices of ``qwenops_jobs/data/eval_zh.jsonl``. All of it is training text.
2. Generated text (seeded): fictional companies in the style of the sample knowledge base,
   each with one value per policy attribute (annual leave, reimbursement deadline, password
   rules, headquarters city, ...), and real city -> province facts.

Sentences are compositional: a frame ("在{c}，...。", "按照{c}的规定，...。") around a
predicate ("员工每年享有{v}带薪年假"); questions likewise ("请问{c}的...？" around "年假是多少天").
Each attribute's frame x predicate grid is split by a fixed rule into cells for training and
reserved cells; every frame and every predicate occurs in training, some combinations never do.
The split:

- training text: statements and Q&A pairs ("问：...\n答：{v}。") in training cells, plus the
  bundled text;
- held-out perplexity set: passages of two or three facts of one subject in reserved
  statement cells (new combinations of known words: no held-out sentence occurs in training);
- multiple-choice set: one question per fact in a reserved question cell, the true value and
  three other values of the same attribute as choices.

Everything depends only on ``SEED`` and the tables below, so regenerating gives byte-identical
files (``python -m qwenops_jobs.tinymodel.corpus --write-data``).
"""

from __future__ import annotations

import argparse
import html
import json
import random
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

SEED = 20261130
ROUNDS = 12  # generated training text: each round states every fact once more, reworded
MC_TASK = "mc-zh"
LETTERS = "ABCD"
MC_PROMPT = "问：{q}\n答："  # the format of training Q&A pairs ("问：...\n答：..."), used by evaluation too
REPO_ROOT = Path(__file__).resolve().parents[3]
KNOWLEDGE_BASE = REPO_ROOT / "samples" / "knowledge-base" / "docs"


@dataclass(frozen=True)
class Attribute:
    key: str
    values: tuple[str, ...]
    level: str  # "policy": frames like "在{c}，{p}。"; "company": frames like "{c}{p}。"
    statements: tuple[str, ...]  # predicates: {v} = value, {s} = a subject ("员工", ...)
    questions: tuple[str, ...]  # question predicates, answered "{v}。"


POLICY_FRAMES = ("在{c}，{p}。", "按照{c}的规定，{p}。", "{c}规定，{p}。", "根据{c}的制度，{p}。", "{c}的员工手册写明，{p}。")
COMPANY_FRAMES = ("{c}{p}。", "据介绍，{c}{p}。", "大家都知道，{c}{p}。", "资料显示，{c}{p}。")
POLICY_QUESTION_FRAMES = ("{c}的{p}？", "在{c}，{p}？", "按照{c}的规定，{p}？", "根据{c}的制度，{p}？")
COMPANY_QUESTION_FRAMES = ("{c}{p}？", "请问{c}{p}？", "你知道{c}{p}吗？")
SUBJECTS = ("员工", "正式员工", "全体员工", "公司员工")

ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute(
        "leave", ("10天", "12天", "14天", "15天", "18天", "20天"), "policy",
        ("{s}每年享有{v}带薪年假", "{s}每年可以休{v}年假", "{s}的带薪年假是每年{v}", "{s}的年假为每年{v}，当年有效"),
        ("员工每年有几天年假", "员工每年可以休几天带薪年假", "年假是多少天"),
    ),
    Attribute(
        "reimburse", ("15天内", "20天内", "30天内", "45天内", "60天内", "90天内"), "policy",
        ("{s}须在费用发生后{v}提交报销单", "报销单必须在费用发生后{v}提交", "报销时限是费用发生后{v}，逾期不予受理", "{s}的费用要在发生后{v}报销"),
        ("报销时限是多久", "费用多久之内要报销", "报销单要在费用发生后多久提交"),
    ),
    Attribute(
        "approver", ("财务部", "行政部", "采购部", "法务部", "审计部", "人事部"), "policy",
        ("报销单由{v}负责审核", "报销审批由{v}办理", "费用报销统一交给{v}审批", "{s}的报销申请由{v}审批"),
        ("哪个部门审核报销单", "报销由哪个部门审批", "报销单由哪个部门负责审批"),
    ),
    Attribute(
        "pwlen", ("10位", "11位", "12位", "14位", "16位"), "policy",
        ("系统密码至少{v}", "登录密码的长度不能少于{v}", "每个账号的密码都要有{v}以上", "{s}的密码最少要{v}"),
        ("密码最少几位", "登录密码的长度至少要几位", "系统密码至少要有几位"),
    ),
    Attribute(
        "pwdays", ("30天", "45天", "60天", "75天", "90天"), "policy",
        ("{s}每{v}更换一次密码", "系统密码须每隔{v}修改一次", "账号密码每{v}更新一次", "{s}的登录密码每{v}要换一次"),
        ("密码多久换一次", "密码更换周期是多久", "登录密码每隔多久要更换一次"),
    ),
    Attribute(
        "start", ("七点半", "八点整", "八点半", "九点整", "九点半", "十点整"), "policy",
        ("上班时间是上午{v}", "{s}每天上午{v}开始工作", "{s}每天早上{v}上班", "{s}的上班时间是早上{v}"),
        ("员工几点上班", "员工早上什么时候开始上班", "上班时间是几点"),
    ),
    Attribute(
        "probation", ("一个月", "两个月", "三个月", "六个月"), "policy",
        ("新员工的试用期为{v}", "新员工入职以后要经过{v}的试用期", "试用期是{v}", "新员工要试用{v}"),
        ("试用期多长", "新员工要试用多久", "新员工的试用期有多长"),
    ),
    Attribute(
        "hotline", ("8110", "8120", "8230", "8350", "8460", "8570", "8690", "8800"), "policy",
        ("发现安全事件时请拨打内线{v}", "信息安全部的内线电话是{v}", "遇到病毒或钓鱼邮件要打内线{v}", "{s}遇到数据泄露请拨打{v}"),
        ("安全热线是多少", "信息安全部的电话是多少", "发现安全事件时要拨打哪个内线"),
    ),
    Attribute(
        "hq", (), "company",  # values: the city table below
        ("的总部设在{v}", "是一家总部位于{v}的公司", "的总部在{v}", "把总部放在了{v}"),
        ("的总部在哪里", "的总部设在哪座城市", "是一家总部位于哪座城市的公司"),
    ),
    Attribute(
        "business", ("物流配送", "医疗器械", "在线教育", "移动支付", "智能制造", "农业种植", "影视传媒", "新能源车"), "company",
        ("的主营业务是{v}", "主要从事{v}", "是一家做{v}的公司", "的核心业务是{v}"),
        ("是做什么的", "的主营业务是什么", "主要从事什么业务"),
    ),
    Attribute(
        "founded", tuple(f"{y}年" for y in range(1996, 2021)), "company",
        ("成立于{v}", "创办于{v}，至今已经发展多年", "是{v}成立的公司", "的创立时间是{v}"),
        ("是哪一年成立的", "成立于哪一年", "是哪一年创办的公司"),
    ),
)

# Real facts: every city is two characters and every province three, so the choices of a
# question are equally long.
PROVINCES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("浙江省", ("杭州", "宁波", "温州", "绍兴")),
    ("江苏省", ("南京", "苏州", "无锡", "扬州")),
    ("广东省", ("广州", "深圳", "珠海", "佛山")),
    ("山东省", ("济南", "青岛", "烟台", "潍坊")),
    ("四川省", ("成都", "绵阳", "乐山", "宜宾")),
    ("湖北省", ("武汉", "宜昌", "襄阳", "荆州")),
    ("湖南省", ("长沙", "株洲", "湘潭", "岳阳")),
    ("福建省", ("福州", "厦门", "泉州", "漳州")),
    ("河南省", ("郑州", "洛阳", "开封", "南阳")),
    ("河北省", ("保定", "唐山", "邯郸", "廊坊")),
    ("安徽省", ("合肥", "芜湖", "安庆", "黄山")),
    ("江西省", ("南昌", "九江", "赣州", "上饶")),
    ("陕西省", ("西安", "宝鸡", "咸阳", "延安")),
    ("辽宁省", ("沈阳", "大连", "鞍山", "丹东")),
    ("云南省", ("昆明", "大理", "丽江", "曲靖")),
)
CITY_FRAMES = ("{x}{p}。", "据介绍，{x}{p}。", "大家都知道，{x}{p}。", "资料显示，{x}{p}。")
CITY_STATEMENTS = ("是{v}的城市", "位于{v}", "是{v}一座历史悠久的城市", "市隶属于{v}")
CITY_QUESTION_FRAMES = ("{x}{p}？", "请问{x}{p}？", "你知道{x}{p}吗？")
CITY_QUESTIONS = ("在哪个省", "是哪个省的城市", "属于哪个省份")

# Fictional company names (none is 星澜科技, whose policies the knowledge base states).
COMPANY_NAMES = (
    "云帆", "青禾", "远山", "澄川", "鹿鸣", "海棠", "北辰", "明溪", "松涛", "金穗",
    "银杉", "蓝湾", "白桦", "赤霞", "紫藤", "翠微", "朗月", "晨曦", "锦程", "华岳",
    "东篱", "南风", "西岭", "秋实", "春晖", "博远", "恒信", "瑞丰", "嘉禾", "思源",
    "天衡", "凌云", "泰和", "启明", "长风", "映雪", "临川", "望舒", "听涛", "飞鸿",
)
COMPANY_SUFFIXES = ("科技", "集团", "实业", "股份")
PROFILE_TITLES = ("{c}员工手册摘要", "关于{c}", "{c}公司简介", "{c}制度汇编")
CITY_TITLES = ("城市与省份", "中国城市简介", "地理常识")


@dataclass(frozen=True)
class Fact:
    subject: str  # company or city
    attribute: str  # Attribute.key or "province"
    value: str


def cities() -> list[tuple[str, str]]:
    return [(city, province) for province, names in PROVINCES for city in names]


CITY = Attribute("province", tuple(p for p, _ in PROVINCES), "city", CITY_STATEMENTS, CITY_QUESTIONS)


def attribute(key: str) -> Attribute:
    if key == "province":
        return CITY
    for attr in ATTRIBUTES:
        if attr.key == key:
            if key == "hq":
                return Attribute(attr.key, tuple(c for c, _ in cities()), attr.level, attr.statements, attr.questions)
            return attr
    raise KeyError(key)


def frames(attr: Attribute) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(statement frames, question frames) of an attribute's level."""
    if attr.level == "policy":
        return POLICY_FRAMES, POLICY_QUESTION_FRAMES
    if attr.level == "company":
        return COMPANY_FRAMES, COMPANY_QUESTION_FRAMES
    return CITY_FRAMES, CITY_QUESTION_FRAMES


def reserved(frame: int, predicate: int, frame_count: int) -> bool:
    """The fixed split of a frame x predicate grid: a diagonal of cells is reserved for
    evaluation; every frame and every predicate keeps training cells. Frame 0 (the plainest,
    which the others contain: "{c}{p}。" is inside "据介绍，{c}{p}。") is never reserved, so no
    reserved sentence or question occurs inside the training text."""
    return frame != 0 and (frame + predicate) % min(frame_count, 4) == 0


def cells(attr: Attribute, *, question: bool, held_out: bool) -> list[str]:
    """Templates ({c}/{x}, {v}, {s}) of an attribute's training or reserved cells."""
    statement_frames, question_frames = frames(attr)
    frame_list = question_frames if question else statement_frames
    predicates = attr.questions if question else attr.statements
    out = []
    for f, frame in enumerate(frame_list):
        for p, predicate in enumerate(predicates):
            if reserved(f, p, len(frame_list)) == held_out:
                out.append(frame.replace("{p}", predicate))
    return out


def companies(rng: random.Random) -> list[tuple[str, dict[str, str]]]:
    """(name, {attribute: value}) for every fictional company, values drawn with the seed."""
    result = []
    for name in COMPANY_NAMES:
        full = name + rng.choice(COMPANY_SUFFIXES)
        result.append((full, {attr.key: rng.choice(attribute(attr.key).values) for attr in ATTRIBUTES}))
    return result


def facts() -> list[Fact]:
    rng = random.Random(SEED)
    out = [Fact(name, key, value) for name, values in companies(rng) for key, value in values.items()]
    out += [Fact(city, "province", province) for city, province in cities()]
    return out


# ---- bundled text -------------------------------------------------------------------------


def html_text(source: str) -> str:
    source = re.sub(r"(?is)<(script|style|head)\b.*?</\1\s*>", " ", source)
    source = re.sub(r"(?s)<!--.*?-->", " ", source)
    source = re.sub(r"(?i)<br\s*/?>|</(p|h[1-6]|li|div|tr)>", "\n", source)
    text = html.unescape(re.sub(r"<[^>]+>", "", source))
    return normalize_lines(text)


def normalize_lines(text: str) -> str:
    lines = [re.sub(r"[ \t\u3000]+", " ", line).strip() for line in text.replace("\r\n", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def decode_text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("gb18030")


def jsonl_text(source: str) -> str:
    parts = []
    for line in source.splitlines():
        if line.strip():
            value = json.loads(line)
            parts.append("\n".join(str(v) for v in value.values() if isinstance(v, str)))
    return "\n\n".join(parts)


def knowledge_base_files(root: Path = KNOWLEDGE_BASE) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in (".md", ".txt", ".jsonl", ".html", ".htm"))


def knowledge_base_texts(root: Path = KNOWLEDGE_BASE) -> list[str]:
    """Text of the sample knowledge base; PDFs are skipped. Raises if the folder is missing
    (the tiny model must not silently be built from less text)."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root} does not exist: the tiny model's bundled corpus is missing")
    texts = []
    for path in knowledge_base_files(root):
        raw = decode_text(path.read_bytes())
        suffix = path.suffix.lower()
        if suffix in (".html", ".htm"):
            texts.append(html_text(raw))
        elif suffix == ".jsonl":
            texts.append(jsonl_text(raw))
        elif suffix == ".md":
            texts.append(normalize_lines(re.sub(r"(?m)^\s*(#+|[-*])\s+", "", raw)))
        else:
            texts.append(normalize_lines(raw))
    return [t for t in texts if t]


def builtin_eval_texts() -> list[str]:
    lines = resources.files("qwenops_jobs").joinpath("data/eval_zh.jsonl").read_text(encoding="utf-8").splitlines()
    texts = []
    for line in lines:
        if not line.strip():
            continue
        item = json.loads(line)
        if item.get("choices") and item.get("answer") in LETTERS:
            answer = item["choices"][LETTERS.index(item["answer"])]
            texts.append(MC_PROMPT.format(q=item["prompt"]) + answer + "。\n选项：" + "、".join(item["choices"]))
        else:
            texts.append(item["prompt"])
    return texts


# Sentence and question forms: held-out and multiple-choice forms reuse the training text's
# words in new arrangements (a model this small cannot score words it never saw), and no
# held-out passage or question occurs in the training text (tests/test_tinymodel_corpus.py).

# ---- generated text -------------------------------------------------------------------------


def _fill(template: str, fact: Fact, rng: random.Random) -> str:
    subject = rng.choice(SUBJECTS) if "{s}" in template else ""
    return template.format(c=fact.subject, x=fact.subject, v=fact.value, s=subject)


def _qa(template: str, fact: Fact, rng: random.Random) -> str:
    return MC_PROMPT.format(q=_fill(template, fact, rng)) + fact.value + "。"


def generated_training_docs(rounds: int = ROUNDS) -> list[str]:
    """Documents of the generated training text, ``rounds`` rewordings of every fact: per
    company a profile (every fact, a training statement cell each) and a Q&A sheet (half of
    the facts, training question cells); cities in groups of six, statements or Q&A."""
    rng = random.Random(SEED + 1)
    by_company: dict[str, list[Fact]] = {}
    city_facts = []
    for fact in facts():
        if fact.attribute == "province":
            city_facts.append(fact)
        else:
            by_company.setdefault(fact.subject, []).append(fact)
    statements = {key: cells(attribute(key), question=False, held_out=False) for key in [a.key for a in ATTRIBUTES] + ["province"]}
    questions = {key: cells(attribute(key), question=True, held_out=False) for key in [a.key for a in ATTRIBUTES] + ["province"]}
    docs: list[str] = []
    for _ in range(rounds):
        batch: list[str] = []
        for company, company_facts in by_company.items():
            shuffled = list(company_facts)
            rng.shuffle(shuffled)
            title = rng.choice(PROFILE_TITLES).format(c=company)
            batch.append(title + "\n" + "".join(_fill(rng.choice(statements[f.attribute]), f, rng) for f in shuffled))
            asked = rng.sample(company_facts, k=len(company_facts) // 2)
            batch.append("\n\n".join(_qa(rng.choice(questions[f.attribute]), f, rng) for f in asked))
        shuffled_cities = list(city_facts)
        rng.shuffle(shuffled_cities)
        for start in range(0, len(shuffled_cities), 6):
            parts = []
            for fact in shuffled_cities[start : start + 6]:
                if rng.random() < 0.4:
                    parts.append("\n" + _qa(rng.choice(questions["province"]), fact, rng) + "\n")
                else:
                    parts.append(_fill(rng.choice(statements["province"]), fact, rng))
            batch.append(rng.choice(CITY_TITLES) + "\n" + "".join(parts).strip())
        rng.shuffle(batch)
        docs.extend(batch)
    return docs


def training_docs(rounds: int = ROUNDS, knowledge_base: Path = KNOWLEDGE_BASE) -> list[str]:
    """All training documents: the bundled text (every fourth round) and the generated text."""
    bundled = knowledge_base_texts(knowledge_base) + builtin_eval_texts()
    generated = generated_training_docs(rounds)
    per_round = len(generated) // rounds
    docs: list[str] = []
    for r in range(rounds):
        if r % 4 == 0:  # the bundled text is small and real: a few repetitions, not one per round
            docs.extend(bundled)
        docs.extend(generated[r * per_round : (r + 1) * per_round])
    return docs


def calibration_texts(samples: int) -> list[str]:
    """Calibration text for quantization: generated *training* documents (never the held-out
    or multiple-choice sets), cycled; needs no files, so it works inside the Job image."""
    docs = generated_training_docs(rounds=2)
    return [docs[i % len(docs)] for i in range(samples)]


def heldout_items() -> list[dict[str, str]]:
    """Passages for perplexity: two or three facts of one subject in reserved statement
    cells (ten passages per company, one per city), shuffled."""
    rng = random.Random(SEED + 2)
    by_subject: dict[str, list[Fact]] = {}
    for fact in facts():
        by_subject.setdefault(fact.subject, []).append(fact)
    held = {key: cells(attribute(key), question=False, held_out=True) for key in [a.key for a in ATTRIBUTES] + ["province"]}
    passages = []
    for subject_facts in by_subject.values():
        if subject_facts[0].attribute == "province":
            fact = subject_facts[0]
            templates = rng.sample(held["province"], k=2)
            passages.append("".join(_fill(t, fact, rng) for t in templates))
            continue
        for _ in range(10):
            chosen = rng.sample(subject_facts, k=rng.choice((2, 3)))
            passages.append("".join(_fill(rng.choice(held[f.attribute]), f, rng) for f in chosen))
    unique = sorted(set(passages))
    rng.shuffle(unique)
    return [{"id": f"heldout-{i + 1:04d}", "text": text} for i, text in enumerate(unique)]


def mc_items() -> list[dict[str, object]]:
    """One question per fact in a reserved question cell; the choices are the true value and
    three other values of the same attribute, the answer position drawn with the seed."""
    rng = random.Random(SEED + 3)
    items = []
    for fact in facts():
        attr = attribute(fact.attribute)
        question = _fill(rng.choice(cells(attr, question=True, held_out=True)), fact, rng)
        distractors = rng.sample([v for v in attr.values if v != fact.value], k=3)
        position = rng.randrange(4)
        choices = distractors[:position] + [fact.value] + distractors[position:]
        items.append({"prompt": MC_PROMPT.format(q=question), "choices": choices, "answer": LETTERS[position]})
    rng.shuffle(items)
    return [{"id": f"mc-{i + 1:04d}", "task": MC_TASK, **item} for i, item in enumerate(items)]


def jsonl(items: list[dict]) -> str:
    return "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items)


DATA_FILES = {"heldout_zh.jsonl": heldout_items, "mc_zh.jsonl": mc_items}


def data_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "data"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="qwenops_jobs.tinymodel.corpus", description=__doc__.split("\n\n")[0])
    parser.add_argument("--write-data", action="store_true", help="regenerate qwenops_jobs/data/{heldout,mc}_zh.jsonl")
    parser.add_argument("--stats", action="store_true", help="print the corpus sizes")
    args = parser.parse_args(argv)
    if args.write_data:
        for name, make in DATA_FILES.items():
            (data_dir() / name).write_text(jsonl(make()), encoding="utf-8")
            print(f"wrote {data_dir() / name}")
    if args.stats or not args.write_data:
        docs = training_docs()
        print(json.dumps({
            "trainingDocs": len(docs),
            "trainingChars": sum(len(d) for d in docs),
            "heldoutItems": len(heldout_items()),
            "mcItems": len(mc_items()),
            "facts": len(facts()),
        }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
