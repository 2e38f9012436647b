/**
 * The operator commands need only what they use: Redis and the card list. Secrets for upstreams,
 * Plain and the admin API may be absent from their environment (a server still refuses to start
 * without them). `invalidate --card-key` refuses keys that are not configured.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/run-cli.js';

let dir: string;
let file: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cardproxy-operator-'));
  file = join(dir, 'config.json');
  writeFileSync(
    file,
    JSON.stringify({
      redis: { keyPrefix: `test-op-${randomUUID().slice(0, 8)}` },
      plain: { signingSecrets: ['${PLAIN_SIGNING_SECRET}'] },
      admin: { token: '${CARDPROXY_ADMIN_TOKEN}' },
      upstreams: { billing: { url: '${BILLING_URL}', headers: { Authorization: 'Bearer ${BILLING_TOKEN}' }, signingSecret: '${BILLING_SECRET}' } },
      cards: { plan: { upstream: 'billing' }, usage: { upstream: 'billing' } },
    }),
  );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('operator commands', () => {
  it('run without the secrets of upstreams, Plain and the admin API in the environment', async () => {
    const [list, events] = await Promise.all([runCli(['ttl', 'list', '--json', '--config', file]), runCli(['events', '--json', '--config', file])]);
    expect(list.code, list.stderr).toBe(0);
    expect((JSON.parse(list.stdout) as { cards: Array<{ key: string }> }).cards.map((c) => c.key)).toEqual(['plan', 'usage']);
    expect(events.code, events.stderr).toBe(0);
    expect(JSON.parse(events.stdout)).toEqual({ events: [] });
    // The server does need them, and names each.
    const check = await runCli(['check-config', file]);
    expect(check.code).toBe(2);
    for (const name of ['PLAIN_SIGNING_SECRET', 'CARDPROXY_ADMIN_TOKEN', 'BILLING_URL', 'BILLING_TOKEN', 'BILLING_SECRET']) {
      expect(check.stderr).toContain(`environment variable ${name} is not set`);
    }
  });

  it('refuses to invalidate card keys that are not configured', async () => {
    const typo = await runCli(['invalidate', '--customer-id', 'c_1', '--card-key', 'plan', '--card-key', 'plna', '--config', file]);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toBe('cardproxy invalidate: unknown card key "plna" (configured: plan, usage)\n');
    const ok = await runCli(['invalidate', '--customer-id', 'c_1', '--card-key', 'plan', '--config', file]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toBe('invalidated 0 cached cards\n');
  });
});
