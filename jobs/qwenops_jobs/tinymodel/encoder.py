"""Builds `qwenops/bge-m3-tiny-random`: an encoder of bge-m3's architecture with random weights.

    python -m qwenops_jobs.tinymodel.encoder --out DIR [--layers N]

bge-m3 is an XLM-RoBERTa encoder (hidden size 1024, 16 heads, absolute positions up to 8194,
CLS pooling, 1024-d output). This one keeps its width, heads, positions and output size but
has N layers (default 1), a small feed-forward and a small SentencePiece-style Unigram
vocabulary trained on CJK text, so vLLM for CPU can serve it on /v1/embeddings (pooling
runner) in seconds. Its vectors are meaningless: it measures an embedding server's wire
format, limits and throughput, never retrieval quality. NOT bge-m3 weights.

Deterministic: a fixed seed for the weights, a fixed training text for the tokenizer.
Prints one JSON line: {"out", "parameters", "vocab", "layers", "hidden_size"}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

MODEL_NAME = "qwenops/bge-m3-tiny-random"
SEED = 1234
# bge-m3's own values, except depth, feed-forward width and vocabulary.
ARCHITECTURE = {
    "hidden_size": 1024,
    "num_attention_heads": 16,
    "intermediate_size": 1024,
    "max_position_embeddings": 8194,
    "type_vocab_size": 1,
    "layer_norm_eps": 1e-5,
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
    # vLLM reads this to choose absolute position ids (transformers 5 no longer writes it).
    "position_embedding_type": "absolute",
}
VOCAB_SIZE = 8000
SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>"]


def _training_text() -> list[str]:
    # The first 6000 CJK unified ideographs (the most common hanzi sit in that block), in
    # 64-character lines, plus the punctuation and digits of policy documents: every
    # character fits in the 8000 entries, with room for some two-character pieces.
    lines = ["".join(chr(0x4E00 + (i * 7 + j) % 6000) for j in range(64)) for i in range(2000)]
    lines.append("第1条：应当按照，并由负责。；“”（）《》、0123456789 hello world")
    return lines


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=VOCAB_SIZE, special_tokens=SPECIAL_TOKENS, unk_token="<unk>", show_progress=False
    )
    tok.train_from_iterator(_training_text(), trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        cls_token="<s>",
        sep_token="</s>",
        model_max_length=8192,
    )


def build(out: Path, layers: int = 1) -> dict:
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel

    if not 1 <= layers <= 24:
        raise ValueError(f"--layers: {layers} is outside 1..24 (bge-m3 has 24)")
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    tokenizer.save_pretrained(out)
    vocab = len(tokenizer)
    config = XLMRobertaConfig(vocab_size=vocab, num_hidden_layers=layers, **ARCHITECTURE)
    config.architectures = ["XLMRobertaModel"]
    torch.manual_seed(SEED)
    model = XLMRobertaModel(config, add_pooling_layer=False)
    model.save_pretrained(out, safe_serialization=True)
    # save_pretrained may drop keys it considers defaults; vLLM needs this one.
    config_path = out / "config.json"
    written = json.loads(config_path.read_text())
    written["position_embedding_type"] = "absolute"
    config_path.write_text(json.dumps(written, indent=2) + "\n")
    (out / "README.md").write_text(
        f"# {MODEL_NAME}\n\nbge-m3's architecture (XLM-RoBERTa, 1024-d) with {layers} layer(s) and "
        "random weights, built by qwenops for serving tests and benchmarks. Its embeddings carry "
        "no meaning. Not bge-m3.\n"
    )
    return {
        "out": str(out),
        "model": MODEL_NAME,
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab": vocab,
        "layers": layers,
        "hidden_size": ARCHITECTURE["hidden_size"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="qwenops_jobs.tinymodel.encoder", description="build a random-weights bge-m3-architecture encoder"
    )
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--layers", type=int, default=1)
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        report = build(args.out, args.layers)
    except ValueError as err:
        print(str(err), file=sys.stderr)
        return 64
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
