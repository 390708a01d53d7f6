// The subscriber's account: how they want to hear from the merchant (`channel_preference`:
// email, SMS, push or none), shown and changed with `PATCH /v1/portal/me`, the only field
// of their own record the portal lets them change. The merchant's messaging reads it.

import { type ChannelPreferenceDto, type PortalMeDto, updateMe } from '@tenure/sdk';
import { h, uniqueId } from '../dom';
import { act, type Portal } from '../portal';

/** Every channel, in the order the form offers them. */
const CHANNELS: ChannelPreferenceDto[] = ['email', 'sms', 'push', 'none'];

export function accountSection(portal: Portal, me: PortalMeDto): HTMLElement {
  const { locale, client } = portal;
  const headingId = 'account-heading';
  const group = uniqueId('channel');
  const helpId = uniqueId('channel-help');
  const submit = h('button', { type: 'submit', class: 'secondary' }, locale.t('saveChannel'));
  const form = h(
    'form',
    {},
    h(
      'fieldset',
      { 'aria-describedby': helpId },
      h('legend', {}, locale.t('channelLegend')),
      h('p', { id: helpId, class: 'help' }, locale.t('channelHelp')),
      CHANNELS.map((channel) => {
        const id = uniqueId('channel');
        return h(
          'div',
          { class: 'choice' },
          h('input', { type: 'radio', name: group, id, value: channel, checked: channel === me.channel_preference }),
          h('label', { for: id }, locale.t(`channel_${channel}`)),
        );
      }),
    ),
    submit,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const channel = CHANNELS.find((c) => c === new FormData(form).get(group));
    if (!channel) {
      return;
    }
    void act(portal, submit, async () => {
      const { data } = await updateMe({ client, body: { channel_preference: channel } });
      return locale.t('done_channel', { channel: locale.t(`channel_${data.channel_preference}`) });
    });
  });
  return h('section', { 'aria-labelledby': headingId }, h('h2', { id: headingId }, locale.t('accountTitle')), form);
}
