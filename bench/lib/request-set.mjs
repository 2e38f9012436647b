/**
 * The `/cards` requests a load generator sends, signed like Plain does, from a counter shared by
 * all connections:
 *  - `customers.count`: request n asks for customer `prefix + ((offset + n) % count)` (warm pool);
 *    without it every request asks for a new customer `prefix + (offset + n)` (cold, distinct);
 *  - `threads`: request n carries thread `threads.prefix + n`, so no (customer, thread) pair ever
 *    repeats (a repeated single-key request within its TTL would be a manual reload, SPEC 5.6).
 * With `prebuilt: N`, the first N requests (bodies, headers and signatures) are built and signed
 * up front, so that the generator's own work per request during a run is only sending it; past N
 * they are built on demand.
 */
import { sign } from './util.mjs';

/** @returns `next()`: the next request's `{ body, headers }`; `built()`: how many bodies were made */
export function requestSet({ workspaceId, secret, keys, customers, threads, prebuilt = 0 }) {
  const keysJson = JSON.stringify(keys);
  let n = 0;
  const body = () => {
    const i = n++;
    const index = customers.count ? (customers.offset + i) % customers.count : customers.offset + i;
    const id = `${customers.prefix}${index}`;
    const thread = threads ? `{"id":"${threads.prefix}${i}","externalId":null}` : 'null';
    return `{"cardKeys":${keysJson},"customer":{"id":"${id}","email":"${id}@example.com","externalId":"ext-${id}"},"thread":${thread},"tenant":null}`;
  };
  const signed = () => {
    const b = body();
    return {
      body: b,
      headers: {
        'content-type': 'application/json',
        'plain-workspace-id': workspaceId,
        'plain-request-signature': sign(secret, b),
      },
    };
  };
  const ready = Array.from({ length: prebuilt }, signed);
  let next = 0;
  return {
    prebuilt: ready.length,
    next: () => (next < ready.length ? ready[next++] : signed()),
    built: () => n,
  };
}
