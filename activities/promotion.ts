import path from 'node:path';
import type { AuditLog } from '../src/audit/audit-log.js';
import { artifactKeys } from '../src/domain/artifact-layout.js';
import { evaluationResultSchema, quantizeResultSchema } from '../src/domain/job-results.js';
import { dnsName } from '../src/domain/names.js';
import type { ModelHub } from '../src/hub/port.js';
import type { Logger } from '../src/observability/logger.js';
import type { GpuJobOutcome, GpuJobService } from '../src/services/gpu-jobs.js';
import { downloadModelToStore } from '../src/services/model-download.js';
import type { PromotionReportService } from '../src/services/promotion-report.js';
import type { ArtifactStore } from '../src/storage/port.js';
import type { PromotionActivities } from './contracts.js';
import { heartbeating, mapped } from './support.js';

// Activities of the model pipeline: thin adapters from Temporal to the hub, the download
// service, GPU Jobs and the report. Names are what the Temporal UI shows.

export interface PromotionActivityDeps {
  hub: ModelHub;
  store: ArtifactStore;
  gpuJobs: GpuJobService;
  reports: PromotionReportService;
  audit: AuditLog;
  /** Worker-local directory for partial downloads (kept across retries on this worker). */
  stagingDir: string;
  logger: Logger;
}

/** What a GPU Job activity returns: the Job it ran (or adopted) and the result it wrote. */
function asGpuJobRun<T>(outcome: GpuJobOutcome<T>) {
  const { jobName, namespace, adopted, resultUri, result } = outcome;
  return { jobName, namespace, adopted, resultUri, result };
}

export function createPromotionActivities(deps: PromotionActivityDeps): PromotionActivities {
  return {
    async resolveModel(input) {
      return mapped(async () => {
        const resolved = await deps.hub.resolve(input.model, input.revision);
        return {
          model: resolved.model,
          revision: resolved.revision,
          commit: resolved.commit,
          fileCount: resolved.files.length,
          totalBytes: resolved.totalBytes,
          needsTrustRemoteCode: resolved.needsTrustRemoteCode,
        };
      });
    },

    async downloadModel(input) {
      return heartbeating(async ({ signal, onProgress }) => {
        const resolved = await deps.hub.resolve(input.model, input.revision, signal);
        const prefix = artifactKeys.original(input.model, input.revision);
        let downloadedBytes = 0;
        const manifest = await downloadModelToStore({
          hub: deps.hub,
          store: deps.store,
          resolved,
          prefix,
          stagingDir: path.join(deps.stagingDir, 'downloads'),
          signal,
          logger: deps.logger,
          metadata: { workflowId: input.workflowId, requestedBy: input.actor, hub: deps.hub.kind },
          onProgress: (p) => {
            downloadedBytes = p.bytesDownloaded;
            const pct = p.bytesTotal > 0 ? Math.floor((p.bytesDone / p.bytesTotal) * 100) : 100;
            onProgress(
              `${p.filesDone}/${p.filesTotal} files, ${pct}% (${p.filesSkipped} already stored)${p.currentFile ? `, ${p.currentFile}` : ''}`,
            );
          },
        });
        const reused = downloadedBytes === 0;
        if (!reused) {
          await deps.audit.record({
            actor: input.actor,
            action: 'artifact.download',
            workflowId: input.workflowId,
            target: `store ${deps.store.uri(prefix)}`,
            details: {
              model: input.model,
              revision: input.revision,
              files: manifest.files.length,
              totalBytes: manifest.totalBytes,
            },
          });
        }
        return {
          uri: deps.store.uri(prefix),
          fileCount: manifest.files.length,
          totalBytes: manifest.totalBytes,
          reused,
        };
      });
    },

    async quantizeModelAwq(input) {
      return heartbeating(async (hooks) => {
        const q = input.quantization;
        // Per run: a rejected candidate's marker never lands on another run's weights.
        const outputKey = `${artifactKeys.quantized(input.model, input.revision, q.method, q.bits, q.groupSize)}/${dnsName([input.workflowId])}`;
        const outcome = await deps.gpuJobs.run(
          {
            workflowId: input.workflowId,
            stage: 'quantize',
            jobName: input.jobName,
            template: 'quantize',
            args: [
              '--input-uri',
              input.sourceUri,
              '--output-uri',
              deps.store.uri(outputKey),
              '--method',
              q.method,
              '--bits',
              String(q.bits),
              '--group-size',
              String(q.groupSize),
              '--zero-point',
              String(q.zeroPoint),
              '--kernel',
              q.kernel,
              '--calibration-samples',
              String(q.calibrationSamples),
            ],
            gpuType: input.gpuType,
            timeoutSeconds: input.timeoutSeconds,
            actor: input.actor,
            resultSchema: quantizeResultSchema,
          },
          hooks,
        );
        return asGpuJobRun(outcome);
      });
    },

    async evaluateModelQuality(input) {
      return heartbeating(async (hooks) => {
        const outcome = await deps.gpuJobs.run(
          {
            workflowId: input.workflowId,
            stage: 'evaluate',
            jobName: input.jobName,
            template: 'evaluate',
            args: [
              '--baseline-uri',
              input.baselineUri,
              '--candidate-uri',
              input.candidateUri,
              '--samples',
              String(input.samples),
              ...(input.minSamples ? ['--min-samples', String(input.minSamples)] : []),
              '--gpu-type',
              input.gpuType,
            ],
            gpuType: input.gpuType,
            timeoutSeconds: input.timeoutSeconds,
            actor: input.actor,
            resultSchema: evaluationResultSchema,
          },
          hooks,
        );
        return asGpuJobRun(outcome);
      });
    },

    async deleteGpuJob(input) {
      return mapped(() => deps.gpuJobs.delete(input.workflowId, input.jobName, input.actor, 'compensation'));
    },

    async markCandidateRejected(input) {
      return mapped(async () => {
        const prefix = deps.store.keyFromUri(input.candidateUri);
        // Kept for forensics, but marked so nothing serves or re-promotes it by accident.
        await deps.store.putJson(`${prefix}/REJECTED.json`, {
          workflowId: input.workflowId,
          reason: input.reason,
          at: new Date().toISOString(),
        });
        await deps.audit.record({
          actor: input.actor,
          action: 'artifact.reject',
          workflowId: input.workflowId,
          target: `store ${input.candidateUri}`,
          details: { reason: input.reason },
        });
      });
    },

    async writePromotionReport(input) {
      return mapped(async () => {
        const { uri } = await deps.reports.write(input);
        return { uri };
      });
    },
  };
}
