import path from 'node:path';
import type { KubernetesObject } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../../../src/runtime/entrypoints.js';
import {
  applyObject,
  type KubeControlPlane,
  kustomizeBuild,
  readYamlDocuments,
  startKubeControlPlane,
} from '../../support/kube.js';
import { K8S_DIR, SERVING_NAMESPACE, VALIDATION_NAMESPACE } from './environment.js';

// k8s/istio rendered by kustomize and sent to a real kube-apiserver as a server-side dry
// run (fieldValidation=Strict), with Istio's security.istio.io CRDs installed. The CRDs in
// test/fixtures/istio are minimal hand-written stand-ins for Istio's (see the README there):
// their structural schemas hold the spec fields and enums the policies use, which the
// negative controls below show the dry run enforces.

const ISTIO_CRDS = [
  'security.istio.io_peerauthentications.yaml',
  'security.istio.io_authorizationpolicies.yaml',
].map((file) => path.join(repoRoot, 'test', 'fixtures', 'istio', file));

let plane: KubeControlPlane;

beforeAll(async () => {
  plane = await startKubeControlPlane({ installKServeCrds: false });
  await plane.apply(ISTIO_CRDS.flatMap((file) => readYamlDocuments(file)));
  const namespaces = readYamlDocuments(path.join(K8S_DIR, 'base', 'namespaces.yaml'));
  for (const ns of namespaces) await applyObject(plane, ns);
});

afterAll(async () => {
  await plane?.stop();
});

const rejection = (object: KubernetesObject) =>
  applyObject(plane, object, { dryRun: true }).then(
    () => undefined,
    (err: Error & { code?: number }) => ({ code: err.code, message: err.message }),
  );

describe('k8s/istio on kube-apiserver, server-side dry run', () => {
  it('accepts the PeerAuthentication and the AuthorizationPolicy, without warnings', async () => {
    const objects = await kustomizeBuild(path.join(K8S_DIR, 'istio'));
    expect(objects.map((o) => `${o.kind}/${o.metadata?.namespace}/${o.metadata?.name}`).sort()).toEqual([
      `AuthorizationPolicy/${SERVING_NAMESPACE}/qwenops-serving-callers`,
      `AuthorizationPolicy/${VALIDATION_NAMESPACE}/qwenops-validation-callers`,
      `PeerAuthentication/${SERVING_NAMESPACE}/default`,
      `PeerAuthentication/${VALIDATION_NAMESPACE}/default`,
    ]);
    for (const object of objects) {
      expect(object.metadata?.labels?.['app.kubernetes.io/part-of']).toBe('qwenops');
      const response = await applyObject(plane, object, { dryRun: true });
      expect(response.warnings, `${object.kind}`).toEqual([]);
      // The dry run returns the object as it would be stored: nothing pruned by the schema.
      expect((response.body as { spec: unknown }).spec).toEqual((object as { spec?: unknown }).spec);
    }
  });

  it('refuses a misspelt field and a value outside the enums (negative controls)', async () => {
    const [pa] = readYamlDocuments(path.join(K8S_DIR, 'istio', 'peer-authentication.yaml'));
    const [ap] = readYamlDocuments(path.join(K8S_DIR, 'istio', 'authorization-policy.yaml'));
    const withSpec = (o: KubernetesObject | undefined, spec: unknown) => ({
      ...(o as KubernetesObject),
      spec,
    });

    const badMode = await rejection(withSpec(pa, { mtls: { mode: 'STRICTLY' } }));
    expect(badMode?.code).toBe(422);
    expect(badMode?.message).toMatch(/spec\.mtls\.mode/);

    const unknownField = await rejection(withSpec(pa, { mtl: { mode: 'STRICT' } }));
    // Server-side apply's typed patch: fields outside the schema are refused, not pruned.
    expect(unknownField?.message).toMatch(/\.spec\.mtl: field not declared in schema/);

    const badAction = await rejection(withSpec(ap, { action: 'PERMIT', rules: [] }));
    expect(badAction?.message).toMatch(/spec\.action/);

    const misspeltSource = await rejection(
      withSpec(ap, { action: 'ALLOW', rules: [{ from: [{ source: { principal: ['x'] } }] }] }),
    );
    expect(misspeltSource?.message).toMatch(/\.source\.principal: field not declared in schema/);
  });
});
