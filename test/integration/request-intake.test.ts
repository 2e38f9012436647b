/**
 * A /cards budget counts from the request's arrival, which may be before the server reads it:
 * when its event loop is busy, a request waits in its socket, and its wait for refreshes must end
 * that much earlier (src/http/request-intake.ts). Here the test's own process is the busy server:
 * the request's bytes are in the kernel, then the event loop is held for 300 ms.
 */
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { cardsReply } from '../helpers/fake-upstream.js';
import { cardsBody, cleanupProxies, startTestProxy, startTestUpstream, testConfig } from '../helpers/harness.js';

afterEach(cleanupProxies);

/** POST /cards on a new connection; `busyMs`: hold the event loop that long once the bytes are sent. */
async function rawPost(url: string, body: unknown, busyMs: number): Promise<{ status: number; body: any; ms: number }> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const payload = Buffer.from(JSON.stringify(body));
  const head = `POST /cards HTTP/1.1\r\nhost: ${hostname}\r\ncontent-type: application/json\r\nplain-workspace-id: w_test\r\ncontent-length: ${payload.length}\r\nconnection: close\r\n\r\n`;
  const chunks: Buffer[] = [];
  const closed = new Promise<void>((resolve, reject) => socket.on('data', (c: Buffer) => chunks.push(c)).once('end', resolve).once('error', reject));
  const started = performance.now();
  socket.write(Buffer.concat([Buffer.from(head), payload]));
  while (performance.now() - started < busyMs) {
    // The server cannot read the request while this runs.
  }
  await closed;
  const ms = performance.now() - started;
  const text = Buffer.concat(chunks).toString();
  const split = text.indexOf('\r\n\r\n');
  return { status: Number(text.slice(9, 12)), body: JSON.parse(text.slice(split + 4)), ms };
}

describe('request intake', () => {
  it('a request that waited while the event loop was busy stops waiting that much earlier', async () => {
    // Every refresh outlasts the 2 s budget: each answer is the placeholder, sent when the wait ends.
    const legacy = await startTestUpstream((call) => ({ delayMs: 3000, body: cardsReply(call) }));
    const loading = [{ componentText: { text: 'Loading alpha' } }];
    const config = testConfig(legacy.url, { budgetMs: 2000, cards: { alpha: { upstream: 'legacy', placeholder: loading } } });
    const proxy = await startTestProxy(config, 'start', { listen: true });
    const queued = async () => (await proxy.metrics.registry.getSingleMetric('cardproxy_cards_queued_seconds_total')!.get()).values[0]!.value;

    // A process that has just started is busy; the bound is only as tight as the loop's idle time
    // shows (sampled every 100 ms). Start-up work is not what this test is about: let it end.
    await new Promise((resolve) => setTimeout(resolve, 250));
    // Read at once: the wait ends 5 % before the budget, at 1.9 s, less the few ms the loop was
    // busy before the read that the estimate cannot rule out.
    const prompt = await rawPost(proxy.url!, cardsBody(['alpha'], 'c_prompt'), 0);
    expect(prompt.status).toBe(200);
    expect(prompt.body.cards[0].components).toEqual(loading);
    expect(prompt.ms).toBeGreaterThanOrEqual(1800);
    expect(prompt.ms).toBeLessThan(2000);
    const before = await queued();
    expect(before).toBeLessThan(0.1);

    // Read 300 ms late: counted from the read, the answer would go out at 2.2 s; it goes out
    // within the budget, its wait having ended 300 ms earlier. The upper bound allows the 50 ms
    // that issue 13 allows a cold answer past the budget: this process has just held its own
    // event loop for 300 ms and runs beside the rest of the suite (2,006 ms was seen once), and
    // counted from the read the answer would still be 150 ms past it.
    const late = await rawPost(proxy.url!, cardsBody(['alpha'], 'c_late'), 300);
    expect(late.status).toBe(200);
    expect(late.body.cards[0].components).toEqual(loading);
    expect(late.ms).toBeGreaterThanOrEqual(1780);
    expect(late.ms).toBeLessThan(2050);
    const waited = (await queued()) - before;
    expect(waited).toBeGreaterThanOrEqual(0.3);
    expect(waited).toBeLessThan(0.42);
  });
});
