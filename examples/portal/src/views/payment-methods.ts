// Cards on file: which is the default, which expire, and adding one by the token the
// merchant's card form (their gateway's hosted fields) produced. A card number never
// reaches this page or Tenure.

import {
  type PaymentMethodDto,
  portalAttachPaymentMethod,
  portalDetachPaymentMethod,
  portalSetDefaultPaymentMethod,
} from '@tenure/sdk';
import { h, uniqueId } from '../dom';
import { act, type Portal } from '../portal';

/** The sandbox gateway's test tokens, offered as suggestions in development. */
const SANDBOX_TOKENS = ['pm_card_visa', 'pm_card_mastercard', 'pm_card_amex', 'pm_card_chargeDeclined'];

export function paymentMethodList(portal: Portal, methods: PaymentMethodDto[]): HTMLElement {
  const { locale } = portal;
  const headingId = 'payment-methods-heading';
  return h(
    'section',
    { 'aria-labelledby': headingId },
    h('h2', { id: headingId }, locale.t('paymentMethods')),
    methods.length === 0
      ? h('p', {}, locale.t('noPaymentMethods'))
      : h('ul', { class: 'cards' }, methods.map((method) => h('li', {}, methodCard(portal, method)))),
    addCardForm(portal),
  );
}

function methodCard(portal: Portal, method: PaymentMethodDto): HTMLElement {
  const { locale, client } = portal;
  const label = locale.t('cardLabel', { brand: capitalise(method.brand), last4: method.last4 });
  const badges = [
    method.is_default ? h('span', { class: 'badge' }, locale.t('default')) : null,
    method.expired
      ? h('span', { class: 'badge warning' }, locale.t('expired'))
      : method.expiring_soon
        ? h('span', { class: 'badge warning' }, locale.t('expiringSoon'))
        : null,
  ];
  const buttons: HTMLButtonElement[] = [];
  if (!method.is_default) {
    const makeDefault = h('button', { type: 'button', class: 'secondary', 'aria-label': `${locale.t('makeDefault')}: ${label}` }, locale.t('makeDefault'));
    makeDefault.addEventListener('click', () =>
      act(portal, makeDefault, async () => {
        await portalSetDefaultPaymentMethod({ client, path: { id: method.id } });
        return locale.t('done_default');
      }),
    );
    buttons.push(makeDefault);
  }
  const remove = h('button', { type: 'button', class: 'secondary', 'aria-label': `${locale.t('remove')}: ${label}` }, locale.t('remove'));
  remove.addEventListener('click', () =>
    act(portal, remove, async () => {
      await portalDetachPaymentMethod({ client, path: { id: method.id } });
      return locale.t('done_removeCard');
    }),
  );
  buttons.push(remove);
  return h(
    'article',
    { class: 'card', 'data-payment-method': method.id },
    h('h3', {}, label, ' ', badges),
    h('p', {}, locale.t('expires', { month: String(method.exp_month).padStart(2, '0'), year: method.exp_year })),
    h('div', { class: 'actions' }, buttons),
  );
}

function addCardForm(portal: Portal): HTMLElement {
  const { locale, client } = portal;
  const tokenId = uniqueId('card-token');
  const helpId = uniqueId('card-token-help');
  const listId = uniqueId('card-tokens');
  const token = h('input', { id: tokenId, name: 'token', required: true, autocomplete: 'off', list: listId, 'aria-describedby': helpId });
  const submit = h('button', { type: 'submit', class: 'primary' }, locale.t('addCardButton'));
  const form = h(
    'form',
    { class: 'add-card' },
    h('h3', {}, locale.t('addCard')),
    h('label', { for: tokenId }, locale.t('cardToken')),
    token,
    h('datalist', { id: listId }, SANDBOX_TOKENS.map((value) => h('option', { value }))),
    h('p', { id: helpId, class: 'help' }, locale.t('cardTokenHelp')),
    submit,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void act(portal, submit, async () => {
      await portalAttachPaymentMethod({ client, body: { token: token.value.trim() } });
      return locale.t('done_addCard');
    });
  });
  return form;
}

function capitalise(word: string): string {
  return word.charAt(0).toUpperCase() + word.slice(1);
}
