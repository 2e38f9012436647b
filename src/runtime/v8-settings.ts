/**
 * V8 settings of the long-running roles (`start`, `serve`, `worker`), applied before they load
 * anything that serves.
 *
 * Allocation-site pretenuring off. V8 watches, per place in the code where objects are allocated,
 * how many of them survive young-generation collections; past a threshold it allocates that
 * site's objects directly in the old generation from then on. A `/cards` request that waits for a
 * refresh keeps its objects alive for seconds, so a few hundred cold requests are enough for V8
 * to pretenure the sites the warm path shares with them (the resolution, its answers, the log
 * line). From then on the short-lived objects of every warm request were allocated old, where
 * only a full collection frees them: measured with 5 keys × 50 connections on a warm cache, the
 * `serve` process that had done the warming promoted about 2 MB per young collection (a fresh
 * one 0.4 MB), each young collection took 12-15 ms instead of 2 ms (old objects pointing at young
 * ones are scanned every time), full collections ran every second or two, and a warm request cost
 * 146-218 µs of CPU against 99-120 µs in the fresh process. With pretenuring off both cost the
 * same (101 and 97 µs) and no full collection ran under load. What the setting can cost, objects
 * that do live long being copied once more before they are promoted, does not apply here: the
 * long-lived state (near cache, key memo, queues) is built once and changes slowly.
 *
 * Set at run time with `v8.setFlagsFromString`, which V8 reads when it next weighs pretenuring
 * (at every young collection), so it holds for the whole life of the process.
 */
import { setFlagsFromString } from 'node:v8';

const V8_FLAGS = ['--no-allocation-site-pretenuring'] as const;

export function applyV8Settings(): void {
  for (const flag of V8_FLAGS) setFlagsFromString(flag);
}
