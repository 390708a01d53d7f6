// Changing how many units a subscription ships or bills: within the product's limits,
// with the cost of the change previewed before it is confirmed (it applies at once).

import { type ChangeQuantityActionDto, type PortalSubscriptionDto, portalChangeQuantity, portalPreviewQuantityChange, type QuantityChangePreviewDto } from '@tenure/sdk';
import { h, replace, uniqueId } from '../dom';
import type { Locale } from '../i18n';
import { act, type Portal, openDialog, showFailure } from '../portal';

export function openChangeQuantity(portal: Portal, subscription: PortalSubscriptionDto, limits: ChangeQuantityActionDto, opener: HTMLElement): void {
  const { locale, client } = portal;
  openDialog(locale.t('changeQuantity'), locale, opener, (dialog) => {
    const inputId = uniqueId('quantity');
    const input = h('input', { id: inputId, type: 'number', inputmode: 'numeric', min: limits.min, max: limits.max, value: subscription.quantity, required: true });
    const preview = h('div', { class: 'preview', 'aria-live': 'polite' });
    const confirm = h('button', { type: 'submit', class: 'primary', disabled: true }, locale.t('confirmQuantity'));
    let previewed: number | null = null;
    input.addEventListener('change', async () => {
      const quantity = Number(input.value);
      previewed = null;
      confirm.disabled = true;
      if (!input.checkValidity() || quantity === subscription.quantity) {
        replace(preview);
        return;
      }
      replace(preview, h('p', {}, locale.t('loading')));
      try {
        const { data } = await portalPreviewQuantityChange({ client, path: { id: subscription.id }, body: { quantity } });
        if (Number(input.value) === quantity) {
          replace(preview, previewDetails(locale, data));
          previewed = quantity;
          confirm.disabled = false;
        }
      } catch (error) {
        replace(preview);
        showFailure(dialog.errors, error, locale);
      }
    });
    const form = h(
      'form',
      {},
      h('label', { for: inputId }, locale.t('quantity')),
      input,
      h('p', { class: 'help' }, locale.t('quantityLimits', { min: limits.min, max: limits.max })),
      preview,
      confirm,
    );
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const quantity = previewed;
      if (quantity === null) {
        return;
      }
      void act(
        portal,
        confirm,
        async () => {
          await portalChangeQuantity({ client, path: { id: subscription.id }, body: { quantity } });
          dialog.close();
          return locale.t('done_quantity', { quantity });
        },
        dialog.errors,
      );
    });
    return [form];
  });
}

function previewDetails(locale: Locale, preview: QuantityChangePreviewDto): Node {
  const summary = [locale.t('periodPrice', { amount: locale.money(preview.period_price) })];
  if (preview.amount_due_now.amount > 0) {
    summary.push(locale.t('dueNow', { amount: locale.money(preview.amount_due_now) }));
  }
  if (preview.credit_carried.amount !== 0) {
    summary.push(locale.t('creditCarried', { amount: locale.money({ ...preview.credit_carried, amount: Math.abs(preview.credit_carried.amount) }) }));
  }
  return h(
    'section',
    { 'aria-label': locale.t('previewTitle') },
    h('h3', {}, locale.t('previewTitle')),
    summary.map((text) => h('p', {}, text)),
    preview.lines.length > 0
      ? h('table', {}, h('tbody', {}, preview.lines.map((line) => h('tr', {}, h('td', {}, line.description), h('td', { class: 'amount' }, locale.money(line.amount))))))
      : null,
  );
}
