// Each subscription as a card: what it is, when it renews or ends, what is scheduled, and
// exactly the buttons its `available_actions` allows (nothing is offered that the
// merchant's policy would then refuse).

import {
  type PortalPlanDto,
  type PortalSubscriptionDto,
  portalRemoveScheduledChange,
  portalResumeSubscription,
  withdrawCancellationRequest,
} from '@tenure/sdk';
import { h } from '../dom';
import type { Locale } from '../i18n';
import { act, type Portal } from '../portal';
import { type Account, subscriptionName } from './account';
import { openCancel } from './cancel';
import { cancellationRequestPanel } from './cancellation-request';
import { openChangePlan } from './change-plan';
import { openChangeQuantity } from './change-quantity';
import { type ActionButton, deliveryPanel, skipActions } from './delivery';
import { openPause } from './pause';
import { stockPanel } from './stock';
import { lockedLabel, upcomingOrderPanel } from './upcoming-order';

export { type PlanDirectory, planName } from './account';

export function subscriptionList(portal: Portal, account: Account): Node {
  const { locale } = portal;
  const { subscriptions } = account;
  const headingId = 'subscriptions-heading';
  return h(
    'section',
    { 'aria-labelledby': headingId },
    h('h2', { id: headingId }, locale.t('title')),
    subscriptions.length === 0
      ? h('p', {}, locale.t('noSubscriptions'))
      : h('ul', { class: 'cards' }, subscriptions.map((subscription) => h('li', {}, card(portal, account, subscription)))),
  );
}

export function priceText(locale: Locale, price: PortalPlanDto['price'], interval: PortalPlanDto['interval'], count: number): string {
  const amount = locale.money(price);
  return count === 1
    ? locale.t(`perInterval_${interval}`, { price: amount })
    : locale.t('everyInterval', { price: amount, count, interval });
}

function card(portal: Portal, account: Account, subscription: PortalSubscriptionDto): HTMLElement {
  const { locale } = portal;
  const name = subscriptionName(subscription);
  const headingId = `subscription-${subscription.id}`;
  return h(
    'article',
    { class: 'card', 'aria-labelledby': headingId, 'data-subscription': subscription.id },
    h('h3', { id: headingId }, name),
    h('p', { class: `status status-${subscription.status}` }, locale.t(`status_${subscription.status}`)),
    h('p', {}, priceText(locale, subscription.price, subscription.interval, subscription.interval_count)),
    subscription.quantity !== 1 || subscription.available_actions.change_quantity
      ? h('p', {}, locale.t('quantityOf', { quantity: subscription.quantity }))
      : null,
    h('p', {}, when(locale, subscription)),
    subscription.discounts?.length
      ? h(
          'ul',
          { class: 'discounts' },
          subscription.discounts.map((discount) =>
            h(
              'li',
              {},
              discount.amount
                ? locale.t('discountAmount', { amount: locale.money(discount.amount), cycles: discount.cycles_remaining })
                : locale.t('discount', { percent: discount.percent ?? 0, cycles: discount.cycles_remaining }),
            ),
          ),
        )
      : null,
    scheduledChanges(portal, subscription),
    deliveryPanel(portal, account, subscription),
    upcomingOrderPanel(portal, account, subscription),
    stockPanel(portal, account, subscription),
    cancellationRequestPanel(portal, subscription),
    actions(portal, account, subscription, name),
  );
}

function when(locale: Locale, subscription: PortalSubscriptionDto): string {
  if (subscription.ended_at) {
    return locale.t('ended', { date: locale.date(subscription.ended_at) });
  }
  if (subscription.status === 'paused' && subscription.pause) {
    return subscription.pause.resumes_at
      ? locale.t('pausedUntil', { date: locale.date(subscription.pause.resumes_at) })
      : locale.t('pausedOpen');
  }
  if (subscription.cancel_at) {
    return locale.t('endsOn', { date: locale.date(subscription.cancel_at) });
  }
  if (subscription.status === 'trialing' && subscription.trial_end) {
    return locale.t('trialEnds', { date: locale.date(subscription.trial_end) });
  }
  return locale.t('renews', { date: locale.date(subscription.current_period.end) });
}

