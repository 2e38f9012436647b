import { describe, expect, it } from 'vitest';
import { awaitsPushReload, mayKeepServedMarkerInMemory, decodeServedMarker, encodeServedMarker, servedKindOf, type ServedMarker } from '../../src/core/served-marker.js';

describe('served marker codec', () => {
  it.each<[ServedMarker, string]>([
    [{ until: 1_700_000_000_123, kind: 'data' }, '1700000000123'],
    [{ until: 1_700_000_000_123, kind: 'placeholder' }, '1700000000123:placeholder'],
    [{ until: 5, kind: 'error' }, '5:error'],
  ])('%j ⇄ %s', (marker, raw) => {
    expect(encodeServedMarker(marker)).toBe(raw);
    expect(decodeServedMarker(raw)).toEqual(marker);
  });

  it.each([null, undefined, '', 'abc', '12:stale', '12:', '-5', '1.5', ' 12'])('reads %j as no marker', (raw) => {
    expect(decodeServedMarker(raw)).toBeNull();
  });

  it('says what each answer source showed the agent', () => {
    expect(['cache', 'stale', 'refreshed', 'placeholder', 'error'].map((s) => servedKindOf(s as never))).toEqual([
      'data',
      'data',
      'data',
      'placeholder',
      'error',
    ]);
  });
});

describe('awaitsPushReload', () => {
  it.each<[string, ServedMarker | null, number, boolean]>([
    ['no marker', null, 1000, false],
    ['data answered', { until: 2000, kind: 'data' }, 1000, false],
    ['placeholder Plain still holds', { until: 2000, kind: 'placeholder' }, 1000, true],
    ['error components Plain still holds', { until: 2000, kind: 'error' }, 1999, true],
    ['placeholder expired in Plain', { until: 2000, kind: 'placeholder' }, 2000, false],
  ])('%s → %s', (_name, marker, now, expected) => {
    expect(awaitsPushReload(now, marker)).toBe(expected);
  });
});

describe('mayKeepServedMarkerInMemory', () => {
  it('only data markers: placeholder and error markers are deleted by push-reload claims', () => {
    expect(mayKeepServedMarkerInMemory({ until: 1, kind: 'data' })).toBe(true);
    expect(mayKeepServedMarkerInMemory({ until: 1, kind: 'placeholder' })).toBe(false);
    expect(mayKeepServedMarkerInMemory({ until: 1, kind: 'error' })).toBe(false);
  });
});
