// Cancelling, in the mode the product's policy sets: `immediate` asks for an explicit
// confirmation; `request` asks for a reason, opens a cancellation request with its notice
// period and a support ticket, and shows the retention offers the subscriber is eligible
// for, which they may accept (the request is withdrawn) or decline.

import {
  acceptOffer,
  type CancelActionDto,
  declineOffer,
  type PortalSubscriptionDto,
  type PresentedOfferDto,
  portalCancelSubscription,
} from '@tenure/sdk';
import { h, replace, uniqueId } from '../dom';
import type { Locale } from '../i18n';
import { act, type Dialog, type Portal, openDialog } from '../portal';
import { type PlanDirectory, planName } from './subscriptions';

export function openCancel(
  portal: Portal,
  subscription: PortalSubscriptionDto,
  policy: CancelActionDto,
  plans: PlanDirectory,
  opener: HTMLElement,
): void {
  const { locale } = portal;
  openDialog(locale.t('cancelTitle'), locale, opener, (dialog) =>
    policy.mode === 'immediate' ? [immediateForm(portal, subscription, dialog)] : [requestForm(portal, subscription, policy, plans, dialog)],
  );
}

function immediateForm(portal: Portal, subscription: PortalSubscriptionDto, dialog: Dialog): HTMLFormElement {
  const { locale, client } = portal;
  const checkboxId = uniqueId('confirm');
  const checkbox = h('input', { type: 'checkbox', id: checkboxId, required: true });
  const submit = h('button', { type: 'submit', class: 'danger' }, locale.t('confirmCancel'));
  const form = h(
    'form',
    {},
    h('p', {}, locale.t('cancelImmediateHelp')),
    h('div', { class: 'choice' }, checkbox, h('label', { for: checkboxId }, locale.t('confirmCancelCheckbox'))),
    submit,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void act(
      portal,
      submit,
      async () => {
        await portalCancelSubscription({ client, path: { id: subscription.id }, body: { confirm: true } });
        dialog.close();
        return locale.t('done_cancel');
      },
      dialog.errors,
    );
  });
  return form;
}

function requestForm(
  portal: Portal,
  subscription: PortalSubscriptionDto,
  policy: CancelActionDto,
  plans: PlanDirectory,
  dialog: Dialog,
): HTMLFormElement {
  const { locale, client } = portal;
  const reasonId = uniqueId('reason');
  const messageId = uniqueId('message');
  const reason = h(
    'select',
    { id: reasonId, required: policy.requires_reason },
    h('option', { value: '' }, locale.t('chooseReason')),
    policy.reasons.map((value) => h('option', { value }, locale.t(`reason_${value}`))),
  );
  const message = h('textarea', { id: messageId, rows: 3, maxlength: 2000 });
  const submit = h('button', { type: 'submit', class: 'danger' }, locale.t('confirmCancel'));
  const form = h(
    'form',
    {},
    h('p', {}, locale.t('cancelRequestHelp', { date: locale.date(policy.effective_at), days: policy.notice_period_days })),
    h('label', { for: reasonId }, locale.t('reason')),
    reason,
    h('label', { for: messageId }, locale.t('message')),
    message,
    submit,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void act(
      portal,
      submit,
      async () => {
        const { data } = await portalCancelSubscription({
          client,
          path: { id: subscription.id },
          body: {
            reason: reason.value === '' ? null : (reason.value as NonNullable<CancelActionDto['reasons'][number]>),
            message: message.value.trim() === '' ? null : message.value.trim(),
          },
        });
        const request = data.cancellation_request;
        const offers = data.retention_offers ?? [];
        if (request && offers.length > 0) {
          showOffers(portal, dialog, request.id, offers, plans);
        } else {
          dialog.close();
        }
        return request
          ? locale.t('done_cancelRequested', { date: locale.date(request.effective_at) })
          : locale.t('done_cancel');
      },
      dialog.errors,
    );
  });
  return form;
}

/** The offers, best first, each with Accept and No, thanks. */
function showOffers(portal: Portal, dialog: Dialog, requestId: string, offers: PresentedOfferDto[], plans: PlanDirectory): void {
  const { locale, client } = portal;
  const list = h(
    'ul',
    { class: 'offers' },
    offers.map((offer) => {
      const label = offerText(locale, offer, plans);
      const accept = h('button', { type: 'button', class: 'primary', 'aria-label': `${locale.t('acceptOffer')}: ${label}` }, locale.t('acceptOffer'));
      const decline = h('button', { type: 'button', class: 'secondary', 'aria-label': `${locale.t('declineOffer')}: ${label}` }, locale.t('declineOffer'));
      const item = h('li', {}, h('p', {}, h('strong', {}, offer.name), ' — ', label), accept, ' ', decline);
      accept.addEventListener('click', () =>
        act(
          portal,
          accept,
          async () => {
            await acceptOffer({ client, path: { id: requestId, offer_id: offer.id } });
            dialog.close();
            return locale.t('done_offerAccepted');
          },
          dialog.errors,
        ),
      );
      decline.addEventListener('click', () =>
        act(
          portal,
          decline,
          async () => {
            await declineOffer({ client, path: { id: requestId, offer_id: offer.id } });
            item.remove();
            if (list.childElementCount === 0) {
              dialog.close();
            }
            return locale.t('done_offerDeclined');
          },
          dialog.errors,
        ),
      );
      return item;
    }),
  );
  const heading = h('h3', { tabindex: -1 }, locale.t('offersTitle'));
  replace(dialog.body, heading, h('p', {}, locale.t('offersHelp')), list);
  heading.focus();
}

export function offerText(locale: Locale, offer: PresentedOfferDto, plans: PlanDirectory): string {
  const kind = offer.kind;
  switch (kind.type) {
    case 'discount_percent':
      return locale.t('offer_discount_percent', { percent: kind.percent, cycles: kind.cycles });
    case 'discount_amount':
      return locale.t('offer_discount_amount', { amount: locale.money(kind.amount), cycles: kind.cycles });
    case 'pause_instead':
      return locale.t('offer_pause_instead', { days: kind.days });
    case 'switch_plan':
      return locale.t('offer_switch_plan', { plan: planName(plans, kind.plan_id) });
    case 'extend_trial':
      return locale.t('offer_extend_trial', { days: kind.days });
  }
}
