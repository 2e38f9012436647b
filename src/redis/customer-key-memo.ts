/**
 * Key strings of recently seen customers, kept for the warm path. Without it a warm `/cards`
 * request builds a ~90-character projection key per card and its served-marker hash's key
 * (URI-encoding, the shard's hash, concatenation), and every `Map` look-up of a freshly built
 * string flattens and hashes it again; a kept string is found through the short ids alone and
 * keeps its own hash.
 *
 * Only the keys of a customer's own context are kept, not those of a thread. Plain asks for a
 * thread's cards when an agent opens it and then caches them for their TTL, so a thread's keys are
 * rarely asked for again while they would be kept. Kept all the same, every 5-key request in a
 * thread added keys that lived until the memo filled up, for young-generation collections to
 * copy and promote into old-generation garbage (BENCHMARKS.md: warm requests with threads).
 *
 * Bounded by the characters it holds (`maxChars`, ids and keys, plus a fixed estimate per
 * customer): past it everything is dropped at once and built again as needed.
 */

/** One customer's kept keys outside a thread: card projections by card key, and its served-marker hash. */
export interface CustomerKeys {
  readonly card: Map<string, string>;
  served: string | undefined;
}

/** Builds a key from a customer's card and context (see `CustomerKeyMemo.key`). */
export type KeyBuilder = (workspaceId: string, customerId: string, threadId: string | null, cardKey: string) => string;

/** Builds a key from a customer's context alone (see `CustomerKeyMemo.contextKey`). */
export type ContextKeyBuilder = (workspaceId: string, customerId: string, threadId: string | null) => string;

/** Counted per customer besides its keys: the maps and the ids (in characters). */
const CUSTOMER_OVERHEAD_CHARS = 200;

export class CustomerKeyMemo {
  readonly #byWorkspace = new Map<string, Map<string, CustomerKeys>>();
  #chars = 0;
  readonly #maxChars: number;
  /**
   * The customer asked for last, and its keys: a request asks for the keys of one customer about
   * twice per card, and this spares those calls the two map look-ups (the same strings, compared
   * by identity first).
   */
  #lastWorkspaceId = '';
  #lastCustomerId = '';
  #lastKeys: CustomerKeys | undefined;

  constructor(maxChars: number) {
    this.#maxChars = maxChars;
  }

  /** The kept keys of one customer (empty maps for a customer not seen lately). */
  of(workspaceId: string, customerId: string): CustomerKeys {
    if (this.#lastKeys !== undefined && customerId === this.#lastCustomerId && workspaceId === this.#lastWorkspaceId) return this.#lastKeys;
    const keys = this.#of(workspaceId, customerId);
    this.#lastWorkspaceId = workspaceId;
    this.#lastCustomerId = customerId;
    this.#lastKeys = keys;
    return keys;
  }

  #of(workspaceId: string, customerId: string): CustomerKeys {
    let customers = this.#byWorkspace.get(workspaceId);
    let keys = customers?.get(customerId);
    if (keys !== undefined) return keys;
    if (customers === undefined) {
      customers = new Map();
      this.#byWorkspace.set(workspaceId, customers);
    }
    keys = { card: new Map(), served: undefined };
    customers.set(customerId, keys);
    this.#grow(CUSTOMER_OVERHEAD_CHARS + workspaceId.length + customerId.length);
    return keys;
  }

  /**
   * The projection key of a customer's card in `threadId`'s context: outside a thread the kept
   * one, else `build`'s, kept; in a thread `build`'s. `build` is made once by the caller (no
   * closure per look-up).
   */
  key(workspaceId: string, customerId: string, threadId: string | null, cardKey: string, build: KeyBuilder): string {
    if (threadId !== null) return build(workspaceId, customerId, threadId, cardKey);
    const map = this.of(workspaceId, customerId).card;
    return map.get(cardKey) ?? this.keep(map, cardKey, build(workspaceId, customerId, null, cardKey));
  }

  /** The served-marker hash key of a customer's context: outside a thread the kept one (built once), in a thread `build`'s. */
  contextKey(workspaceId: string, customerId: string, threadId: string | null, build: ContextKeyBuilder): string {
    if (threadId !== null) return build(workspaceId, customerId, threadId);
    const keys = this.of(workspaceId, customerId);
    if (keys.served === undefined) {
      keys.served = build(workspaceId, customerId, null);
      this.#grow(keys.served.length);
    }
    return keys.served;
  }

  /** Keeps `key` under `id` in one of a customer's maps (from `of`); returns `key`. */
  keep(map: Map<string, string>, id: string, key: string): string {
    map.set(id, key);
    this.#grow(id.length + key.length);
    return key;
  }

  #grow(chars: number): void {
    this.#chars += chars;
    if (this.#chars <= this.#maxChars) return;
    // Maps handed out before stay usable; they are only no longer reachable from here.
    this.#byWorkspace.clear();
    this.#chars = 0;
    this.#lastKeys = undefined;
  }
}
