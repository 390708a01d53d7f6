// Billing history, a page at a time (cursor pagination: Older follows `next_cursor`, Newer
// goes back to the cursor that led to the page before), with Pay now on open invoices.

import { type InvoiceDto, portalListInvoices, portalPayInvoice } from '@tenure/sdk';
import { h, replace } from '../dom';
import { act, type Portal } from '../portal';

export class InvoiceHistory {
  readonly element: HTMLElement;
  private readonly body: HTMLElement;
  /** The `starting_after` of each page before the current one, and of the current one. */
  private cursors: (string | undefined)[] = [undefined];

  constructor(private readonly portal: Portal) {
    const headingId = 'invoices-heading';
    this.body = h('div', {});
    this.element = h('section', { 'aria-labelledby': headingId }, h('h2', { id: headingId }, portal.locale.t('invoices')), this.body);
  }

  /** Loads the current page again (after an action changed something). */
  async reload(): Promise<void> {
    const { client, session } = this.portal;
    const startingAfter = this.cursors[this.cursors.length - 1];
    const { data: page } = await portalListInvoices({
      client,
      query: { limit: session.pageSize, ...(startingAfter ? { starting_after: startingAfter } : {}) },
    });
    this.render(page.data, page.has_more ? (page.next_cursor ?? null) : null);
  }

  private async go(cursors: (string | undefined)[], button: HTMLButtonElement): Promise<void> {
    const previous = this.cursors;
    this.cursors = cursors;
    button.disabled = true;
    try {
      await this.reload();
      this.body.querySelector<HTMLElement>('table')?.focus();
    } catch (error) {
      this.cursors = previous;
      button.disabled = false;
      this.portal.fail(error);
    }
  }

  private render(invoices: InvoiceDto[], nextCursor: string | null): void {
    const { locale } = this.portal;
    if (invoices.length === 0 && this.cursors.length === 1) {
      replace(this.body, h('p', {}, locale.t('noInvoices')));
      return;
    }
    const newer = h('button', { type: 'button', class: 'secondary', disabled: this.cursors.length === 1 }, locale.t('newer'));
    newer.addEventListener('click', () => this.go(this.cursors.slice(0, -1), newer));
    const older = h('button', { type: 'button', class: 'secondary', disabled: nextCursor === null }, locale.t('older'));
    older.addEventListener('click', () => nextCursor && this.go([...this.cursors, nextCursor], older));
    const page = this.cursors.length;
    replace(
      this.body,
      h(
        'table',
        { tabindex: -1 },
        h('caption', {}, `${locale.t('invoices')} (${page})`),
        h(
          'thead',
          {},
          h('tr', {}, (['invoiceNumber', 'date', 'status', 'total', 'due'] as const).map((key) => h('th', { scope: 'col' }, locale.t(key))),
            h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, locale.t('invoiceActions')))),
        ),
        h('tbody', {}, invoices.map((invoice) => this.row(invoice))),
      ),
      h('nav', { class: 'pager', 'aria-label': locale.t('invoices') }, newer, ' ', older),
    );
  }

  private row(invoice: InvoiceDto): HTMLElement {
    const { locale, client } = this.portal;
    let pay: HTMLButtonElement | null = null;
    if (invoice.status === 'open' && invoice.amount_due.amount > 0) {
      const button = h('button', { type: 'button', class: 'primary', 'aria-label': `${locale.t('pay')}: ${locale.t('invoiceNumber')} ${invoice.number}` }, locale.t('pay'));
      button.addEventListener('click', () =>
        act(this.portal, button, async () => {
          await portalPayInvoice({ client, path: { id: invoice.id } });
          return locale.t('done_pay');
        }),
      );
      pay = button;
    }
    return h(
      'tr',
      { 'data-invoice': invoice.id },
      h('th', { scope: 'row' }, `#${invoice.number}`),
      h('td', {}, locale.date(invoice.created_at)),
      h('td', {}, locale.t(`invoice_${invoice.status}`)),
      h('td', { class: 'amount' }, locale.money(invoice.total)),
      h('td', { class: 'amount' }, locale.money(invoice.amount_due)),
      h('td', {}, pay),
    );
  }
}
