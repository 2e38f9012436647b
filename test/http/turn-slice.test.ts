import { describe, expect, it } from 'vitest';
import { runSlice } from '../../src/http/turn-slice.js';

/** A clock that each piece of work moves by its cost. */
function costing(costs: number[]) {
  let now = 100;
  return {
    now: () => now,
    work: (_item: string, index: number) => {
      now += costs[index]!;
    },
  };
}

describe('runSlice', () => {
  it('works from the front until the slice has passed, and says how far it got', () => {
    const items = ['a', 'b', 'c', 'd', 'e'];
    const clock = costing([0.3, 0.3, 0.3, 0.3, 0.3]);
    const ran: string[] = [];
    const done = runSlice(items, (item, i) => (ran.push(item), clock.work(item, i)), 1, clock.now);
    // 0.3, 0.6, 0.9, then 1.2 ≥ 1: four ran.
    expect(done).toBe(4);
    expect(ran).toEqual(['a', 'b', 'c', 'd']);
  });

  it('always runs one, however long it takes', () => {
    const clock = costing([5, 0.1]);
    expect(runSlice(['slow', 'next'], clock.work, 1, clock.now)).toBe(1);
  });

  it('runs everything that fits, and nothing on an empty queue', () => {
    const clock = costing([0.1, 0.1, 0.1]);
    expect(runSlice(['a', 'b', 'c'], clock.work, 1, clock.now)).toBe(3);
    expect(runSlice([], clock.work, 1, clock.now)).toBe(0);
  });
});
