import { Readable } from 'node:stream';
import { seededRandom, seedFromText } from '../../../domain/random.js';

// Valid safetensors files with deterministic filler data: an 8-byte little-endian header
// length, a JSON header (padded with spaces to 8-byte alignment, as the format allows),
// then the tensor bytes. Simulated weights are real files any safetensors reader opens.

export interface TensorSpec {
  name: string;
  dtype: 'BF16' | 'F16' | 'I32';
  /** Size of the tensor data; rounded down to the element size. */
  bytes: number;
}

const ELEMENT_SIZE = { BF16: 2, F16: 2, I32: 4 } as const;

function header(tensors: TensorSpec[], metadata: Record<string, string>): { head: Buffer; sizes: number[] } {
  const json: Record<string, unknown> = { __metadata__: metadata };
  const sizes: number[] = [];
  let offset = 0;
  for (const t of tensors) {
    const element = ELEMENT_SIZE[t.dtype];
    const count = Math.max(1, Math.floor(t.bytes / element));
    const size = count * element;
    json[t.name] = { dtype: t.dtype, shape: [count], data_offsets: [offset, offset + size] };
    sizes.push(size);
    offset += size;
  }
  let text = JSON.stringify(json);
  text += ' '.repeat((8 - (Buffer.byteLength(text) % 8)) % 8);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(Buffer.byteLength(text)));
  return { head: Buffer.concat([length, Buffer.from(text)]), sizes };
}

/** Total file size a safetensors file with these tensors will have. */
export function safetensorsSize(tensors: TensorSpec[], metadata: Record<string, string>): number {
  const { head, sizes } = header(tensors, metadata);
  return head.length + sizes.reduce((a, b) => a + b, 0);
}

/** A stream of the file; filler bytes come from a PRNG seeded by `seed` (same seed, same bytes). */
export function safetensorsStream(
  tensors: TensorSpec[],
  metadata: Record<string, string>,
  seed: string,
): Readable {
  const { head, sizes } = header(tensors, metadata);
  const random = seededRandom(seedFromText(seed));
  const total = sizes.reduce((a, b) => a + b, 0);
  const BLOCK = 256 * 1024;
  return Readable.from(
    (function* () {
      yield head;
      let left = total;
      while (left > 0) {
        const n = Math.min(BLOCK, left);
        const block = Buffer.allocUnsafe(n);
        for (let i = 0; i + 4 <= n; i += 4) block.writeUInt32LE((random() * 4294967296) >>> 0, i);
        for (let i = n - (n % 4); i < n; i++) block[i] = (random() * 256) | 0;
        left -= n;
        yield block;
      }
    })(),
  );
}
