/** The console's small formatters: relative times, percentages, durations. */
import { describe, expect, it } from 'vitest';
import { duration, percent, relativeTime } from '../../src/console/ui/format.js';

const NOW = Date.parse('2026-12-01T12:00:00.000Z');

describe('relativeTime', () => {
  it.each([
    ['2026-12-01T12:00:00.400Z', 'just now'],
    ['2026-12-01T12:00:45.000Z', 'in 45 s'],
    ['2026-12-01T11:59:15.000Z', '45 s ago'],
    ['2026-12-01T12:05:00.000Z', 'in 5 min'],
    ['2026-12-01T09:00:00.000Z', '3 h ago'],
    ['2026-12-03T12:00:00.000Z', 'in 2 d'],
    ['not a date', 'not a date'],
  ])('%s → %s', (iso, expected) => {
    expect(relativeTime(iso, NOW)).toBe(expected);
  });
});

describe('percent and duration', () => {
  it('divides safely and picks readable units', () => {
    expect(percent(1, 3)).toBe('33.3 %');
    expect(percent(0, 0)).toBe('–');
    expect(duration(0.0426)).toBe('43 ms');
    expect(duration(2.5)).toBe('2.50 s');
    expect(duration(null)).toBe('–');
  });
});
