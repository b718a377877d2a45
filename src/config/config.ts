import path from 'node:path';
import { z } from 'zod';
import { InputValidationError, issuesFromZod } from '../domain/validation.js';
import { repoRoot } from '../runtime/entrypoints.js';
import type { ConfinementPolicy } from './confinement.js';
import { readStructuredFile } from './structured-file.js';

// One typed configuration object for every process (workers, CLI, sandbox): defaults, then
// an optional YAML/JSON file (QWENOPS_CONFIG or --config), then environment variables.
// Secrets are accepted from the environment only (Kubernetes Secrets become env), are
// never read from the file, and redactConfig() hides them before anything is logged.

const hostPort = z.string().regex(/^[^\s:/]+:\d{1,5}$/, 'must be host:port');
const url = z.url('must be an absolute URL');

export const configSchema = z
  .object({
    stateDir: z.string().min(1).default('.qwenops'),
    temporal: z
      .object({
        address: hostPort.default('127.0.0.1:7233'),
        namespace: z.string().min(1).default('default'),
        uiUrl: url.default('http://127.0.0.1:8233'),
        tls: z.boolean().default(false),
        apiKey: z.string().optional(),
        /**
         * mTLS: PEM files of the client certificate and its key (both or neither), the CA
         * that signed the server's certificate (default: the system roots), and the name to
         * verify the server certificate against (default: the host of `address`). Any of them
         * turns TLS on.
         */
        tlsCertFile: z.string().min(1).optional(),
        tlsKeyFile: z.string().min(1).optional(),
        tlsCaFile: z.string().min(1).optional(),
        tlsServerName: z.string().min(1).optional(),
        /**
         * Worker Versioning (README, "Rolling out a new worker version"): workers register as
         * version `buildId` of the Worker Deployment `deploymentName`; promotions and canary
         * releases stay on the version they started on, re-index and load tests move to the
         * current one. Unset: unversioned workers (the embedded stack, tests).
         */
        deploymentName: z
          .string()
          .regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/, 'must be letters, digits, "_" and "-" (no ".")')
          .optional(),
        /** This build's id; default <package version>+<QWENOPS_GIT_COMMIT, else the checkout's commit>. */
        buildId: z
          .string()
          .regex(/^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/, 'must be letters, digits, ".", "_", "+" and "-"')
          .optional(),
      })
      .strict()
      .refine((t) => Boolean(t.tlsCertFile) === Boolean(t.tlsKeyFile), {
        message:
          'mTLS needs both the client certificate and its key (QWENOPS_TEMPORAL_TLS_CERT and QWENOPS_TEMPORAL_TLS_KEY)',
        path: ['tlsKeyFile'],
      })
      .prefault({}),
    cluster: z
      .object({
        kind: z.enum(['sandbox', 'kubernetes']).default('sandbox'),
        /** Control API of the embedded sandbox cluster. */
        sandboxUrl: url.default('http://127.0.0.1:7480'),
        /** Empty: in-cluster config or the default kubeconfig. */
        kubeconfig: z.string().optional(),
        /** Namespace for GPU Jobs. */
        jobNamespace: z.string().min(1).default('qwenops'),
        /**
         * Namespace of the private services a promotion starts to validate its candidate
         * (safety gate). Kept apart from the serving namespace, where workers may not delete.
         */
        validationNamespace: z.string().min(1).default('llm-validation'),
        /** Container image the GPU Jobs run (jobs/ entrypoints). */
        jobImage: z.string().min(1).default('ghcr.io/qwenops/jobs:0.1.0'),
        /** GPU Job templates (<name>.yaml); empty: the repository's k8s/base/job-templates. */
        jobTemplatesDir: z.string().min(1).optional(),
        /**
         * Duration of the rollout lease on a service: a workflow renews it every third of
         * this; one that stopped (terminated, worker gone) frees the service after it.
         */
        rolloutLeaseSeconds: z.coerce.number().int().min(15).max(3600).default(120),
        /**
         * Bearer token file of the sandbox daemon's control API (written 0600 at daemon start);
         * default <stateDir>/sandbox/api-token, where the embedded stack starts the daemon.
         */
        sandboxTokenFile: z.string().min(1).optional(),
      })
      .strict()
      .prefault({}),
    store: z
      .object({
        kind: z.enum(['fs', 'minio']).default('fs'),
        /** Root directory of the filesystem store. */
        dir: z.string().min(1).default('.qwenops/store'),
        endpoint: url.default('http://127.0.0.1:9000'),
        bucket: z.string().min(3).default('qwenops'),
        region: z.string().min(1).default('us-east-1'),
        accessKey: z.string().optional(),
        secretKey: z.string().optional(),
        /** Kubernetes Secret holding the S3 credentials, referenced by Jobs and InferenceServices. */
        credentialsSecret: z.string().min(1).default('qwenops-s3'),
      })
      .strict()
      .prefault({}),
    hub: z
      .object({
        kind: z.enum(['modelscope', 'local']).default('local'),
        endpoint: url.default('https://www.modelscope.cn'),
        token: z.string().optional(),
        /** Root of the local mirror: <dir>/<owner>/<name>/<revision>/... */
        mirrorDir: z.string().min(1).default('.qwenops/hub-mirror'),
      })
      .strict()
      .prefault({}),
    analysis: z
      .object({
        provider: z.enum(['probe', 'prometheus']).default('probe'),
        prometheusUrl: url.optional(),
        /** Label that tells serving revisions apart in the scraped vLLM series. */
        prometheusRevisionLabel: z
          .string()
          .regex(/^[a-zA-Z_][a-zA-Z0-9_]*$/, 'must be a Prometheus label name')
          .default('revision'),
        /** Scrape interval of the serving pods; analysis waits one after its probe load. */
        prometheusScrapeIntervalSeconds: z.coerce.number().int().min(0).max(300).default(15),
      })
      .strict()
      .prefault({}),
    knowledge: z
      .object({
        databaseUrl: z.string().optional(),
        embeddingsUrl: url.optional(),
        embeddingsModel: z.string().min(1).default('BAAI/bge-m3'),
        embeddingsApiKey: z.string().optional(),
      })
      .strict()
      .prefault({}),
    /** The OpenAI-compatible chat endpoint the CLI asks (`qwenops kb ask`) and its credentials. */
    llm: z
      .object({
        /** API root (…/v1) serving the chat model. */
        chatUrl: url.default('http://127.0.0.1:8000/v1'),
        chatModel: z.string().min(1).default('qwen-7b-chat'),
        /** Bearer token of the OpenAI-compatible endpoints the CLI calls (kb ask, loadtest). */
        apiKey: z.string().optional(),
      })
      .strict()
      .prefault({}),
    /**
     * What workflow input may make a worker touch (src/config/confinement.ts). Unset: in the
     * embedded (sandbox) stack the repository's bundled data dirs and the state dir, loopback
     * and the sandbox's own URLs; on Kubernetes nothing until the operator lists it.
     */
    confinement: z
      .object({
        promptRoots: z.array(z.string().min(1)).optional(),
        knowledgeRoots: z.array(z.string().min(1)).optional(),
        loadTestTargets: z.array(z.string().min(1)).optional(),
      })
      .strict()
      .prefault({}),
    /** base64 of 32 bytes; when set, workflow payloads are AES-256-GCM encrypted. */
    codecKey: z.string().optional(),
    metrics: z
      .object({
        /** host:port for the worker's Prometheus endpoint; empty disables it. */
        address: z.string().default('127.0.0.1:9464'),
      })
      .strict()
      .prefault({}),
    log: z
      .object({
        level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
      })
      .strict()
      .prefault({}),
    /**
     * OpenTelemetry tracing (src/observability/tracing.ts, README "Tracing"), from the standard
     * OTEL_* variables. Off unless an exporter is named or an OTLP endpoint is set.
     */
    tracing: z
      .object({
        /** OTEL_TRACES_EXPORTER (comma-separated); "none" turns tracing off. Unset: otlp when an endpoint is set. */
        exporters: z.array(z.enum(['otlp', 'console', 'none'])).optional(),
        /** OTLP/HTTP base URL (http://collector:4318); traces go to <endpoint>/v1/traces. */
        endpoint: url.optional(),
        /** OTLP/HTTP traces URL, used as is (wins over `endpoint`). */
        tracesEndpoint: url.optional(),
        /** service.name instead of the process's own (qwenops-cli, qwenops-worker-cluster, ...). */
        serviceName: z.string().min(1).optional(),
        /** OTEL_SDK_DISABLED=true: no tracing whatever else is set. */
        disabled: z.boolean().default(false),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type QwenopsConfig = Omit<z.output<typeof configSchema>, 'confinement' | 'cluster'> & {
  cluster: z.output<typeof configSchema>['cluster'] & { sandboxTokenFile: string };
  /** Resolved: every list filled (defaults applied), roots absolute. */
  confinement: ConfinementPolicy;
};

/** Data directories bundled with the repository (sample knowledge base, evaluation sets). */
export const BUNDLED_DATA_DIRS = [
  path.join(repoRoot, 'samples'),
  path.join(repoRoot, 'jobs', 'qwenops_jobs', 'data'),
];

/**
 * Environment variable -> config path. Secret entries may only come from here. An empty
 * variable counts as unset, except where `emptyIsValue` says the empty string means
 * something (QWENOPS_METRICS_ADDRESS="" turns the worker's metrics endpoint off).
 */
export const ENV_MAP: ReadonlyArray<{ env: string; path: string; secret?: boolean; emptyIsValue?: boolean }> =
  [
    { env: 'QWENOPS_STATE_DIR', path: 'stateDir' },
    { env: 'QWENOPS_TEMPORAL_ADDRESS', path: 'temporal.address' },
    { env: 'QWENOPS_TEMPORAL_NAMESPACE', path: 'temporal.namespace' },
    { env: 'QWENOPS_TEMPORAL_UI_URL', path: 'temporal.uiUrl' },
    { env: 'QWENOPS_TEMPORAL_TLS', path: 'temporal.tls' },
    { env: 'QWENOPS_TEMPORAL_API_KEY', path: 'temporal.apiKey', secret: true },
    { env: 'QWENOPS_TEMPORAL_TLS_CERT', path: 'temporal.tlsCertFile' },
    { env: 'QWENOPS_TEMPORAL_TLS_KEY', path: 'temporal.tlsKeyFile' },
    { env: 'QWENOPS_TEMPORAL_TLS_CA', path: 'temporal.tlsCaFile' },
    { env: 'QWENOPS_TEMPORAL_TLS_SERVER_NAME', path: 'temporal.tlsServerName' },
    { env: 'QWENOPS_WORKER_DEPLOYMENT', path: 'temporal.deploymentName' },
    { env: 'QWENOPS_BUILD_ID', path: 'temporal.buildId' },
    { env: 'QWENOPS_CLUSTER', path: 'cluster.kind' },
    { env: 'QWENOPS_SANDBOX_URL', path: 'cluster.sandboxUrl' },
    { env: 'QWENOPS_KUBECONFIG', path: 'cluster.kubeconfig' },
    { env: 'QWENOPS_JOB_NAMESPACE', path: 'cluster.jobNamespace' },
    { env: 'QWENOPS_VALIDATION_NAMESPACE', path: 'cluster.validationNamespace' },
    { env: 'QWENOPS_JOB_IMAGE', path: 'cluster.jobImage' },
    { env: 'QWENOPS_JOB_TEMPLATES_DIR', path: 'cluster.jobTemplatesDir' },
    { env: 'QWENOPS_ROLLOUT_LEASE_SECONDS', path: 'cluster.rolloutLeaseSeconds' },
    { env: 'QWENOPS_SANDBOX_TOKEN_FILE', path: 'cluster.sandboxTokenFile' },
    { env: 'QWENOPS_STORE', path: 'store.kind' },
    { env: 'QWENOPS_STORE_DIR', path: 'store.dir' },
    { env: 'QWENOPS_S3_ENDPOINT', path: 'store.endpoint' },
    { env: 'QWENOPS_S3_BUCKET', path: 'store.bucket' },
    { env: 'QWENOPS_S3_REGION', path: 'store.region' },
    { env: 'QWENOPS_S3_ACCESS_KEY', path: 'store.accessKey', secret: true },
    { env: 'QWENOPS_S3_SECRET_KEY', path: 'store.secretKey', secret: true },
    { env: 'QWENOPS_S3_CREDENTIALS_SECRET', path: 'store.credentialsSecret' },
    { env: 'QWENOPS_HUB', path: 'hub.kind' },
    { env: 'QWENOPS_HUB_ENDPOINT', path: 'hub.endpoint' },
    { env: 'QWENOPS_HUB_TOKEN', path: 'hub.token', secret: true },
    { env: 'QWENOPS_HUB_MIRROR_DIR', path: 'hub.mirrorDir' },
    { env: 'QWENOPS_ANALYSIS', path: 'analysis.provider' },
    { env: 'QWENOPS_PROMETHEUS_URL', path: 'analysis.prometheusUrl' },
    { env: 'QWENOPS_PROMETHEUS_REVISION_LABEL', path: 'analysis.prometheusRevisionLabel' },
    { env: 'QWENOPS_PROMETHEUS_SCRAPE_INTERVAL_SECONDS', path: 'analysis.prometheusScrapeIntervalSeconds' },
    { env: 'QWENOPS_DATABASE_URL', path: 'knowledge.databaseUrl', secret: true },
    { env: 'QWENOPS_EMBEDDINGS_URL', path: 'knowledge.embeddingsUrl' },
    { env: 'QWENOPS_EMBEDDINGS_MODEL', path: 'knowledge.embeddingsModel' },
    { env: 'QWENOPS_EMBEDDINGS_API_KEY', path: 'knowledge.embeddingsApiKey', secret: true },
    { env: 'QWENOPS_CHAT_URL', path: 'llm.chatUrl' },
    { env: 'QWENOPS_CHAT_MODEL', path: 'llm.chatModel' },
    { env: 'QWENOPS_LLM_API_KEY', path: 'llm.apiKey', secret: true },
    { env: 'QWENOPS_CODEC_KEY', path: 'codecKey', secret: true },
    { env: 'QWENOPS_METRICS_ADDRESS', path: 'metrics.address', emptyIsValue: true },
    { env: 'QWENOPS_LOG_LEVEL', path: 'log.level' },
    // OpenTelemetry's standard variables (headers, e.g. a collector token, are read by the
    // exporter from OTEL_EXPORTER_OTLP_HEADERS itself and never enter the config).
    { env: 'OTEL_TRACES_EXPORTER', path: 'tracing.exporters' },
    { env: 'OTEL_EXPORTER_OTLP_ENDPOINT', path: 'tracing.endpoint' },
    { env: 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', path: 'tracing.tracesEndpoint' },
    { env: 'OTEL_SERVICE_NAME', path: 'tracing.serviceName' },
    { env: 'OTEL_SDK_DISABLED', path: 'tracing.disabled' },
    // Lists: paths separated by ":" (path.delimiter), targets by ",".
    { env: 'QWENOPS_PROMPT_ROOTS', path: 'confinement.promptRoots' },
    { env: 'QWENOPS_KNOWLEDGE_ROOTS', path: 'confinement.knowledgeRoots' },
    { env: 'QWENOPS_LOADTEST_TARGETS', path: 'confinement.loadTestTargets' },
  ];

const SECRET_PATHS = new Set(ENV_MAP.filter((e) => e.secret).map((e) => e.path));

function setPath(target: Record<string, unknown>, dotted: string, value: unknown): void {
  const parts = dotted.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) {
    const next = node[part];
    if (next === undefined || typeof next !== 'object' || next === null) node[part] = {};
    node = node[part] as Record<string, unknown>;
  }
  node[parts[parts.length - 1] as string] = value;
}

function getPath(source: Record<string, unknown>, dotted: string): unknown {
  let node: unknown = source;
  for (const part of dotted.split('.')) {
    if (node === undefined || node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

function coerceEnv(pathName: string, raw: string): unknown {
  if (pathName === 'temporal.tls') return raw === 'true' || raw === '1';
  if (pathName === 'tracing.disabled') return raw.trim().toLowerCase() === 'true';
  if (pathName === 'tracing.exporters') {
    return raw
      .split(',')
      .map((e) => e.trim().toLowerCase())
      .filter((e) => e !== '');
  }
  if (pathName === 'confinement.promptRoots' || pathName === 'confinement.knowledgeRoots') {
    return raw.split(path.delimiter).filter((p) => p.trim() !== '');
  }
  if (pathName === 'confinement.loadTestTargets') {
    return raw
      .split(',')
      .map((t) => t.trim())
      .filter((t) => t !== '');
  }
  return raw;
}

export interface LoadConfigOptions {
  env?: NodeJS.ProcessEnv;
  /** Config file; defaults to $QWENOPS_CONFIG when set. */
  file?: string;
  /** Highest-precedence overrides (CLI flags, tests). */
  overrides?: Record<string, unknown>;
}

/** Builds the config; throws InputValidationError naming every bad field (with its env name). */
export function loadConfig(options: LoadConfigOptions = {}): QwenopsConfig {
  const env = options.env ?? process.env;
  const raw: Record<string, unknown> = {};
  const file = options.file ?? env.QWENOPS_CONFIG;
  if (file) {
    let parsed: unknown;
    try {
      // Size-capped, strict UTF-8, YAML alias limit, no __proto__/constructor/prototype keys.
      parsed = readStructuredFile(file, { subject: `config file ${file}`, format: 'yaml' });
    } catch (err) {
      if (err instanceof InputValidationError) throw err;
      throw new InputValidationError(`config file ${file}`, [{ path: '', message: (err as Error).message }]);
    }
    if (parsed !== null && parsed !== undefined) {
      if (typeof parsed !== 'object' || Array.isArray(parsed)) {
        throw new InputValidationError(`config file ${file}`, [{ path: '', message: 'must be a mapping' }]);
      }
      const secretsInFile = [...SECRET_PATHS].filter(
        (p) => getPath(parsed as Record<string, unknown>, p) !== undefined,
      );
      if (secretsInFile.length > 0) {
        throw new InputValidationError(
          `config file ${file}`,
          secretsInFile.map((p) => ({
            path: p,
            message: `secrets are read from the environment only (${ENV_MAP.find((e) => e.path === p)?.env})`,
          })),
        );
      }
      Object.assign(raw, parsed);
    }
  }
  for (const { env: name, path: p, emptyIsValue } of ENV_MAP) {
    const value = env[name];
    if (value !== undefined && (value !== '' || emptyIsValue)) setPath(raw, p, coerceEnv(p, value));
  }
  for (const [p, value] of Object.entries(options.overrides ?? {})) setPath(raw, p, value);
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const issues = issuesFromZod(result.error).map((issue) => {
      const envName = ENV_MAP.find((e) => e.path === issue.path)?.env;
      return envName ? { ...issue, path: `${issue.path} (${envName})` } : issue;
    });
    throw new InputValidationError('configuration', issues);
  }
  const parsed = result.data;
  // Relative directories are relative to where the process started.
  const stateDir = path.resolve(parsed.stateDir);
  const embedded = parsed.cluster.kind === 'sandbox';
  const roots = (list: string[] | undefined, fallback: string[]) =>
    (list ?? fallback).map((p) => path.resolve(p));
  const config: QwenopsConfig = {
    ...parsed,
    stateDir,
    cluster: {
      ...parsed.cluster,
      sandboxTokenFile: path.resolve(
        parsed.cluster.sandboxTokenFile ?? path.join(stateDir, 'sandbox', 'api-token'),
      ),
    },
    store: { ...parsed.store, dir: path.resolve(parsed.store.dir) },
    hub: { ...parsed.hub, mirrorDir: path.resolve(parsed.hub.mirrorDir) },
    confinement: {
      promptRoots: roots(parsed.confinement.promptRoots, embedded ? [...BUNDLED_DATA_DIRS, stateDir] : []),
      knowledgeRoots: roots(
        parsed.confinement.knowledgeRoots,
        embedded ? [...BUNDLED_DATA_DIRS, stateDir] : [],
      ),
      loadTestTargets:
        parsed.confinement.loadTestTargets ??
        (embedded
          ? [...new Set(['127.0.0.1', 'localhost', '[::1]', new URL(parsed.cluster.sandboxUrl).hostname])]
          : []),
    },
  };
  return config;
}

/** A copy safe to log: every secret replaced by "***" (or left absent). */
export function redactConfig(config: QwenopsConfig): Record<string, unknown> {
  const copy = structuredClone(config) as unknown as Record<string, unknown>;
  for (const p of SECRET_PATHS) {
    if (getPath(copy, p) !== undefined) setPath(copy, p, '***');
  }
  return copy;
}
