// A stock notice, on the card of a subscription whose plan is low, out of stock or
// discontinued: the plan's status and when it is expected back, what will happen to the
// next order (the merchant's action, or the subscriber's choice), and, when the merchant
// offers choices, a form to pick one (`POST …/stock_choice`); the API's answer is what the
// card then shows.

import { type NextOrderActionDto, type PortalSubscriptionDto, portalChooseStock, type SubscriptionStockDto } from '@tenure/sdk';
import { h, uniqueId } from '../dom';
import { act, type Portal } from '../portal';
import { type Account, planName } from './account';

/** The panel; null while the plan is in stock and no notice says otherwise. */
export function stockPanel(portal: Portal, account: Account, subscription: PortalSubscriptionDto): HTMLElement | null {
  const { locale } = portal;
  const stock = account.stock.get(subscription.id);
  if (!stock) {
    return null;
  }
  const notice = stock.notice ?? null;
  const noticeMatters = notice !== null && (notice.stock.status !== 'in_stock' || notice.choices.length > 0);
  if (stock.stock.status === 'in_stock' && !noticeMatters) {
    return null;
  }
  const headingId = `stock-${subscription.id}`;
  const expected = stock.stock.expected_at ?? (stock.stock.status === notice?.stock.status ? notice?.stock.expected_at : null);
  return h(
    'section',
    {
      class: 'stock',
      // Named with the card's heading too: every card has one (unique landmarks).
      'aria-labelledby': `${headingId} subscription-${subscription.id}`,
    },
    h('h4', { id: headingId }, locale.t('stockTitle')),
    h('p', { class: `status stock-${stock.stock.status}` }, locale.t(`stock_${stock.stock.status}`)),
    expected ? h('p', {}, locale.t('stockExpected', { date: locale.date(expected) })) : null,
    notice ? h('p', { class: 'next-order' }, nextOrderText(portal, account, notice.next_order, notice.substitute_plan_id ?? null)) : null,
    notice?.not_applied_code ? h('p', { class: 'help' }, locale.t('stockNotApplied', { code: notice.not_applied_code })) : null,
    notice && notice.choices.length > 0 ? choiceForm(portal, account, subscription, stock) : null,
  );
}

function nextOrderText(portal: Portal, account: Account, action: NextOrderActionDto, substitute: string | null): string {
  const { locale } = portal;
  if (action === 'swap') {
    return locale.t('stockNext_swap', { plan: substitute ? planName(account.plans, substitute) : '' });
  }
  return locale.t(`stockNext_${action}`);
}

function choiceLabel(portal: Portal, account: Account, choice: NextOrderActionDto, substitute: string | null): string {
  const { locale } = portal;
  if (choice === 'swap') {
    return locale.t('stockChoice_swap', { plan: substitute ? planName(account.plans, substitute) : '' });
  }
  return locale.t(`stockChoice_${choice}`);
}

function choiceForm(portal: Portal, account: Account, subscription: PortalSubscriptionDto, stock: SubscriptionStockDto): HTMLElement {
  const { locale, client } = portal;
  const notice = stock.notice!;
  const substitute = notice.substitute_plan_id ?? null;
  const current = notice.choice ?? notice.next_order;
  const group = uniqueId('stock-choice');
  const submit = h('button', { type: 'submit', class: 'primary' }, locale.t('saveChoice'));
  const form = h(
    'form',
    { class: 'stock-choice' },
    h(
      'fieldset',
      {},
      h('legend', {}, locale.t('stockChoose')),
      notice.choices.map((choice) => {
        const id = uniqueId('stock-choice');
        return h(
          'div',
          { class: 'choice' },
          h('input', { type: 'radio', name: group, id, value: choice, required: true, checked: choice === current }),
          h('label', { for: id }, choiceLabel(portal, account, choice, substitute)),
        );
      }),
    ),
    submit,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const choice = notice.choices.find((c) => c === new FormData(form).get(group));
    if (!choice) {
      return;
    }
    void act(portal, submit, async () => {
      const { data } = await portalChooseStock({ client, path: { id: subscription.id }, body: { choice } });
      // What the API now holds for the next order, in its own words.
      const next = data.notice?.next_order ?? choice;
      const plan = substitute ? planName(account.plans, substitute) : '';
      return locale.t(`done_stock_${next}`, { plan });
    });
  });
  return form;
}
