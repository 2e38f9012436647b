/**
 * The admin API client. The token lives in `sessionStorage` only (gone when the tab closes) and
 * goes out in the `Authorization` header; it is never put in a URL or in the page.
 */
import type { CardListingEntry, CustomerCardsAnswer, ErrorAnswer, LoggedEvent, OverviewAnswer, WireCustomer } from './wire.js';

const TOKEN_KEY = 'cardproxy.adminToken';

export const session = {
  token: (): string | null => sessionStorage.getItem(TOKEN_KEY),
  signIn: (token: string): void => sessionStorage.setItem(TOKEN_KEY, token),
  signOut: (): void => sessionStorage.removeItem(TOKEN_KEY),
};

/** A failed admin call: the HTTP status and the server's `{error, message}`. */
export class AdminError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'AdminError';
  }
}

async function call<T>(method: string, path: string, body?: unknown, token = session.token()): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(path, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }), cache: 'no-store' });
  } catch {
    throw new AdminError(0, 'network', 'cardproxy did not answer');
  }
  const json = (await res.json().catch(() => null)) as unknown;
  if (!res.ok) {
    const err = json as Partial<ErrorAnswer> | null;
    throw new AdminError(res.status, err?.error ?? 'http_error', err?.message ?? `HTTP ${res.status}`);
  }
  return json as T;
}

const q = encodeURIComponent;

export const api = {
  /** Checks a token before keeping it. */
  verify: (token: string) => call<{ cards: CardListingEntry[] }>('GET', '/admin/cards', undefined, token),
  cards: () => call<{ cards: CardListingEntry[] }>('GET', '/admin/cards'),
  setTtl: (key: string, ttlSeconds: number) => call<CardListingEntry>('PUT', `/admin/cards/${q(key)}/ttl`, { ttlSeconds }),
  clearTtl: (key: string) => call<CardListingEntry>('DELETE', `/admin/cards/${q(key)}/ttl`),
  searchCustomers: (kind: 'customerId' | 'email' | 'externalId', value: string) =>
    call<{ customers: WireCustomer[] }>('GET', `/admin/customers?${kind}=${q(value)}`),
  customerCards: (workspaceId: string, customerId: string) =>
    call<CustomerCardsAnswer>('GET', `/admin/customers/${q(customerId)}/cards?workspaceId=${q(workspaceId)}`),
  events: (customerId: string, limit = 100) => call<{ events: LoggedEvent[] }>('GET', `/admin/events?customerId=${q(customerId)}&limit=${limit}`),
  invalidate: (body: { customerId: string; workspaceId: string; cardKeys: string[]; refresh: boolean; reason: string }) =>
    call<{ invalidated: number }>('POST', '/admin/invalidate', body),
  warm: (body: { workspaceId: string; customers: Array<{ id: string; email?: string; externalId?: string }>; cardKeys: string[]; threadId?: string }) =>
    call<{ queued: number }>('POST', '/admin/warm', body),
  overview: () => call<OverviewAnswer>('GET', '/admin/overview'),
};
