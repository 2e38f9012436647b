/**
 * The data of a refresh job: one upstream call for some cards of one customer. Validated when a
 * worker takes the job, since it crossed a process boundary through Redis.
 */
import { z } from 'zod';
import { REFRESH_TRIGGERS } from '../core/refresh-trigger.js';

const Identified = z.object({ id: z.string(), externalId: z.string().nullish() });

export const RefreshJobDataSchema = z.object({
  workspaceId: z.string(),
  customer: z.object({ id: z.string(), email: z.string().nullish(), externalId: z.string().nullish() }),
  thread: Identified.nullish(),
  tenant: Identified.nullish(),
  /** The cards to load; `threadId` is the cache identity (null for customer scope). */
  cards: z.array(z.object({ cardKey: z.string(), threadId: z.string().nullable() })).min(1),
  /** A manual reload: load even what was refreshed since the job was queued. */
  force: z.boolean(),
  /** When the refresh was asked for (ms); cards loaded since then need no second call. */
  requestedAt: z.number(),
  /** Why the refresh runs; carried into its events. Jobs queued by an older version have none. */
  trigger: z.enum(REFRESH_TRIGGERS).default('request'),
});

export type RefreshJobData = z.infer<typeof RefreshJobDataSchema>;

export const REFRESH_JOB_NAME = 'refresh';
export const REFRESH_QUEUE_NAME = 'refresh';
