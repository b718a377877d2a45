import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { KubeConfig, type KubernetesObject, KubernetesObjectApi } from '@kubernetes/client-node';
import { generate as generateCertificate } from 'selfsigned';
import YAML from 'yaml';
import { repoRoot } from '../../src/runtime/entrypoints.js';
import { freePort, waitForPort } from './ports.js';
import { type ManagedProcess, startProcess } from './processes.js';
import { toolPath } from './tools.js';

// A real Kubernetes control plane on loopback for tests, envtest style: etcd and
// kube-apiserver (built from k8s.io/kubernetes by scripts/setup/40-kube.sh), no kubelet,
// no controllers, RBAC on. Tests act as the controllers (they write status), and
// startFakeKubelet() answers the apiserver's log requests for pods the test "schedules".
// Identities: an admin token (system:masters) and real ServiceAccount tokens from the
// TokenRequest API, so RBAC is checked exactly as in a cluster.

export interface KubeControlPlane {
  readonly server: string;
  readonly dir: string;
  readonly admin: KubeConfig;
  readonly adminKubeconfigPath: string;
  /** PEM of the CA that signed the apiserver's (and the fake kubelet's) serving cert. */
  readonly caPem: string;
  readonly servingCert: { cert: string; key: string };
  /** A kubeconfig that authenticates as a ServiceAccount (TokenRequest token). */
  serviceAccountKubeConfig(
    namespace: string,
    name: string,
  ): Promise<{ kubeConfig: KubeConfig; path: string }>;
  /** Creates objects (CRDs wait until Established); AlreadyExists is fine. */
  apply(objects: KubernetesObject[]): Promise<void>;
  stopApiServer(): Promise<void>;
  startApiServer(): Promise<void>;
  apiServerOutput(): string;
  stop(): Promise<void>;
}

const KUBE_FIXTURES = path.join(repoRoot, 'test', 'fixtures', 'kserve');
export const KSERVE_CRD_FILES = [
  path.join(KUBE_FIXTURES, 'serving.kserve.io_inferenceservices.yaml'),
  path.join(KUBE_FIXTURES, 'serving.kserve.io_servingruntimes.yaml'),
];

/** Every document of a YAML file (or string), skipping empty ones. */
export function readYamlDocuments(fileOrText: string, isText = false): KubernetesObject[] {
  const text = isText ? fileOrText : readFileSync(fileOrText, 'utf8');
  return YAML.parseAllDocuments(text)
    .map((doc) => doc.toJS() as KubernetesObject | null)
    .filter((doc): doc is KubernetesObject => doc !== null && typeof doc === 'object');
}

function kubeConfigFor(server: string, caPem: string, user: string, token: string): KubeConfig {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: 'test', server, caData: Buffer.from(caPem).toString('base64') }],
    users: [{ name: user, token }],
    contexts: [{ name: user, cluster: 'test', user }],
    currentContext: user,
  });
  return kubeConfig;
}

async function waitReady(
  server: string,
  token: string,
  caPem: string,
  process: ManagedProcess,
): Promise<void> {
  const deadline = Date.now() + 90_000;
  let last = '';
  while (Date.now() < deadline) {
    if (process.child.exitCode !== null) {
      throw new Error(`kube-apiserver exited (${process.child.exitCode}):\n${process.output().slice(-4000)}`);
    }
    last = await new Promise<string>((resolve) => {
      const req = https.get(
        `${server}/readyz`,
        { ca: caPem, headers: { authorization: `Bearer ${token}` }, timeout: 5_000 },
        (res) => {
          let body = '';
          res.on('data', (c) => {
            body += c;
          });
          res.on('end', () =>
            resolve(res.statusCode === 200 ? 'ok' : `${res.statusCode} ${body.slice(0, 300)}`),
          );
        },
      );
      req.on('error', (err) => resolve(err.message));
      req.on('timeout', () => req.destroy(new Error('timeout')));
    });
    if (last === 'ok') return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`kube-apiserver not ready after 90 s (last: ${last}):\n${process.output().slice(-4000)}`);
}

