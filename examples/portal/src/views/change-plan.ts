// Changing plan: pick one of the plans the policy offers, read what the change costs
// (the preview, to the cent) and only then confirm.

import { type PlanChangePreviewDto, type PortalSubscriptionDto, portalChangePlan, portalPreviewPlanChange } from '@tenure/sdk';
import { h, replace, uniqueId } from '../dom';
import type { Locale } from '../i18n';
import { act, type Portal, openDialog, showFailure } from '../portal';
import { type PlanDirectory, planName, priceText } from './subscriptions';

export function openChangePlan(
  portal: Portal,
  subscription: PortalSubscriptionDto,
  planIds: string[],
  plans: PlanDirectory,
  opener: HTMLElement,
): void {
  const { locale, client } = portal;
  openDialog(locale.t('changePlan'), locale, opener, (dialog) => {
    const preview = h('div', { class: 'preview', 'aria-live': 'polite' });
    const confirm = h('button', { type: 'submit', class: 'primary', disabled: true }, locale.t('confirmChange'));
    let chosen: string | null = null;
    const group = uniqueId('plan');
    const options = planIds.map((planId) => {
      const id = uniqueId('plan-option');
      const plan = plans.get(planId);
      const input = h('input', { type: 'radio', name: group, id, value: planId, required: true });
      input.addEventListener('change', async () => {
        chosen = planId;
        confirm.disabled = true;
        replace(preview, h('p', {}, locale.t('loading')));
        try {
          const { data } = await portalPreviewPlanChange({ client, path: { id: subscription.id }, body: { plan_id: planId } });
          if (chosen === planId) {
            replace(preview, previewDetails(locale, data));
            confirm.disabled = false;
          }
        } catch (error) {
          replace(preview);
          showFailure(dialog.errors, error, locale);
        }
      });
      return h(
        'div',
        { class: 'choice' },
        input,
        h('label', { for: id }, planName(plans, planId), plan ? ` — ${priceText(locale, plan.price, plan.interval, plan.interval_count)}` : ''),
      );
    });
    const form = h(
      'form',
      {},
      h('fieldset', {}, h('legend', {}, locale.t('choosePlan')), options),
      preview,
      confirm,
    );
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const planId = chosen;
      if (!planId) {
        return;
      }
      void act(
        portal,
        confirm,
        async () => {
          const { data } = await portalChangePlan({ client, path: { id: subscription.id }, body: { plan_id: planId } });
          dialog.close();
          const scheduled = data.scheduled_changes.find((change) => change.type === 'plan_change');
          return scheduled && data.plan_id !== planId
            ? locale.t('done_changeScheduled', { date: locale.date(scheduled.due_at) })
            : locale.t('done_changePlan');
        },
        dialog.errors,
      );
    });
    return [form];
  });
}

function previewDetails(locale: Locale, preview: PlanChangePreviewDto): Node {
  const lines = preview.lines.map((line) => h('tr', {}, h('td', {}, line.description), h('td', { class: 'amount' }, locale.money(line.amount))));
  const summary: string[] = [
    preview.timing === 'now' ? locale.t('previewNow') : locale.t('previewPeriodEnd', { date: locale.date(preview.effective_at) }),
  ];
  if (preview.invoicing === 'none') {
    summary.push(locale.t('nothingProrated'));
  } else {
    if (preview.amount_due_now.amount > 0) {
      const key = preview.invoicing === 'now' ? 'dueImmediately' : 'dueNow';
      summary.push(locale.t(key, { amount: locale.money(preview.amount_due_now) }));
    }
    if (preview.credit_carried.amount !== 0) {
      summary.push(locale.t('creditCarried', { amount: locale.money({ ...preview.credit_carried, amount: Math.abs(preview.credit_carried.amount) }) }));
    }
  }
  return h(
    'section',
    { 'aria-label': locale.t('previewTitle') },
    h('h3', {}, locale.t('previewTitle')),
    summary.map((text) => h('p', {}, text)),
    lines.length > 0 ? h('table', {}, h('tbody', {}, lines)) : null,
  );
}
