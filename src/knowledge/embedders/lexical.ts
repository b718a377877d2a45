import { BGE_M3_DIMENSIONS, BGE_M3_MAX_TOKENS, bgeM3TokenUpperBound } from '../tokens.js';
import { type Embedder, type EmbedderStats, EmbeddingInputTooLongError } from './port.js';

// A deterministic local embedder for the embedded default and tests, labelled as what it
// is: lexical feature hashing, NOT bge-m3 and not semantic. Features are what Chinese
// keyword search uses: character bigrams inside CJK runs (plus single characters at a
// low weight, so one-character queries still match), and lower-cased Latin words and
// numbers. Each feature is hashed to one of `dimensions` buckets with a hashed sign,
// weighted 1 + ln(tf), and the vector is L2-normalised. Punctuation is ignored. Its model
// id differs from bge-m3's, so switching to a real model re-embeds everything.

export const LEXICAL_MODEL_ID = 'qwenops/lexical-bigram-hash-1024';

const CJK = /[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af]+/gu;
const WORD = /[\p{L}\p{N}]+/gu;
const SINGLE_CHAR_WEIGHT = 0.3;

function fnv1a(text: string, seed: number): number {
  let hash = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

export function lexicalFeatures(text: string): Map<string, number> {
  const features = new Map<string, number>();
  const add = (feature: string, weight: number) =>
    features.set(feature, (features.get(feature) ?? 0) + weight);
  const normalised = text.normalize('NFKC').toLowerCase();
  for (const run of normalised.match(CJK) ?? []) {
    const chars = Array.from(run);
    chars.forEach((char, i) => {
      add(`c:${char}`, 1);
      if (i + 1 < chars.length) add(`b:${char}${chars[i + 1]}`, 1);
    });
  }
  for (const word of normalised.replace(CJK, ' ').match(WORD) ?? []) add(`w:${word}`, 1);
  return features;
}

export function lexicalVector(text: string, dimensions: number): Float32Array {
  const vector = new Float32Array(dimensions);
  for (const [feature, count] of lexicalFeatures(text)) {
    const weight = (1 + Math.log(count)) * (feature.startsWith('c:') ? SINGLE_CHAR_WEIGHT : 1);
    const bucket = fnv1a(feature, 0) % dimensions;
    const sign = fnv1a(feature, 0x9e3779b9) & 1 ? 1 : -1;
    vector[bucket] = (vector[bucket] as number) + sign * weight;
  }
  let norm = 0;
  for (let i = 0; i < dimensions; i++) norm += (vector[i] as number) ** 2;
  if (norm === 0) {
    // No features (empty or punctuation only): a fixed unit vector keeps it normalised.
    vector[0] = 1;
    return vector;
  }
  norm = Math.sqrt(norm);
  for (let i = 0; i < dimensions; i++) vector[i] = (vector[i] as number) / norm;
  return vector;
}

export class LexicalEmbedder implements Embedder {
  readonly model = LEXICAL_MODEL_ID;
  readonly maxInputTokens = BGE_M3_MAX_TOKENS;
  readonly label = 'local lexical embedder (deterministic bigram hashing stand-in, not bge-m3)';
  private readonly counters: EmbedderStats = { calls: 0, inputs: 0, requests: 0, retries: 0, splits: 0 };

  constructor(readonly dimensions: number = BGE_M3_DIMENSIONS) {}

  async embed(texts: string[]): Promise<Float32Array[]> {
    this.counters.calls++;
    texts.forEach((text, i) => {
      const tokens = bgeM3TokenUpperBound(text);
      if (tokens > this.maxInputTokens) {
        throw new EmbeddingInputTooLongError(
          `input ${i} has ~${tokens} tokens, over the ${this.maxInputTokens}-token limit`,
        );
      }
    });
    this.counters.inputs += texts.length;
    return texts.map((text) => lexicalVector(text, this.dimensions));
  }

  stats(): EmbedderStats {
    return { ...this.counters };
  }
}
