/**
 * Turns one upstream call's result into the events it causes: a `card.refreshed` per card that
 * loaded, a `card.refresh_failed` per card that did not. Pure.
 */
import type { CardRef } from '../core/card-ref.js';
import type { CardStateEvent } from '../core/card-events.js';
import { effectiveTtl } from '../core/effective-ttl.js';
import type { RefreshTrigger } from '../core/refresh-trigger.js';
import type { UpstreamFailure } from '../core/upstream-failure.js';
import type { UpstreamResult } from '../upstream/upstream-client.js';

export interface LoadContext {
  readonly now: number;
  readonly customerEmail: string | null;
  readonly customerExternalId: string | null;
  /** Why the refresh ran. */
  readonly trigger: RefreshTrigger;
  /** Per card key: its configured upstream name and TTL, and the operator's override if any. */
  readonly cardInfo: (cardKey: string) => { upstream: string; ttlSeconds: number; overrideTtlSeconds: number | null };
}

/** The events an upstream call produced for the cards it was asked for. */
export function eventsForResult(refs: readonly CardRef[], result: UpstreamResult, ctx: LoadContext): CardStateEvent[] {
  if (!result.ok) return refs.map((ref) => failedEvent(ref, result.failure, ctx));
  return refs.map((ref) => {
    const card = result.cards.get(ref.cardKey);
    if (!card || !card.ok) {
      const detail = card ? card.detail : `card "${ref.cardKey}" missing from response`;
      return failedEvent(ref, { kind: 'integration', detail, status: 200 }, ctx);
    }
    const info = ctx.cardInfo(ref.cardKey);
    const ttl = effectiveTtl(info.overrideTtlSeconds, card.timeToLiveSeconds, info.ttlSeconds);
    return {
      type: 'card.refreshed',
      data: {
        ...identity(ref, ctx),
        components: card.components,
        ttlSeconds: ttl.seconds,
        ttlSource: ttl.source,
        fetchedAt: new Date(ctx.now).toISOString(),
        upstream: info.upstream,
        durationMs: result.durationMs,
        trigger: ctx.trigger,
      },
    };
  });
}

/** The failure events for cards whose call failed as a whole. */
export function failedEvent(ref: CardRef, failure: UpstreamFailure, ctx: LoadContext): CardStateEvent {
  return {
    type: 'card.refresh_failed',
    data: {
      ...identity(ref, ctx),
      upstream: ctx.cardInfo(ref.cardKey).upstream,
      errorKind: failure.kind,
      detail: failure.detail,
      status: failure.status,
      failedAt: new Date(ctx.now).toISOString(),
      trigger: ctx.trigger,
    },
  };
}

function identity(ref: CardRef, ctx: LoadContext) {
  return {
    workspaceId: ref.workspaceId,
    customerId: ref.customerId,
    threadId: ref.threadId,
    cardKey: ref.cardKey,
    customerEmail: ctx.customerEmail,
    customerExternalId: ctx.customerExternalId,
  };
}

/** The upstream-duration `outcome` label: integration_error when any requested key failed. */
export function callOutcome(result: UpstreamResult, keys: readonly string[]): 'ok' | 'retriable_error' | 'integration_error' {
  if (!result.ok) return result.failure.kind === 'retriable' ? 'retriable_error' : 'integration_error';
  return keys.every((key) => result.cards.get(key)?.ok === true) ? 'ok' : 'integration_error';
}
