/**
 * The Redis Cluster slot of a key (CRC16 of its hash tag, mod 16384), as Redis computes it: the
 * `cluster-key-slot` package ioredis uses for routing, typed here.
 */
import { createRequire } from 'node:module';

const calculateSlot = createRequire(import.meta.url)('cluster-key-slot') as (key: string) => number;

export function keySlot(key: string): number {
  return calculateSlot(key);
}
