/**
 * A refresh job can end without its processor recording an outcome: BullMQ fails a job that
 * stalled more than once (its workers died) without running the processor again, and a processor
 * can throw before it gets to its first line of work. Such a job still holds its cards' in-flight
 * markers, so requests would join it and wait out their whole budget. Here the job's end is
 * recorded as a retriable failure of each card it still owns: the markers are released and the
 * failure announced in the same atomic step, so waiting requests fall back at once (SPEC 5) and
 * the next request starts a fresh refresh.
 */
import type { CardRef } from '../core/card-ref.js';
import { failedEvent } from './card-loads.js';
import { jobCardRefs, loadContext, type ProcessorDeps } from './refresh-processor.js';
import { refreshNotice } from '../redis/single-flight.js';
import { RefreshJobDataSchema } from './refresh-job.js';

/**
 * Records the end of job `jobId` (data `rawData`) for the cards whose markers it still holds.
 * @returns the cards it released (none when the processor had recorded everything already)
 */
export async function recordAbandonedJob(deps: ProcessorDeps, jobId: string, rawData: unknown, reason: string): Promise<CardRef[]> {
  const parsed = RefreshJobDataSchema.safeParse(rawData);
  if (!parsed.success) return []; // nothing to identify its cards by; their markers are reclaimed when joined
  const data = parsed.data;
  const refs = jobCardRefs(data);
  const owners = await deps.store.inflightOwners(refs);
  const owned = refs.filter((_, i) => owners[i] === jobId);
  if (owned.length === 0) return [];
  const known = owned.filter((ref) => deps.policies.has(ref.cardKey));
  const ctx = await loadContext(deps, data);
  const events = known.map((ref) =>
    failedEvent(ref, { kind: 'retriable', detail: `refresh job ended without an outcome: ${reason}`, status: null }, ctx),
  );
  await deps.store.recordRefreshOutcome(events, { owner: jobId, refs: owned }, refreshNotice(events));
  return owned;
}
