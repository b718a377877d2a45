// Canary analysis: compare the canary revision with the stable one under the same load,
// for one step of a rollout. Providers (built-in probe load, Prometheus) implement
// CanaryAnalyzer; a provider error must come back as verdict "inconclusive", never as a
// silent pass and never as a thrown breach.

import type { AnalysisResult } from '../domain/analysis.js';
import type { Slo } from '../domain/promotion-spec.js';

export interface RevisionEndpoint {
  revision: string;
  /** OpenAI-compatible base URL reaching only this revision, e.g. http://127.0.0.1:4101/v1 */
  baseUrl: string;
}

export interface CanaryAnalysisRequest {
  step: number;
  canaryPercent: number;
  /** Model name the endpoints serve. */
  model: string;
  canary: RevisionEndpoint;
  /** What the canary is compared with: the stable revision, or the baseline (see `comparison`). */
  stable?: RevisionEndpoint;
  /** 'baseline': `stable` is a fresh copy of the stable revision started with the canary. */
  comparison?: 'stable' | 'baseline';
  windowSeconds: number;
  minSamples: number;
  probe: { requestsPerSecond: number; maxTokens: number; concurrency: number; ignoreEos?: boolean };
  slo: Slo;
}

export interface AnalysisHooks {
  signal?: AbortSignal;
  /** Called periodically with what has been measured so far (activities heartbeat). */
  onProgress?: (message: string) => void;
}

export interface CanaryAnalyzer {
  readonly provider: string;
  analyse(request: CanaryAnalysisRequest, hooks?: AnalysisHooks): Promise<AnalysisResult>;
}
