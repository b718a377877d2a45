import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { V1Job } from '@kubernetes/client-node';
import { afterAll, describe, expect, it } from 'vitest';
import {
  buildJobManifest,
  jobStatusFromObject,
  loadJobTemplates,
  validateJobSpec,
} from '../../../src/cluster/kubernetes/job-manifest.js';
import type { GpuJobSpec } from '../../../src/cluster/port.js';
import { repoRoot } from '../../../src/runtime/entrypoints.js';

const templates = loadJobTemplates(path.join(repoRoot, 'k8s', 'base', 'job-templates'));

const spec: GpuJobSpec = {
  namespace: 'qwenops',
  name: 'quantize-abc',
  template: 'quantize',
  workflowId: 'promote qwen/Qwen-7B-Chat #1',
  stage: 'quantize',
  args: ['--input-uri', 's3://b/in', '--result-uri', 's3://b/r.json'],
  env: { HOME: '/override', QWENOPS_STORE: 'minio' },
  secretEnv: [{ name: 'QWENOPS_S3_SECRET_KEY', secretName: 'qwenops-s3', key: 'AWS_SECRET_ACCESS_KEY' }],
  gpus: 2,
  gpuType: 'A100',
  activeDeadlineSeconds: 7200,
  backoffLimit: 1,
  ttlSecondsAfterFinished: 3600,
  labels: { 'qwenops.io/model': 'qwen_Qwen-7B-Chat' },
};

