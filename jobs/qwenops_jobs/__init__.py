"""Entrypoints the qwenops GPU Jobs run (k8s/base/job-templates):

- ``python -m qwenops_jobs.download``: ModelScope snapshot -> object store, with a manifest.
- ``python -m qwenops_jobs.quantize``: AWQ (int4) or RTN (int2/4/8) with llm-compressor, on
  CUDA or CPU (``--device``, default ``$QWENOPS_JOB_DEVICE``, else cuda).
- ``python -m qwenops_jobs.evaluate``: baseline vs candidate (perplexity, multiple-choice
  accuracy, throughput, memory, paired deltas); each model is measured in its own
  ``python -m qwenops_jobs.measure`` process.
- ``python -m qwenops_jobs.tinymodel.build``: the tiny Qwen2 test model (not a Job).

Exit codes: 0 success, 2 bad input a retry cannot fix, 1 anything else. Progress for the
sandbox: ``QWENOPS_PROGRESS {"percent": N, "message": "..."}`` lines on stdout.

Every Job takes ``--result-uri`` and writes there a JSON document that validates against
``jobs/schemas/*.schema.json`` (generated from the TypeScript zod schemas). Heavy libraries
(torch, transformers, llm-compressor, modelscope) are imported only when a Job runs, so the
unit tests (tests/) need neither a GPU nor those packages; tests_realmodel/ runs them for real.
"""

__version__ = "0.1.0"