export async function startKubeControlPlane(
  options: { installKServeCrds?: boolean } = {},
): Promise<KubeControlPlane> {
  const etcdBin = toolPath('etcd');
  const apiserverBin = toolPath('kube-apiserver');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'qwenops-kube-'));
  const certDir = path.join(dir, 'pki');
  mkdirSync(certDir);

  // A CA, and a serving cert for 127.0.0.1 it signed: the apiserver serves it, kubeconfigs
  // trust the CA, and the apiserver trusts it for the fake kubelet.
  const ca = await generateCertificate([{ name: 'commonName', value: 'qwenops-test-ca' }], {
    algorithm: 'sha256',
    keySize: 2048,
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, digitalSignature: true, critical: true },
    ],
  });
  const serving = await generateCertificate([{ name: 'commonName', value: 'kube-apiserver' }], {
    algorithm: 'sha256',
    keySize: 2048,
    ca: { key: ca.private, cert: ca.cert },
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 7, ip: '127.0.0.1' },
          { type: 2, value: 'localhost' },
          { type: 2, value: 'kubernetes.default.svc' },
        ],
      },
    ],
  });
  const caFile = path.join(certDir, 'ca.crt');
  const certFile = path.join(certDir, 'apiserver.crt');
  const keyFile = path.join(certDir, 'apiserver.key');
  writeFileSync(caFile, ca.cert);
  writeFileSync(certFile, serving.cert);
  writeFileSync(keyFile, serving.private, { mode: 0o600 });
  const saKeys = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  writeFileSync(path.join(certDir, 'sa.pub'), saKeys.publicKey);
  writeFileSync(path.join(certDir, 'sa.key'), saKeys.privateKey, { mode: 0o600 });
  const adminToken = randomBytes(24).toString('hex');
  writeFileSync(path.join(certDir, 'tokens.csv'), `${adminToken},admin,admin-uid,"system:masters"\n`, {
    mode: 0o600,
  });

  const etcdPort = await freePort();
  const peerPort = await freePort();
  const etcd = startProcess('etcd', [
    etcdBin,
    '--name=test',
    `--data-dir=${path.join(dir, 'etcd')}`,
    `--listen-client-urls=http://127.0.0.1:${etcdPort}`,
    `--advertise-client-urls=http://127.0.0.1:${etcdPort}`,
    `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
    `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
    `--initial-cluster=test=http://127.0.0.1:${peerPort}`,
    '--unsafe-no-fsync',
    '--log-level=warn',
  ]);
  await waitForPort(etcdPort, 30_000).catch((err: Error) => {
    throw new Error(`${err.message}\netcd said:\n${etcd.output().slice(-3000)}`);
  });

  const securePort = await freePort();
  const server = `https://127.0.0.1:${securePort}`;
  const apiserverArgs = [
    apiserverBin,
    `--etcd-servers=http://127.0.0.1:${etcdPort}`,
    `--secure-port=${securePort}`,
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    `--cert-dir=${certDir}`,
    `--tls-cert-file=${certFile}`,
    `--tls-private-key-file=${keyFile}`,
    `--token-auth-file=${path.join(certDir, 'tokens.csv')}`,
    '--authorization-mode=RBAC',
    '--service-cluster-ip-range=10.96.0.0/24',
    '--service-account-issuer=https://kubernetes.default.svc',
    `--service-account-key-file=${path.join(certDir, 'sa.pub')}`,
    `--service-account-signing-key-file=${path.join(certDir, 'sa.key')}`,
    // No controller-manager creates "default" ServiceAccounts; pods name theirs explicitly.
    '--disable-admission-plugins=ServiceAccount',
    `--kubelet-certificate-authority=${caFile}`,
    '--kubelet-preferred-address-types=InternalIP',
    '--endpoint-reconciler-type=none',
    '--enable-priority-and-fairness=false',
    '--profiling=false',
    '--v=0',
  ];
  let apiserver = startProcess('kube-apiserver', apiserverArgs);
  await waitReady(server, adminToken, ca.cert, apiserver);

  const admin = kubeConfigFor(server, ca.cert, 'admin', adminToken);
  const adminKubeconfigPath = path.join(dir, 'admin.kubeconfig');
  writeFileSync(adminKubeconfigPath, admin.exportConfig(), { mode: 0o600 });
  const paths = admin.makeApiClient(ResourcePaths);

  const apply = async (docs: KubernetesObject[]) => {
    for (const doc of docs) {
      try {
        await createObject({ server, admin, caPem: ca.cert, paths }, doc);
      } catch (err) {
        if ((err as { code?: number }).code !== 409) throw err;
      }
      if (doc.kind === 'CustomResourceDefinition') await waitEstablished(admin, doc.metadata?.name as string);
    }
  };

  const plane: KubeControlPlane = {
    server,
    dir,
    admin,
    adminKubeconfigPath,
    caPem: ca.cert,
    servingCert: { cert: serving.cert, key: serving.private },
    async serviceAccountKubeConfig(namespace, name) {
      const response = await fetchJson(
        plane,
        `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`,
        'POST',
        { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 7200 } },
      );
      const token = (response as { status?: { token?: string } }).status?.token;
      if (!token) throw new Error(`TokenRequest for ${namespace}/${name} returned no token`);
      const kubeConfig = kubeConfigFor(server, ca.cert, `${namespace}-${name}`, token);
      const file = path.join(dir, `${namespace}-${name}.kubeconfig`);
      writeFileSync(file, kubeConfig.exportConfig(), { mode: 0o600 });
      return { kubeConfig, path: file };
    },
    apply,
    async stopApiServer() {
      await apiserver.kill('SIGTERM');
    },
    async startApiServer() {
      if (apiserver.child.exitCode === null && apiserver.child.signalCode === null) return;
      await waitForPortFree(securePort);
      apiserver = startProcess('kube-apiserver', apiserverArgs);
      await waitReady(server, adminToken, ca.cert, apiserver);
    },
    apiServerOutput: () => apiserver.output(),
    async stop() {
      await apiserver.kill('SIGTERM');
      await etcd.kill('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
  if (options.installKServeCrds ?? true) {
    await apply(KSERVE_CRD_FILES.flatMap((file) => readYamlDocuments(file)));
  }
  return plane;
}

async function waitForPortFree(port: number): Promise<void> {
  const net = await import('node:net');
  for (let i = 0; i < 100; i++) {
    const free = await new Promise<boolean>((resolve) => {
      const probe = net.createServer();
      probe.once('error', () => resolve(false));
      probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
    });
    if (free) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Resource paths from API discovery. Manifests are sent as they are (raw JSON), not through
 * client-node's typed models, which drop fields they do not know (e.g. a CRD schema's
 * x-kubernetes-preserve-unknown-fields) and so would let a dry run pass what the file lacks.
 */
export class ResourcePaths extends KubernetesObjectApi {
  collection(object: KubernetesObject): Promise<string> {
    return this.specUriPath(structuredClone(object), 'create');
  }
  item(object: KubernetesObject): Promise<string> {
    return this.specUriPath(structuredClone(object), 'read');
  }
}

/** POSTs a manifest exactly as written; fieldValidation=Strict refuses unknown or duplicate fields. */
export async function createObject(
  plane: Pick<KubeControlPlane, 'server' | 'admin' | 'caPem'> & { paths?: ResourcePaths },
  object: KubernetesObject,
  options: { dryRun?: boolean } = {},
): Promise<ApiResponse> {
  const paths = plane.paths ?? plane.admin.makeApiClient(ResourcePaths);
  const query = new URLSearchParams({ fieldValidation: 'Strict' });
  if (options.dryRun) query.set('dryRun', 'All');
  const apiPath = `${await paths.collection(object)}?${query}`;
  const response = await requestJson(plane, apiPath, 'POST', object);
  if (response.status >= 300) {
    const message =
      (response.body as { message?: string } | undefined)?.message ?? JSON.stringify(response.body);
    throw Object.assign(
      new Error(
        `${object.kind} ${object.metadata?.namespace ?? ''}/${object.metadata?.name}: ${response.status} ${message}`,
      ),
      {
        code: response.status,
        body: response.body,
      },
    );
  }
  return response;
}

export interface ApiResponse {
  status: number;
  body: unknown;
  /** Warning headers (deprecated APIs, Pod Security "would violate" notices). */
  warnings: string[];
}

/**
 * Server-side apply (what `kubectl apply --server-side` sends), optionally as a dry run:
 * works whether or not the object exists; Strict field validation.
 */
export async function applyObject(
  plane: Pick<KubeControlPlane, 'server' | 'admin' | 'caPem'> & { paths?: ResourcePaths },
  object: KubernetesObject,
  options: { dryRun?: boolean } = {},
): Promise<ApiResponse> {
  const paths = plane.paths ?? plane.admin.makeApiClient(ResourcePaths);
  const query = new URLSearchParams({
    fieldValidation: 'Strict',
    fieldManager: 'qwenops-test',
    force: 'true',
  });
  if (options.dryRun) query.set('dryRun', 'All');
  const apiPath = `${await paths.item(object)}?${query}`;
  const response = await requestJson(
    plane,
    apiPath,
    'PATCH',
    JSON.stringify(object),
    'application/apply-patch+yaml',
  );
  if (response.status >= 300) {
    const message =
      (response.body as { message?: string } | undefined)?.message ?? JSON.stringify(response.body);
    throw Object.assign(
      new Error(
        `${object.kind} ${object.metadata?.namespace ?? ''}/${object.metadata?.name}: ${response.status} ${message}`,
      ),
      {
        code: response.status,
        body: response.body,
      },
    );
  }
  return response;
}

/** A raw call with the admin identity (for APIs the typed clients make awkward). */
export function requestJson(
  plane: Pick<KubeControlPlane, 'server' | 'admin' | 'caPem'>,
  apiPath: string,
  method: string,
  body?: unknown,
  contentType = 'application/json',
): Promise<ApiResponse> {
  const token = plane.admin.getCurrentUser()?.token;
  return new Promise((resolve, reject) => {
    const req = https.request(
      `${plane.server}${apiPath}`,
      {
        method,
        ca: plane.caPem,
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': contentType,
          accept: 'application/json',
        },
      },
      (res) => {
        let text = '';
        res.on('data', (c) => {
          text += c;
        });
        res.on('end', () => {
          const warning = res.headers.warning;
          const warnings = warning === undefined ? [] : Array.isArray(warning) ? warning : [warning];
          resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : undefined, warnings });
        });
      },
    );
    req.on('error', reject);
    if (body !== undefined) req.write(typeof body === 'string' ? body : JSON.stringify(body));
    req.end();
  });
}

