import type { AnalysisResult } from '../domain/analysis.js';
import type { Logger } from '../observability/logger.js';
import { alignDistributions, DEFAULT_LATENCY_NOISE_FLOOR_MS, judgeStep } from './checks.js';
import type { AnalysisHooks, CanaryAnalysisRequest, CanaryAnalyzer } from './port.js';
import {
  errorBreakdown,
  measurementFromReport,
  modelNameProblem,
  parseCanaryAnalysisRequest,
  runProbeLoad,
} from './probe-load.js';

// The built-in provider: the load generator itself is the measurement. It sends the same
// open-loop probe load to the canary and the stable revision for the analysis window and
// judges on what the client saw (latency from the scheduled send time, so a stalling
// revision cannot hide behind fewer requests).

export interface ProbeAnalyzerOptions {
  /** Bearer token for the endpoints. */
  apiKey?: string;
  logger?: Logger;
  /** See JudgeInput.latencyNoiseFloorMs. */
  latencyNoiseFloorMs?: number;
}

export { DEFAULT_LATENCY_NOISE_FLOOR_MS };

export class ProbeCanaryAnalyzer implements CanaryAnalyzer {
  readonly provider = 'probe';

  constructor(private readonly options: ProbeAnalyzerOptions = {}) {}

  async analyse(input: CanaryAnalysisRequest, hooks: AnalysisHooks = {}): Promise<AnalysisResult> {
    const startedAt = new Date();
    // Bad input is the caller's bug, not a measurement: it throws InputValidationError
    // instead of coming back "inconclusive".
    const request = parseCanaryAnalysisRequest(input);
    const loads = await runProbeLoad(request, hooks, { apiKey: this.options.apiKey });
    const problems = [loads.canary.error, loads.stable?.error].filter((e): e is string => e !== undefined);
    const [canary, stable] = alignDistributions(
      measurementFromReport(request.canary.revision, loads.canary.report),
      request.stable ? measurementFromReport(request.stable.revision, loads.stable?.report) : undefined,
    );
    const notes = [
      ...(errorBreakdown(loads.canary.report)
        ? [`canary errors: ${errorBreakdown(loads.canary.report)}`]
        : []),
      ...(errorBreakdown(loads.stable?.report)
        ? [`stable errors: ${errorBreakdown(loads.stable?.report)}`]
        : []),
    ];
    return judgeStep(
      request,
      {
        canary,
        stable,
        source: 'probe client',
        problems,
        notes,
        invalidMeasurement: modelNameProblem(request.model, loads.canary, loads.stable),
      },
      { ...this.options, provider: this.provider, startedAt },
    );
  }
}
