/**
 * The served marker: what cardproxy last answered Plain for one card in one (workspace, customer,
 * thread) context, and until when Plain keeps that copy. It drives two decisions:
 *
 * - manual reload detection (SPEC 5.6): a single-key request while Plain still holds a copy can
 *   only be a user pressing reload (`isManualReload` in card-resolution.ts reads `until`);
 * - push reload (SPEC 11): when a card lands while Plain holds a placeholder or error copy of it,
 *   cardproxy asks Plain to reload that copy (`awaitsPushReload`).
 *
 * This file is the one place that says how a marker is written and read; the Redis scripts of
 * `src/redis/served-markers.ts` follow the same layout. Pure: time is passed in.
 */
import type { AnswerSource } from './card-resolution.js';

/** What an answer showed the agent: the card's data (fresh or stale), its placeholder or its error components. */
export type ServedKind = 'data' | 'placeholder' | 'error';

export interface ServedMarker {
  /** When Plain's copy expires (ms since the epoch). */
  readonly until: number;
  readonly kind: ServedKind;
}

/** The kind of answer a served card was, by where it came from. */
export function servedKindOf(source: AnswerSource): ServedKind {
  switch (source) {
    case 'cache':
    case 'stale':
    case 'refreshed':
      return 'data';
    case 'placeholder':
      return 'placeholder';
    case 'error':
      return 'error';
    default: {
      const unreachable: never = source;
      return unreachable;
    }
  }
}

/**
 * The stored value: `<until>` for data (the warm path writes these, so they stay as short as
 * before kinds existed), `<until>:placeholder` or `<until>:error` otherwise.
 */
export function encodeServedMarker(marker: ServedMarker): string {
  return marker.kind === 'data' ? String(marker.until) : `${marker.until}:${marker.kind}`;
}

const MARKER_PATTERN = /^(\d+)(?::(placeholder|error))?$/;

/** Reads a stored value; anything unreadable counts as no marker. */
export function decodeServedMarker(raw: string | null | undefined): ServedMarker | null {
  if (raw == null) return null;
  const match = MARKER_PATTERN.exec(raw);
  if (!match) return null;
  return { until: Number(match[1]), kind: (match[2] as ServedKind | undefined) ?? 'data' };
}

/**
 * Plain holds a placeholder or error copy of the card that has not expired yet: once the real
 * card is in the cache, a push reload replaces it in front of the agent.
 */
export function awaitsPushReload(now: number, marker: ServedMarker | null): boolean {
  return marker !== null && marker.kind !== 'data' && now < marker.until;
}

/**
 * Whether a process may keep this marker in memory (a near cache) rather than read it from Redis
 * on the next request. Only a data marker: a placeholder or error marker is deleted, without an
 * event, by the worker that claims it for a push reload (`ServedMarkers.claimAwaitingReload`), and
 * a process that still believed in it would take Plain's follow-up request for a manual reload
 * (one upstream call, and a loop of pushes). Claims never touch data markers.
 */
export function mayKeepServedMarkerInMemory(marker: ServedMarker): boolean {
  return marker.kind === 'data';
}
