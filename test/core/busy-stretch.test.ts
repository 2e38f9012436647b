import { describe, expect, it } from 'vitest';
import { BusyStretch } from '../../src/core/busy-stretch.js';

describe('BusyStretch', () => {
  it('knows nothing before its first observation', () => {
    expect(new BusyStretch().observe(1000, 700)).toBe(1000);
  });

  it('keeps the start of a stretch without idle time, however many observations fall into it', () => {
    const busy = new BusyStretch();
    busy.observe(100, 40);
    // Idle all the way to 120, then busy: the bound is 120 at the latest.
    expect(busy.observe(125, 60)).toBe(120);
    expect(busy.observe(180, 60)).toBe(120);
    expect(busy.observe(260, 60)).toBe(120);
  });

  it('moves to the end of the last idle moment it can prove, never past now', () => {
    const busy = new BusyStretch();
    busy.observe(100, 0);
    // 30 ms idle somewhere in 50 ms: the last idle moment ended at 130 or later.
    expect(busy.observe(150, 30)).toBe(130);
    // Idle throughout: busy since now at most.
    expect(busy.observe(200, 80)).toBe(200);
    // Idle totals with a little float noise above the elapsed time still give now.
    expect(busy.observe(210, 90.0001)).toBe(210);
  });
});
