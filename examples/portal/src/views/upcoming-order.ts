// A subscription's next order, on its card: what ships (lines with their variant and
// quantity), when it is made and charged, where it goes, what it costs, and the merchant's
// edit cutoff. After the cutoff the order is locked: the buttons that would change it say
// so and are disabled (`lockedLabel`), and a change made from a page loaded before the
// cutoff gets the API's 409 `order_edit_cutoff_passed`, whose words are shown.

import type { PortalSubscriptionDto, UpcomingOrderDto } from '@tenure/sdk';
import { h } from '../dom';
import type { Portal } from '../portal';
import type { Account } from './account';
import { addressLine } from './addresses';

/** The panel under the subscription's details; null when nothing is coming. */
export function upcomingOrderPanel(portal: Portal, account: Account, subscription: PortalSubscriptionDto): HTMLElement | null {
  const { locale } = portal;
  const order = account.upcoming.get(subscription.id);
  if (!order) {
    return null;
  }
  const headingId = `upcoming-${subscription.id}`;
  return h(
    'section',
    {
      class: 'upcoming',
      // Named with the card's heading too: every card has one (unique landmarks).
      'aria-labelledby': `${headingId} subscription-${subscription.id}`,
    },
    h('h4', { id: headingId }, locale.t('upcomingTitle')),
    h(
      'p',
      {},
      locale.t('upcomingWhen', { date: locale.date(order.renewal_at), start: locale.date(order.period_start), end: locale.date(order.period_end) }),
    ),
    h(
      'ul',
      { class: 'lines', 'aria-label': locale.t('upcomingTitle') },
      order.lines.map((line) => {
        const text = locale.t('orderLine', { quantity: line.quantity, product: line.product_name, plan: line.plan_name });
        return h(
          'li',
          {},
          h('span', {}, line.variant ? locale.t('upcomingVariant', { line: text, variant: line.variant.name }) : text),
          h('span', { class: 'amount' }, locale.money(line.amount)),
        );
      }),
    ),
    h('p', { class: 'total' }, locale.t('orderTotal', { amount: locale.money(order.amount_total) })),
    h('p', {}, order.shipping_address ? locale.t('orderShipsTo', { address: addressLine(order.shipping_address) }) : locale.t('orderNoAddress')),
    cutoff(portal, order),
  );
}

function cutoff(portal: Portal, order: UpcomingOrderDto): HTMLElement | null {
  const { locale } = portal;
  if (!order.cutoff_at) {
    return null;
  }
  const time = locale.dateTime(order.cutoff_at);
  return order.editable
    ? h('p', { class: 'help cutoff' }, locale.t('upcomingCutoff', { time }))
    : h('p', { class: 'warning cutoff' }, locale.t('upcomingLocked', { time, date: locale.date(order.renewal_at) }));
}

/**
 * The label of a button that would change the next order: itself while the order may
 * change, else saying it is locked until the renewal (the caller disables it). Null
 * when the order is open.
 */
export function lockedLabel(portal: Portal, account: Account, subscription: PortalSubscriptionDto, action: string): string | null {
  const order = account.upcoming.get(subscription.id);
  if (!order || order.editable) {
    return null;
  }
  return portal.locale.t('lockedAction', { action, date: portal.locale.date(order.renewal_at) });
}
