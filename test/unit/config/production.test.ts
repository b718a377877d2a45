import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { loadConfig } from '../../../src/config/config.js';
import { productionSettingsProblems } from '../../../src/config/production.js';
import { createEmbedder } from '../../../src/knowledge/embedders/index.js';
import { runWorkers } from '../../../workers/run.js';
import { K8S_DIR, kustomizationObjects, type Manifest } from '../../support/k8s-manifests.js';
import { freePort } from '../../support/ports.js';

// Kubernetes (production) mode refuses to start a worker that would fall back to the
// embedded stack's stand-ins (lexical embedder, loopback database, pod-local store), naming
// each missing variable; the embedded (sandbox) mode keeps those defaults.

const paths = (issues: { path: string }[]) => issues.map((i) => i.path);

describe('production settings in Kubernetes mode', () => {
  it('names every missing variable for the knowledge queue, and only what the queues need', () => {
    const config = loadConfig({ env: { QWENOPS_CLUSTER: 'kubernetes' } });
    expect(paths(productionSettingsProblems(config, ['knowledge']))).toEqual([
      'store.kind (QWENOPS_STORE)',
      'knowledge.databaseUrl (QWENOPS_DATABASE_URL)',
      'knowledge.embeddingsUrl (QWENOPS_EMBEDDINGS_URL)',
    ]);
    // The cluster queue needs no knowledge database.
    const minio = loadConfig({ env: { QWENOPS_CLUSTER: 'kubernetes', QWENOPS_STORE: 'minio' } });
    expect(productionSettingsProblems(minio, ['cluster', 'gpuJobs', 'default'])).toEqual([]);
    expect(paths(productionSettingsProblems(minio, ['default', 'knowledge']))).toEqual([
      'knowledge.databaseUrl (QWENOPS_DATABASE_URL)',
      'knowledge.embeddingsUrl (QWENOPS_EMBEDDINGS_URL)',
    ]);
    const complete = loadConfig({
      env: {
        QWENOPS_CLUSTER: 'kubernetes',
        QWENOPS_STORE: 'minio',
        QWENOPS_DATABASE_URL: 'postgres://kb@db.example:5432/kb',
        QWENOPS_EMBEDDINGS_URL: 'http://bge-m3.llm-prod.svc/v1',
      },
    });
    expect(productionSettingsProblems(complete, ['default', 'gpuJobs', 'cluster', 'knowledge'])).toEqual([]);
  });

  it('keeps the embedded (sandbox) defaults: no URL needed, the lexical stand-in embedder', () => {
    const config = loadConfig({ env: {} });
    expect(config.cluster.kind).toBe('sandbox');
    expect(productionSettingsProblems(config, ['default', 'gpuJobs', 'cluster', 'knowledge'])).toEqual([]);
    expect(createEmbedder(config.knowledge).label).toMatch(/lexical|stand-in/i);
  });

  it('stops a worker at start-up, before it connects to anything, naming the variables', async () => {
    const config = loadConfig({
      env: {
        QWENOPS_CLUSTER: 'kubernetes',
        QWENOPS_STORE: 'minio',
        // Nothing listens there: had the check let it through, connecting would fail differently.
        QWENOPS_TEMPORAL_ADDRESS: `127.0.0.1:${await freePort()}`,
        QWENOPS_METRICS_ADDRESS: '',
        QWENOPS_LOG_LEVEL: 'silent',
      },
    });
    await expect(runWorkers({ queues: ['knowledge'], config })).rejects.toThrow(
      /invalid configuration for Kubernetes mode.*QWENOPS_DATABASE_URL\): is required.*QWENOPS_EMBEDDINGS_URL\): is required/,
    );
  });

  it('what k8s/ gives the knowledge worker (ConfigMap + its Deployment env) passes the check', () => {
    const objects = kustomizationObjects(path.join(K8S_DIR, 'base'));
    const configMap = objects.find((o) => o.kind === 'ConfigMap' && o.metadata?.name === 'qwenops-config');
    const deployment = objects.find(
      (o) => o.kind === 'Deployment' && o.metadata?.name === 'qwenops-worker-knowledge',
    ) as Manifest;
    const container = deployment.spec.template.spec.containers[0] as {
      env: Array<{ name: string; value?: string; valueFrom?: { secretKeyRef?: { optional?: boolean } } }>;
    };
    // Secrets the Deployment requires are present (the pod does not start otherwise); optional ones may not be.
    const env: Record<string, string> = { ...(configMap?.data as Record<string, string>) };
    for (const e of container.env) {
      if (e.value !== undefined) env[e.name] = e.value;
      else if (e.valueFrom?.secretKeyRef && !e.valueFrom.secretKeyRef.optional) env[e.name] = 'from-secret';
    }
    expect(
      container.env.find((e) => e.name === 'QWENOPS_DATABASE_URL')?.valueFrom?.secretKeyRef?.optional,
    ).not.toBe(true);
    const config = loadConfig({ env });
    expect(config.cluster.kind).toBe('kubernetes');
    expect(productionSettingsProblems(config, ['knowledge'])).toEqual([]);
    // The same ConfigMap without the Deployment's Secrets: the worker would refuse to start.
    const withoutSecrets = loadConfig({ env: configMap?.data as Record<string, string> });
    expect(paths(productionSettingsProblems(withoutSecrets, ['knowledge']))).toEqual([
      'knowledge.databaseUrl (QWENOPS_DATABASE_URL)',
    ]);
    expect(readFileSync(path.join(K8S_DIR, 'base', 'workers.yaml'), 'utf8')).toContain(
      'dist/workers/knowledge.js',
    );
    expect(
      YAML.parse(readFileSync(path.join(K8S_DIR, 'base', 'config.yaml'), 'utf8')).data.QWENOPS_EMBEDDINGS_URL,
    ).toMatch(/^http/);
  });
});
