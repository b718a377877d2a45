import net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { PGlite } from '@electric-sql/pglite';
import type { Logger } from '../../observability/logger.js';

// A PostgreSQL wire-protocol front for one PGlite instance, so the `pg` driver (the
// production code path) talks to the embedded database exactly as to a Postgres server.
//
// Why not @electric-sql/pglite-socket's PGLiteSocketServer (0.2.17): it hands every wire
// message to PGlite as a separate call, which breaks `COPY ... FROM STDIN` (the CopyData
// that follows the query must arrive in the same call; upstream electric-sql/pglite#1028
// is still open) and lets another connection's messages slip between a connection's
// Parse/Bind/Execute and its Sync. This server keeps that library's model (one backend,
// a queue of work, a connection inside a transaction keeps the backend until it ends)
// but queues *units*: everything up to a Sync, a simple Query, or a whole COPY exchange.
//
// What PGlite cannot give, whatever the front: every connection shares ONE backend
// session. Session state (SET, temp tables, prepared statement names, session-level
// advisory locks) is shared by all clients, and lock waits never happen because only one
// transaction runs at a time. Callers use SET LOCAL inside transactions and never rely on
// one connection blocking another through a lock.

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;
const COPY_FROM_STDIN = /^\s*copy\b[\s\S]*\bfrom\s+stdin\b/i;
const COPY_BINARY = /\bformat\s+binary\b|\(\s*format\s+'?binary'?|\bbinary\b/i;

export interface WireServerOptions {
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /**
   * A connection that holds the backend inside a transaction and sends nothing for this
   * long is closed (its transaction rolled back), so one stuck client cannot stall all.
   */
  idleInTransactionTimeoutMs?: number;
  logger?: Logger;
}

interface Unit {
  connection: Connection;
  bytes: Buffer;
  /** A COPY FROM STDIN exchange: PGlite's own CopyInResponse must not reach the client twice. */
  copy: boolean;
  /** The unit ends with Flush, not Sync: the extended-protocol exchange is still open. */
  openExtended: boolean;
  /** performance.now() when it was queued. */
  queuedAt?: number;
}

/** What serialising every connection on PGlite's one session costs, cumulative. */
export interface WireServerStats {
  connections: number;
  queued: number;
  /** Units run (everything up to a Sync, a simple Query, or a COPY exchange). */
  units: number;
  /** Milliseconds the session was running a unit. */
  busyMs: number;
  /**
   * Milliseconds units waited in the queue, summed over units: time clients spent waiting for
   * another connection's unit or transaction (a Postgres server would have run them at once).
   */
  waitMs: number;
}

class Connection {
  private buffer: Buffer = Buffer.alloc(0);
  private started = false;
  private pending: Buffer[] = [];
  private copyQuery: Buffer | undefined;
  private copyParts: Buffer[] = [];
  closed = false;
  openExtended = false;
  lastActivity = Date.now();

  constructor(
    readonly id: number,
    readonly socket: net.Socket,
    private readonly enqueue: (unit: Unit) => void,
  ) {}

  /** Splits incoming bytes into messages and groups them into units. */
  receive(data: Buffer): void {
    this.lastActivity = Date.now();
    this.buffer = this.buffer.length === 0 ? data : Buffer.concat([this.buffer, data]);
    for (;;) {
      if (!this.started) {
        if (this.buffer.length < 8) return;
        const length = this.buffer.readInt32BE(0);
        if (this.buffer.length < length) return;
        const code = this.buffer.readInt32BE(4);
        const message = this.buffer.subarray(0, length);
        this.buffer = this.buffer.subarray(length);
        if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
          this.socket.write('N');
          continue;
        }
        if (code === CANCEL_REQUEST) {
          // Cancel requests are not supported by PGlite; the cancelling socket just closes.
          this.socket.end();
          return;
        }
        this.started = true;
        this.enqueue({ connection: this, bytes: Buffer.from(message), copy: false, openExtended: false });
        continue;
      }
      if (this.buffer.length < 5) return;
      const length = this.buffer.readInt32BE(1) + 1;
      if (this.buffer.length < length) return;
      const message = Buffer.from(this.buffer.subarray(0, length));
      this.buffer = this.buffer.subarray(length);
      this.onMessage(String.fromCharCode(message[0] as number), message);
    }
  }

  private onMessage(type: string, message: Buffer): void {
    if (this.copyQuery) {
      if (type === 'd') {
        this.copyParts.push(message);
      } else if (type === 'c' || type === 'f') {
        const bytes = Buffer.concat([this.copyQuery, ...this.copyParts, message]);
        this.copyQuery = undefined;
        this.copyParts = [];
        this.enqueue({ connection: this, bytes, copy: true, openExtended: false });
      }
      // Flush and Sync are ignored in copy-in mode (protocol rule); nothing else is sent.
      return;
    }
    switch (type) {
      case 'X':
        this.socket.end();
        return;
      case 'Q': {
        const sql = message.subarray(5, message.length - 1).toString('utf8');
        if (COPY_FROM_STDIN.test(sql)) {
          // The client sends CopyData only after a CopyInResponse: answer it now, and hand
          // PGlite the query together with all the data once CopyDone arrives.
          this.copyQuery = message;
          this.socket.write(copyInResponse(COPY_BINARY.test(sql)));
          return;
        }
        this.flushUnit(message, false);
        return;
      }
      case 'S':
        this.flushUnit(message, false);
        return;
      case 'H':
        this.flushUnit(message, true);
        return;
      case 'p':
      case 'F':
        this.flushUnit(message, false);
        return;
      default:
        // Parse, Bind, Describe, Execute, Close: part of an extended-protocol unit.
        this.pending.push(message);
    }
  }

  private flushUnit(last: Buffer, openExtended: boolean): void {
    const bytes = Buffer.concat([...this.pending, last]);
    this.pending = [];
    this.enqueue({ connection: this, bytes, copy: false, openExtended });
  }
}

