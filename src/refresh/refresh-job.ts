/**
 * The data of a refresh job: one upstream call for some cards of one customer. Validated when a
 * worker takes the job, since it crossed a process boundary through Redis.
 */
import { z } from 'zod';
import { EmailSchema, IdentifierSchema } from '../core/identifiers.js';
import { REFRESH_TRIGGERS } from '../core/refresh-trigger.js';

// The same limits as at the HTTP boundary: nothing that could not be encoded reaches a worker.
const Identified = z.object({ id: IdentifierSchema, externalId: IdentifierSchema.nullish() });

export const RefreshJobDataSchema = z.object({
  workspaceId: IdentifierSchema,
  customer: z.object({ id: IdentifierSchema, email: EmailSchema.nullish(), externalId: IdentifierSchema.nullish() }),
  thread: Identified.nullish(),
  tenant: Identified.nullish(),
  /** The cards to load; `threadId` is the cache identity (null for customer scope). */
  cards: z
    .array(
      z.object({
        cardKey: z.string(),
        threadId: IdentifierSchema.nullable(),
        /**
         * The card's `fetchedAt` (ms) in the state the requester read, null when none was cached;
         * absent when unknown. A card whose `fetchedAt` differs by the time the job runs was loaded
         * since the look (by a job whose outcome landed between the look and this job's claim) and
         * needs no second call. Timestamps alone cannot tell: that load's `fetchedAt` is taken
         * before its outcome is recorded, so it may be older than the request's look.
         */
        seenFetchedAt: z.number().nullable().optional(),
      }),
    )
    .min(1),
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
