/**
 * The Redis layer's commands as typed methods: each builds its script's KEYS and ARGV (laid out as
 * the header of `commands/<name>.lua` says) and decodes the reply. No policy lives here.
 */
import { defineCommands, runCommand, type CommandClient } from './commands/index.js';

/** What a card's components become in a write. */
export type ComponentsWrite =
  /** New components (a `card.refreshed` event): their JSON. */
  | { readonly mode: 'set'; readonly json: string }
  /** Unchanged: they only follow the projection's new expiry. */
  | { readonly mode: 'keep' }
  /** The state holds no data: no components. */
  | { readonly mode: 'none' };

/** One card's part of an atomic write (see `commands/includes/cardWrites.lua`). */
export interface CardWrite {
  readonly projectionKey: string;
  readonly componentsKey: string;
  /** The customer's card set (a deleted projection leaves it). */
  readonly cardSetKey: string;
  /** The look-up index sets the card's customer is added to (when the projection is kept). */
  readonly indexKeys: readonly string[];
  readonly indexMember: string;
  /** The projection as read (null: absent); the write happens only if Redis still holds it. */
  readonly expect: string | null;
  /** The new projection; null deletes it (with its components). */
  readonly projection: string | null;
  /** Expiry of projection and components, in ms (at least 1). */
  readonly px: number;
  readonly components: ComponentsWrite;
  /** Events to append for the card, in order (none in replay). */
  readonly events: ReadonlyArray<{ readonly type: string; readonly data: string }>;
}

/** A compare-and-set write's result: appended event ids, or the card (position) that changed meanwhile. */
export type WriteResult = { readonly ok: true; readonly ids: string[] } | { readonly ok: false; readonly changedCard: number };

/** Where a shard's events go: its stream, trimmed to `minId`. */
export interface StreamTarget {
  readonly stream: string;
  readonly minId: string;
}

function cardArgs(cards: readonly CardWrite[], keys: string[], args: string[]): void {
  for (const card of cards) {
    keys.push(card.projectionKey, card.componentsKey, card.cardSetKey, ...card.indexKeys);
    args.push(
      card.expect ?? '',
      card.projection ?? '',
      String(card.px),
      card.components.mode,
      card.components.mode === 'set' ? card.components.json : '',
      card.indexMember,
      String(card.indexKeys.length),
      String(card.events.length),
    );
    for (const event of card.events) args.push(event.type, event.data);
  }
}

function writeResult(reply: Array<number | string>): WriteResult {
  if (reply[0] === 1) return { ok: true, ids: reply.slice(1).map(String) };
  return { ok: false, changedCard: Number(reply[1]) - 1 };
}

export class CardCommands {
  readonly #client: CommandClient;

  constructor(client: CommandClient) {
    this.#client = client;
    defineCommands(client);
  }

