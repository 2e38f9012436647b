/**
 * Plain's request de-duplication rule ("Request deduplication" on its customer-cards page):
 * card configurations with the same API details are batched into one request.
 *
 * - URL: trimmed, then compared case-sensitively (a trailing slash makes a different API);
 * - header names: trimmed, compared case-insensitively;
 * - header values: compared as-is (whitespace and case matter);
 * - header order does not matter.
 *
 * cardproxy also signs the body of a request with the upstream's `signingSecret`, so two upstreams
 * are only the same API when that secret is the same too.
 */

export interface ApiDetails {
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly signingSecret?: string | null | undefined;
}

/** A string that is equal for two upstreams exactly when Plain would treat them as the same API. */
export function apiIdentity({ url, headers, signingSecret }: ApiDetails): string {
  const normalizedHeaders = Object.entries(headers)
    .map(([name, value]): [string, string] => [name.trim().toLowerCase(), value])
    .sort(([nameA, valueA], [nameB, valueB]) => compare(nameA, nameB) || compare(valueA, valueB));
  return JSON.stringify([url.trim(), normalizedHeaders, signingSecret ?? null]);
}

/** Whether two upstreams are the same API by Plain's rule. */
export function isSameApi(a: ApiDetails, b: ApiDetails): boolean {
  return apiIdentity(a) === apiIdentity(b);
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
