// What the page shows about the subscriber, loaded from the API in one go and handed to
// every view: subscriptions with their plans, the address book and where each subscription
// that ships is sent. A view that needs one more thing per subscription (the next order,
// a stock notice) adds it here, so that every card renders from one consistent load.

import {
  type AddressDto,
  paginate,
  plans,
  type PortalPlanDto,
  type PortalSubscriptionDto,
  portalGetShippingAddress,
  portalListAddresses,
  portalListSubscriptions,
} from '@tenure/sdk';
import type { Portal } from '../portal';

export type PlanDirectory = Map<string, PortalPlanDto>;

export interface Account {
  subscriptions: PortalSubscriptionDto[];
  /** The plans the subscriber may choose, by id (a retired plan is not among them). */
  plans: PlanDirectory;
  /** The address book, as the API lists it (newest first). */
  addresses: AddressDto[];
  /** Where each subscription to a product that ships is sent (null: no address yet). */
  shipping: Map<string, AddressDto | null>;
}

export function planName(plans: PlanDirectory, planId: string): string {
  const plan = plans.get(planId);
  return plan ? `${plan.product_name} · ${plan.name}` : planId;
}

/** Whether the subscription sends something each period (so has deliveries, an address and orders). */
export function ships(account: Account, subscription: PortalSubscriptionDto): boolean {
  return account.shipping.has(subscription.id);
}

export async function loadAccount(portal: Portal): Promise<Account> {
  const { client } = portal;
  const [planList, subscriptions, addresses] = await Promise.all([
    plans({ client }),
    all((query) => portalListSubscriptions({ client, query })),
    all((query) => portalListAddresses({ client, query })),
  ]);
  const directory: PlanDirectory = new Map(planList.data.map((plan) => [plan.id, plan]));
  const shipped = subscriptions.filter((subscription) => directory.get(subscription.plan_id)?.shippable);
  const destinations = await Promise.all(
    shipped.map(async (subscription) => {
      const { data } = await portalGetShippingAddress({ client, path: { id: subscription.id } });
      return [subscription.id, data.address ?? null] as const;
    }),
  );
  return { subscriptions, plans: directory, addresses, shipping: new Map(destinations) };
}

type Page<T> = Parameters<typeof paginate<T>>[0];

async function all<T>(fetchPage: Page<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of paginate(fetchPage, { limit: 100 })) {
    items.push(item);
  }
  return items;
}
