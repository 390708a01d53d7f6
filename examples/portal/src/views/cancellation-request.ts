// A pending (or decided) cancellation request under its subscription: its status and
// date, and the support ticket opened with it, where the subscriber can read the
// merchant's answers and reply.

import { type PortalSubscriptionDto, portalGetRequest, portalGetTicket, portalReplyToTicket, type SupportTicketDto } from '@tenure/sdk';
import { h, replace, uniqueId } from '../dom';
import { act, type Portal } from '../portal';
import { cancellationRequestId } from './subscriptions';

export function cancellationRequestPanel(portal: Portal, subscription: PortalSubscriptionDto): HTMLElement | null {
  const requestId = cancellationRequestId(subscription);
  if (!requestId) {
    return null;
  }
  const { locale, client } = portal;
  const headingId = uniqueId('request');
  const content = h('div', {}, h('p', {}, locale.t('loading')));
  const panel = h('section', { class: 'request', 'aria-labelledby': headingId }, h('h4', { id: headingId }, locale.t('requestTitle')), content);
  void (async () => {
    try {
      const { data: request } = await portalGetRequest({ client, path: { id: requestId } });
      const { data: ticket } = await portalGetTicket({ client, path: { id: request.ticket_id } });
      replace(
        content,
        h('p', { class: 'request-status' }, locale.t(`request_${request.status}`, { date: locale.date(request.effective_at) })),
        h('p', {}, `${locale.t('reason')} ${locale.t(`reason_${request.reason}`)}`),
        ticketView(portal, ticket),
      );
    } catch (error) {
      replace(content);
      portal.fail(error);
    }
  })();
  return panel;
}

function ticketView(portal: Portal, ticket: SupportTicketDto): HTMLElement {
  const { locale, client } = portal;
  const replyId = uniqueId('reply');
  const reply = h('textarea', { id: replyId, rows: 2, required: true, maxlength: 5000 });
  const send = h('button', { type: 'submit', class: 'secondary' }, locale.t('sendReply'));
  const form = h('form', {}, h('label', { for: replyId }, locale.t('reply')), reply, send);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const body = reply.value.trim();
    if (body === '') {
      return;
    }
    void act(portal, send, async () => {
      await portalReplyToTicket({ client, path: { id: ticket.id }, body: { body } });
      return locale.t('done_reply');
    });
  });
  return h(
    'details',
    { class: 'ticket' },
    h('summary', {}, `${locale.t('ticket')}: ${ticket.subject} (${locale.t(`ticketStatus_${ticket.status}`)})`),
    h(
      'ol',
      { class: 'messages' },
      (ticket.messages ?? []).map((message) =>
        h('li', {}, h('strong', {}, locale.t(`author_${message.author}`)), ` · ${locale.date(message.created_at)}: `, message.body),
      ),
    ),
    form,
  );
}
