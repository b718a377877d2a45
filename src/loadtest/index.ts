// Load testing of OpenAI-compatible chat endpoints (vLLM): the public surface.

export type { LatencyStats } from './aggregate.js';
export { ArrivalSchedule, sampleGamma, seededRandom } from './arrivals.js';
export { discoverModel, LoadTargetError, resolveChatEndpoint } from './endpoint.js';
export {
  buildPromotionComparison,
  type ComparisonRow,
  type PromotionComparison,
  renderPromotionComparisonHtml,
  renderPromotionComparisonTable,
  SEED_CLAIMS,
} from './promotion-comparison.js';
export { BUILTIN_ZH_PROMPTS, loadPrompts, type PromptItem } from './prompts/index.js';
export { describeLoadTest, type LoadTestReport, type PacingReport, summariseLoadTest } from './report.js';
export { renderLoadTestHtml } from './report-html.js';
export { ERROR_CLASSES, type ErrorClass, type RequestRecord } from './request.js';
export { LoadTestCancelledError, type LoadTestHooks, type LoadTestProgress, runLoadTest } from './runner.js';
export { evaluateSlo, type SloEvaluation, type SloResult, sloFlagName } from './slo.js';
export { type StoredLoadTestReport, storeLoadTestReport } from './store.js';
