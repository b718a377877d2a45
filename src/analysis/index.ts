import type { QwenopsConfig } from '../config/config.js';
import { InputValidationError } from '../domain/validation.js';
import type { Logger } from '../observability/logger.js';
import type { CanaryAnalyzer } from './port.js';
import { ProbeCanaryAnalyzer } from './probe.js';
import { PrometheusCanaryAnalyzer } from './prometheus.js';

export { type Judgement, judgeCanary, judgePolicy } from './checks.js';
export type { AnalysisHooks, CanaryAnalysisRequest, CanaryAnalyzer, RevisionEndpoint } from './port.js';
export { ProbeCanaryAnalyzer } from './probe.js';
export { parseCanaryAnalysisRequest } from './probe-load.js';
export { PrometheusCanaryAnalyzer, VLLM_METRICS } from './prometheus.js';
export { PrometheusClient, PrometheusQueryError } from './prometheus-client.js';
export { type RejudgeOverrides, type RejudgeReport, rejudgeAnalyses, rejudgeAnalysis } from './rejudge.js';

/** config.analysis; the Prometheus tuning fields may be left out (defaults apply). */
type AnalysisConfig = Pick<QwenopsConfig['analysis'], 'provider' | 'prometheusUrl'> &
  Partial<Pick<QwenopsConfig['analysis'], 'prometheusRevisionLabel' | 'prometheusScrapeIntervalSeconds'>>;

/** The analyzer the configuration names. A Prometheus provider without a URL is refused here. */
export function createCanaryAnalyzer(
  config: AnalysisConfig,
  deps: { logger?: Logger; apiKey?: string } = {},
): CanaryAnalyzer {
  switch (config.provider) {
    case 'probe':
      return new ProbeCanaryAnalyzer({ logger: deps.logger, apiKey: deps.apiKey });
    case 'prometheus':
      if (!config.prometheusUrl) {
        throw new InputValidationError('configuration', [
          {
            path: 'analysis.prometheusUrl (QWENOPS_PROMETHEUS_URL)',
            message: 'is required when analysis.provider is "prometheus"',
          },
        ]);
      }
      return new PrometheusCanaryAnalyzer({
        url: config.prometheusUrl,
        revisionLabel: config.prometheusRevisionLabel,
        scrapeIntervalSeconds: config.prometheusScrapeIntervalSeconds,
        logger: deps.logger,
        apiKey: deps.apiKey,
      });
  }
}
