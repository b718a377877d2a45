import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { copyFile, mkdir, readdir, rename, stat } from 'node:fs/promises';
import path from 'node:path';
import { repoRoot } from '../runtime/entrypoints.js';
import type { FixtureFile, FixtureModel } from './fixture-model.js';

// The real model of the sandbox's `vllm` engine: a tiny Qwen2-architecture model (hidden
// 256, 4 layers, GQA, vocab 8192) with a byte-level BPE tokenizer, trained for a few minutes
// on the bundled Chinese corpus by `make setup` (jobs/qwenops_jobs/tinymodel, cached by the
// hash of its inputs). Small enough for CPU, real enough that quantization, evaluation and
// vLLM serving measure something. It is published to a hub under its own honest name.

export const TINY_MODEL_ID = 'qwenops/qwen2-tiny-zh';

/**
 * The built model directory (.tools/tiny-model, or $QWENOPS_TINY_MODEL_DIR for one built
 * elsewhere), or a clear error naming the setup step.
 */
export function tinyModelDir(): string {
  const dir = process.env.QWENOPS_TINY_MODEL_DIR || path.join(repoRoot, '.tools', 'tiny-model');
  if (!existsSync(path.join(dir, 'config.json'))) {
    throw new Error(
      `the tiny model is not built (${dir}): run "make setup" (scripts/setup/65-tiny-model.sh trains it)`,
    );
  }
  return dir;
}

async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Copies a model directory into the local-mirror layout `<mirror>/<owner>/<name>/<revision>/`
 * (what ModelScope's snapshot_download leaves), file by file through a temp name, and lists
 * the files with size and sha256. Hidden files are not part of a model repository.
 */
export async function publishModelDirectory(
  mirrorDir: string,
  model: string,
  revision: string,
  sourceDir: string,
): Promise<FixtureModel> {
  const root = path.join(path.resolve(mirrorDir), ...model.split('/'), revision);
  await mkdir(root, { recursive: true });
  const files: FixtureFile[] = [];
  const names = (await readdir(sourceDir)).filter((n) => !n.startsWith('.')).sort();
  for (const name of names) {
    const source = path.join(sourceDir, name);
    const info = await stat(source);
    if (!info.isFile()) continue;
    const target = path.join(root, name);
    const existing = await stat(target).catch(() => undefined);
    if (!existing || existing.size !== info.size || existing.mtimeMs < info.mtimeMs) {
      const temp = `${target}.tmp-${process.pid}`;
      await copyFile(source, temp);
      await rename(temp, target);
    }
    files.push({ path: name, size: info.size, sha256: await sha256Of(target) });
  }
  return { root, model, revision, files, totalBytes: files.reduce((sum, f) => sum + f.size, 0) };
}

/**
 * Quality gates sized for the tiny model on the CPU (the demo, the realmodel tests and
 * benchmark use them): AWQ measures about +0.4 % perplexity and 0.5 % accuracy drop, 2-bit
 * RTN +10 % and 15 %. Transformers decompresses int4 on the CPU, so no throughput gain is
 * expected from the evaluation there, and baseline and candidate are timed one after the
 * other on shared cores (0.12x was measured for AWQ with the CPU saturated by other work):
 * the throughput floor only catches a candidate that cannot be served at all. The plan's A10
 * gates (1 %, 10 GB, 1.5x) stay the default.
 */
export const TINY_MODEL_QUALITY_GATES = {
  maxQualityDropPct: 5,
  maxPerplexityIncreasePct: 5,
  maxCandidateMemoryGb: 16,
  minThroughputGain: 0.02,
  evalSamples: 200,
} as const;

/** Serving settings for the tiny model on vLLM for CPU: one replica, no GPU-only env. */
export function tinyModelServing(name: string, maxModelLen: number) {
  return {
    name,
    minReplicas: 1,
    maxReplicas: 1,
    env: {},
    vllm: { trustRemoteCode: false, maxModelLen },
  };
}