function copyInResponse(binary: boolean): Buffer {
  const message = Buffer.alloc(8);
  message.write('G', 0);
  message.writeInt32BE(7, 1);
  message.writeInt8(binary ? 1 : 0, 5);
  message.writeInt16BE(0, 6);
  return message;
}

/** Drops the first CopyInResponse from a complete response (the client already had ours). */
function withoutFirstCopyInResponse(response: Buffer): Buffer {
  let offset = 0;
  while (offset + 5 <= response.length) {
    const length = response.readInt32BE(offset + 1) + 1;
    if (response[offset] === 0x47 /* G */) {
      return Buffer.concat([response.subarray(0, offset), response.subarray(offset + length)]);
    }
    offset += length;
  }
  return response;
}

export class PgliteWireServer {
  private server: net.Server | undefined;
  private readonly connections = new Set<Connection>();
  private queue: Unit[] = [];
  private running = false;
  /** The connection that owns the backend (inside a transaction or an open extended exchange). */
  private owner: Connection | undefined;
  private nextId = 1;
  private idleTimer: NodeJS.Timeout | undefined;
  private address: { host: string; port: number } | undefined;
  private readonly totals = { units: 0, busyMs: 0, waitMs: 0 };

  constructor(
    readonly db: PGlite,
    private readonly options: WireServerOptions = {},
  ) {}

