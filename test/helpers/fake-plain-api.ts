/**
 * A stand-in for Plain's GraphQL API at the network edge: a real `node:http` server (the fake
 * upstream's, closed by `cleanupProxies`) that checks the bearer key, answers the
 * `customerCardConfigs` query and the `reloadCustomerCardInstance` mutation as Plain does, and
 * can be told to answer errors, `401` or `429` with Plain's rate-limit headers.
 *
 * ```ts
 * const plain = await startFakePlainApi({ configs: [{ id: 'cc_alpha', key: 'alpha' }] });
 * plain.reply((call) => (call.operation === 'reload' ? rateLimited(Date.now() + 60_000) : undefined));
 * plain.onReload(async (input) => { … send the follow-up /cards request, as Plain does … });
 * await plain.waitForReloads(2);
 * ```
 */
import type { RecordedCall, Reply } from './fake-upstream.js';
import { eventually, startTestUpstream } from './harness.js';

export const FAKE_PLAIN_API_KEY = 'plainApiKey_fake-test-key-0123456789';

export interface ReloadInput {
  customerId: string;
  customerCardConfigId: string;
  threadId: string | null;
}

export interface PlainApiCall {
  readonly operation: 'configs' | 'reload' | 'other';
  readonly authorization: string | undefined;
  /** The mutation's input (reload calls only). */
  readonly input: ReloadInput | undefined;
  readonly at: number;
}

export interface FakePlainApi {
  readonly url: string;
  readonly apiKey: string;
  /** Every call, in arrival order (also those answered with an error). */
  readonly calls: PlainApiCall[];
  /** The inputs of the mutations answered successfully. */
  readonly reloads: ReloadInput[];
  /** Plain's customer card configs; may be changed between calls. */
  configs: Array<{ id: string; key: string }>;
  /** Overrides the answer to a call; `undefined` from the function keeps Plain's normal answer. */
  reply(override: ((call: PlainApiCall) => Reply | undefined) | undefined): void;
  /** Called after each successful mutation has been answered, as Plain's reload follows it. */
  onReload(hook: ((input: ReloadInput) => void | Promise<void>) | undefined): void;
  waitForReloads(n: number, timeoutMs?: number): Promise<void>;
  count(operation: PlainApiCall['operation']): number;
}

/** A `429` as Plain's API answers it. */
export function rateLimited(resetAt: number): Reply {
  return {
    status: 429,
    headers: { 'x-ratelimit-limit': '450', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': new Date(resetAt).toISOString() },
    body: { errors: [{ message: 'Too Many Requests - Rate limit exceeded', extensions: { code: 'RATE_LIMITED' } }] },
  };
}

export async function startFakePlainApi(opts: { configs?: Array<{ id: string; key: string }>; apiKey?: string } = {}): Promise<FakePlainApi> {
  const apiKey = opts.apiKey ?? FAKE_PLAIN_API_KEY;
  const calls: PlainApiCall[] = [];
  const reloads: ReloadInput[] = [];
  let override: ((call: PlainApiCall) => Reply | undefined) | undefined;
  let hook: ((input: ReloadInput) => void | Promise<void>) | undefined;
  const api = {
    configs: opts.configs ?? [],
  };

  const handle = (recorded: RecordedCall): Reply => {
    const query = typeof recorded.body?.query === 'string' ? (recorded.body.query as string) : '';
    const operation = query.includes('reloadCustomerCardInstance(') ? 'reload' : query.includes('customerCardConfigs') ? 'configs' : 'other';
    const input = operation === 'reload' ? (recorded.body?.variables?.input as ReloadInput | undefined) : undefined;
    const header = recorded.headers.authorization;
    const call: PlainApiCall = { operation, authorization: typeof header === 'string' ? header : undefined, input, at: recorded.at };
    calls.push(call);
    if (call.authorization !== `Bearer ${apiKey}`) {
      return { status: 401, body: { errors: [{ message: 'Unauthenticated', extensions: { code: 'UNAUTHENTICATED' } }] } };
    }
    const replaced = override?.(call);
    if (replaced) return replaced;
    switch (operation) {
      case 'configs':
        // Plain's type has more fields; a client must only rely on what it selected.
        return { body: { data: { customerCardConfigs: api.configs.map((c, order) => ({ ...c, order, title: c.key })) } } };
      case 'reload': {
        if (!input || !api.configs.some((c) => c.id === input.customerCardConfigId)) {
          const error = { message: 'Customer card config not found', type: 'VALIDATION', code: 'input_validation', fields: [] };
          return { body: { data: { reloadCustomerCardInstance: { customerCardInstance: null, error } } } };
        }
        reloads.push(input);
        if (hook) {
          const run = hook;
          setImmediate(() => void Promise.resolve(run(input)).catch(() => {}));
        }
        const instance = { __typename: 'CustomerCardInstanceLoading' };
        return { body: { data: { reloadCustomerCardInstance: { customerCardInstance: instance, error: null } } } };
      }
      default:
        return { status: 400, body: { errors: [{ message: 'unknown operation', extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } }] } };
    }
  };

  const server = await startTestUpstream(handle);
  return Object.assign(api, {
    url: server.url.replace(/\/cards$/, '/graphql/v1'),
    apiKey,
    calls,
    reloads,
    reply(next: ((call: PlainApiCall) => Reply | undefined) | undefined) {
      override = next;
    },
    onReload(next: ((input: ReloadInput) => void | Promise<void>) | undefined) {
      hook = next;
    },
    async waitForReloads(n: number, timeoutMs = 5000) {
      await eventually(() => reloads.length >= n, timeoutMs, `${n} reload(s) at the fake Plain API (got ${reloads.length})`);
    },
    count(operation: PlainApiCall['operation']) {
      return calls.filter((c) => c.operation === operation).length;
    },
  });
}