/** requestJson that throws on a non-2xx answer (with `code` set to the HTTP status). */
export async function fetchJson(
  plane: Pick<KubeControlPlane, 'server' | 'admin' | 'caPem'>,
  apiPath: string,
  method: string,
  body?: unknown,
  contentType = 'application/json',
): Promise<unknown> {
  const response = await requestJson(plane, apiPath, method, body, contentType);
  if (response.status >= 300) {
    throw Object.assign(
      new Error(`${method} ${apiPath}: ${response.status} ${JSON.stringify(response.body).slice(0, 800)}`),
      {
        code: response.status,
        body: response.body,
      },
    );
  }
  return response.body;
}

async function waitEstablished(admin: KubeConfig, name: string): Promise<void> {
  const objects = KubernetesObjectApi.makeApiClient(admin);
  for (let i = 0; i < 100; i++) {
    const crd = (await objects.read({
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name },
    })) as KubernetesObject & { status?: { conditions?: Array<{ type: string; status: string }> } };
    if (crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`CRD ${name} not Established`);
}

/** Renders a kustomize directory with the cached kustomize binary. */
export async function kustomizeBuild(dir: string): Promise<KubernetesObject[]> {
  const proc = startProcess('kustomize', [toolPath('kustomize'), 'build', dir]);
  const code = await proc.exited;
  const output = proc.output();
  if (code !== 0) throw new Error(`kustomize build ${dir} failed (${code}):\n${output}`);
  return readYamlDocuments(output.replace(/^# Warning:.*$/gm, ''), true);
}