  async start(): Promise<{ host: string; port: number }> {
    await this.db.waitReady;
    const host = this.options.host ?? '127.0.0.1';
    const server = net.createServer((socket) => this.accept(socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.port ?? 0, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const bound = server.address() as net.AddressInfo;
    this.address = { host, port: bound.port };
    const idleMs = this.options.idleInTransactionTimeoutMs ?? 60_000;
    this.idleTimer = setInterval(() => this.closeIdleOwner(idleMs), Math.min(1000, idleMs));
    this.idleTimer.unref();
    return this.address;
  }

  /** postgres:// URL for `pg`. PGlite has one user and one database, both "postgres". */
  get url(): string {
    if (!this.address) throw new Error('wire server not started');
    return `postgres://postgres@${this.address.host}:${this.address.port}/postgres`;
  }

  stats(): WireServerStats {
    return {
      connections: this.connections.size,
      queued: this.queue.length,
      units: this.totals.units,
      busyMs: Math.round(this.totals.busyMs),
      waitMs: Math.round(this.totals.waitMs),
    };
  }

  async stop(): Promise<void> {
    if (this.idleTimer) clearInterval(this.idleTimer);
    for (const connection of this.connections) connection.socket.destroy();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    // Let a unit that is running finish before the caller closes the database.
    while (this.running) await new Promise((r) => setTimeout(r, 10));
  }

  private accept(socket: net.Socket): void {
    socket.setNoDelay(true);
    const connection = new Connection(this.nextId++, socket, (unit) => {
      unit.queuedAt = performance.now();
      this.queue.push(unit);
      void this.drain();
    });
    this.connections.add(connection);
    this.options.logger?.debug({ connection: connection.id }, 'pglite connection opened');
    socket.on('data', (data) => {
      try {
        connection.receive(data);
      } catch (err) {
        this.options.logger?.warn({ err, connection: connection.id }, 'bad message from client');
        socket.destroy();
      }
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => void this.release(connection));
  }

  private async release(connection: Connection): Promise<void> {
    connection.closed = true;
    this.connections.delete(connection);
    this.queue = this.queue.filter((u) => u.connection !== connection);
    this.options.logger?.debug({ connection: connection.id }, 'pglite connection closed');
    if (this.owner !== connection) return;
    // A client that went away inside a transaction (a killed worker): roll it back, as a
    // Postgres backend does when its client disconnects.
    while (this.running) await new Promise((r) => setTimeout(r, 5));
    if (this.owner !== connection) return;
    this.running = true;
    try {
      // exec() takes PGlite's own lock: not inside runExclusive, or it waits for itself.
      if (connection.openExtended) await this.db.execProtocolRaw(syncMessage());
      if (this.db.isInTransaction()) await this.db.exec('ROLLBACK');
      this.options.logger?.info(
        { connection: connection.id },
        'rolled back the transaction of a closed connection',
      );
    } catch (err) {
      this.options.logger?.error({ err, connection: connection.id }, 'rollback after disconnect failed');
    } finally {
      this.owner = undefined;
      this.running = false;
      void this.drain();
    }
  }

  private closeIdleOwner(idleMs: number): void {
    const owner = this.owner;
    if (!owner || this.running) return;
    if (this.queue.some((u) => u.connection === owner)) return;
    if (Date.now() - owner.lastActivity > idleMs) {
      this.options.logger?.warn({ connection: owner.id, idleMs }, 'closing a connection idle in transaction');
      owner.socket.destroy();
    }
  }

  private nextUnit(): Unit | undefined {
    if (this.owner) {
      const index = this.queue.findIndex((u) => u.connection === this.owner);
      return index === -1 ? undefined : this.queue.splice(index, 1)[0];
    }
    return this.queue.shift();
  }

  private async drain(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      for (let unit = this.nextUnit(); unit; unit = this.nextUnit()) {
        await this.run(unit);
      }
    } finally {
      this.running = false;
    }
  }

  private async run(unit: Unit): Promise<void> {
    const { connection } = unit;
    if (connection.closed) return;
    const started = performance.now();
    this.totals.units++;
    this.totals.waitMs += started - (unit.queuedAt ?? started);
    const chunks: Buffer[] = [];
    try {
      await this.db.runExclusive(() =>
        this.db.execProtocolRawStream(
          new Uint8Array(unit.bytes.buffer, unit.bytes.byteOffset, unit.bytes.length),
          {
            onRawData: (data) => {
              if (unit.copy) chunks.push(Buffer.from(data));
              else if (!connection.closed) connection.socket.write(Buffer.from(data));
            },
          },
        ),
      );
      if (unit.copy && !connection.closed)
        connection.socket.write(withoutFirstCopyInResponse(Buffer.concat(chunks)));
    } catch (err) {
      this.options.logger?.error({ err, connection: connection.id }, 'pglite failed to run a request');
      connection.socket.destroy();
    }
    this.totals.busyMs += performance.now() - started;
    connection.openExtended = unit.openExtended;
    connection.lastActivity = Date.now();
    this.owner = this.db.isInTransaction() || unit.openExtended ? connection : undefined;
  }
}

function syncMessage(): Uint8Array {
  const message = Buffer.alloc(5);
  message.write('S', 0);
  message.writeInt32BE(4, 1);
  return new Uint8Array(message);
}
