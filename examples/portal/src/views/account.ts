// What the page shows about the subscriber, loaded from the API in one go and handed to
// every view: subscriptions with their plans, the address book, where each subscription
// that ships is sent, its next order and its plan's stock. A view that needs one more
// thing per subscription adds it here, so that every card renders from one consistent load.

import {
  type AddressDto,
  paginate,
  plans,
  type PortalPlanDto,
  type PortalSubscriptionDto,
  portalGetShippingAddress,
  portalGetSubscriptionStock,
  portalGetUpcomingOrder,
  portalListAddresses,
  portalListSubscriptions,
  type SubscriptionStockDto,
  TenureError,
  type UpcomingOrderDto,
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
  /** The next order of each running subscription that ships (absent: it will not renew). */
  upcoming: Map<string, UpcomingOrderDto>;
  /** The plan's stock and latest stock notice of each running subscription that ships. */
  stock: Map<string, SubscriptionStockDto>;
}

/** A plan the subscriber may choose, by name (its id if it is not offered). */
export function planName(plans: PlanDirectory, planId: string): string {
  const plan = plans.get(planId);
  return plan ? `${plan.product_name} · ${plan.name}` : planId;
}

/** The name of the plan a subscription is on, offered or retired (the API embeds it). */
export function subscriptionName(subscription: PortalSubscriptionDto): string {
  return `${subscription.plan.product_name} · ${subscription.plan.name}`;
}

/** Whether the subscription sends something each period (so has deliveries, an address and orders). */
export function ships(_account: Account, subscription: PortalSubscriptionDto): boolean {
  return subscription.plan.shippable;
}

/** Whether the subscriber may still change the subscription's next order (before the cutoff). */
export function orderEditable(account: Account, subscription: PortalSubscriptionDto): boolean {
  return account.upcoming.get(subscription.id)?.editable ?? true;
}

export async function loadAccount(portal: Portal): Promise<Account> {
  const { client } = portal;
  const [planList, subscriptions, addresses] = await Promise.all([
    plans({ client }),
    all((query) => portalListSubscriptions({ client, query })),
    all((query) => portalListAddresses({ client, query })),
  ]);
  const directory: PlanDirectory = new Map(planList.data.map((plan) => [plan.id, plan]));
  const shipped = subscriptions.filter((subscription) => subscription.plan.shippable);
  const running = shipped.filter((subscription) => !subscription.ended_at);
  const [destinations, upcoming, stock] = await Promise.all([
    Promise.all(
      shipped.map(async (subscription) => {
        const { data } = await portalGetShippingAddress({ client, path: { id: subscription.id } });
        return [subscription.id, data.address ?? null] as const;
      }),
    ),
    Promise.all(
      running.map(async (subscription) => {
        // 409 `no_upcoming_order`: it will not renew (canceled at the period end), so nothing ships.
        const data = await unlessConflict(portalGetUpcomingOrder({ client, path: { id: subscription.id } }));
        return [subscription.id, data] as const;
      }),
    ),
    Promise.all(
      running.map(async (subscription) => {
        const { data } = await portalGetSubscriptionStock({ client, path: { id: subscription.id } });
        return [subscription.id, data] as const;
      }),
    ),
  ]);
  return {
    subscriptions,
    plans: directory,
    addresses,
    shipping: new Map(destinations),
    upcoming: new Map(upcoming.flatMap(([id, order]): [string, UpcomingOrderDto][] => (order ? [[id, order]] : []))),
    stock: new Map(stock),
  };
}

async function unlessConflict<T>(request: Promise<{ data: T }>): Promise<T | null> {
  try {
    return (await request).data;
  } catch (error) {
    if (error instanceof TenureError && error.status === 409) {
      return null;
    }
    throw error;
  }
}

type Page<T> = Parameters<typeof paginate<T>>[0];

async function all<T>(fetchPage: Page<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of paginate(fetchPage, { limit: 100 })) {
    items.push(item);
  }
  return items;
}