  /**
   * Claims the in-flight marker of every card that has none.
   * @returns per marker, '' when claimed by this call, else the job already holding it
   */
  claimRefresh(markers: readonly string[], owner: string, ttlMs: number): Promise<string[]> {
    return runCommand<string[]>(this.#client, 'claimRefresh', markers, [owner, String(ttlMs)]);
  }

  /**
   * Takes over markers held by jobs that have ended (`deadOwner`); a marker that changed hands is joined.
   * @returns per marker, '' when taken by this call, else the job now holding it
   */
  reclaimRefresh(markers: ReadonlyArray<{ readonly key: string; readonly deadOwner: string }>, owner: string, ttlMs: number): Promise<string[]> {
    return runCommand<string[]>(
      this.#client,
      'reclaimRefresh',
      markers.map((m) => m.key),
      [owner, String(ttlMs), ...markers.map((m) => m.deadOwner)],
    );
  }

  /** Releases the markers `owner` still holds, recording nothing. @returns how many */
  releaseRefresh(markers: readonly string[], owner: string): Promise<number> {
    return runCommand<number>(this.#client, 'releaseRefresh', markers, [owner]);
  }

  /**
   * A refresh job's outcome: its cards' events and projections, its markers released and the
   * notice published on `channel`, all or nothing.
   */
  async recordRefreshOutcome(opts: {
    target: StreamTarget;
    channel: string;
    release: { readonly markers: readonly string[]; readonly owner: string };
    notice: string | null;
    cards: readonly CardWrite[];
  }): Promise<WriteResult> {
    const keys = [opts.target.stream, opts.channel, ...opts.release.markers];
    const args = [opts.target.minId, String(opts.cards.length), String(opts.release.markers.length), opts.release.owner, opts.notice ?? ''];
    cardArgs(opts.cards, keys, args);
    return writeResult(await runCommand<Array<number | string>>(this.#client, 'recordRefreshOutcome', keys, args));
  }

  /** Card events outside a refresh job (an invalidation): events and projections, all or nothing. */
  async appendCardEvents(target: StreamTarget, cards: readonly CardWrite[]): Promise<WriteResult> {
    const keys = [target.stream];
    const args = [target.minId, String(cards.length)];
    cardArgs(cards, keys, args);
    return writeResult(await runCommand<Array<number | string>>(this.#client, 'appendCardEvents', keys, args));
  }

  /** Replay: projections of events already in the log, nothing appended. */
  async replayCards(cards: readonly CardWrite[]): Promise<WriteResult> {
    const keys: string[] = [];
    const args = [String(cards.length)];
    cardArgs(cards, keys, args);
    return writeResult(await runCommand<Array<number | string>>(this.#client, 'replayCards', keys, args));
  }

  /**
   * Appends a `ttl.override_*` event and sets (`seconds`) or clears (null) the card key's field.
   * @returns the event's id
   */
  setTtlOverride(opts: { target: StreamTarget; hash: string; type: string; data: string; cardKey: string; seconds: number | null }): Promise<string> {
    return runCommand<string>(
      this.#client,
      'setTtlOverride',
      [opts.target.stream, opts.hash],
      [opts.target.minId, opts.type, opts.data, opts.cardKey, opts.seconds === null ? '' : String(opts.seconds)],
    );
  }

  /** Replaces the override hash unless `stream` has grown past `lastEventId`. @returns whether it did */
  async replaceOverrides(stream: string, hash: string, lastEventId: string, overrides: ReadonlyMap<string, number>): Promise<boolean> {
    const pairs = [...overrides].flatMap(([cardKey, seconds]) => [cardKey, String(seconds)]);
    return (await runCommand<number>(this.#client, 'replaceOverrides', [stream, hash], [lastEventId, ...pairs])) === 1;
  }

  /**
   * Writes served markers (and awaiting-reload set members): per marker hash its card key / value
   * pairs and the time it must live at least (PX, ms). All keys must share one hash slot.
   * @returns the number of hashes written
   */
  markServed(
    hashes: ReadonlyArray<{ readonly key: string; readonly px: number; readonly fields: readonly string[] }>,
    sets: ReadonlyArray<{ readonly key: string; readonly member: string; readonly px: number }>,
  ): Promise<number> {
    const keys: string[] = [];
    const args: string[] = [String(hashes.length)];
    for (const h of hashes) {
      keys.push(h.key);
      args.push(String(h.px), String(h.fields.length / 2));
      for (const field of h.fields) args.push(field);
    }
    for (const s of sets) {
      keys.push(s.key);
      args.push(s.member, String(s.px));
    }
    return runCommand<number>(this.#client, 'markServed', keys, args);
  }

  /**
   * Claims a landed card's contexts whose marker still says placeholder or error.
   * @returns the claimed set members
   */
  claimAwaitingReload(setKey: string, cardKey: string, markers: ReadonlyArray<{ readonly hash: string; readonly member: string }>, now: number): Promise<string[]> {
    return runCommand<string[]>(
      this.#client,
      'claimAwaitingReload',
      [setKey, ...markers.map((m) => m.hash)],
      [String(now), cardKey, ...markers.map((m) => m.member)],
    );
  }
}

