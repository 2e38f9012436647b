/**
 * Calls the admin API of an in-process cardproxy through `app.inject`, with the bearer token of
 * its config unless told otherwise.
 */
import type { TestProxy } from './harness.js';

export interface AdminCall {
  /** Overrides the bearer token; `null` sends no Authorization header. */
  token?: string | null;
  /** Sent as JSON (a string is sent as-is). */
  body?: unknown;
  headers?: Record<string, string>;
}

export async function admin(
  proxy: TestProxy,
  method: 'GET' | 'PUT' | 'POST' | 'DELETE',
  url: string,
  call: AdminCall = {},
): Promise<{ status: number; body: any; headers: Record<string, unknown> }> {
  const token = call.token === undefined ? proxy.config.admin.token : call.token;
  const headers: Record<string, string> = { ...(token === null ? {} : { authorization: `Bearer ${token}` }), ...call.headers };
  if (call.body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) headers['content-type'] = 'application/json';
  const res = await proxy.app.inject({
    method,
    url,
    headers,
    ...(call.body === undefined ? {} : { payload: typeof call.body === 'string' ? call.body : JSON.stringify(call.body) }),
  });
  let body: unknown = res.body;
  try {
    body = res.json();
  } catch {
    // not JSON: kept as text
  }
  return { status: res.statusCode, body, headers: res.headers };
}
