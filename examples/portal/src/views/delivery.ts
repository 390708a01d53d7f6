// A subscription's deliveries, on its card: where it ships (and choosing another entry of
// the address book), the renewals that are skipped, and the buttons that skip the next one
// or take the last skip back, offered exactly when `available_actions` says they can work.
// A product that does not ship has renewals rather than deliveries: the same panel says so.

import {
  type AddressDto,
  type PortalSubscriptionDto,
  portalSetShippingAddress,
  portalSkipRenewal,
  portalUnskipRenewal,
} from '@tenure/sdk';
import { h, uniqueId } from '../dom';
import { act, type Portal, openDialog } from '../portal';
import { type Account, ships, subscriptionName } from './account';
import { addressLine } from './addresses';
import { lockedLabel } from './upcoming-order';

/** The panel under the subscription's details; null when there is nothing to say. */
export function deliveryPanel(portal: Portal, account: Account, subscription: PortalSubscriptionDto): HTMLElement | null {
  const { locale } = portal;
  const shipping = ships(account, subscription);
  const skipped = subscription.skipped_renewals ?? [];
  const next = subscription.available_actions.skip?.renewal_at;
  if (!shipping && skipped.length === 0 && !next) {
    return null;
  }
  const parts: (Node | null)[] = [];
  if (shipping && !subscription.ended_at) {
    parts.push(shippingAddress(portal, account, subscription));
  }
  if (next) {
    parts.push(h('p', {}, locale.t(shipping ? 'nextDelivery' : 'nextRenewal', { date: locale.date(next) })));
  }
  if (skipped.length > 0) {
    parts.push(
      h(
        'ul',
        { class: 'skipped', 'aria-label': locale.t('skippedTitle') },
        skipped.map((skip) =>
          h(
            'li',
            {},
            locale.t(shipping ? 'skippedDelivery' : 'skippedRenewal', { date: locale.date(skip.renewal_at) }),
            skip.requested_by === 'customer' ? null : ` ${locale.t('skippedByShop')}`,
          ),
        ),
      ),
    );
  }
  return h('div', { class: 'delivery' }, h('h4', {}, locale.t(shipping ? 'deliveryTitle' : 'renewalsTitle')), parts);
}

function shippingAddress(portal: Portal, account: Account, subscription: PortalSubscriptionDto): HTMLElement {
  const { locale } = portal;
  const address = account.shipping.get(subscription.id) ?? null;
  const name = subscriptionName(subscription);
  const label = locale.t(address ? 'changeAddress' : 'chooseAddress');
  // After the edit cutoff the next order keeps its address: the button says until when.
  const locked = address ? lockedLabel(portal, account, subscription, label) : null;
  const change = h(
    'button',
    { type: 'button', class: 'secondary', disabled: locked !== null, 'aria-label': `${locked ?? label}: ${name}` },
    locked ?? label,
  );
  change.addEventListener('click', () => openChooseAddress(portal, account, subscription, address, change));
  return h(
    'div',
    { class: 'ships-to' },
    address
      ? h('p', {}, locale.t('shipsTo', { address: addressLine(address) }))
      : h('p', { class: 'warning' }, locale.t('noShippingAddress')),
    change,
  );
}

/** Moves the subscription to another entry of the address book (from its next order on). */
function openChooseAddress(
  portal: Portal,
  account: Account,
  subscription: PortalSubscriptionDto,
  current: AddressDto | null,
  opener: HTMLElement,
): void {
  const { locale, client } = portal;
  const title = locale.t('chooseAddressTitle', { plan: subscriptionName(subscription) });
  openDialog(title, locale, opener, (dialog) => {
    if (account.addresses.length === 0) {
      return [h('p', {}, locale.t('addAddressFirst'))];
    }
    const group = uniqueId('ship-to');
    const submit = h('button', { type: 'submit', class: 'primary' }, locale.t('shipHere'));
    const form = h(
      'form',
      {},
      h(
        'fieldset',
        {},
        h('legend', {}, title),
        account.addresses.map((address) => {
          const id = uniqueId('address');
          return h(
            'div',
            { class: 'choice' },
            h('input', { type: 'radio', name: group, id, value: address.id, required: true, checked: address.id === current?.id }),
            h('label', { for: id }, addressLine(address)),
          );
        }),
      ),
      submit,
    );
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const chosen = account.addresses.find((address) => address.id === new FormData(form).get(group));
      if (!chosen) {
        return;
      }
      void act(
        portal,
        submit,
        async () => {
          await portalSetShippingAddress({ client, path: { id: subscription.id }, body: { address_id: chosen.id } });
          dialog.close();
          return locale.t('done_shippingAddress', { address: addressLine(chosen) });
        },
        dialog.errors,
      );
    });
    return [form];
  });
}

/**
 * Adds a button to a card's action group. `changesOrder`: the action changes what the next
 * order ships, so after the edit cutoff the button says it is locked and is disabled.
 */
export type ActionButton = (
  label: string,
  onClick: (self: HTMLButtonElement) => void,
  options?: { primary?: boolean; changesOrder?: boolean },
) => void;

/**
 * The skip and undo-skip buttons for the card's action group: `add(label, onClick)` is the
 * group's own button maker, so these sit with pause and cancel.
 */
export function skipActions(
  portal: Portal,
  account: Account,
  subscription: PortalSubscriptionDto,
  add: ActionButton,
): void {
  const { locale, client } = portal;
  const shipping = ships(account, subscription);
  const skip = subscription.available_actions.skip;
  if (skip) {
    add(locale.t(shipping ? 'skipDelivery' : 'skipRenewal'), (self) =>
      act(portal, self, async () => {
        await portalSkipRenewal({ client, path: { id: subscription.id } });
        return locale.t(shipping ? 'done_skipDelivery' : 'done_skipRenewal', { date: locale.date(skip.renewal_at) });
      }),
      { changesOrder: shipping },
    );
  }
  // Unskip takes back the last skip (the latest renewal skipped).
  const last = [...(subscription.skipped_renewals ?? [])].sort((a, b) => Date.parse(a.renewal_at) - Date.parse(b.renewal_at)).at(-1);
  if (subscription.available_actions.unskip && last) {
    add(locale.t('unskip'), (self) =>
      act(portal, self, async () => {
        await portalUnskipRenewal({ client, path: { id: subscription.id } });
        return locale.t(shipping ? 'done_unskipDelivery' : 'done_unskipRenewal', { date: locale.date(last.renewal_at) });
      }),
      { changesOrder: shipping },
    );
  }
}
