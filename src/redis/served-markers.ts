/**
 * Served markers in Redis (see `src/core/served-marker.ts` for what they mean and how a value
 * reads). Two writers, both atomic per call:
 *
 * - the `/cards` answer records each answered card's marker (`markServedCommand`, sent through
 *   the card store's warm-path pipeline); a placeholder or error answer also puts its context on
 *   the card's awaiting-reload set, so that the worker that lands the card finds every context
 *   (every thread, for a customer-scope card) whose copy in Plain needs replacing;
 * - the worker that landed a card claims those contexts (`ServedMarkers.claimAwaitingReload`):
 *   the claim deletes the placeholder/error marker before the push reload is sent, since that
 *   reload discards Plain's copy. Plain's follow-up request then finds no copy recorded, so it is
 *   not taken for a manual reload and is answered from the cache. The claim also makes the push
 *   exactly-once across processes: two workers landing the same card cannot both claim a context.
 */
import type { ChainableCommander, Result } from 'ioredis';
import type { RedisClient } from './connections.js';
import type { CardRef } from '../core/card-ref.js';
import { encodeServedMarker, type ServedMarker } from '../core/served-marker.js';
import type { KeyLayout } from './keys.js';

/** One answered card: its marker key (`keys.served`), the context it was answered in, and what it was. */
export interface ServedEntry {
  readonly key: string;
  readonly workspaceId: string;
  readonly customerId: string;
  readonly contextThreadId: string | null;
  readonly cardKey: string;
  readonly marker: ServedMarker;
}

/** A context whose placeholder or error copy in Plain is to be replaced by a push reload. */
export interface ClaimedContext {
  readonly ref: CardRef;
  /** The thread of the request that got the placeholder or error (null outside a thread). */
  readonly contextThreadId: string | null;
}

/** The awaiting-reload set member of a context: JSON, so that no thread id can pass for "no thread". */
export function servedContextMember(contextThreadId: string | null): string {
  return JSON.stringify(contextThreadId);
}

function contextThreadOf(member: string): string | null | undefined {
  try {
    const value: unknown = JSON.parse(member);
    return value === null || typeof value === 'string' ? value : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Sets the markers of one answer and adds the placeholder/error contexts to their cards'
 * awaiting-reload sets, which live as long as their longest marker.
 */
const MARK_SERVED_LUA = `
-- KEYS[1..n]: served markers (n = ARGV[1]); KEYS[n+1..]: awaiting-reload sets.
-- ARGV[2..n+1]: marker values; ARGV[n+2..2n+1]: their PX; then per set: member, PX.
local n = tonumber(ARGV[1])
for i = 1, n do
  redis.call('SET', KEYS[i], ARGV[1 + i], 'PX', ARGV[1 + n + i])
end
local base = 1 + 2 * n
for j = n + 1, #KEYS do
  local at = base + 2 * (j - n - 1)
  local px = tonumber(ARGV[at + 2])
  redis.call('SADD', KEYS[j], ARGV[at + 1])
  if redis.call('PTTL', KEYS[j]) < px then redis.call('PEXPIRE', KEYS[j], px) end
end
return n
`;

/**
 * Claims the contexts of a landed card whose marker still says placeholder or error and has not
 * expired: deletes those markers and returns their members. Every member looked at leaves the
 * set (a marker since overwritten by a data answer, or expired, needs nothing).
 */
const CLAIM_AWAITING_RELOAD_LUA = `
-- KEYS[1]: a card's awaiting-reload set; KEYS[2..]: the served markers of the members ARGV[2..].
-- ARGV[1]: now (ms). A marker value is '<until>' (data) or '<until>:placeholder|error'.
local claimed = {}
local now = tonumber(ARGV[1])
for i = 2, #KEYS do
  redis.call('SREM', KEYS[1], ARGV[i])
  local value = redis.call('GET', KEYS[i])
  if value then
    local untilMs = string.match(value, '^(%d+):%a+$')
    if untilMs and tonumber(untilMs) > now then
      redis.call('DEL', KEYS[i])
      claimed[#claimed + 1] = ARGV[i]
    end
  end
end
return claimed
`;

/**
 * Queues the write of one answer's markers on `pipeline` (all keys share the customer's hash tag).
 * One command for all of them: a pipeline of SETs costs a Pipeline object and more bytes on every
 * warm request.
 */
export function markServedCommand(pipeline: ChainableCommander, keys: KeyLayout, entries: readonly ServedEntry[], now: number): void {
  const n = entries.length;
  const keyArgs: string[] = new Array<string>(n);
  const values: string[] = new Array<string>(2 * n + 1);
  values[0] = String(n);
  const sets: string[] = [];
  const setArgs: string[] = [];
  for (let i = 0; i < n; i++) {
    const entry = entries[i]!;
    const px = String(Math.max(1, entry.marker.until - now));
    keyArgs[i] = entry.key;
    values[1 + i] = encodeServedMarker(entry.marker);
    values[1 + n + i] = px;
    if (entry.marker.kind !== 'data') {
      sets.push(keys.awaitingReload(entry.workspaceId, entry.customerId, entry.cardKey));
      setArgs.push(servedContextMember(entry.contextThreadId), px);
    }
  }
  pipeline.eval(MARK_SERVED_LUA, n + sets.length, ...keyArgs, ...sets, ...values, ...setArgs);
}

declare module 'ioredis' {
  interface RedisCommander<Context> {
    cardproxyClaimAwaitingReload(numKeys: number, ...args: string[]): Result<string[], Context>;
  }
}

/** The claim side, for the process that lands cards. */
export class ServedMarkers {
  readonly #redis: RedisClient;
  readonly #keys: KeyLayout;

  constructor(redis: RedisClient, keys: KeyLayout) {
    this.#redis = redis;
    this.#keys = keys;
    if (typeof (redis as { cardproxyClaimAwaitingReload?: unknown }).cardproxyClaimAwaitingReload !== 'function') {
      redis.defineCommand('cardproxyClaimAwaitingReload', { lua: CLAIM_AWAITING_RELOAD_LUA });
    }
  }

  /**
   * The contexts in which Plain holds a placeholder or error copy of a card that has just
   * landed, claimed so that no other process pushes them too. A thread-scope card only heals
   * the thread it was loaded for; a customer-scope card every context it was answered in.
   * Call after the card is in the cache.
   */
  async claimAwaitingReload(refs: readonly CardRef[], now: number): Promise<ClaimedContext[]> {
    if (refs.length === 0) return [];
    const setKeys = refs.map((ref) => this.#keys.awaitingReload(ref.workspaceId, ref.customerId, ref.cardKey));
    const pipeline = this.#redis.pipeline();
    for (const key of setKeys) pipeline.smembers(key);
    const members = (await pipeline.exec()) ?? [];
    const claims = refs.map(async (ref, i) => {
      const [err, value] = members[i] ?? [null, []];
      if (err) throw err;
      const contexts = (value as string[]).filter((member) => {
        const thread = contextThreadOf(member);
        return thread !== undefined && (ref.threadId === null || thread === ref.threadId);
      });
      if (contexts.length === 0) return [];
      const markerKeys = contexts.map((m) => this.#keys.served(ref.workspaceId, ref.customerId, contextThreadOf(m)!, ref.cardKey));
      const claimed = await this.#redis.cardproxyClaimAwaitingReload(1 + contexts.length, setKeys[i]!, ...markerKeys, String(now), ...contexts);
      return claimed.map((member): ClaimedContext => ({ ref, contextThreadId: contextThreadOf(member) ?? null }));
    });
    return (await Promise.all(claims)).flat();
  }
}
