import { createHash } from 'node:crypto';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { InputValidationError, modelIdProblem, revisionSchema } from '../domain/validation.js';

// FIXTURE, NOT A MODEL. This writes a small, deterministic repository shaped like
// ModelScope's qwen/Qwen-7B-Chat (same file names, a config with Qwen's architecture fields,
// remote-code *.py files, sharded safetensors with valid headers and an index), so the
// download / quantize / serve pipeline can run end to end on a laptop or in tests. The
// "weights" are pseudo-random bytes derived from the model id and revision: nothing can be
// loaded for inference from them, and every file says so. The demo seeds the local mirror
// with it; tests serve it from the ModelScope fixture server.

export interface FixtureModelOptions {
  /** Number of safetensors shards (default 2). */
  shards?: number;
  /** Approximate bytes per shard, header included (default 256 KiB, at least 1 KiB). */
  shardBytes?: number;
}

export interface FixtureFile {
  path: string;
  size: number;
  sha256: string;
}

export interface FixtureModel {
  /** <dir>/<owner>/<name>/<revision>: the repository root. */
  root: string;
  model: string;
  revision: string;
  files: FixtureFile[];
  totalBytes: number;
}

export const FIXTURE_MARKER =
  'qwenops test fixture: NOT real Qwen weights; deterministic pseudo-random bytes for pipeline tests';

/**
 * Writes the fixture repository under the local-mirror layout `<dir>/<owner>/<name>/<revision>/`
 * and returns its files with sizes and sha256. Same inputs, same bytes, on every machine.
 */
