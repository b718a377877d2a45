import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { K8S_DIR, kustomizationObjects, type Manifest } from '../../support/k8s-manifests.js';

// k8s/istio: mutual TLS only in the serving namespace, and an ALLOW policy whose callers
// are the ingress gateway, the workers' ServiceAccount as k8s/base defines it (the one the
// Roles are bound to and the worker Deployments run as) and Knative's data plane, plus
// Prometheus on GET /metrics. Parsed from the kustomization's resources (the k8s tier
// dry-runs the kustomize rendering against the CRDs).

const istio = kustomizationObjects(path.join(K8S_DIR, 'istio'));
const base = kustomizationObjects(path.join(K8S_DIR, 'base'));
const SERVING_NAMESPACE = 'llm-prod';
const VALIDATION_NAMESPACE = 'llm-validation';
/** The serving namespace's policies (the checks below that read the first of a kind). */
const servingIstio = istio.filter((o) => o.metadata.namespace === SERVING_NAMESPACE);
const TRUST_DOMAIN = 'cluster.local';
const INGRESS_GATEWAY = `${TRUST_DOMAIN}/ns/istio-system/sa/istio-ingressgateway-service-account`;
const KNATIVE = `${TRUST_DOMAIN}/ns/knative-serving/sa/controller`;

const byKind = (objects: Manifest[], kind: string) => objects.filter((o) => o.kind === kind);

/** The ServiceAccount the worker Deployments run as; it must be the one the Roles are bound to. */
function workerServiceAccount(): { namespace: string; name: string } {
  const deployments = byKind(base, 'Deployment').filter(
    (d) => d.spec?.template?.metadata?.labels?.['app.kubernetes.io/component'] === 'worker',
  );
  expect(deployments.length).toBeGreaterThan(0);
  const names = new Set(
    deployments.map((d) => `${d.metadata.namespace}/${d.spec.template.spec.serviceAccountName}`),
  );
  expect(names.size).toBe(1);
  const [namespace, name] = ([...names][0] as string).split('/') as [string, string];
  expect(
    byKind(base, 'ServiceAccount').map((sa) => `${sa.metadata.namespace}/${sa.metadata.name}`),
  ).toContain(`${namespace}/${name}`);
  const bound = byKind(base, 'RoleBinding').flatMap((rb) =>
    (rb as Manifest & { subjects: Array<{ kind: string; name: string; namespace: string }> }).subjects
      .filter((s) => s.kind === 'ServiceAccount')
      .map((s) => `${s.namespace}/${s.name}`),
  );
  expect(bound.length).toBeGreaterThan(0);
  expect(new Set(bound)).toEqual(new Set([`${namespace}/${name}`]));
  return { namespace, name };
}

describe('k8s/istio', () => {
  it('holds a PeerAuthentication and an AuthorizationPolicy, both security.istio.io/v1, in llm-prod and llm-validation', () => {
    expect(istio.map((o) => `${o.apiVersion} ${o.kind} ${o.metadata.namespace}`).sort()).toEqual([
      `security.istio.io/v1 AuthorizationPolicy ${SERVING_NAMESPACE}`,
      `security.istio.io/v1 AuthorizationPolicy ${VALIDATION_NAMESPACE}`,
      `security.istio.io/v1 PeerAuthentication ${SERVING_NAMESPACE}`,
      `security.istio.io/v1 PeerAuthentication ${VALIDATION_NAMESPACE}`,
    ]);
    expect(byKind(base, 'Namespace').map((n) => n.metadata.name)).toEqual(
      expect.arrayContaining([SERVING_NAMESPACE, VALIDATION_NAMESPACE]),
    );
  });

  it("lets only the workers (and Knative's activator) call the safety gate's validation services", () => {
    const inValidation = istio.filter((o) => o.metadata.namespace === VALIDATION_NAMESPACE);
    expect(byKind(inValidation, 'PeerAuthentication')[0]?.spec).toEqual({ mtls: { mode: 'STRICT' } });
    const [policy] = byKind(inValidation, 'AuthorizationPolicy');
    const { namespace, name } = workerServiceAccount();
    expect(policy?.spec).toEqual({
      action: 'ALLOW',
      rules: [
        { from: [{ source: { principals: [`${TRUST_DOMAIN}/ns/${namespace}/sa/${name}`, KNATIVE] } }] },
      ],
    });
  });

  it('makes mutual TLS STRICT for every workload of the namespace, with no port exempted', () => {
    const [pa] = byKind(servingIstio, 'PeerAuthentication');
    expect(pa?.spec).toEqual({ mtls: { mode: 'STRICT' } });
  });

  it('allows the ingress gateway and the worker ServiceAccount of k8s/base', () => {
    const { namespace, name } = workerServiceAccount();
    expect({ namespace, name }).toEqual({ namespace: 'qwenops', name: 'qwenops-worker' });
    const [policy] = byKind(servingIstio, 'AuthorizationPolicy');
    expect(policy?.spec.action).toBe('ALLOW');
    expect(policy?.spec.selector).toBeUndefined(); // the whole namespace: every predictor
    const [clients] = (policy?.spec.rules ?? []) as Array<{
      from: Array<{ source: Record<string, string[]> }>;
    }>;
    expect(clients?.from).toEqual([
      { source: { principals: [INGRESS_GATEWAY, `${TRUST_DOMAIN}/ns/${namespace}/sa/${name}`] } },
    ]);
  });

  it('allows nobody else, except Knative data plane and Prometheus reading /metrics', () => {
    const [policy] = byKind(servingIstio, 'AuthorizationPolicy');
    const rules = policy?.spec.rules as Array<{
      from?: Array<{ source: Record<string, string[]> }>;
      to?: Array<{ operation: Record<string, string[]> }>;
      when?: unknown;
    }>;
    const principals = new Set<string>();
    for (const rule of rules) {
      // A rule without `from` matches every caller; negative matches (notPrincipals, ...)
      // would let in everything they do not name.
      expect(rule.from?.length, 'a rule without sources allows everyone').toBeGreaterThan(0);
      for (const { source } of rule.from ?? []) {
        for (const key of Object.keys(source)) expect(['principals', 'namespaces']).toContain(key);
        for (const p of source.principals ?? []) principals.add(p);
        if (source.namespaces) {
          // Only Prometheus, by namespace, and only GET /metrics.
          expect(source.namespaces).toEqual(['monitoring']);
          expect(rule.to).toEqual([{ operation: { methods: ['GET'], paths: ['/metrics'] } }]);
        }
      }
    }
    expect([...principals].sort()).toEqual(
      [INGRESS_GATEWAY, KNATIVE, `${TRUST_DOMAIN}/ns/qwenops/sa/qwenops-worker`].sort(),
    );
  });
});
