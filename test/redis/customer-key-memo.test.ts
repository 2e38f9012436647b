import { describe, expect, it } from 'vitest';
import { CustomerKeyMemo } from '../../src/redis/customer-key-memo.js';

describe('CustomerKeyMemo', () => {
  it('keeps a customer\'s keys until the characters it holds pass the bound, then drops everything', () => {
    const memo = new CustomerKeyMemo(1000);
    const first = memo.of('w', 'c_1');
    expect(memo.keep(first.card, 'alpha', 'k'.repeat(100))).toBe('k'.repeat(100));
    expect(memo.of('w', 'c_1').card.get('alpha')).toBe('k'.repeat(100));
    // 200 per customer plus its ids (204 here) and the kept id and key (105): 921 with four customers, 1125 with five.
    for (let c = 2; c <= 4; c++) memo.of('w', `c_${c}`);
    expect(memo.of('w', 'c_1')).toBe(first);
    memo.of('w', 'c_5');
    expect(memo.of('w', 'c_1')).not.toBe(first);
    expect(memo.of('w', 'c_1').card.size).toBe(0);
  });

  it('answers the customer asked for last without its map look-ups, and forgets it with everything else', () => {
    const memo = new CustomerKeyMemo(1000);
    const first = memo.of('w', 'c_1');
    expect(memo.of('w', 'c_1')).toBe(first);
    // The same customer id in another workspace is another customer.
    const other = memo.of('w2', 'c_1');
    expect(other).not.toBe(first);
    expect(memo.of('w', 'c_1')).toBe(first);
    // Keeping a key of the last customer passes the bound (204 + 209 + 901): everything is dropped, it too.
    memo.keep(first.card, 'alpha', 'k'.repeat(900));
    const again = memo.of('w', 'c_1');
    expect(again).not.toBe(first);
    expect(again.card.size).toBe(0);
  });

  it("keeps a customer's own keys, and builds a thread's every time without keeping them", () => {
    const memo = new CustomerKeyMemo(1000);
    let builds = 0;
    const build = (w: string, c: string, t: string | null, k: string) => {
      builds++;
      return `${w}:${c}:${t ?? '-'}:${k}`;
    };
    const buildContext = (w: string, c: string, t: string | null) => {
      builds++;
      return `${w}:${c}:${t ?? '-'}`;
    };
    expect(memo.key('w', 'c_1', null, 'alpha', build)).toBe('w:c_1:-:alpha');
    expect(memo.key('w', 'c_1', null, 'alpha', build)).toBe('w:c_1:-:alpha');
    expect(builds).toBe(1);
    expect(memo.contextKey('w', 'c_1', null, buildContext)).toBe('w:c_1:-');
    expect(memo.contextKey('w', 'c_1', null, buildContext)).toBe('w:c_1:-');
    expect(builds).toBe(2);
    expect(memo.key('w', 'c_1', 't_1', 'alpha', build)).toBe('w:c_1:t_1:alpha');
    expect(memo.key('w', 'c_1', 't_1', 'alpha', build)).toBe('w:c_1:t_1:alpha');
    expect(memo.contextKey('w', 'c_1', 't_1', buildContext)).toBe('w:c_1:t_1');
    expect(memo.contextKey('w', 'c_1', 't_1', buildContext)).toBe('w:c_1:t_1');
    expect(builds).toBe(6);
    expect(memo.of('w', 'c_1').served).toBe('w:c_1:-');
    expect(memo.of('w', 'c_1').card.size).toBe(1);
  });
});
