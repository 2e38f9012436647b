/**
 * deploy/k8s: the Kubernetes manifests (kustomize) are usable as they are: the config they ship
 * validates, probes and Prometheus use the ops port, the grace periods outlast the budget (serve)
 * and the upstream time-out (worker), and every container has resource requests.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { parseYamlSubset } from '../helpers/deploy-parsing.js';

const DIR = fileURLToPath(new URL('../../deploy/k8s/', import.meta.url));
const yaml = (file: string) => parseYamlSubset(readFileSync(join(DIR, file), 'utf8'), file) as any;
const env = { REDIS_URL: 'redis://redis:6379', PLAIN_SIGNING_SECRET: 's', CARDPROXY_ADMIN_TOKEN: 't', LEGACY_TOKEN: 'l' };
const config = parseConfig(JSON.parse(readFileSync(join(DIR, 'cardproxy.json'), 'utf8')), env);

describe('deploy/k8s', () => {
  it('lists every manifest and generates the config map from cardproxy.json', () => {
    const kustomization = yaml('kustomization.yaml');
    expect(kustomization.resources).toEqual(['serve.yaml', 'worker.yaml', 'service.yaml']);
    expect(kustomization.configMapGenerator).toEqual([{ name: 'cardproxy-config', files: ['cardproxy.json'] }]);
  });

  it("ships a config with TLS, Plain's client certificate required and an ops port", () => {
    expect(config.listen.tls).toMatchObject({ clientCertificate: 'require', clientCaFiles: ['config/plain-mtls-ca.pem'] });
    expect(config.listen.opsPort).toBe(9090);
  });

  for (const [file, role, outlast] of [
    ['serve.yaml', 'serve', config.budgetMs],
    ['worker.yaml', 'worker', Math.max(...Object.values(config.upstreams).map((u) => u.timeoutMs))],
  ] as const) {
    it(`${file}: ${role} with probes on the ops port, resource requests and a grace period past ${outlast} ms`, () => {
      const spec = yaml(file).spec.template.spec;
      const [container] = spec.containers;
      expect(container.args).toEqual([role, '--config', '/etc/cardproxy/config/cardproxy.json']);
      const ops = container.ports.find((p: { name: string }) => p.name === 'ops');
      expect(Number(ops.containerPort)).toBe(config.listen.opsPort);
      expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'ops' });
      expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'ops' });
      expect(yaml(file).spec.template.metadata.annotations['prometheus.io/port']).toBe(String(config.listen.opsPort));
      expect(container.resources.requests.cpu).toMatch(/^\d+m$/);
      expect(container.resources.requests.memory).toMatch(/^\d+Mi$/);
      expect(Number(spec.terminationGracePeriodSeconds) * 1000).toBeGreaterThan(outlast);
      const mounts = container.volumeMounts.map((m: { mountPath: string }) => m.mountPath);
      expect(mounts).toContain('/etc/cardproxy/tls');
      expect(config.listen.tls!.certFile.startsWith('/etc/cardproxy/tls/')).toBe(true);
    });
  }

  it('exposes the TLS port of serve, passed through so that cardproxy sees the client certificate', () => {
    const service = yaml('service.yaml');
    expect(service.spec.selector['app.kubernetes.io/component']).toBe('serve');
    expect(service.spec.ports).toEqual([{ name: 'https', port: 443, targetPort: 'https' }]);
  });
});
