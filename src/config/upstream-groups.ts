/**
 * Upstreams that are "the same API" by Plain's de-duplication rule are one group: the keys of a
 * request bound for any of them go to that API in one call, under one concurrency limit.
 */
import { apiIdentity } from '../core/same-api.js';
import type { Config } from './schema.js';

export interface UpstreamGroup {
  /** The first upstream of the group in configuration order; labels metrics and queues. */
  readonly name: string;
  /** Every configured upstream of the group, in configuration order. */
  readonly upstreamNames: readonly string[];
  /** The URL, trimmed. */
  readonly url: string;
  /** Header names trimmed, spelled as by the first upstream of the group. */
  readonly headers: Readonly<Record<string, string>>;
  /** The longest of the group. */
  readonly timeoutMs: number;
  /** The lowest of the group. */
  readonly concurrency: number;
  /** The most of the group. */
  readonly retries: number;
  /** The longest of the group. */
  readonly retryDelayMs: number;
  readonly signingSecret: string | null;
}

export interface UpstreamGroups {
  /** In configuration order of their first upstream. */
  readonly groups: readonly UpstreamGroup[];
  /** The group of a configured upstream; throws for an unknown name. */
  groupOf(upstreamName: string): UpstreamGroup;
}

export function groupUpstreams(config: Pick<Config, 'upstreams'>): UpstreamGroups {
  type Draft = {
    name: string;
    upstreamNames: string[];
    url: string;
    headers: Record<string, string>;
    timeoutMs: number;
    concurrency: number;
    retries: number;
    retryDelayMs: number;
    signingSecret: string | null;
  };
  const byIdentity = new Map<string, Draft>();
  const draftOf = new Map<string, Draft>();
  for (const [name, upstream] of Object.entries(config.upstreams)) {
    const identity = apiIdentity(upstream);
    let draft = byIdentity.get(identity);
    if (!draft) {
      const headers: Record<string, string> = {};
      for (const [header, value] of Object.entries(upstream.headers)) headers[header.trim()] = value;
      draft = {
        name,
        upstreamNames: [],
        url: upstream.url.trim(),
        headers,
        timeoutMs: upstream.timeoutMs,
        concurrency: upstream.concurrency,
        retries: upstream.retries,
        retryDelayMs: upstream.retryDelayMs,
        signingSecret: upstream.signingSecret ?? null,
      };
      byIdentity.set(identity, draft);
    } else {
      draft.timeoutMs = Math.max(draft.timeoutMs, upstream.timeoutMs);
      draft.concurrency = Math.min(draft.concurrency, upstream.concurrency);
      draft.retries = Math.max(draft.retries, upstream.retries);
      draft.retryDelayMs = Math.max(draft.retryDelayMs, upstream.retryDelayMs);
    }
    draft.upstreamNames.push(name);
    draftOf.set(name, draft);
  }

  const frozen = new Map<Draft, UpstreamGroup>();
  for (const draft of byIdentity.values()) {
    frozen.set(
      draft,
      Object.freeze({
        ...draft,
        upstreamNames: Object.freeze([...draft.upstreamNames]),
        headers: Object.freeze({ ...draft.headers }),
      }),
    );
  }
  const groups = Object.freeze([...frozen.values()]);
  const groupByName = new Map<string, UpstreamGroup>();
  for (const [name, draft] of draftOf) groupByName.set(name, frozen.get(draft)!);

  return Object.freeze({
    groups,
    groupOf(upstreamName: string): UpstreamGroup {
      const group = groupByName.get(upstreamName);
      if (!group) throw new Error(`unknown upstream "${upstreamName}"`);
      return group;
    },
  });
}

/** Whether two groups (from two loads of the configuration) have the same name and settings. */
export function sameGroup(a: UpstreamGroup, b: UpstreamGroup): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
