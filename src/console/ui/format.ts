/** Small pure formatters for the console. */

/** "in 4 min", "12 s ago": how far `iso` is from `now`. */
export function relativeTime(iso: string, now: number): string {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) return iso;
  const delta = Math.round((ms - now) / 1000);
  const abs = Math.abs(delta);
  if (abs < 1) return 'just now';
  const amount = abs < 60 ? `${abs} s` : abs < 3600 ? `${Math.round(abs / 60)} min` : abs < 86_400 ? `${Math.round(abs / 360) / 10} h` : `${Math.round(abs / 8640) / 10} d`;
  return delta >= 0 ? `in ${amount}` : `${amount} ago`;
}

/** A ratio as a percentage with one decimal, or "–" when there is nothing to divide. */
export function percent(part: number, whole: number): string {
  return whole > 0 ? `${((100 * part) / whole).toFixed(1)} %` : '–';
}

/** Seconds as milliseconds or seconds, whichever reads better. */
export function duration(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return '–';
  return seconds < 1 ? `${Math.round(seconds * 1000)} ms` : `${seconds.toFixed(2)} s`;
}
