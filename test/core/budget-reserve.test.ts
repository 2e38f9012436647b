import { describe, expect, it } from 'vitest';
import { baseReserveMs, LATENESS_HALF_LIFE_MS, LatenessPeak, maxReserveMs, reserveMs } from '../../src/core/budget-reserve.js';

describe('budget reserve', () => {
  it('keeps back 5 % of the budget, 25 to 100 ms, when nothing was late', () => {
    expect(baseReserveMs(100)).toBe(25);
    expect(baseReserveMs(1000)).toBe(50);
    expect(baseReserveMs(10_000)).toBe(100);
    expect(reserveMs(1000)).toBe(50);
    expect(reserveMs(1000, 0)).toBe(50);
  });

  it('adds recent lateness, rounded up, up to a quarter of the budget', () => {
    expect(reserveMs(1000, 0.2)).toBe(51);
    expect(reserveMs(1000, 120)).toBe(170);
    expect(maxReserveMs(1000)).toBe(250);
    expect(reserveMs(1000, 199)).toBe(249);
    expect(reserveMs(1000, 5000)).toBe(250);
    expect(reserveMs(100, 500)).toBe(25);
    // A negative lateness (a wait that ended early) adds nothing.
    expect(reserveMs(1000, -30)).toBe(50);
  });

  it("adds the request's own time before it was read, within the same quarter of the budget", () => {
    expect(reserveMs(1000, 0, 130)).toBe(180);
    expect(reserveMs(1000, 20.2, 30.1)).toBe(101);
    expect(reserveMs(1000, 100, 400)).toBe(250);
    expect(reserveMs(2000, 0, -5)).toBe(100);
  });
});

describe('LatenessPeak', () => {
  it('holds the highest lateness and halves it every half-life', () => {
    const peak = new LatenessPeak();
    expect(peak.current(0)).toBe(0);
    peak.observe(80, 1000);
    expect(peak.current(1000)).toBe(80);
    expect(peak.current(1000 + LATENESS_HALF_LIFE_MS)).toBe(40);
    expect(peak.current(1000 + 2 * LATENESS_HALF_LIFE_MS)).toBe(20);
  });

  it('is replaced by a higher observation, not by a lower one', () => {
    const peak = new LatenessPeak(1000);
    peak.observe(100, 0);
    peak.observe(60, 500); // 70.7 counts then: kept
    expect(peak.current(1000)).toBe(50);
    peak.observe(90, 1000);
    expect(peak.current(1000)).toBe(90);
    expect(peak.current(2000)).toBe(45);
    // Early endings (negative lateness) never count.
    const early = new LatenessPeak();
    early.observe(-40, 0);
    expect(early.current(0)).toBe(0);
  });

  it('falls to exactly 0 once negligible, and a time before the peak does not grow it', () => {
    const peak = new LatenessPeak(1000);
    peak.observe(100, 10_000);
    expect(peak.current(9000)).toBe(100);
    expect(peak.current(10_000 + 7000)).toBeCloseTo(0.78, 2);
    expect(peak.current(10_000 + 8000)).toBe(0);
    expect(peak.current(10_000)).toBe(0);
  });
});
