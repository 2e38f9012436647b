/**
 * Upstream answers that can never succeed are integration errors (not retried, negatively
 * cached, SPEC 2.2 and 5): a body over the 8 MiB cap, a body that is not UTF-8, and a card whose
 * components exceed the per-card limit (that card only).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { cardsReply, textOf } from '../helpers/fake-upstream.js';
import { cardsBody, cleanupProxies, postCards, startTestProxy, startTestUpstream, testConfig, type TestProxy } from '../helpers/harness.js';
import { MAX_CARD_BYTES } from '../../src/core/plain-protocol.js';
import { DEFAULT_ERROR_COMPONENTS } from '../../src/config/card-policy.js';

afterEach(async () => {
  await cleanupProxies();
});

const ERROR_TEXT = textOf({ components: DEFAULT_ERROR_COMPONENTS });

async function failures(proxy: TestProxy): Promise<Array<Record<string, unknown>>> {
  const entries = await proxy.redis.xrange(`${proxy.config.redis.keyPrefix}:events`, '-', '+');
  return entries.filter(([, f]) => f[1] === 'card.refresh_failed').map(([, f]) => JSON.parse(f[3]!) as Record<string, unknown>);
}

describe('upstream answers that are integration errors', () => {
  it.each([
    ['a body over 8 MiB', () => ({ rawBody: `{"cards":[],"pad":"${'x'.repeat(8 * 1024 * 1024)}"}` }), 'upstream answered 200 with a body larger than 8388608 bytes'],
    ['a body over 8 MiB sent without a length', () => ({ rawBody: `{"cards":[],"pad":"${'x'.repeat(8 * 1024 * 1024)}"}`, chunked: true }), 'upstream answered 200 with a body larger than 8388608 bytes'],
    ['a body that is not UTF-8', () => ({ rawBody: Buffer.concat([Buffer.from('{"cards":[{"key":"alpha","components":[{"componentText":{"text":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}}]}]}')]) }), 'upstream answered 200 with a body that is not valid UTF-8'],
  ])('%s: one call, no retry, the error card with integrationErrorTtlSeconds, negatively cached', async (_name, reply, detail) => {
    const legacy = await startTestUpstream(reply as any);
    const proxy = await startTestProxy(testConfig(legacy.url, { budgetMs: 8000, cards: { alpha: { upstream: 'legacy', integrationErrorTtlSeconds: 120 } } }));
    const first = await postCards(proxy, cardsBody(['alpha']));
    expect(first.body.cards).toEqual([{ key: 'alpha', timeToLiveSeconds: 120, components: DEFAULT_ERROR_COMPONENTS }]);
    expect(await failures(proxy)).toMatchObject([{ cardKey: 'alpha', errorKind: 'integration', detail, status: 200 }]);
    await postCards(proxy, cardsBody(['alpha', 'beta'], 'c_1'));
    expect(legacy.calls.filter((c) => c.keys.includes('alpha'))).toHaveLength(1);
  });

  it('fails only the card whose components exceed the per-card limit, naming its size', async () => {
    // Components within every per-component limit, together just over the per-card one.
    const big = Array.from({ length: Math.ceil(MAX_CARD_BYTES / 9000) }, () => ({ componentText: { text: 'x'.repeat(9000) } }));
    const legacy = await startTestUpstream((call) => ({
      body: { cards: cardsReply(call).cards.map((card: any) => (card.key === 'alpha' ? { ...card, components: big } : card)) },
    }));
    const proxy = await startTestProxy(testConfig(legacy.url, { budgetMs: 8000 }));
    const res = await postCards(proxy, cardsBody(['alpha', 'beta']));
    const byKey = Object.fromEntries(res.body.cards.map((c: any) => [c.key, textOf(c)]));
    expect(byKey).toEqual({ alpha: ERROR_TEXT, beta: 'beta for c_1' });
    const size = Buffer.byteLength(JSON.stringify(big));
    expect(await failures(proxy)).toMatchObject([
      { cardKey: 'alpha', errorKind: 'integration', detail: `card "alpha" is ${size} bytes of components, more than the ${MAX_CARD_BYTES} allowed per card` },
    ]);
    expect(legacy.calls).toHaveLength(1);
  });
});
