/**
 * Reading the event log (`<prefix>:events`, SPEC section 6) back: newest-first queries for
 * operators, and oldest-first pages for replay. Never loads the whole stream: both walk it in
 * bounded pages with exclusive ranges (`(id`, Redis 6.2).
 */
import type { RedisClient } from './connections.js';
import { CardEventSchema, type CardEvent, type CardEventType } from '../core/card-events.js';

/** One stream entry as an operator sees it. `at` is the ISO time of the entry's stream id. */
export interface LoggedEvent {
  readonly id: string;
  readonly type: string;
  readonly at: string;
  /** The parsed `data` field, or its raw text when it is not JSON. */
  readonly data: unknown;
}

/** One stream entry decoded for replay: `event` is null when it fails `CardEventSchema`. */
export interface DecodedEntry {
  readonly id: string;
  readonly event: CardEvent | null;
}

/** What `queryEvents` selects. Filters compare exactly; all given filters must match. */
export interface EventFilter {
  readonly customerId?: string | undefined;
  readonly cardKey?: string | undefined;
  readonly type?: CardEventType | undefined;
  /** At most this many events are returned, newest first. */
  readonly limit: number;
}

type StreamEntry = [id: string, fields: string[]];

/** Entries read per round trip. */
const PAGE_SIZE = 500;
/** A filtered query gives up after looking at this many entries, newest first. */
export const MAX_SCANNED_ENTRIES = 50_000;

/** The time part of a stream id (`<ms>-<seq>`) as ISO 8601. */
export function streamIdTime(id: string): string {
  const ms = Number(id.slice(0, id.indexOf('-')));
  return new Date(Number.isFinite(ms) ? ms : 0).toISOString();
}

function field(fields: readonly string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

function parseData(raw: string | undefined): unknown {
  if (raw === undefined) return null;
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return raw;
  }
}

function toLogged([id, fields]: StreamEntry): LoggedEvent {
  return { id, type: field(fields, 'type') ?? '', at: streamIdTime(id), data: parseData(field(fields, 'data')) };
}

function matches(event: LoggedEvent, filter: EventFilter): boolean {
  if (filter.type !== undefined && event.type !== filter.type) return false;
  if (filter.customerId === undefined && filter.cardKey === undefined) return true;
  const data = typeof event.data === 'object' && event.data !== null ? (event.data as Record<string, unknown>) : {};
  if (filter.customerId !== undefined && data.customerId !== filter.customerId) return false;
  if (filter.cardKey !== undefined && data.cardKey !== filter.cardKey) return false;
  return true;
}

/**
 * The newest events matching `filter`, newest first. Walks the stream backwards in pages and
 * stops at `limit` matches or after `maxScanned` entries, whichever comes first.
 */
export async function queryEvents(
  redis: RedisClient,
  streamKeys: readonly string[],
  filter: EventFilter,
  maxScanned = MAX_SCANNED_ENTRIES,
): Promise<LoggedEvent[]> {
  // Each shard's newest `limit` matches, merged newest first (ids are times, comparable across streams).
  const perStream = await Promise.all(streamKeys.map((key) => queryStream(redis, key, filter, maxScanned)));
  if (perStream.length === 1) return perStream[0]!;
  return perStream
    .flat()
    .sort((a, b) => compareStreamIds(b.id, a.id))
    .slice(0, filter.limit);
}

/** Orders stream ids (`<ms>-<seq>`) by time. */
export function compareStreamIds(a: string, b: string): number {
  const [aMs, aSeq] = a.split('-').map(BigInt) as [bigint, bigint];
  const [bMs, bSeq] = b.split('-').map(BigInt) as [bigint, bigint];
  return aMs !== bMs ? (aMs < bMs ? -1 : 1) : aSeq === bSeq ? 0 : aSeq < bSeq ? -1 : 1;
}

async function queryStream(redis: RedisClient, streamKey: string, filter: EventFilter, maxScanned: number): Promise<LoggedEvent[]> {
  const filtered = filter.customerId !== undefined || filter.cardKey !== undefined || filter.type !== undefined;
  const found: LoggedEvent[] = [];
  let end = '+';
  let scanned = 0;
  while (found.length < filter.limit && scanned < maxScanned) {
    const count = Math.min(filtered ? PAGE_SIZE : filter.limit - found.length, maxScanned - scanned);
    const page = (await redis.xrevrange(streamKey, end, '-', 'COUNT', count)) as StreamEntry[];
    scanned += page.length;
    for (const entry of page) {
      const event = toLogged(entry);
      if (matches(event, filter)) found.push(event);
      if (found.length >= filter.limit) break;
    }
    if (page.length < count) break;
    end = `(${page[page.length - 1]![0]}`;
  }
  return found;
}

/** Decodes one entry for replay; anything that is not a valid event has `event: null`. */
export function decodeEntry([id, fields]: StreamEntry): DecodedEntry {
  const type = field(fields, 'type');
  const data = parseData(field(fields, 'data'));
  const parsed = CardEventSchema.safeParse({ type, data });
  return { id, event: parsed.success ? parsed.data : null };
}

/**
 * The entries after `afterId` ('' for the start of the stream), oldest first, one page of at most
 * `count` per iteration. Stops at the end of the stream as it is when each page is read.
 */
export async function* readEventPages(redis: RedisClient, streamKey: string, count: number, afterId = ''): AsyncGenerator<DecodedEntry[]> {
  let start = afterId === '' ? '-' : `(${afterId}`;
  for (;;) {
    const page = (await redis.xrange(streamKey, start, '+', 'COUNT', count)) as StreamEntry[];
    if (page.length > 0) yield page.map(decodeEntry);
    if (page.length < count) return;
    start = `(${page[page.length - 1]![0]}`;
  }
}
