import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import type { ManifestFile } from '../../../storage/port.js';
import { intArg, JobInputError, requireArg, runSimulatedJob } from './common.js';
import { writeSyntheticModel } from './synthetic-model.js';

// Simulated "download" Job: puts a model under --output-uri with a manifest. With
// --source-dir it copies that directory (a local mirror); otherwise it writes a small
// synthetic Qwen-like snapshot (--size-bytes of weights). Result JSON at --result-uri.

await runSimulatedJob(
  'download',
  {
    model: { type: 'string' },
    revision: { type: 'string' },
    'output-uri': { type: 'string' },
    'result-uri': { type: 'string' },
    'source-dir': { type: 'string' },
    'size-bytes': { type: 'string' },
    shards: { type: 'string' },
  },
  async (ctx, args) => {
    const model = requireArg(args, 'model');
    const revision = args.revision ?? 'master';
    const outputUri = requireArg(args, 'output-uri');
    const resultUri = requireArg(args, 'result-uri');
    const prefix = ctx.store.keyFromUri(outputUri);
    await ctx.step(0.1, `resolving ${model}@${revision}`);
    let files: ManifestFile[];
    if (args['source-dir']) {
      const root = path.resolve(args['source-dir']);
      const info = await stat(root).catch(() => undefined);
      if (!info?.isDirectory()) throw new JobInputError(`--source-dir ${root} is not a directory`);
      const entries = (await readdir(root, { recursive: true, withFileTypes: true })).filter((e) =>
        e.isFile(),
      );
      files = [];
      for (const [i, entry] of entries.entries()) {
        const rel = path.relative(root, path.join(entry.parentPath, entry.name)).split(path.sep).join('/');
        const put = await ctx.store.put(`${prefix}/${rel}`, createReadStream(path.join(root, rel)));
        files.push({ path: rel, size: put.size, sha256: put.sha256 as string });
        await ctx.step(0.1 + (0.8 * (i + 1)) / entries.length, `copied ${rel}`);
      }
      await ctx.store.writeManifest(prefix, files, { model, revision, simulated: true, source: root });
    } else {
      const manifest = await writeSyntheticModel(ctx.store, prefix, {
        model,
        revision,
        weightBytes: intArg(args, 'size-bytes', 4 * 1024 * 1024),
        shards: intArg(args, 'shards', 2),
      });
      files = manifest.files;
      await ctx.step(0.9, `wrote ${files.length} files`);
    }
    await ctx.step(1, 'manifest written');
    await ctx.store.putJson(ctx.store.keyFromUri(resultUri), {
      kind: 'download',
      simulated: true,
      model,
      revision,
      outputUri,
      files,
      totalBytes: files.reduce((s, f) => s + f.size, 0),
      durationSeconds: ctx.elapsedSeconds(),
    });
  },
);
