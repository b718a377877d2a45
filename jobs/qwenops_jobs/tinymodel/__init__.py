"""The tiny Qwen2 test model (`qwenops/qwen2-tiny-zh`), made locally and deterministically.

- ``corpus``: the bundled Chinese corpus (sample knowledge base, built-in evaluation prompts)
  plus a seeded generated corpus of fictional company-policy facts and city->province facts,
  split into training text, a held-out perplexity set and a multiple-choice set. Pure Python.
- ``build``: trains the byte-level BPE tokenizer and the model on the training text (needs
  torch, tokenizers and transformers: ``.tools/serve-venv``).

The two evaluation sets are committed as ``qwenops_jobs/data/heldout_zh.jsonl`` and
``qwenops_jobs/data/mc_zh.jsonl``; ``python -m qwenops_jobs.tinymodel.corpus --write-data``
regenerates them (a test checks that this gives the committed content).
"""
