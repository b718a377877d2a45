import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InputValidationError } from '../../../src/domain/validation.js';
import { FIXTURE_MARKER, writeFixtureModel } from '../../../src/hub/fixture-model.js';

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'qwenops-fixture-'));
  dirs.push(dir);
  return dir;
}
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe('writeFixtureModel', () => {
  it('writes a Qwen-7B-Chat-shaped repository under <dir>/<owner>/<name>/<revision>', async () => {
    const dir = await tempDir();
    const fixture = await writeFixtureModel(dir, 'qwen/Qwen-7B-Chat', 'v1.1.4', {
      shards: 3,
      shardBytes: 8192,
    });
    expect(fixture.root).toBe(path.join(dir, 'qwen', 'Qwen-7B-Chat', 'v1.1.4'));
    expect(fixture.files.map((f) => f.path)).toEqual([
      'README.md',
      'config.json',
      'configuration_qwen.py',
      'generation_config.json',
      'model-00001-of-00003.safetensors',
      'model-00002-of-00003.safetensors',
      'model-00003-of-00003.safetensors',
      'model.safetensors.index.json',
      'modeling_qwen.py',
      'qwen.tiktoken',
      'tokenization_qwen.py',
      'tokenizer_config.json',
    ]);
    for (const f of fixture.files) {
      const bytes = await readFile(path.join(fixture.root, f.path));
      expect(bytes.length).toBe(f.size);
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(f.sha256);
    }
    const config = JSON.parse(await readFile(path.join(fixture.root, 'config.json'), 'utf8'));
    expect(config).toMatchObject({
      architectures: ['QWenLMHeadModel'],
      model_type: 'qwen',
      hidden_size: 4096,
      num_hidden_layers: 32,
      vocab_size: 151936,
      _qwenops_fixture: FIXTURE_MARKER,
    });
    expect(config.auto_map.AutoModelForCausalLM).toBe('modeling_qwen.QWenLMHeadModel');
    expect(await readFile(path.join(fixture.root, 'modeling_qwen.py'), 'utf8')).toContain(
      'NOT real Qwen weights',
    );
  });

  it('writes valid safetensors shards that the index describes', async () => {
    const dir = await tempDir();
    const fixture = await writeFixtureModel(dir, 'qwen/Qwen-7B-Chat', 'master', {
      shards: 2,
      shardBytes: 4096,
    });
    const index = JSON.parse(await readFile(path.join(fixture.root, 'model.safetensors.index.json'), 'utf8'));
    let tensorBytes = 0;
    for (const shard of ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']) {
      const bytes = await readFile(path.join(fixture.root, shard));
      const headerLength = Number(bytes.readBigUInt64LE(0));
      expect(headerLength % 8).toBe(0);
      const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8'));
      const dataLength = bytes.length - 8 - headerLength;
      const tensors = Object.entries(header).filter(([name]) => name !== '__metadata__') as [
        string,
        { dtype: string; shape: number[]; data_offsets: [number, number] },
      ][];
      expect(tensors.length).toBe(2);
      let covered = 0;
      for (const [name, t] of tensors) {
        expect(t.dtype).toBe('BF16');
        expect(t.data_offsets[1] - t.data_offsets[0]).toBe(
          (t.shape[0] as number) * (t.shape[1] as number) * 2,
        );
        expect(index.weight_map[name]).toBe(shard);
        covered = Math.max(covered, t.data_offsets[1]);
      }
      expect(covered).toBe(dataLength);
      tensorBytes += dataLength;
    }
    expect(index.metadata.total_size).toBe(tensorBytes);
  });

  it('is deterministic: same inputs give the same bytes, another revision differs', async () => {
    const a = await writeFixtureModel(await tempDir(), 'qwen/Qwen-7B-Chat', 'master', {
      shards: 2,
      shardBytes: 2048,
    });
    const b = await writeFixtureModel(await tempDir(), 'qwen/Qwen-7B-Chat', 'master', {
      shards: 2,
      shardBytes: 2048,
    });
    const c = await writeFixtureModel(await tempDir(), 'qwen/Qwen-7B-Chat', 'v2', {
      shards: 2,
      shardBytes: 2048,
    });
    expect(a.files).toEqual(b.files);
    const shardOf = (m: typeof a) =>
      m.files.find((f) => f.path === 'model-00001-of-00002.safetensors')?.sha256;
    expect(shardOf(c)).not.toBe(shardOf(a));
  });

  it('refuses bad options naming each field', async () => {
    await expect(
      writeFixtureModel(await tempDir(), '../x', 'master', { shards: 0, shardBytes: 10 }),
    ).rejects.toSatisfy(
      (err: unknown) =>
        err instanceof InputValidationError &&
        err.issues.map((i) => i.path).join(',') === 'model,shards,shardBytes',
    );
  });
});
