import { z } from 'zod';

// A Hugging Face / ModelScope config.json reduced to the shape the capacity planner needs.
// Two families are read: Qwen v1 (`model_type: qwen`: MHA, `kv_channels`, and an
// `intermediate_size` that is twice the MLP width, since its w1 and w2 are each half of it)
// and the Qwen2 layout (`qwen2`, `qwen2_moe`, `qwen3`, `qwen3_moe`, and any config with the
// same field names: GQA via `num_key_value_heads`, optional MoE experts).

const positiveInt = z.number().int().positive();

const qwenV1Schema = z.looseObject({
  model_type: z.literal('qwen'),
  hidden_size: positiveInt,
  intermediate_size: positiveInt,
  num_attention_heads: positiveInt,
  num_hidden_layers: positiveInt,
  kv_channels: positiveInt.optional(),
  vocab_size: positiveInt,
  seq_length: positiveInt.optional(),
  tie_word_embeddings: z.boolean().default(false),
});

const qwen2Schema = z.looseObject({
  model_type: z.string().min(1),
  hidden_size: positiveInt,
  intermediate_size: positiveInt,
  num_attention_heads: positiveInt,
  num_key_value_heads: positiveInt.optional(),
  head_dim: positiveInt.optional(),
  num_hidden_layers: positiveInt,
  vocab_size: positiveInt,
  max_position_embeddings: positiveInt.optional(),
  tie_word_embeddings: z.boolean().default(false),
  attention_bias: z.boolean().optional(),
  // MoE (qwen2_moe / qwen3_moe): absent or 0 experts means a dense MLP.
  num_experts: z.number().int().min(0).optional(),
  num_experts_per_tok: positiveInt.optional(),
  moe_intermediate_size: positiveInt.optional(),
  shared_expert_intermediate_size: z.number().int().min(0).optional(),
  decoder_sparse_step: positiveInt.optional(),
  mlp_only_layers: z.array(z.number().int().min(0)).optional(),
});

export interface MoeShape {
  experts: number;
  expertsPerToken: number;
  expertIntermediateSize: number;
  /** 0 when the model has no shared expert. */
  sharedExpertIntermediateSize: number;
  /** How many of the layers have the sparse MLP (the others are dense). */
  sparseLayers: number;
}

/** What the planner needs from a config.json. */
export interface ModelShape {
  modelType: string;
  layers: number;
  hiddenSize: number;
  attentionHeads: number;
  kvHeads: number;
  headDim: number;
  /** Width of a dense MLP (w1/w3 output); for Qwen v1, half its stated intermediate_size. */
  intermediateSize: number;
  vocabSize: number;
  tiedEmbeddings: boolean;
  /** Whether q/k/v projections carry a bias (Qwen v1 and Qwen2 do; Qwen3 does not). */
  qkvBias: boolean;
  /** The model's longest context per its config, when stated. */
  maxContext?: number;
  moe?: MoeShape;
}

export class ModelConfigError extends Error {
  override readonly name = 'ModelConfigError';
}

function describeIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`).join('; ');
}

/** Parses a config.json object (already JSON-decoded); `source` names it in errors. */
export function modelShapeFromConfig(config: unknown, source: string): ModelShape {
  const modelType = (config as { model_type?: unknown } | null)?.model_type;
  if (modelType === 'qwen') {
    const parsed = qwenV1Schema.safeParse(config);
    if (!parsed.success)
      throw new ModelConfigError(`${source}: not a Qwen config.json (${describeIssues(parsed.error)})`);
    const c = parsed.data;
    if (c.intermediate_size % 2 !== 0)
      throw new ModelConfigError(
        `${source}: Qwen v1 intermediate_size must be even (it is ${c.intermediate_size})`,
      );
    return {
      modelType: 'qwen',
      layers: c.num_hidden_layers,
      hiddenSize: c.hidden_size,
      attentionHeads: c.num_attention_heads,
      kvHeads: c.num_attention_heads,
      headDim: c.kv_channels ?? c.hidden_size / c.num_attention_heads,
      intermediateSize: c.intermediate_size / 2,
      vocabSize: c.vocab_size,
      tiedEmbeddings: c.tie_word_embeddings,
      qkvBias: true,
      ...(c.seq_length !== undefined ? { maxContext: c.seq_length } : {}),
    };
  }
  const parsed = qwen2Schema.safeParse(config);
  if (!parsed.success)
    throw new ModelConfigError(`${source}: not a usable config.json (${describeIssues(parsed.error)})`);
  const c = parsed.data;
  const kvHeads = c.num_key_value_heads ?? c.num_attention_heads;
  if (c.num_attention_heads % kvHeads !== 0)
    throw new ModelConfigError(
      `${source}: num_attention_heads (${c.num_attention_heads}) is not a multiple of num_key_value_heads (${kvHeads})`,
    );
  let moe: MoeShape | undefined;
  if (c.num_experts && c.num_experts > 0) {
    if (!c.num_experts_per_tok || !c.moe_intermediate_size)
      throw new ModelConfigError(
        `${source}: num_experts is set but num_experts_per_tok or moe_intermediate_size is missing`,
      );
    const step = c.decoder_sparse_step ?? 1;
    const denseOnly = new Set(c.mlp_only_layers ?? []);
    let sparseLayers = 0;
    for (let layer = 0; layer < c.num_hidden_layers; layer++) {
      if (!denseOnly.has(layer) && (layer + 1) % step === 0) sparseLayers++;
    }
    moe = {
      experts: c.num_experts,
      expertsPerToken: c.num_experts_per_tok,
      expertIntermediateSize: c.moe_intermediate_size,
      sharedExpertIntermediateSize: c.shared_expert_intermediate_size ?? 0,
      sparseLayers,
    };
  }
  return {
    modelType: c.model_type,
    layers: c.num_hidden_layers,
    hiddenSize: c.hidden_size,
    attentionHeads: c.num_attention_heads,
    kvHeads,
    headDim: c.head_dim ?? c.hidden_size / c.num_attention_heads,
    intermediateSize: c.intermediate_size,
    vocabSize: c.vocab_size,
    tiedEmbeddings: c.tie_word_embeddings,
    qkvBias: c.attention_bias ?? !c.model_type.startsWith('qwen3'),
    ...(c.max_position_embeddings !== undefined ? { maxContext: c.max_position_embeddings } : {}),
    ...(moe ? { moe } : {}),
  };
}
