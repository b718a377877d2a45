import { estimateTokens } from './vocabulary.js';

// A lexical embedder standing in for bge-m3: character n-grams (1..3) hashed into `dims`
// buckets with a sign bit (feature hashing), sub-linear term weights, L2-normalised. Texts
// that share words share buckets, so cosine similarity ranks related texts higher, and
// the same text always maps to the same vector. Not a semantic model; it says so nowhere
// else because the simulator as a whole is labelled a simulation.

const NGRAM_SIZES = [1, 2, 3] as const;
// Longer n-grams carry more meaning than single characters.
const NGRAM_WEIGHT = [0, 0.5, 1, 1.5];

function normalise(text: string): string {
  return text.normalize('NFKC').toLowerCase().replace(/\s+/g, ' ').trim();
}

/** FNV-1a over a slice of code units; inlined loop, no allocation. */
function hashSlice(text: string, start: number, end: number, salt: number): number {
  let hash = (0x811c9dc5 ^ salt) >>> 0;
  for (let i = start; i < end; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

export function lexicalEmbedding(text: string, dims: number): Float32Array {
  // Key = hash * 4 + n (exact in a double): counts per distinct n-gram, for sub-linear weights.
  const counts = new Map<number, number>();
  const normalised = normalise(text);
  for (const n of NGRAM_SIZES) {
    for (let i = 0; i + n <= normalised.length; i++) {
      const key = hashSlice(normalised, i, i + n, n) * 4 + n;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
  }
  const vector = new Float32Array(dims);
  for (const [key, count] of counts) {
    const n = key % 4;
    const hash = (key - n) / 4;
    // Bucket from the low bits, sign from the top bit: collisions cancel out on average.
    const index = hash % dims;
    const weight = (1 + Math.log(count)) * (NGRAM_WEIGHT[n] ?? 1);
    vector[index] = (vector[index] as number) + (hash >= 0x80000000 ? -weight : weight);
  }
  let norm = 0;
  for (let i = 0; i < dims; i++) norm += (vector[i] as number) ** 2;
  norm = Math.sqrt(norm);
  if (norm === 0) {
    // Empty text: a fixed unit vector, so the result is still normalised.
    vector[0] = 1;
    return vector;
  }
  for (let i = 0; i < dims; i++) vector[i] = (vector[i] as number) / norm;
  return vector;
}

export function cosineSimilarity(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as number;
    const y = b[i] as number;
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  return na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb);
}

export { estimateTokens as estimateEmbeddingTokens };
