// Rows for `COPY ... FROM STDIN (FORMAT binary)`: PostgreSQL's binary copy format with
// the few column types the knowledge tables use. Binary matters for vectors: PGlite (WASM)
// parses 1024 floats of text about ten times slower than it reads 4 KB of float4s, and a
// real server also saves the parse. Format: https://www.postgresql.org/docs/current/sql-copy.html

export type CopyValue =
  | { type: 'text'; value: string }
  | { type: 'jsonb'; value: unknown }
  | { type: 'int4'; value: number }
  | { type: 'vector'; value: Float32Array };

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');

/** File header: signature, flags (no OIDs), header extension length 0. */
export function copyHeader(): Buffer {
  const header = Buffer.alloc(SIGNATURE.length + 8);
  SIGNATURE.copy(header, 0);
  return header;
}

/** File trailer: a field count of -1. */
export function copyTrailer(): Buffer {
  const trailer = Buffer.alloc(2);
  trailer.writeInt16BE(-1, 0);
  return trailer;
}

function field(value: CopyValue): Buffer {
  switch (value.type) {
    case 'text': {
      const data = Buffer.from(value.value, 'utf8');
      const out = Buffer.alloc(4 + data.length);
      out.writeInt32BE(data.length, 0);
      data.copy(out, 4);
      return out;
    }
    case 'jsonb': {
      // jsonb's binary form: a version byte (1) and the JSON text.
      const data = Buffer.from(JSON.stringify(value.value), 'utf8');
      const out = Buffer.alloc(5 + data.length);
      out.writeInt32BE(data.length + 1, 0);
      out.writeUInt8(1, 4);
      data.copy(out, 5);
      return out;
    }
    case 'int4': {
      const out = Buffer.alloc(8);
      out.writeInt32BE(4, 0);
      out.writeInt32BE(value.value, 4);
      return out;
    }
    case 'vector': {
      // pgvector's vector_recv: int16 dimensions, int16 unused, float4 big-endian each.
      const dims = value.value.length;
      const out = Buffer.alloc(4 + 4 + dims * 4);
      out.writeInt32BE(4 + dims * 4, 0);
      out.writeInt16BE(dims, 4);
      out.writeInt16BE(0, 6);
      for (let i = 0; i < dims; i++) out.writeFloatBE(value.value[i] as number, 8 + i * 4);
      return out;
    }
  }
}

/** One tuple: field count, then each field (length + bytes). */
export function copyRow(values: CopyValue[]): Buffer {
  const count = Buffer.alloc(2);
  count.writeInt16BE(values.length, 0);
  return Buffer.concat([count, ...values.map(field)]);
}
