// Orders, newest first and a page at a time: what each paid period of a subscription that
// ships sends (its lines and total), where to, how far the merchant's fulfilment has taken
// it and, once shipped, the carrier with a link to follow the parcel.

import { type OrderDto, portalListOrders } from '@tenure/sdk';
import { h, replace } from '../dom';
import type { Portal } from '../portal';
import { addressLine } from './addresses';

export class OrderHistory {
  readonly element: HTMLElement;
  private readonly body: HTMLElement;
  /** The `starting_after` of each page before the current one, and of the current one. */
  private cursors: (string | undefined)[] = [undefined];
  /** Whether the subscriber has any order at all (the section is hidden otherwise). */
  hasOrders = false;

  constructor(private readonly portal: Portal) {
    const headingId = 'orders-heading';
    this.body = h('div', {});
    this.element = h('section', { 'aria-labelledby': headingId }, h('h2', { id: headingId }, portal.locale.t('orders')), this.body);
  }

  /** Loads the current page again (after an action changed something). */
  async reload(): Promise<void> {
    const { client, session } = this.portal;
    const startingAfter = this.cursors[this.cursors.length - 1];
    const { data: page } = await portalListOrders({
      client,
      query: { limit: session.pageSize, ...(startingAfter ? { starting_after: startingAfter } : {}) },
    });
    this.hasOrders = page.data.length > 0 || this.cursors.length > 1;
    this.render(page.data, page.has_more ? (page.next_cursor ?? null) : null);
  }

  private async go(cursors: (string | undefined)[], button: HTMLButtonElement): Promise<void> {
    const previous = this.cursors;
    this.cursors = cursors;
    button.disabled = true;
    try {
      await this.reload();
      this.body.querySelector<HTMLElement>('ul')?.focus();
    } catch (error) {
      this.cursors = previous;
      button.disabled = false;
      this.portal.fail(error);
    }
  }

  private render(orders: OrderDto[], nextCursor: string | null): void {
    const { locale } = this.portal;
    if (orders.length === 0 && this.cursors.length === 1) {
      replace(this.body, h('p', {}, locale.t('noOrders')));
      return;
    }
    const newer = h('button', { type: 'button', class: 'secondary', disabled: this.cursors.length === 1 }, locale.t('newer'));
    newer.addEventListener('click', () => this.go(this.cursors.slice(0, -1), newer));
    const older = h('button', { type: 'button', class: 'secondary', disabled: nextCursor === null }, locale.t('older'));
    older.addEventListener('click', () => nextCursor && this.go([...this.cursors, nextCursor], older));
    replace(
      this.body,
      h('ul', { class: 'cards', tabindex: -1, 'aria-label': locale.t('orders') }, orders.map((order) => h('li', {}, this.card(order)))),
      nextCursor !== null || this.cursors.length > 1 ? h('nav', { class: 'pager', 'aria-label': locale.t('orders') }, newer, ' ', older) : null,
    );
  }

  private card(order: OrderDto): HTMLElement {
    const { locale } = this.portal;
    const headingId = `order-${order.id}`;
    return h(
      'article',
      { class: 'card', 'aria-labelledby': headingId, 'data-order': order.id },
      h('h3', { id: headingId }, locale.t('orderOf', { date: locale.date(order.created_at) })),
      h('p', { class: `status order-${order.status}` }, locale.t(`order_${order.status}`)),
      h('p', { class: 'help' }, locale.t('orderPeriod', { start: locale.date(order.period_start), end: locale.date(order.period_end) })),
      h(
        'ul',
        { class: 'lines' },
        order.lines.map((line) =>
          h(
            'li',
            {},
            h('span', {}, locale.t('orderLine', { quantity: line.quantity, product: line.product_name, plan: line.plan_name })),
            h('span', { class: 'amount' }, locale.money(line.amount)),
          ),
        ),
      ),
      h('p', { class: 'total' }, locale.t('orderTotal', { amount: locale.money(order.amount_total) })),
      h('p', {}, order.shipping_address ? locale.t('orderShipsTo', { address: addressLine(order.shipping_address) }) : locale.t('orderNoAddress')),
      order.shipment ? this.shipment(order.shipment) : null,
    );
  }

  private shipment(shipment: NonNullable<OrderDto['shipment']>): HTMLElement {
    const { locale } = this.portal;
    const url = safeLink(shipment.tracking_url);
    return h(
      'p',
      { class: 'shipment' },
      locale.t('shippedWith', { carrier: shipment.carrier, number: shipment.tracking_number }),
      url
        ? [
            ' ',
            h(
              'a',
              { href: url, target: '_blank', rel: 'noopener noreferrer', 'aria-label': `${locale.t('trackParcel')}: ${shipment.tracking_number}` },
              locale.t('trackParcel'),
            ),
          ]
        : null,
    );
  }
}

/** The tracking link, only if it is an http(s) address (never `javascript:` or the like). */
function safeLink(raw: string | null | undefined): string | null {
  if (!raw) {
    return null;
  }
  try {
    const url = new URL(raw);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : null;
  } catch {
    return null;
  }
}
