"""Entrypoints the qwenops GPU Jobs run (k8s/base/job-templates):

- ``python -m qwenops_jobs.download``: ModelScope snapshot -> object store, with a manifest.
- ``python -m qwenops_jobs.quantize``: AWQ (4 bit, group 128) with llm-compressor.
- ``python -m qwenops_jobs.evaluate``: baseline vs candidate; writes the quality-gate metrics.

Every Job takes ``--result-uri`` and writes there a JSON document that validates against
``jobs/schemas/*.schema.json`` (generated from the TypeScript zod schemas). Heavy libraries
(torch, transformers, llm-compressor, modelscope) are imported only when a Job runs, so the
tests need neither a GPU nor those packages.
"""

__version__ = "0.1.0"
