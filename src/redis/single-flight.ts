/**
 * Single-flight for refreshes, across every process: at most one job loads a card at a time.
 *
 * 1. claim: a request that needs a card refreshed claims the card's in-flight marker for a new
 *    job id (`claimRefresh`); a card whose marker another job holds is joined instead.
 *    A marker held by a job that has ended is taken over (`reclaimRefresh`).
 * 2. release without an outcome: when the job cannot be queued, the claims go back
 *    (`releaseRefresh`), so the next request tries again instead of waiting them out.
 * 3. outcome: the job records its cards' events, releases its markers and publishes a
 *    {@link RefreshNotice} on the shard's channel, in one atomic command
 *    (`CardStore.recordRefreshOutcome`); requests waiting for it are woken by `RefreshNotifier`,
 *    which parses the notice with {@link RefreshNoticeSchema}.
 *
 * A marker lapses after the job's whole life (queued, retried), so a lost job never blocks a card
 * for longer.
 */
import { z } from 'zod';
import { cardRefId, type CardRef } from '../core/card-ref.js';
import type { CardStateEvent } from '../core/card-events.js';
import { CardCommands } from './card-commands.js';
import type { CommandClient } from './commands/index.js';
import type { KeyLayout } from './keys.js';

export type RefreshOutcome = 'refreshed' | 'failed';

/** What a refresh's outcome notice says: per card (`cardRefId`), whether it was refreshed. */
export const RefreshNoticeSchema = z.object({
  outcomes: z.array(z.tuple([z.string(), z.enum(['refreshed', 'failed'])])),
});
export type RefreshNotice = z.infer<typeof RefreshNoticeSchema>;

/** A notice read from the channel; undefined for anything that is not one. */
export function parseRefreshNotice(message: string): RefreshNotice | undefined {
  try {
    const parsed = RefreshNoticeSchema.safeParse(JSON.parse(message));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** The notice for a job's events, plus cards it found already loaded (`alreadyDone`, refreshed). */
export function refreshNotice(events: readonly CardStateEvent[], alreadyDone: readonly CardRef[] = []): RefreshNotice {
  return {
    outcomes: [
      ...events.map((e): [string, RefreshOutcome] => [cardRefId(e.data), e.type === 'card.refreshed' ? 'refreshed' : 'failed']),
      ...alreadyDone.map((ref): [string, RefreshOutcome] => [cardRefId(ref), 'refreshed']),
    ],
  };
}

/** The marker side of the protocol (steps 1 and 2); step 3 is the store's outcome command. */
export class SingleFlight {
  readonly #client: CommandClient;
  readonly #commands: CardCommands;
  readonly #keys: KeyLayout;

  constructor(client: CommandClient, keys: KeyLayout) {
    this.#client = client;
    this.#commands = new CardCommands(client);
    this.#keys = keys;
  }

  /**
   * Claims every card no job is refreshing for job `owner`, for `ttlMs`.
   * @returns per card, '' when claimed by this call, else the id of the job refreshing it
   */
  claim(refs: readonly CardRef[], owner: string, ttlMs: number): Promise<string[]> {
    return this.#commands.claimRefresh(this.markers(refs), owner, ttlMs);
  }

  /**
   * Takes cards over from jobs that have ended without releasing them (`deadOwner`); a card that
   * changed hands meanwhile is joined. @returns per card, '' when taken, else its job now
   */
  reclaim(cards: ReadonlyArray<{ readonly ref: CardRef; readonly deadOwner: string }>, owner: string, ttlMs: number): Promise<string[]> {
    return this.#commands.reclaimRefresh(
      cards.map(({ ref, deadOwner }) => ({ key: this.#keys.inflight(ref), deadOwner })),
      owner,
      ttlMs,
    );
  }

  /** Gives back the claims `owner` still holds, recording nothing. */
  async release(refs: readonly CardRef[], owner: string): Promise<void> {
    if (refs.length > 0) await this.#commands.releaseRefresh(this.markers(refs), owner);
  }

  /** Which job holds each card's marker (null: no refresh is queued or running). */
  async owners(refs: readonly CardRef[]): Promise<(string | null)[]> {
    if (refs.length === 0) return [];
    return this.#client.mget(...this.markers(refs));
  }

  /** How long each card's marker has left (ms; negative: none). */
  async remainingMs(refs: readonly CardRef[]): Promise<number[]> {
    return Promise.all(this.markers(refs).map((key) => this.#client.pttl(key)));
  }

  markers(refs: readonly CardRef[]): string[] {
    return refs.map((ref) => this.#keys.inflight(ref));
  }
}