export async function writeFixtureModel(
  dir: string,
  model: string,
  revision: string,
  options: FixtureModelOptions = {},
): Promise<FixtureModel> {
  const problems = [];
  const modelProblem = modelIdProblem(model);
  if (modelProblem) problems.push({ path: 'model', message: modelProblem });
  const revisionCheck = revisionSchema.safeParse(revision);
  if (!revisionCheck.success)
    problems.push({ path: 'revision', message: revisionCheck.error.issues[0]?.message ?? 'invalid' });
  const shards = options.shards ?? 2;
  const shardBytes = options.shardBytes ?? 256 * 1024;
  if (!Number.isInteger(shards) || shards < 1 || shards > 99) {
    problems.push({ path: 'shards', message: 'must be an integer from 1 to 99' });
  }
  if (!Number.isInteger(shardBytes) || shardBytes < 1024) {
    problems.push({ path: 'shardBytes', message: 'must be an integer >= 1024' });
  }
  if (problems.length > 0) throw new InputValidationError('fixture model options', problems);

  const root = path.join(path.resolve(dir), ...model.split('/'), revision);
  const contents = new Map<string, Buffer>();
  const seed = `${model}@${revision}`;

  const weightMap: Record<string, string> = {};
  let totalTensorBytes = 0;
  for (let i = 1; i <= shards; i++) {
    const name = `model-${pad5(i)}-of-${pad5(shards)}.safetensors`;
    const { bytes, tensors, dataBytes } = safetensorsShard(seed, i, shards, shardBytes);
    for (const tensor of tensors) weightMap[tensor] = name;
    totalTensorBytes += dataBytes;
    contents.set(name, bytes);
  }

  contents.set('config.json', json(qwenConfig()));
  contents.set(
    'generation_config.json',
    json({
      chat_format: 'chatml',
      eos_token_id: 151643,
      pad_token_id: 151643,
      max_window_size: 6144,
      max_new_tokens: 512,
      do_sample: true,
      top_k: 0,
      top_p: 0.8,
      repetition_penalty: 1.1,
      transformers_version: '4.31.0',
    }),
  );
  contents.set(
    'tokenizer_config.json',
    json({
      model_max_length: 8192,
      tokenizer_class: 'QWenTokenizer',
      auto_map: { AutoTokenizer: ['tokenization_qwen.QWenTokenizer', null] },
      _qwenops_fixture: FIXTURE_MARKER,
    }),
  );
  contents.set('qwen.tiktoken', tiktokenFixture());
  contents.set('configuration_qwen.py', pythonStub('configuration_qwen', 'QWenConfig'));
  contents.set('modeling_qwen.py', pythonStub('modeling_qwen', 'QWenLMHeadModel'));
  contents.set('tokenization_qwen.py', pythonStub('tokenization_qwen', 'QWenTokenizer'));
  contents.set(
    'model.safetensors.index.json',
    json({
      metadata: { total_size: totalTensorBytes, _qwenops_fixture: FIXTURE_MARKER },
      weight_map: weightMap,
    }),
  );
  contents.set(
    'README.md',
    Buffer.from(
      `# ${model} (${revision}) - qwenops fixture\n\n${FIXTURE_MARKER}.\n\nShaped like ModelScope's qwen/Qwen-7B-Chat so pipelines can be exercised without downloading 15 GB.\n`,
    ),
  );

  const files: FixtureFile[] = [];
  for (const [rel, bytes] of [...contents.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const full = path.join(root, rel);
    await mkdir(path.dirname(full), { recursive: true });
    // Temp file then rename, so a concurrent reader never sees a half-written fixture file.
    const temp = `${full}.tmp-${process.pid}`;
    await writeFile(temp, bytes);
    await rename(temp, full);
    files.push({ path: rel, size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') });
  }
  return { root, model, revision, files, totalBytes: files.reduce((sum, f) => sum + f.size, 0) };
}

function pad5(n: number): string {
  return String(n).padStart(5, '0');
}

function json(value: unknown): Buffer {
  return Buffer.from(`${JSON.stringify(value, null, 2)}\n`);
}

/** Qwen-7B-Chat's architecture fields (public config.json values), marked as a fixture. */
function qwenConfig(): Record<string, unknown> {
  return {
    _qwenops_fixture: FIXTURE_MARKER,
    architectures: ['QWenLMHeadModel'],
    auto_map: {
      AutoConfig: 'configuration_qwen.QWenConfig',
      AutoModelForCausalLM: 'modeling_qwen.QWenLMHeadModel',
    },
    model_type: 'qwen',
    hidden_size: 4096,
    intermediate_size: 22016,
    num_hidden_layers: 32,
    num_attention_heads: 32,
    kv_channels: 128,
    vocab_size: 151936,
    seq_length: 8192,
    max_position_embeddings: 8192,
    layer_norm_epsilon: 1e-6,
    rotary_emb_base: 10000,
    rotary_pct: 1.0,
    use_dynamic_ntk: true,
    use_logn_attn: true,
    no_bias: true,
    bf16: true,
    fp16: false,
    fp32: false,
    torch_dtype: 'bfloat16',
    tokenizer_class: 'QWenTokenizer',
    transformers_version: '4.32.0',
  };
}

function pythonStub(module: string, className: string): Buffer {
  return Buffer.from(
    [
      `# ${module}.py - ${FIXTURE_MARKER}.`,
      '# The real file ships with the model repository (trust_remote_code); this stub only keeps',
      '# the repository shape and must never be executed as model code.',
      '',
      `class ${className}:  # fixture stub`,
      '    def __init__(self, *args, **kwargs):',
      `        raise RuntimeError("${className} is a qwenops fixture stub, not the real Qwen code")`,
      '',
    ].join('\n'),
  );
}

/** A tiktoken-format BPE file (base64 token, rank) covering the 256 single bytes. */
function tiktokenFixture(): Buffer {
  const lines: string[] = [];
  for (let b = 0; b < 256; b++) lines.push(`${Buffer.from([b]).toString('base64')} ${b}`);
  return Buffer.from(`${lines.join('\n')}\n`);
}

/**
 * One valid safetensors file: u64-LE header length, JSON header (padded with spaces to 8
 * bytes), then the tensor data. Two BF16 tensors named like Qwen's layer weights.
 */
function safetensorsShard(
  seed: string,
  index: number,
  count: number,
  shardBytes: number,
): { bytes: Buffer; tensors: string[]; dataBytes: number } {
  const layer = index - 1;
  const names =
    index === 1
      ? ['transformer.wte.weight', `transformer.h.${layer}.attn.c_attn.weight`]
      : index === count
        ? [`transformer.h.${layer}.mlp.w1.weight`, 'lm_head.weight']
        : [`transformer.h.${layer}.attn.c_attn.weight`, `transformer.h.${layer}.mlp.w1.weight`];
  const columns = 64;
  const rowBytes = columns * 2; // BF16
  // Leave ~512 bytes for the header; each tensor gets half the remainder, whole rows only.
  const rows = Math.max(1, Math.floor((shardBytes - 512) / 2 / rowBytes));
  const tensorBytes = rows * rowBytes;
  const header: Record<string, unknown> = {
    __metadata__: { format: 'pt', qwenops_fixture: 'not real weights' },
  };
  names.forEach((name, i) => {
    header[name] = {
      dtype: 'BF16',
      shape: [rows, columns],
      data_offsets: [i * tensorBytes, (i + 1) * tensorBytes],
    };
  });
  let headerText = JSON.stringify(header);
  headerText += ' '.repeat((8 - (Buffer.byteLength(headerText) % 8)) % 8);
  const headerBytes = Buffer.from(headerText);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(headerBytes.length));
  const data = deterministicBytes(`${seed}#shard${index}`, tensorBytes * names.length);
  return { bytes: Buffer.concat([length, headerBytes, data]), tensors: names, dataBytes: data.length };
}

/** sha256 in counter mode: reproducible pseudo-random bytes from a seed. */
export function deterministicBytes(seed: string, length: number): Buffer {
  const out = Buffer.alloc(length);
  let offset = 0;
  for (let counter = 0; offset < length; counter++) {
    const block = createHash('sha256').update(`${seed}:${counter}`).digest();
    offset += block.copy(out, offset);
  }
  return out;
}
