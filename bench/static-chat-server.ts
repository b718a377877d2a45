import cluster from 'node:cluster';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { availableParallelism } from 'node:os';

// A chat-completions server that does as little as an HTTP server can: it reads the body
// and answers one canned, OpenAI-shaped non-streaming completion (with usage), from
// several worker processes sharing one port. It is the target of the load generator's
// throughput figure (bench/loadgen.ts), which must measure the client, not a server that
// saturates first the way the serving simulator does. Prints one JSON line when listening:
// {"event":"listening","url":...,"pids":[...]} (the pids let the bench read each
// process's CPU time). Usage: static-chat-server [--workers N]

const MODEL = 'qwen-7b-chat';

const ANSWER = Buffer.from(
  JSON.stringify({
    id: 'chatcmpl-static',
    object: 'chat.completion',
    created: 0,
    model: MODEL,
    choices: [
      { index: 0, message: { role: 'assistant', content: '你好' }, logprobs: null, finish_reason: 'length' },
    ],
    usage: { prompt_tokens: 12, completion_tokens: 1, total_tokens: 13 },
  }),
);
const MODELS = Buffer.from(
  JSON.stringify({ object: 'list', data: [{ id: MODEL, object: 'model', owned_by: 'qwenops-bench' }] }),
);

function serve(): void {
  const server = http.createServer((req, res) => {
    if (req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': MODELS.length });
      res.end(MODELS);
      return;
    }
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': ANSWER.length });
      res.end(ANSWER);
    });
  });
  server.keepAliveTimeout = 75_000;
  // Port 0 in every worker: the primary shares one listening handle, so all get the same port.
  server.listen(0, '127.0.0.1', () => {
    process.send?.({ port: (server.address() as AddressInfo).port });
  });
}

function workersArg(): number {
  const i = process.argv.indexOf('--workers');
  const n = i >= 0 ? Number(process.argv[i + 1]) : Number.NaN;
  return Number.isInteger(n) && n >= 1 ? n : Math.max(1, Math.min(4, availableParallelism() - 1));
}

if (cluster.isPrimary) {
  // The kernel spreads connections over the workers (no round-robin through the primary,
  // which would be one more process on the request path).
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  const workers = Array.from({ length: workersArg() }, () => cluster.fork());
  const ports = await Promise.all(
    workers.map((worker) => new Promise<number>((resolve) => worker.once('message', (m) => resolve(m.port)))),
  );
  console.log(
    JSON.stringify({
      event: 'listening',
      url: `http://127.0.0.1:${ports[0]}`,
      pids: workers.map((w) => w.process.pid),
    }),
  );
  const stop = () => {
    for (const worker of workers) worker.kill('SIGTERM');
    process.exit(0);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
} else {
  serve();
}
