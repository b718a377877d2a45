import type { QuantizeResult } from '../../../domain/job-results.js';
import { quantizeResultSchema } from '../../../domain/job-results.js';
import type { ManifestFile } from '../../../storage/port.js';
import { boolArg, intArg, JobInputError, requireArg, runSimulatedJob } from './common.js';
import { safetensorsStream } from './safetensors.js';

// Simulated AWQ quantization: reads the model under --input-uri (its manifest), writes a
// plausible AutoAWQ output under --output-uri (config.json with quantization_config,
// 4-bit safetensors shards about 0.3x the original weights, tokenizer and remote-code
// files copied) plus a manifest, and the QuantizeResult JSON at --result-uri.

const WEIGHTS = /\.(safetensors|bin|pt|pth)$/;
const AWQ_SIZE_RATIO = 0.3;

await runSimulatedJob(
  'quantize',
  {
    'input-uri': { type: 'string' },
    'output-uri': { type: 'string' },
    'result-uri': { type: 'string' },
    method: { type: 'string' },
    bits: { type: 'string' },
    'group-size': { type: 'string' },
    'zero-point': { type: 'string' },
    kernel: { type: 'string' },
    'calibration-samples': { type: 'string' },
  },
  async (ctx, args) => {
    const inputUri = requireArg(args, 'input-uri');
    const outputUri = requireArg(args, 'output-uri');
    const resultUri = requireArg(args, 'result-uri');
    const method = args.method ?? 'awq';
    if (method !== 'awq' && method !== 'rtn')
      throw new JobInputError(`--method must be awq or rtn, got ${JSON.stringify(method)}`);
    const bits = intArg(args, 'bits', 4);
    if (![2, 4, 8].includes(bits)) throw new JobInputError(`--bits must be 2, 4 or 8, got ${bits}`);
    if (method === 'awq' && bits !== 4) throw new JobInputError(`--bits must be 4 for AWQ, got ${bits}`);
    const groupSize = intArg(args, 'group-size', 128);
    if (![32, 64, 128].includes(groupSize))
      throw new JobInputError(`--group-size must be 32, 64 or 128, got ${groupSize}`);
    const zeroPoint = boolArg(args, 'zero-point', true);
    const kernel = args.kernel ?? 'GEMM';
    if (kernel !== 'GEMM' && kernel !== 'GEMV')
      throw new JobInputError(`--kernel must be GEMM or GEMV, got ${kernel}`);

    const { store } = ctx;
    const inputPrefix = store.keyFromUri(inputUri);
    const outputPrefix = store.keyFromUri(outputUri);
    const input = await store.readManifest(inputPrefix);
    if (!input) throw new JobInputError(`no manifest under ${inputUri}: download the model first`);
    ctx.log(`quantize: ${input.files.length} files, ${input.totalBytes} bytes from ${inputUri}`);
    await ctx.step(0.05, `loaded manifest of ${input.files.length} files`);

    const weights = input.files.filter((f) => WEIGHTS.test(f.path) && !f.path.includes('training_args'));
    if (weights.length === 0)
      throw new JobInputError(`no weight files (*.safetensors, *.bin) under ${inputUri}`);
    const others = input.files.filter(
      (f) => !weights.includes(f) && f.path !== 'model.safetensors.index.json',
    );
    const originalSizeBytes = weights.reduce((s, f) => s + f.size, 0);
    const quantizationConfig = {
      quant_method: method,
      bits,
      group_size: groupSize,
      zero_point: zeroPoint,
      version: kernel.toLowerCase(),
      modules_to_not_convert: null,
    };

    const files: ManifestFile[] = [];
    const put = async (path: string, body: Parameters<typeof store.put>[1]) => {
      const info = await store.put(`${outputPrefix}/${path}`, body);
      files.push({ path, size: info.size, sha256: info.sha256 as string });
    };

    // Calibration and per-layer search dominate a real run: most of the time goes here.
    await ctx.step(0.3, `calibrating on ${args['calibration-samples'] ?? 128} samples (simulated)`);
    const shardCount = weights.length;
    const weightMap: Record<string, string> = {};
    for (const [i, original] of weights.entries()) {
      const file = `model-${String(i + 1).padStart(5, '0')}-of-${String(shardCount).padStart(5, '0')}.safetensors`;
      const packed = Math.max(16, Math.floor(original.size * AWQ_SIZE_RATIO));
      // qweight (int32-packed 4-bit), qzeros and scales, in AutoAWQ's naming.
      const layer = `model.layers.${i}.self_attn.q_proj`;
      const tensors = [
        { name: `${layer}.qweight`, dtype: 'I32' as const, bytes: Math.floor(packed * 0.88) },
        { name: `${layer}.qzeros`, dtype: 'I32' as const, bytes: Math.floor(packed * 0.02) },
        { name: `${layer}.scales`, dtype: 'F16' as const, bytes: Math.floor(packed * 0.1) },
      ];
      for (const t of tensors) weightMap[t.name] = file;
      await put(
        file,
        safetensorsStream(
          tensors,
          { format: 'pt', quant_method: 'awq', simulated: 'true' },
          `${original.sha256}:awq:${groupSize}`,
        ),
      );
      await ctx.step(0.3 + (0.55 * (i + 1)) / shardCount, `quantized shard ${i + 1}/${shardCount}`);
    }
    const quantizedWeights = files.reduce((s, f) => s + f.size, 0);
    await put(
      'model.safetensors.index.json',
      `${JSON.stringify({ metadata: { total_size: quantizedWeights }, weight_map: weightMap }, null, 2)}\n`,
    );

    for (const file of others) {
      if (file.path === 'config.json') {
        let config: Record<string, unknown> = {};
        try {
          config = await store.getJson<Record<string, unknown>>(`${inputPrefix}/config.json`);
        } catch {
          ctx.log('quantize: config.json is not JSON; writing a minimal one');
        }
        await put(
          'config.json',
          `${JSON.stringify({ ...config, torch_dtype: 'float16', quantization_config: quantizationConfig }, null, 2)}\n`,
        );
      } else {
        await put(file.path, await store.get(`${inputPrefix}/${file.path}`));
      }
    }
    if (!others.some((f) => f.path === 'config.json')) {
      await put('config.json', `${JSON.stringify({ quantization_config: quantizationConfig }, null, 2)}\n`);
    }
    await ctx.step(0.95, 'copied tokenizer and remote-code files');
    const tool = { name: 'qwenops-simulated-autoawq', version: '0.1.0' };
    await store.writeManifest(outputPrefix, files, {
      ...input.metadata,
      simulated: true,
      source: inputUri,
      quantization: { method, bits, groupSize, zeroPoint, kernel },
      tool,
    });
    await ctx.step(1, 'manifest written');

    const result: QuantizeResult = quantizeResultSchema.parse({
      kind: 'quantize',
      simulated: true,
      method,
      bits,
      groupSize,
      zeroPoint,
      kernel,
      outputUri,
      files,
      sizeBytes: files.reduce((s, f) => s + f.size, 0),
      originalSizeBytes: input.totalBytes,
      durationSeconds: ctx.elapsedSeconds(),
      tool,
    });
    await store.putJson(store.keyFromUri(resultUri), result);
    ctx.log(
      `quantize: ${originalSizeBytes} weight bytes -> ${quantizedWeights} (${(quantizedWeights / originalSizeBytes).toFixed(2)}x)`,
    );
  },
);
