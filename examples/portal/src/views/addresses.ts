// The address book: where the subscriber's parcels may go. Add, edit and delete entries
// (an entry a subscription ships to cannot be deleted: the API's 409 `address_in_use` is
// shown as what to do about it), and the one-line form the other views print.

import {
  type AddressDto,
  type CreateAddress,
  type PostalAddressDto,
  portalCreateAddress,
  portalDeleteAddress,
  portalUpdateAddress,
  TenureError,
} from '@tenure/sdk';
import { h, uniqueId } from '../dom';
import type { Locale, MessageKey } from '../i18n';
import { act, ExplainedFailure, type Portal, openDialog } from '../portal';
import { type Account, subscriptionName } from './account';

/** `Ada Lovelace, 12 Rue des Lilas, 75011 Paris, FR`: an address (or an order's snapshot of one) on one line. */
export function addressLine(address: PostalAddressDto): string {
  const place = [address.postal_code, address.city].filter(Boolean).join(' ');
  return [address.name, address.line1, address.line2, place, address.state, address.country].filter(Boolean).join(', ');
}

export function addressBook(portal: Portal, account: Account): HTMLElement {
  const { locale } = portal;
  const headingId = 'addresses-heading';
  const add = h('button', { type: 'button', class: 'secondary' }, locale.t('addAddress'));
  add.addEventListener('click', () => openAddressForm(portal, null, add));
  return h(
    'section',
    { 'aria-labelledby': headingId },
    h('h2', { id: headingId }, locale.t('addresses')),
    account.addresses.length === 0
      ? h('p', {}, locale.t('noAddresses'))
      : h('ul', { class: 'cards' }, account.addresses.map((address) => h('li', {}, addressCard(portal, account, address)))),
    add,
  );
}

/** The names of the subscriptions that ship to `address`, as far as the page knows. */
function shippingTo(account: Account, address: AddressDto): string[] {
  return account.subscriptions
    .filter((subscription) => account.shipping.get(subscription.id)?.id === address.id)
    .map(subscriptionName);
}

function addressCard(portal: Portal, account: Account, address: AddressDto): HTMLElement {
  const { locale, client } = portal;
  const label = addressLine(address);
  const users = shippingTo(account, address);
  const edit = h('button', { type: 'button', class: 'secondary', 'aria-label': `${locale.t('edit')}: ${label}` }, locale.t('edit'));
  edit.addEventListener('click', () => openAddressForm(portal, address, edit));
  const remove = h('button', { type: 'button', class: 'secondary', 'aria-label': `${locale.t('delete')}: ${label}` }, locale.t('delete'));
  remove.addEventListener('click', () =>
    act(portal, remove, async () => {
      try {
        await portalDeleteAddress({ client, path: { id: address.id } });
      } catch (error) {
        throw inUse(error, users, locale);
      }
      return locale.t('done_addressDeleted');
    }),
  );
  return h(
    'article',
    { class: 'card', 'data-address': address.id, 'aria-label': label },
    h('h3', {}, address.name),
    h(
      'address',
      {},
      [address.line1, address.line2, [address.postal_code, address.city].filter(Boolean).join(' '), address.state, address.country]
        .filter(Boolean)
        .flatMap((line, i) => (i === 0 ? [line!] : [h('br'), line!])),
    ),
    address.phone ? h('p', {}, address.phone) : null,
    users.length > 0 ? h('p', { class: 'help' }, locale.t('usedBy', { plans: users.join(', ') })) : null,
    h('div', { class: 'actions' }, edit, remove),
  );
}

/**
 * The 409 `address_in_use` in the subscriber's terms: which of their subscriptions ships
 * there and what to do (the API's own words name subscription ids). Any other failure is
 * passed on as it is.
 */
function inUse(error: unknown, users: string[], locale: Locale): unknown {
  if (error instanceof TenureError && error.code === 'address_in_use' && users.length > 0) {
    return new ExplainedFailure(locale.t('addressInUse', { plans: users.join(', ') }), error);
  }
  return error;
}

/** The form's fields, in the order they are shown, with whether the API requires them. */
const FIELDS: { name: keyof PostalAddressDto; label: MessageKey; required: boolean; autocomplete: string }[] = [
  { name: 'name', label: 'recipient', required: true, autocomplete: 'shipping name' },
  { name: 'line1', label: 'line1', required: true, autocomplete: 'shipping address-line1' },
  { name: 'line2', label: 'line2', required: false, autocomplete: 'shipping address-line2' },
  { name: 'postal_code', label: 'postalCode', required: false, autocomplete: 'shipping postal-code' },
  { name: 'city', label: 'city', required: true, autocomplete: 'shipping address-level2' },
  { name: 'state', label: 'state', required: false, autocomplete: 'shipping address-level1' },
  { name: 'country', label: 'country', required: true, autocomplete: 'shipping country' },
  { name: 'phone', label: 'phone', required: false, autocomplete: 'shipping tel' },
];

/** Adds an address (`existing` null) or edits one. Invalid fields are marked and listed. */
export function openAddressForm(portal: Portal, existing: AddressDto | null, opener: HTMLElement): void {
  const { locale, client } = portal;
  openDialog(locale.t(existing ? 'editAddressTitle' : 'newAddressTitle'), locale, opener, (dialog) => {
    const inputs = new Map<string, HTMLInputElement>();
    const rows = FIELDS.flatMap((field) => {
      const id = uniqueId(`address-${field.name}`);
      const input = h('input', {
        id,
        name: field.name,
        required: field.required,
        autocomplete: field.autocomplete,
        type: field.name === 'phone' ? 'tel' : 'text',
        value: existing?.[field.name] ?? '',
        ...(field.name === 'country' ? { maxlength: 2, minlength: 2, size: 2 } : {}),
      });
      inputs.set(field.name, input);
      return [h('label', { for: id }, locale.t(field.label)), input];
    });
    const submit = h('button', { type: 'submit', class: 'primary' }, locale.t('saveAddress'));
    const form = h('form', {}, rows, submit);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      for (const input of inputs.values()) {
        input.removeAttribute('aria-invalid');
      }
      // Optional fields left empty are sent as null: on an edit, that clears them.
      const body: Record<string, string | null> = {};
      for (const [name, input] of inputs) {
        body[name] = input.value.trim() === '' ? null : input.value.trim();
      }
      void act(
        portal,
        submit,
        async () => {
          try {
            if (existing) {
              await portalUpdateAddress({ client, path: { id: existing.id }, body });
            } else {
              // Sent as typed: the API checks every field and names each missing one in
              // its 422, which marks the inputs (below).
              await portalCreateAddress({ client, body: body as unknown as CreateAddress });
            }
          } catch (error) {
            markInvalid(error, inputs);
            throw error;
          }
          dialog.close();
          return locale.t(existing ? 'done_addressSaved' : 'done_addressAdded');
        },
        dialog.errors,
      );
    });
    return [form];
  });
}

/** Marks the inputs the API named in a 422, and moves focus to the first. */
function markInvalid(error: unknown, inputs: Map<string, HTMLInputElement>): void {
  if (!(error instanceof TenureError)) {
    return;
  }
  let first: HTMLInputElement | null = null;
  for (const field of error.errors) {
    const input = inputs.get(field.field);
    if (input) {
      input.setAttribute('aria-invalid', 'true');
      first ??= input;
    }
  }
  first?.focus();
}