function scheduledChanges(portal: Portal, subscription: PortalSubscriptionDto): Node | null {
  const { locale } = portal;
  if (subscription.scheduled_changes.length === 0) {
    return null;
  }
  const removable = new Set(subscription.available_actions.removable_changes);
  return h(
    'div',
    { class: 'scheduled' },
    h('h4', {}, locale.t('scheduled')),
    h(
      'ul',
      {},
      subscription.scheduled_changes.map((change) => {
        const label = locale.t(`change_${change.type}`, { date: locale.date(change.due_at) });
        const undo = removable.has(change.id)
          ? h('button', {
              type: 'button',
              class: 'secondary',
              'aria-label': `${locale.t('removeChange')}: ${label}`,
            }, locale.t('removeChange'))
          : null;
        undo?.addEventListener('click', () =>
          act(portal, undo, async () => {
            await portalRemoveScheduledChange({ client: portal.client, path: { id: subscription.id, change_id: change.id } });
            return locale.t('done_removeChange');
          }),
        );
        return h('li', {}, label, ' ', undo);
      }),
    ),
  );
}

/** The id of the pending cancellation request, from the scheduled cancel change. */
export function cancellationRequestId(subscription: PortalSubscriptionDto): string | null {
  for (const change of subscription.scheduled_changes) {
    const id = (change.details as { cancellation_request_id?: unknown }).cancellation_request_id;
    if (change.type === 'cancel' && typeof id === 'string') {
      return id;
    }
  }
  return null;
}

/**
 * The card's buttons, in one group: each offered only when `available_actions` says it
 * can succeed. A new action is one more `button(label, onClick)` here (or a function
 * like `skipActions` given `button`).
 */
function actions(portal: Portal, account: Account, subscription: PortalSubscriptionDto, name: string): HTMLElement | null {
  const { locale, client } = portal;
  const { plans } = account;
  const allowed = subscription.available_actions;
  const buttons: HTMLButtonElement[] = [];
  const button: ActionButton = (label, onClick, options = {}) => {
    const locked = options.changesOrder ? lockedLabel(portal, account, subscription, label) : null;
    const element = h('button', { type: 'button', class: options.primary ? 'primary' : 'secondary', disabled: locked !== null }, locked ?? label);
    element.addEventListener('click', () => onClick(element));
    buttons.push(element);
  };
  if (allowed.change_plan && allowed.change_plan.plan_ids.length > 0) {
    const choices = allowed.change_plan.plan_ids;
    button(locale.t('changePlan'), (self) => openChangePlan(portal, subscription, choices, plans, self), { primary: true, changesOrder: true });
  }
  if (allowed.change_quantity) {
    const limits = allowed.change_quantity;
    button(locale.t('changeQuantity'), (self) => openChangeQuantity(portal, subscription, limits, self), { changesOrder: true });
  }
  skipActions(portal, account, subscription, button);
  if (allowed.pause) {
    const policy = allowed.pause;
    button(locale.t('pause'), (self) => openPause(portal, subscription, policy, self));
  }
  if (allowed.resume) {
    button(locale.t('resume'), (self) =>
      act(portal, self, async () => {
        await portalResumeSubscription({ client, path: { id: subscription.id } });
        return locale.t('done_resume');
      }),
    );
  }
  const requestId = cancellationRequestId(subscription);
  if (allowed.withdraw_cancellation && requestId) {
    button(locale.t('withdrawCancellation'), (self) =>
      act(portal, self, async () => {
        await withdrawCancellationRequest({ client, path: { id: requestId } });
        return locale.t('done_withdraw');
      }),
    );
  }
  if (allowed.cancel) {
    const policy = allowed.cancel;
    button(locale.t('cancel'), (self) => openCancel(portal, subscription, policy, plans, self));
  }
  if (buttons.length === 0) {
    return null;
  }
  return h('div', { role: 'group', class: 'actions', 'aria-label': locale.t('actions', { plan: name }) }, buttons);
}
