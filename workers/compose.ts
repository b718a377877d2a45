import path from 'node:path';
import { createKnowledgeActivities } from '../activities/knowledge.js';
import { createLoadTestActivities } from '../activities/loadtest.js';
import { createPromotionActivities } from '../activities/promotion.js';
import { createPromotionLoadTest } from '../activities/promotion-load-test.js';
import { createSafetyActivities } from '../activities/safety.js';
import { createServingActivities } from '../activities/serving.js';
import { specActivities } from '../activities/spec.js';
import { createCanaryAnalyzer } from '../src/analysis/index.js';
import { StoreAuditLog } from '../src/audit/audit-log.js';
import { createClusterBackend } from '../src/cluster/index.js';
import type { QwenopsConfig } from '../src/config/config.js';
import { createModelHub } from '../src/hub/index.js';
import { composeKnowledge } from '../src/knowledge/compose.js';
import type { Logger } from '../src/observability/logger.js';
import { createGuard, type Guard, guardSettingsFromEnv } from '../src/safety/index.js';
import { GpuJobService, jobStoreAccess } from '../src/services/gpu-jobs.js';
import { PromotionReportService } from '../src/services/promotion-report.js';
import { SafetyGateService } from '../src/services/safety-gate.js';
import { ServingService } from '../src/services/serving-rollout.js';
import { createArtifactStore } from '../src/storage/index.js';
import type { TASK_QUEUES } from '../workflows/definitions.js';

// The composition root: builds adapters from the config, services from adapters, and the
// activity set each task queue's worker registers. Nothing else constructs adapters; the
// knowledge adapters come from src/knowledge/compose.ts, which the CLI builds through too.

export type TaskQueueName = keyof typeof TASK_QUEUES;
// biome-ignore lint/suspicious/noExplicitAny: activity maps are heterogeneous by nature
export type ActivityMap = Record<string, (...args: any[]) => Promise<unknown>>;

export interface Composition {
  activitiesFor(queue: TaskQueueName): ActivityMap;
  close(): Promise<void>;
}

export async function compose(config: QwenopsConfig, logger: Logger): Promise<Composition> {
  const store = await createArtifactStore(config.store);
  const cluster = await createClusterBackend(config.cluster, logger);
  const hub = createModelHub(config.hub, { logger });
  const audit = new StoreAuditLog(store, logger);
  const gpuJobs = new GpuJobService(cluster, store, audit, {
    namespace: config.cluster.jobNamespace,
    storeAccess: jobStoreAccess(config.store),
  });
  const serving = new ServingService(cluster, audit, store, {
    leaseSeconds: config.cluster.rolloutLeaseSeconds,
  });
  const reports = new PromotionReportService(store);
  const analyzer = createCanaryAnalyzer(config.analysis, { logger });

  const promotion = createPromotionActivities({
    hub,
    store,
    gpuJobs,
    reports,
    audit,
    stagingDir: path.join(config.stateDir, 'staging'),
    logger,
  });
  // The guard users' requests pass (QWENOPS_SAFETY_LEXICON, QWENOPS_MODERATION_URL): the
  // safety gate judges the candidate behind the same one. Built on first use.
  let guard: Promise<Guard> | undefined;
  const safety = createSafetyActivities({
    safety: new SafetyGateService({
      serving,
      store,
      guard: () => {
        guard ??= createGuard(guardSettingsFromEnv());
        return guard;
      },
      namespace: config.cluster.validationNamespace,
    }),
  });
  const servingActivities = createServingActivities({
    serving,
    analyzer,
    loadTest: createPromotionLoadTest({ store, logger }),
  });

  // The knowledge base's adapters (pgvector store, sources, embedder): the database pool
  // opens on the first knowledge activity, so workers of other queues never connect.
  const knowledgeAdapters = composeKnowledge(config, {
    logger,
    artifactStore: store,
    directoryRoots: config.confinement.knowledgeRoots,
  });
  const knowledge = createKnowledgeActivities({
    knowledge: knowledgeAdapters,
    logger,
    artifactStore: store,
    audit,
  });

  // The loadTest workflow's activities (run a test against any URL, analyse two endpoints).
  const loadTestActivities = createLoadTestActivities({
    store,
    analyzer,
    logger,
    confinement: config.confinement,
  });

  const byQueue: Record<TaskQueueName, ActivityMap> = {
    default: {
      // Local activities of the workflows themselves: they run in the workflow worker.
      ...specActivities,
      resolveModel: promotion.resolveModel,
      writePromotionReport: promotion.writePromotionReport,
      markCandidateRejected: promotion.markCandidateRejected,
    },
    gpuJobs: {
      downloadModel: promotion.downloadModel,
      quantizeModelAwq: promotion.quantizeModelAwq,
      evaluateModelQuality: promotion.evaluateModelQuality,
      deleteGpuJob: promotion.deleteGpuJob,
    },
    cluster: {
      ...(servingActivities as unknown as ActivityMap),
      ...(safety as unknown as ActivityMap),
      ...(loadTestActivities as ActivityMap),
    },
    knowledge,
  };

  return {
    activitiesFor: (queue) => byQueue[queue],
    close: async () => {
      await knowledgeAdapters.close();
      await cluster.close();
    },
  };
}
