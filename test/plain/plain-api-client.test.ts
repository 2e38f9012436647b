/**
 * The GraphQL client against a fake Plain API over real HTTP: what it sends, how it reads
 * answers (zod-checked), and its one retry.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock, type Clock } from '../../src/core/clock.js';
import { PlainApiClient, type PlainApiClientOptions } from '../../src/plain/plain-api-client.js';
import { rateLimited, startFakePlainApi, FAKE_PLAIN_API_KEY, type FakePlainApi } from '../helpers/fake-plain-api.js';
import { freePort } from '../helpers/free-port.js';
import { cleanupProxies } from '../helpers/harness.js';

afterEach(cleanupProxies);

function client(plain: FakePlainApi | { url: string }, opts: Partial<PlainApiClientOptions> = {}): PlainApiClient {
  return new PlainApiClient({ url: plain.url, apiKey: FAKE_PLAIN_API_KEY, maxRequestsPerMinute: 100, clock: systemClock, retryDelayMs: 20, ...opts });
}

const RELOAD = { customerId: 'c_1', customerCardConfigId: 'cc_alpha', threadId: null };

describe('PlainApiClient', () => {
  it('reads the card configs, keeping only id and key', async () => {
    const plain = await startFakePlainApi({ configs: [{ id: 'cc_alpha', key: 'alpha' }] });
    expect(await client(plain).customerCardConfigs()).toEqual({ ok: true, value: [{ id: 'cc_alpha', key: 'alpha' }] });
    expect(plain.calls).toEqual([expect.objectContaining({ operation: 'configs', authorization: `Bearer ${FAKE_PLAIN_API_KEY}` })]);
  });

  it('sends the mutation with the input as variables and reads a MutationError as an error', async () => {
    const plain = await startFakePlainApi({ configs: [{ id: 'cc_alpha', key: 'alpha' }] });
    expect(await client(plain).reloadCustomerCardInstance({ ...RELOAD, threadId: 'th_1' })).toEqual({ ok: true, value: undefined });
    expect(plain.reloads).toEqual([{ ...RELOAD, threadId: 'th_1' }]);
    expect(await client(plain).reloadCustomerCardInstance({ ...RELOAD, customerCardConfigId: 'cc_gone' })).toEqual({
      ok: false,
      outcome: 'error',
      detail: 'reloadCustomerCardInstance: VALIDATION input_validation: Customer card config not found',
    });
    expect(plain.count('reload')).toBe(2); // not retried
  });

  it('refuses answers of the wrong shape, and GraphQL errors, without retrying', async () => {
    const plain = await startFakePlainApi();
    const api = client(plain);
    plain.reply(() => ({ body: { data: { customerCardConfigs: [{ id: 7, key: 'alpha' }] } } }));
    expect(await api.customerCardConfigs()).toEqual({ ok: false, outcome: 'error', detail: 'customerCardConfigs: unexpected answer shape' });
    plain.reply(() => ({ rawBody: '<html>gateway</html>' }));
    expect(await api.customerCardConfigs()).toEqual({ ok: false, outcome: 'error', detail: "Plain's API answered 200 with a body that is not a GraphQL response" });
    plain.reply(() => ({ body: { data: null, errors: [{ message: 'Missing permission: customerCardInstance:reload', extensions: { code: 'FORBIDDEN' } }] } }));
    expect(await api.reloadCustomerCardInstance(RELOAD)).toEqual({
      ok: false,
      outcome: 'error',
      detail: 'GraphQL error FORBIDDEN: Missing permission: customerCardInstance:reload',
    });
    expect(plain.calls).toHaveLength(3);
  });

  it('refuses an answer over 4 MiB, saying it was Plain\'s', async () => {
    const plain = await startFakePlainApi();
    plain.reply(() => ({ rawBody: 'x'.repeat(4 * 1024 * 1024 + 1) }));
    expect(await client(plain).customerCardConfigs()).toEqual({
      ok: false,
      outcome: 'error',
      detail: "request to Plain's API failed: Plain's API answered HTTP 200 with a body larger than 4194304 bytes",
    });
    expect(plain.calls).toHaveLength(2); // a failed read is tried once more, as a dropped connection is
  });

  it('gives each attempt its time-out and tries once more', async () => {
    const plain = await startFakePlainApi({ configs: [{ id: 'cc_alpha', key: 'alpha' }] });
    plain.reply(() => ({ delayMs: 1000, body: {} }));
    const started = Date.now();
    expect(await client(plain, { timeoutMs: 150 }).customerCardConfigs()).toEqual({
      ok: false,
      outcome: 'error',
      detail: "Plain's API did not answer within 150 ms",
    });
    expect(Date.now() - started).toBeLessThan(900);
    expect(plain.calls).toHaveLength(2);
  });

  it('lets many calls wait for their retry at once without a process warning (they share the close signal)', async () => {
    const plain = await startFakePlainApi({ configs: [{ id: 'cc_alpha', key: 'alpha' }] });
    // Every call's first attempt fails with a 503; the retry succeeds.
    const attempts = new Map<string, number>();
    plain.reply((call) => {
      const key = call.input?.customerId ?? '';
      const n = (attempts.get(key) ?? 0) + 1;
      attempts.set(key, n);
      return n === 1 ? { status: 503, rawBody: 'unavailable' } : undefined;
    });
    const api = client(plain, { retryDelayMs: 200 });
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on('warning', onWarning);
    try {
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => api.reloadCustomerCardInstance({ ...RELOAD, customerId: `c_${i}` })));
      expect(results).toEqual(Array.from({ length: 20 }, () => ({ ok: true, value: undefined })));
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off('warning', onWarning);
    }
    expect(plain.count('reload')).toBe(40);
    expect(warnings.map((w) => `${w.name}: ${w.message}`)).toEqual([]);
  });

  it("retries at a near 429 reset even when its wait ends before the clock reaches the reset", async () => {
    const plain = await startFakePlainApi({ configs: [{ id: 'cc_alpha', key: 'alpha' }] });
    const resetAt = Date.now() + 400;
    let limited = 0;
    plain.reply((call) => (call.operation === 'reload' && limited++ === 0 ? rateLimited(resetAt) : undefined));
    // From 200 ms before the reset on, this clock reads 100 ms behind real time: the 300-odd ms
    // wait for the reset ends while it still reads before the reset. So does Node's timer after a
    // busy event-loop turn (it counts from the time the turn began).
    const behind: Clock = { now: () => Date.now() - (Date.now() >= resetAt - 200 ? 100 : 0) };
    const result = await client(plain, { clock: behind }).reloadCustomerCardInstance(RELOAD);
    expect(result).toEqual({ ok: true, value: undefined });
    const [first, second] = plain.calls.filter((c) => c.operation === 'reload');
    expect(plain.count('reload')).toBe(2);
    expect(second!.at).toBeGreaterThanOrEqual(resetAt + 100 - 5);
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(300);
  });

  it('tries a refused connection once more, and a close cuts the wait before the retry', async () => {
    const closed = { url: `http://127.0.0.1:${await freePort()}/graphql/v1` };
    const result = await client(closed).customerCardConfigs();
    expect(result).toMatchObject({ ok: false, outcome: 'error' });
    expect(result.ok ? '' : result.detail).toMatch(/^request to Plain's API failed: /);

    const api = client(closed, { retryDelayMs: 10_000 });
    const pending = api.customerCardConfigs();
    setTimeout(() => api.close(), 100);
    const started = Date.now();
    expect(await pending).toMatchObject({ ok: false, outcome: 'error', detail: expect.stringMatching(/\(not retried: shutting down\)$/) });
    expect(Date.now() - started).toBeLessThan(2000);
  });
});
