// The simulator's /v1/embeddings stand-in for bge-m3 is the knowledge base's own lexical
// embedder (bigram and word feature hashing, L2-normalised), so a text gets the same vector
// from the simulator as from the embedded default. Not a semantic model; it says so nowhere
// else because the simulator as a whole is labelled a simulation.

export { lexicalVector as lexicalEmbedding } from '../../knowledge/embedders/lexical.js';

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
