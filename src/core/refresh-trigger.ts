/**
 * Why a refresh runs (the `trigger` of refresh events, SPEC section 6) and how urgent it is (the
 * three priorities of SPEC 10.4). Pure.
 */

/** `request`: a `/cards` request found the card missing or stale; `reload`: a manual reload;
 * `warm`: a webhook or an operator's warm request; `ahead`: refresh-ahead; `invalidate`: an
 * invalidation with `refresh: true`. */
export const REFRESH_TRIGGERS = ['request', 'reload', 'warm', 'ahead', 'invalidate'] as const;
export type RefreshTrigger = (typeof REFRESH_TRIGGERS)[number];

/**
 * Highest first: a request is waiting for the card (missing, or a manual reload); a stale copy
 * was served and is being refreshed; warming (webhooks, operator warming, refresh-ahead,
 * invalidation with refresh).
 */
export type RefreshUrgency = 'waiting' | 'background' | 'warming';

/**
 * The BullMQ job priority of an urgency: 1 is taken first. Never 0: BullMQ takes unprioritized
 * jobs before every prioritized one.
 */
export function jobPriority(urgency: RefreshUrgency): number {
  switch (urgency) {
    case 'waiting':
      return 1;
    case 'background':
      return 2;
    case 'warming':
      return 3;
    default: {
      const unreachable: never = urgency;
      return unreachable;
    }
  }
}
