/** Where "now" comes from. The core never reads the time itself; the shell passes a Clock in. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
