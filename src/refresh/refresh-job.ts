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
  cards: z.array(z.object({ cardKey: z.string(), threadId: IdentifierSchema.nullable() })).min(1),
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