describe('buildJobManifest', () => {
  const job = buildJobManifest(templates.quantize, spec, { image: 'registry.example/jobs:1.2.3' });
  const pod = job.spec?.template.spec;
  const container = pod?.containers[0];

  it('keeps the template and adds the run: identity, args, env, GPUs, placement, deadlines', () => {
    expect(job.metadata).toMatchObject({
      name: 'quantize-abc',
      namespace: 'qwenops',
      labels: {
        'qwenops.io/workflow-id': 'promote_qwen_Qwen-7B-Chat__1',
        'qwenops.io/stage': 'quantize',
        'qwenops.io/job-template': 'quantize',
        'qwenops.io/model': 'qwen_Qwen-7B-Chat',
        'app.kubernetes.io/managed-by': 'qwenops',
      },
      annotations: { 'qwenops.io/workflow-id': 'promote qwen/Qwen-7B-Chat #1' },
    });
    expect(job.spec).toMatchObject({
      backoffLimit: 1,
      activeDeadlineSeconds: 7200,
      ttlSecondsAfterFinished: 3600,
    });
    expect(container?.image).toBe('registry.example/jobs:1.2.3');
    expect(container?.command).toEqual(['python', '-m', 'qwenops_jobs.quantize']);
    expect(container?.args).toEqual(['--log-format', 'json', ...spec.args]);
    expect(container?.resources?.limits?.['nvidia.com/gpu']).toBe('2');
    expect(container?.resources?.requests?.['nvidia.com/gpu']).toBe('2');
    expect(pod?.nodeSelector).toEqual({ 'gpu-type': 'A100' });
    expect(pod?.serviceAccountName).toBe('qwenops-jobs');
    expect(pod?.automountServiceAccountToken).toBe(false);
  });

  it('lets the spec override template env and references secrets by name only', () => {
    const env = container?.env ?? [];
    expect(env.filter((e) => e.name === 'HOME')).toEqual([{ name: 'HOME', value: '/override' }]);
    expect(env).toContainEqual({
      name: 'QWENOPS_S3_SECRET_KEY',
      valueFrom: { secretKeyRef: { name: 'qwenops-s3', key: 'AWS_SECRET_ACCESS_KEY' } },
    });
    expect(JSON.stringify(job)).not.toMatch(/AWS_SECRET_ACCESS_KEY"?:\s*"[^"]/);
  });

  it('is non-root whatever the template says, and does not mutate the template', () => {
    expect(pod?.securityContext?.runAsNonRoot).toBe(true);
    expect(container?.securityContext).toMatchObject({ allowPrivilegeEscalation: false, runAsNonRoot: true });
    expect(container?.terminationMessagePolicy).toBe('FallbackToLogsOnError');
    expect(templates.quantize.metadata?.name).toBe('qwenops-quantize-template');
    expect(templates.quantize.spec?.template.spec?.containers[0]?.args).toEqual(['--log-format', 'json']);
  });

  it('drops GPU resources for a CPU Job', () => {
    const cpu = buildJobManifest(templates.download, {
      ...spec,
      template: 'download',
      gpus: 0,
      gpuType: undefined,
    });
    expect(cpu.spec?.template.spec?.containers[0]?.resources?.limits?.['nvidia.com/gpu']).toBeUndefined();
    expect(cpu.spec?.template.spec?.nodeSelector).toBeUndefined();
  });

  it('refuses a bad spec, naming the field and the rule', () => {
    expect(() => validateJobSpec({ ...spec, name: 'Quantize_ABC' })).toThrow(
      'GpuJobSpec.name: must be a DNS-1123 label',
    );
    expect(() => validateJobSpec({ ...spec, activeDeadlineSeconds: 0 })).toThrow(
      'GpuJobSpec.activeDeadlineSeconds',
    );
    expect(() => validateJobSpec({ ...spec, gpuType: 'A10 GPU' })).toThrow('GpuJobSpec.gpuType');
    expect(() => validateJobSpec({ ...spec, env: { 'BAD-NAME': 'x' } })).toThrow('GpuJobSpec.env.BAD-NAME');
    expect(() => validateJobSpec({ ...spec, labels: { a: 'x'.repeat(64) } })).toThrow('GpuJobSpec.labels.a');
    expect(() => validateJobSpec({ ...spec, template: 'train' as GpuJobSpec['template'] })).toThrow(
      'GpuJobSpec.template',
    );
  });
});

describe('jobStatusFromObject', () => {
  const base: V1Job = { metadata: { name: 'j', namespace: 'qwenops' }, spec: { template: {} } };
  it('maps the Job controller conditions to phases', () => {
    expect(jobStatusFromObject(base)).toMatchObject({
      phase: 'Pending',
      attempts: 0,
      message: 'waiting for a pod',
    });
    expect(jobStatusFromObject({ ...base, status: { active: 1, ready: 1 } })).toMatchObject({
      phase: 'Running',
      attempts: 1,
      message: '1 pod running (1 ready)',
    });
    const finished = new Date('2026-01-01T00:10:00Z');
    expect(
      jobStatusFromObject({
        ...base,
        status: {
          succeeded: 1,
          failed: 1,
          startTime: new Date('2026-01-01T00:00:00Z'),
          completionTime: finished,
          conditions: [{ type: 'Complete', status: 'True' }],
        },
      }),
    ).toMatchObject({ phase: 'Succeeded', attempts: 2, finishedAt: finished.toISOString() });
    expect(
      jobStatusFromObject({
        ...base,
        status: {
          failed: 3,
          conditions: [
            { type: 'FailureTarget', status: 'True', reason: 'DeadlineExceeded' },
            {
              type: 'Failed',
              status: 'True',
              reason: 'DeadlineExceeded',
              message: 'Job was active longer than specified deadline',
            },
          ],
        },
      }),
    ).toMatchObject({
      phase: 'Failed',
      attempts: 3,
      message: 'DeadlineExceeded: Job was active longer than specified deadline',
    });
    expect(jobStatusFromObject({ ...base, status: { active: 1, failed: 1 } }).message).toContain(
      '1 attempt failed so far',
    );
  });
});

describe('loadJobTemplates', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'qwenops-templates-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('names the file and the problem', () => {
    expect(() => loadJobTemplates(dir)).toThrow(/download\.yaml/);
    const job = {
      apiVersion: 'batch/v1',
      kind: 'Job',
      spec: { template: { spec: { containers: [{ name: 'x' }] } } },
    };
    for (const name of ['download', 'quantize', 'evaluate'])
      writeFileSync(path.join(dir, `${name}.yaml`), JSON.stringify(job));
    expect(() => loadJobTemplates(dir)).toThrow('runAsNonRoot must be true');
    writeFileSync(path.join(dir, 'download.yaml'), 'kind: Deployment');
    expect(() => loadJobTemplates(dir)).toThrow('must be a batch/v1 Job');
  });
});
