/**
 * Plain's classification of a failed upstream call (SPEC 2.2) and the effective TTL precedence
 * (SPEC 5).
 */
import { describe, expect, it } from 'vitest';
import { classifyStatus, transportFailure } from '../../src/core/upstream-failure.js';
import { effectiveTtlSeconds } from '../../src/core/effective-ttl.js';

describe('classifyStatus', () => {
  it.each([500, 501, 502, 503, 504, 599, 429])('HTTP %i is retriable', (status) => {
    expect(classifyStatus(status)).toEqual({ kind: 'retriable', status, detail: expect.stringContaining(String(status)) });
  });

  it.each([400, 401, 403, 404, 405, 408, 409, 410, 413, 422, 428, 431, 451])('HTTP %i is an integration error', (status) => {
    expect(classifyStatus(status)).toEqual({ kind: 'integration', status, detail: expect.stringContaining(String(status)) });
  });

  // Only 200 is success (handled by the client before classifying); every other non-error status is Plain's integration error.
  it.each([201, 202, 204, 206, 301, 302, 304, 307, 308])('HTTP %i (not 200) is an integration error', (status) => {
    expect(classifyStatus(status)).toEqual({ kind: 'integration', status, detail: expect.stringContaining(String(status)) });
  });
});

describe('transportFailure', () => {
  it('a time-out is retriable, has no status and names the time-out, not the cause', () => {
    const failure = transportFailure(true, 30_000, 'AbortError');
    expect(failure.kind).toBe('retriable');
    expect(failure.status).toBeNull();
    expect(failure.detail).toContain('30000 ms');
    expect(failure.detail).not.toContain('AbortError');
  });

  it('a connection failure is retriable, has no status and names the cause', () => {
    const failure = transportFailure(false, 30_000, 'ECONNREFUSED');
    expect(failure.kind).toBe('retriable');
    expect(failure.status).toBeNull();
    expect(failure.detail).toContain('ECONNREFUSED');
    expect(failure.detail).not.toContain('30000');
  });

  it('time-out and connection failure details differ', () => {
    expect(transportFailure(true, 5000, 'x').detail).not.toBe(transportFailure(false, 5000, 'x').detail);
  });
});

describe('effectiveTtlSeconds: override > upstream > configured', () => {
  it.each<[string, number | null, number | null, number, number]>([
    ['override beats upstream and configured', 60, 900, 300, 60],
    ['override beats an upstream 0', 60, 0, 300, 60],
    ['override beats configured when upstream is null', 60, null, 300, 60],
    ['upstream beats configured', null, 900, 300, 900],
    ['upstream beats configured when shorter', null, 5, 300, 5],
    ['upstream 0 is respected (stale at once)', null, 0, 300, 0],
    ['configured when override and upstream are null', null, null, 300, 300],
    ['configured 1 when nothing else', null, null, 1, 1],
  ])('%s', (_name, override, fromUpstream, configured, expected) => {
    expect(effectiveTtlSeconds(override, fromUpstream, configured)).toBe(expected);
  });
});
