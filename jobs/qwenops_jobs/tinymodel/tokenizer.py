"""The tiny model's tokenizer: byte-level BPE exactly like Qwen2's (same pre-tokenizer split
regex, NFC, byte-level alphabet, `<|endoftext|>` / `<|im_start|>` / `<|im_end|>` after the
regular vocabulary), 8192 entries.

Trained with the `tokenizers` library in two steps so that Chinese characters stay whole:
a byte-level BPE trained directly on ~175 k characters of templated text merges across
character boundaries (tokens like "帆科" split mid-UTF-8). Instead

1. every character of the alphabet (the 6763 GB2312 hanzi, the GB2312 rows of punctuation,
   full-width forms, Greek and Cyrillic, and every character of the corpus) gets its
   byte-level merges (first two bytes, then the third), ranked first;
2. a character-level BPE is trained on the corpus with the `tokenizers` trainer and its merges
   are appended in byte-level form, the most frequent first, as many as fit in 8192 - 3
   regular entries (words of at most two characters: longer ones in a templated corpus are
   mostly frame fragments like "在云帆" that split a name into different tokens). It trains on the same
   split regex with punctuation additionally split off: Qwen's regex keeps a punctuation mark
   with the letters after it ("，远山..."), and on a small templated corpus BPE would otherwise
   learn tokens like "，远山" or "员工每年" that give one name or word different tokens in
   different contexts.

The result is an ordinary byte-level BPE (vocab.json, merges.txt, tokenizer.json) that any
Qwen2 tokenizer implementation loads; text outside the alphabet falls back to bytes.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

VOCAB_SIZE = 8192
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
MAX_WORD_CHARS = 2
PUNCTUATION = r"[^\p{L}\p{N}\s]+"
SPLIT_PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
# The chat template of the Qwen2 instruct models.
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (what ByteLevel uses)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def byte_level(text: str) -> str:
    table = bytes_to_unicode()
    return "".join(table[b] for b in text.encode("utf-8"))


def gb2312_characters() -> list[str]:
    """The GB2312 hanzi (rows 0xB0-0xF7) plus its rows of punctuation (0xA1), full-width forms
    (0xA3), Greek (0xA6) and Cyrillic (0xA7)."""
    chars = []
    for high in [0xA1, 0xA3, 0xA6, 0xA7, *range(0xB0, 0xF8)]:
        for low in range(0xA1, 0xFF):
            try:
                chars.append(bytes([high, low]).decode("gb2312"))
            except UnicodeDecodeError:
                continue
    return chars


def alphabet(docs: list[str]) -> list[str]:
    import unicodedata

    seen = set(gb2312_characters())
    for doc in docs:
        seen.update(unicodedata.normalize("NFC", doc))
    return sorted(seen)


def train(docs: list[str]):
    """A `tokenizers.Tokenizer` with exactly VOCAB_SIZE entries (see the module docstring)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    chars = alphabet(docs)
    table = bytes_to_unicode()
    vocab: dict[str, int] = {}

    def add(token: str) -> None:
        if token not in vocab:
            vocab[token] = len(vocab)

    for b in sorted(table):
        add(table[b])
    merges: list[tuple[str, str]] = []
    # Step 1: whole characters, prefixes first (every prefix merge ranks before any character).
    multibyte = [c.encode("utf-8") for c in chars if len(c.encode("utf-8")) > 1]
    for length in range(2, 5):
        for encoded in sorted({e[:length] for e in multibyte if len(e) >= length}):
            left, right = "".join(table[b] for b in encoded[:-1]), table[encoded[-1]]
            if left + right not in vocab:
                merges.append((left, right))
                add(left + right)
    char_budget = VOCAB_SIZE - len(SPECIAL_TOKENS) - len(vocab)
    if char_budget < 0:
        raise ValueError(f"the alphabet alone needs {len(vocab)} entries, more than {VOCAB_SIZE}")

    # Step 2: words, trained on characters with the same normalizer and split.
    words = Tokenizer(models.BPE(unk_token=None))
    words.normalizer = normalizers.NFC()
    words.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.Split(Regex(PUNCTUATION), behavior="isolated", invert=False),
    ])
    trainer = trainers.BpeTrainer(
        vocab_size=len(chars) + char_budget + 64,  # some merges may repeat an existing string
        min_frequency=1,  # the corpus is small: rare pairs fill the last entries
        initial_alphabet=chars,
        limit_alphabet=len(chars),
        max_token_length=MAX_WORD_CHARS,
        show_progress=False,
        special_tokens=[],
    )
    words.train_from_iterator(docs, trainer)
    word_merges = [m if isinstance(m, list) else m.split(" ", 1) for m in json.loads(words.to_str())["model"]["merges"]]
    for left, right in word_merges:
        left_b, right_b = byte_level(left), byte_level(right)
        if left_b not in vocab or right_b not in vocab or len(left) + len(right) > MAX_WORD_CHARS:
            continue
        if left_b + right_b in vocab:
            continue
        if len(vocab) >= VOCAB_SIZE - len(SPECIAL_TOKENS):
            break
        merges.append((left_b, right_b))
        add(left_b + right_b)
    regular = len(vocab)
    if regular != VOCAB_SIZE - len(SPECIAL_TOKENS):
        raise ValueError(f"the corpus yields {regular} regular tokens, not {VOCAB_SIZE - len(SPECIAL_TOKENS)}: too little text")
    for token in SPECIAL_TOKENS:
        add(token)

    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=None, fuse_unk=False, byte_fallback=False))
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    from tokenizers import AddedToken

    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    return tokenizer


def save(tokenizer, out: Path) -> None:
    """tokenizer.json, vocab.json + merges.txt (for slow/other loaders) and a Qwen2
    tokenizer_config.json with the chat template."""
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(out / "tokenizer.json"))
    spec = json.loads(tokenizer.to_str())
    vocab = spec["model"]["vocab"]
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    merges = spec["model"]["merges"]
    lines = [" ".join(m) if isinstance(m, list) else m for m in merges]
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(lines) + "\n", encoding="utf-8")
    ids = {t: tokenizer.token_to_id(t) for t in SPECIAL_TOKENS}
    config = {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": {
            str(ids[t]): {"content": t, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": True}
            for t in SPECIAL_TOKENS
        },
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "bos_token": None,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|endoftext|>",
        "errors": "replace",
        "model_max_length": 8192,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
