/**
 * Reloading the configuration in a running process (what SIGHUP does): cards, TTLs, placeholders,
 * upstreams and their limits change at once; an invalid configuration is refused with
 * check-config's messages and the old one stays; restart-only fields are named and kept.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { cardsReply, textOf } from '../helpers/fake-upstream.js';
import { cardsBody, cleanupProxies, eventually, LogSink, postCards, startTestProxy, startTestUpstream, testConfig } from '../helpers/harness.js';
import { configSecrets } from '../../src/config/secrets.js';
import { createLogger, LogSecrets } from '../../src/observability/logger.js';

afterEach(cleanupProxies);

/** `config` with `changes` merged into its JSON form, validated again. */
function changed(config: Config, changes: (raw: any) => void): Config {
  const raw = JSON.parse(JSON.stringify(config));
  changes(raw);
  return parseConfig(raw, {});
}

describe('configuration reload', () => {
  it("changes a card's TTL and placeholder, adds a card on a new upstream, and applies new upstream limits", async () => {
    const legacy = await startTestUpstream();
    const other = await startTestUpstream((call) => ({ body: cardsReply(call, { text: (key) => `${key} from other` }) }));
    // A budget that cold loads meet even on a loaded machine.
    const config = testConfig(legacy.url, { budgetMs: 3000, defaults: { refreshAhead: 0 }, cards: { alpha: { upstream: 'legacy', ttlSeconds: 100 } } });
    const proxy = await startTestProxy(config);

    const before = await postCards(proxy, cardsBody(['alpha'], 'c_1'));
    expect(before.body.cards).toEqual([{ key: 'alpha', timeToLiveSeconds: 100, components: [{ componentText: { text: 'alpha for c_1' } }] }]);

    const next = changed(config, (raw) => {
      raw.cards.alpha = { upstream: 'legacy', ttlSeconds: 7, placeholder: [{ componentText: { text: 'Reloaded placeholder' } }] };
      raw.cards.gamma = { upstream: 'other' };
      raw.upstreams.other = { url: other.url, timeoutMs: 3000, concurrency: 1 };
    });
    const result = await proxy.reload(() => next);
    expect(result).toEqual({ config: 'reloaded', tls: true });
    const line = proxy.logs.find('configuration reloaded')[0]!;
    expect(line.applied).toEqual(['upstreams', 'cards']);
    expect(line.needRestart).toEqual([]);
    expect(line.restartOnly).toEqual(['listen', 'redis', 'budgetMs', 'admin', 'events', 'worker', 'nearCache']);

    const after = await postCards(proxy, cardsBody(['alpha', 'gamma'], 'c_2'));
    expect(after.status).toBe(200);
    expect(after.body.cards.map((c: { key: string; timeToLiveSeconds: number }) => [c.key, c.timeToLiveSeconds, textOf(c)])).toEqual([
      ['alpha', 7, 'alpha for c_2'],
      ['gamma', 300, 'gamma from other'],
    ]);
    expect(other.calls.map((c) => c.keys)).toEqual([['gamma']]);

    // The new placeholder is what a slow load now shows.
    legacy.setHandler((call) => ({ delayMs: 5000, body: cardsReply(call) }));
    const slow = await postCards(proxy, cardsBody(['alpha'], 'c_3'));
    expect(textOf(slow.body.cards[0])).toBe('Reloaded placeholder');

    // The new upstream's concurrency (1) holds: three cold customers at once, one call at a time.
    other.setHandler((call) => ({ delayMs: 150, body: cardsReply(call) }));
    await Promise.all(['c_4', 'c_5', 'c_6'].map((id) => postCards(proxy, cardsBody(['gamma'], id))));
    await eventually(() => other.calls.length === 4, 5000, 'three more calls to the new upstream');
    expect(other.maxInFlight).toBe(1);
  });

  it('refuses an invalid configuration with the messages of check-config and keeps the one in use', async () => {
    const legacy = await startTestUpstream();
    const config = testConfig(legacy.url, { defaults: { refreshAhead: 0 }, cards: { alpha: { upstream: 'legacy', ttlSeconds: 100 } } });
    const proxy = await startTestProxy(config);
    let thrown: ConfigError | undefined;
    const result = await proxy.reload(() => {
      try {
        return changed(config, (raw) => {
          raw.cards.alpha.upstream = 'nowhere';
          raw.cards.alpha.ttlSeconds = 0;
        });
      } catch (err) {
        thrown = err as ConfigError;
        throw err;
      }
    });
    expect(result.config).toBe('refused');
    expect(thrown?.issues).toEqual([
      'cards.alpha.ttlSeconds: Too small: expected number to be >=1',
      'cards.alpha.upstream: unknown upstream "nowhere" (configured: legacy)',
    ]);
    const line = proxy.logs.find('configuration not reloaded: keeping the one in use')[0]!;
    expect(line.level).toBe(50);
    expect(line.issues).toEqual(thrown!.issues);
    expect((await postCards(proxy, cardsBody(['alpha'], 'c_1'))).body.cards[0].timeToLiveSeconds).toBe(100);
  });

  it("scrubs a reloaded configuration's new secrets from every log line from then on", async () => {
    const legacy = await startTestUpstream();
    const config = testConfig(legacy.url);
    const logs = new LogSink();
    const secrets = new LogSecrets(configSecrets(config));
    const log = createLogger({ level: 'debug', destination: logs, secrets });
    const proxy = await startTestProxy(config, 'start', { log, secrets });
    const token = 'rotated-upstream-token-7f3a';
    // As a library might write it: in an error message.
    const leak = () => log.warn({ err: new Error(`upstream refused Bearer ${token}`) }, 'upstream error');
    leak();
    expect(logs.raw.at(-1)).toContain(token); // not a secret of the configuration yet
    const result = await proxy.reload(() =>
      changed(config, (raw) => {
        raw.upstreams.legacy.headers = { Authorization: `Bearer ${token}` };
        raw.plain.signingSecrets = ['rotated-signing-secret-91c2'];
      }),
    );
    expect(result.config).toBe('reloaded');
    leak();
    log.info({ detail: 'signature with rotated-signing-secret-91c2' }, 'something echoed');
    const after = logs.raw.slice(logs.raw.findIndex((l) => l.includes('configuration reloaded')));
    expect(after.length).toBeGreaterThanOrEqual(3);
    expect(after.filter((l) => l.includes(token) || l.includes('rotated-signing-secret-91c2'))).toEqual([]);
    expect(after.filter((l) => l.includes('[redacted]'))).toHaveLength(2);
  });

  it('names restart-only changes and keeps their running values', async () => {
    const legacy = await startTestUpstream();
    const config = testConfig(legacy.url);
    const proxy = await startTestProxy(config);
    await proxy.reload(() =>
      changed(config, (raw) => {
        raw.listen.port = 1;
        raw.budgetMs = 2000;
        raw.defaults = { ...raw.defaults, ttlSeconds: 42 };
      }),
    );
    const line = proxy.logs.find('configuration reloaded; changes to restart-only fields wait for a restart')[0]!;
    expect(line.level).toBe(40);
    expect(line.needRestart).toEqual(['listen', 'budgetMs']);
    expect(line.applied).toEqual(['defaults']);
    expect(proxy.live.config.budgetMs).toBe(1000);
    expect(proxy.live.config.listen.port).toBe(0);
    expect(proxy.live.policies.get('alpha')?.ttlSeconds).toBe(42);
  });
});
