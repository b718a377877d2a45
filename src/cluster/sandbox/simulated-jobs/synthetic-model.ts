import type { ArtifactStore, Manifest, ManifestFile } from '../../../storage/port.js';
import { safetensorsStream } from './safetensors.js';

// A small model laid out like a Qwen-7B-Chat snapshot on ModelScope (config with auto_map
// and remote code, tiktoken vocabulary, sharded safetensors + index), written to the store
// with a manifest. The download Job uses it when no local source is given; tests use it
// to have a model to quantize and evaluate.

export interface SyntheticModelOptions {
  model: string;
  revision: string;
  /** Total size of the weight shards. */
  weightBytes: number;
  shards: number;
}

function qwenConfig(model: string): Record<string, unknown> {
  return {
    architectures: ['QWenLMHeadModel'],
    auto_map: {
      AutoConfig: 'configuration_qwen.QWenConfig',
      AutoModelForCausalLM: 'modeling_qwen.QWenLMHeadModel',
    },
    model_type: 'qwen',
    _name_or_path: model,
    hidden_size: 4096,
    intermediate_size: 22016,
    num_attention_heads: 32,
    num_hidden_layers: 32,
    max_position_embeddings: 8192,
    seq_length: 8192,
    vocab_size: 151936,
    bf16: true,
    torch_dtype: 'bfloat16',
    use_flash_attn: 'auto',
    simulated: true,
  };
}

const REMOTE_CODE = (name: string) =>
  `# ${name}: placeholder of the model's remote code (SIMULATION).\n# A real snapshot ships Python here; vLLM needs --trust-remote-code to load it.\n`;

export async function writeSyntheticModel(
  store: ArtifactStore,
  prefix: string,
  options: SyntheticModelOptions,
): Promise<Manifest> {
  const base = prefix.replace(/\/+$/, '');
  const files: ManifestFile[] = [];
  const put = async (path: string, body: Parameters<ArtifactStore['put']>[1]) => {
    const info = await store.put(`${base}/${path}`, body);
    files.push({ path, size: info.size, sha256: info.sha256 as string });
  };
  await put('config.json', `${JSON.stringify(qwenConfig(options.model), null, 2)}\n`);
  await put(
    'generation_config.json',
    `${JSON.stringify({ chat_format: 'chatml', max_new_tokens: 512, top_p: 0.8, do_sample: true }, null, 2)}\n`,
  );
  await put(
    'tokenizer_config.json',
    `${JSON.stringify({ tokenizer_class: 'QWenTokenizer', auto_map: { AutoTokenizer: ['tokenization_qwen.QWenTokenizer', null] } }, null, 2)}\n`,
  );
  await put('qwen.tiktoken', 'IQ== 0\nIg== 1\nIw== 2\nJA== 3\n');
  for (const code of ['modeling_qwen.py', 'configuration_qwen.py', 'tokenization_qwen.py'])
    await put(code, REMOTE_CODE(code));
  const shards = Math.max(1, options.shards);
  const weightMap: Record<string, string> = {};
  for (let i = 1; i <= shards; i++) {
    const file = `model-${String(i).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
    const tensor = `transformer.h.${i - 1}.attn.c_attn.weight`;
    weightMap[tensor] = file;
    await put(
      file,
      safetensorsStream(
        [{ name: tensor, dtype: 'BF16', bytes: Math.floor(options.weightBytes / shards) }],
        { format: 'pt', simulated: 'true' },
        `${options.model}@${options.revision}#${i}`,
      ),
    );
  }
  const totalSize = files.filter((f) => f.path.endsWith('.safetensors')).reduce((s, f) => s + f.size, 0);
  await put(
    'model.safetensors.index.json',
    `${JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2)}\n`,
  );
  return store.writeManifest(base, files, {
    model: options.model,
    revision: options.revision,
    simulated: true,
    source: 'synthetic',
  });
}
