/**
 * The console's browser modules cannot import the server's types (they are built for the DOM,
 * without Node or zod), so they declare what they read; `npm run typecheck` checks here that the
 * server's answers fit those declarations.
 */
import { expectTypeOf, it } from 'vitest';
import type { CardListing } from '../../src/admin/card-listing.js';
import type { FoundCustomer } from '../../src/admin/customer-cards.js';
import type { UiComponent } from '../../src/console/ui/components.js';
import type { CardListingEntry, OverviewAnswer, WireCard, WireCustomer } from '../../src/console/ui/wire.js';
import type { InspectedCard } from '../../src/core/card-inspection.js';
import type { CardComponent } from '../../src/core/components.js';
import type { Overview } from '../../src/observability/overview.js';

it('server answers fit what the console reads', () => {
  expectTypeOf<CardComponent>().toExtend<UiComponent>();
  expectTypeOf<InspectedCard>().toExtend<WireCard>();
  expectTypeOf<FoundCustomer>().toExtend<WireCustomer>();
  expectTypeOf<CardListing>().toExtend<CardListingEntry>();
  expectTypeOf<Overview>().toExtend<OverviewAnswer>();
});
