// Changing plan: pick one of the plans the policy offers, optionally enter a promotion
// code, read what the change costs (the preview, to the cent, with the code's discount)
// and only then confirm.

import { type PlanChangePreviewDto, type PortalSubscriptionDto, portalChangePlan, portalPreviewPlanChange } from '@tenure/sdk';
import { h, replace, uniqueId } from '../dom';
import type { Locale } from '../i18n';
import { act, describeFailure, type Portal, openDialog, showFailure } from '../portal';
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
    // The code the preview shows and the change redeems: only one the API accepted.
    let code: string | null = null;
    const codeId = uniqueId('code');
    const codeInput = h('input', { id: codeId, type: 'text', autocomplete: 'off', maxlength: 64 });
    const codeProblem = h('div', { role: 'alert', class: 'error', hidden: true });
    const applyCode = h('button', { type: 'button', class: 'secondary' }, locale.t('applyCode'));

    /** Shows the preview of the chosen plan with `withCode`, or the API's refusal of it. */
    async function showPreview(planId: string, withCode: string | null): Promise<void> {
      confirm.disabled = true;
      replace(preview, h('p', {}, locale.t('loading')));
      try {
        const body = withCode ? { plan_id: planId, promotion_code: withCode } : { plan_id: planId };
        const { data } = await portalPreviewPlanChange({ client, path: { id: subscription.id }, body });
        if (chosen === planId) {
          code = withCode;
          replace(preview, previewDetails(locale, data));
          confirm.disabled = false;
        }
      } catch (error) {
        replace(preview);
        if (withCode) {
          // The code does not apply: say why in the API's words, and show the change
          // without it.
          replace(codeProblem, ...describeFailure(error, locale));
          codeProblem.hidden = false;
          await showPreview(planId, null);
        } else {
          showFailure(dialog.errors, error, locale);
        }
      }
    }

    applyCode.addEventListener('click', () => {
      codeProblem.hidden = true;
      replace(codeProblem);
      const entered = codeInput.value.trim();
      if (!chosen) {
        replace(codeProblem, h('p', {}, locale.t('chooseBeforeCode')));
        codeProblem.hidden = false;
        return;
      }
      void showPreview(chosen, entered === '' ? null : entered);
    });

    const group = uniqueId('plan');
    const options = planIds.map((planId) => {
      const id = uniqueId('plan-option');
      const plan = plans.get(planId);
      const input = h('input', { type: 'radio', name: group, id, value: planId, required: true });
      input.addEventListener('change', () => {
        chosen = planId;
        void showPreview(planId, code);
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
      h('div', { class: 'code' }, h('label', { for: codeId }, locale.t('haveCode')), codeInput, applyCode, codeProblem),
      preview,
      confirm,
    );
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const planId = chosen;
      if (!planId) {
        return;
      }
      const promotionCode = code;
      void act(
        portal,
        confirm,
        async () => {
          const body = promotionCode ? { plan_id: planId, promotion_code: promotionCode } : { plan_id: planId };
          const { data } = await portalChangePlan({ client, path: { id: subscription.id }, body });
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
  const discount = preview.discount;
  const codeSummary = discount
    ? h(
        'dl',
        { class: 'discount' },
        h('dt', {}, locale.t('codeSubtotal')),
        h('dd', {}, locale.money(discount.subtotal)),
        h('dt', {}, locale.t('codeAmountOff', { code: discount.promotion_code })),
        h('dd', {}, `−${locale.money(discount.amount_off)}`),
        h('dt', {}, locale.t('codeTotal')),
        h('dd', {}, locale.money(discount.total)),
      )
    : null;
  return h(
    'section',
    { 'aria-label': locale.t('previewTitle') },
    h('h3', {}, locale.t('previewTitle')),
    summary.map((text) => h('p', {}, text)),
    lines.length > 0 ? h('table', {}, h('tbody', {}, lines)) : null,
    codeSummary,
  );
}
