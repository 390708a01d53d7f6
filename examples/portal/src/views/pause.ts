// Pausing: now or at the end of the period, until the subscriber resumes or for a number
// of renewals, within the longest pause the policy allows.

import { type PauseActionDto, type PauseSubscription, type PortalSubscriptionDto, portalPauseSubscription } from '@tenure/sdk';
import { h, uniqueId } from '../dom';
import { act, type Portal, openDialog } from '../portal';

export function openPause(portal: Portal, subscription: PortalSubscriptionDto, policy: PauseActionDto, opener: HTMLElement): void {
  const { locale, client } = portal;
  openDialog(locale.t('pauseTitle'), locale, opener, (dialog) => {
    const radio = (name: string, value: string, label: string, checked = false) => {
      const id = uniqueId('pause');
      return h('div', { class: 'choice' }, h('input', { type: 'radio', name, id, value, checked }), h('label', { for: id }, label));
    };
    const startGroup = uniqueId('start');
    const endGroup = uniqueId('end');
    const cyclesId = uniqueId('cycles');
    const cycles = h('input', { type: 'number', id: cyclesId, min: 1, max: 36, value: 1, inputmode: 'numeric' });
    const submit = h('button', { type: 'submit', class: 'primary' }, locale.t('confirmPause'));
    const form = h(
      'form',
      {},
      h(
        'fieldset',
        {},
        h('legend', {}, locale.t('pauseStart')),
        radio(startGroup, 'period_end', locale.t('previewPeriodEnd', { date: locale.date(subscription.current_period.end) }), true),
        radio(startGroup, 'now', locale.t('previewNow')),
      ),
      h(
        'fieldset',
        {},
        h('legend', {}, locale.t('pauseEnd')),
        radio(endGroup, 'open_ended', locale.t('pauseUntilResume'), true),
        radio(endGroup, 'after_cycles', locale.t('pauseForCycles')),
        h('label', { for: cyclesId }, locale.t('cycles')),
        cycles,
      ),
      policy.max_pause_days ? h('p', {}, locale.t('pauseMax', { days: policy.max_pause_days })) : null,
      submit,
    );
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const data = new FormData(form);
      const body: PauseSubscription = {
        start: data.get(startGroup) === 'now' ? { type: 'now' } : { type: 'period_end' },
        end: data.get(endGroup) === 'after_cycles' ? { type: 'after_cycles', cycles: Number(cycles.value) } : { type: 'open_ended' },
      };
      void act(
        portal,
        submit,
        async () => {
          const { data: paused } = await portalPauseSubscription({ client, path: { id: subscription.id }, body });
          dialog.close();
          const scheduled = paused.scheduled_changes.find((change) => change.type === 'pause');
          return paused.status === 'paused' || !scheduled
            ? locale.t('done_pause')
            : locale.t('done_pauseScheduled', { date: locale.date(scheduled.due_at) });
        },
        dialog.errors,
      );
    });
    return [form];
  });
}
