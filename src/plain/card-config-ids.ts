/**
 * The card key → `customerCardConfigId` map a push reload needs, read from Plain's
 * `customerCardConfigs` and kept for the life of the process. A key missing from it makes the
 * map be read again, at most once a minute (an operator may add the card in Plain meanwhile); a
 * card configured in cardproxy but not in Plain is `skipped`, and logged once, not per refresh.
 */
import type { Logger } from 'pino';
import type { Clock } from '../core/clock.js';
import type { PlainApiClient, PlainCallResult } from './plain-api-client.js';

export type ConfigIdLookup =
  | { readonly found: true; readonly id: string }
  | { readonly found: false; readonly outcome: 'skipped' | 'rate_limited' | 'error'; readonly detail: string };

/** Reads of the map, successful or not, are at least this far apart. */
export const CONFIG_IDS_REREAD_MS = 60_000;

export class CardConfigIds {
  readonly #client: Pick<PlainApiClient, 'customerCardConfigs'>;
  readonly #clock: Clock;
  readonly #log: Logger;
  #ids = new Map<string, string>();
  #lastReadAt = -Infinity;
  /** How the last read went (a failed read leaves the previous map in place). */
  #lastRead: PlainCallResult<unknown> | undefined;
  #reading: Promise<void> | undefined;
  /** Keys already reported as unknown to Plain; configured card keys only, so bounded. */
  readonly #reportedUnknown = new Set<string>();

  constructor(client: Pick<PlainApiClient, 'customerCardConfigs'>, clock: Clock, log: Logger) {
    this.#client = client;
    this.#clock = clock;
    this.#log = log;
  }

  async idOf(cardKey: string): Promise<ConfigIdLookup> {
    let id = this.#ids.get(cardKey);
    if (id !== undefined) return { found: true, id };
    if (this.#reading) await this.#reading;
    else if (this.#clock.now() - this.#lastReadAt >= CONFIG_IDS_REREAD_MS) await (this.#reading = this.#read());
    id = this.#ids.get(cardKey);
    if (id !== undefined) return { found: true, id };
    const last = this.#lastRead;
    if (last && !last.ok) return { found: false, outcome: last.outcome, detail: `customerCardConfigs: ${last.detail}` };
    if (!this.#reportedUnknown.has(cardKey)) {
      this.#reportedUnknown.add(cardKey);
      this.#log.warn({ cardKey }, 'card key is not a customer card in Plain: no reloads are pushed for it (checked again at most once a minute)');
    }
    return { found: false, outcome: 'skipped', detail: 'card key is not a customer card in Plain' };
  }

  async #read(): Promise<void> {
    this.#lastReadAt = this.#clock.now();
    try {
      const result = await this.#client.customerCardConfigs();
      this.#lastRead = result;
      if (result.ok) {
        this.#ids = new Map(result.value.map(({ key, id }) => [key, id]));
        for (const key of this.#reportedUnknown) if (this.#ids.has(key)) this.#reportedUnknown.delete(key);
      }
    } finally {
      this.#reading = undefined;
    }
  }
}
