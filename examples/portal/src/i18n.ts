// The customer's language and formats. The locale comes from the customer record
// (`GET /v1/portal/me`); strings fall back to English, money and dates use Intl with the
// full locale, so `de-AT` reads German words and Austrian formats.

import type { MoneyDto } from '@tenure/sdk';

const en = {
  title: 'Your subscriptions',
  signedInAs: 'Signed in as {name}',
  signOut: 'Sign out',
  loading: 'Loading…',
  signInTitle: 'Sign in',
  signInHelp:
    'This portal opens from your account page on the merchant’s site, which signs you in. For development, paste the API address and a customer session token.',
  apiUrl: 'API address',
  token: 'Customer session token',
  signIn: 'Sign in',
  sessionExpired: 'Your session has ended. Open the portal again from your account page.',
  unreachable:
    'The billing service could not be reached, or it does not allow this site to call it (CORS). Try again later.',
  originNotAllowed: 'This site is not set up to manage your subscriptions yet. Please contact the merchant’s support.',
  noSubscriptions: 'You have no subscriptions.',
  status_trialing: 'Trial',
  status_active: 'Active',
  status_past_due: 'Payment due',
  status_paused: 'Paused',
  status_canceled: 'Canceled',
  status_unpaid: 'Unpaid',
  perInterval_day: '{price} a day',
  perInterval_week: '{price} a week',
  perInterval_month: '{price} a month',
  perInterval_year: '{price} a year',
  everyInterval: '{price} every {count} {interval}s',
  renews: 'Renews on {date}',
  trialEnds: 'Trial ends on {date}',
  endsOn: 'Ends on {date}',
  ended: 'Ended on {date}',
  pausedUntil: 'Paused until {date}',
  pausedOpen: 'Paused until you resume',
  actions: 'Actions for {plan}',
  changePlan: 'Change plan',
  pause: 'Pause',
  resume: 'Resume',
  cancel: 'Cancel subscription',
  withdrawCancellation: 'Keep my subscription',
  scheduled: 'Scheduled',
  change_pause: 'Pause on {date}',
  change_resume: 'Resume on {date}',
  change_cancel: 'Cancellation on {date}',
  change_plan_change: 'Plan change on {date}',
  removeChange: 'Undo',
  discount: '{percent}% off the next {cycles} invoices',
  discountAmount: '{amount} off the next {cycles} invoices',
  choosePlan: 'Choose a new plan',
  previewTitle: 'What changes',
  previewNow: 'Takes effect now',
  previewPeriodEnd: 'Takes effect on {date}',
  dueNow: 'Added to your next invoice: {amount}',
  dueImmediately: 'Charged now: {amount}',
  creditCarried: 'Credit for unused time: {amount}',
  nothingProrated: 'Nothing is charged for the change itself.',
  confirmChange: 'Confirm plan change',
  close: 'Close',
  pauseTitle: 'Pause your subscription',
  pauseStart: 'When should it start?',
  pauseEnd: 'How long?',
  pauseUntilResume: 'Until I resume',
  pauseForCycles: 'Skip a number of renewals',
  cycles: 'Renewals to skip',
  pauseMax: 'You can pause for at most {days} days.',
  confirmPause: 'Pause subscription',
  cancelTitle: 'Cancel your subscription',
  cancelRequestHelp: 'Your subscription ends on {date} ({days} days’ notice). We open a support ticket so we can help.',
  cancelImmediateHelp: 'Your subscription ends now and you lose access at once.',
  reason: 'Why are you leaving?',
  chooseReason: 'Choose a reason',
  message: 'Anything you would like us to know? (optional)',
  confirmCancelCheckbox: 'Yes, cancel my subscription now',
  confirmCancel: 'Cancel subscription',
  reason_too_expensive: 'It is too expensive',
  reason_missing_features: 'It is missing features I need',
  reason_switched_service: 'I switched to another service',
  reason_unused: 'I do not use it enough',
  reason_customer_service: 'I was unhappy with the service',
  reason_too_complex: 'It is too complicated',
  reason_low_quality: 'The quality was not good enough',
  reason_other: 'Another reason',
  offersTitle: 'Before you go',
  offersHelp: 'We would like to keep you. Would one of these help?',
  offer_discount_percent: '{percent}% off your next {cycles} invoices',
  offer_discount_amount: '{amount} off your next {cycles} invoices',
  offer_pause_instead: 'Pause for {days} days instead',
  offer_switch_plan: 'Switch to {plan}',
  offer_extend_trial: '{days} more days of trial',
  acceptOffer: 'Accept',
  declineOffer: 'No, thanks',
  requestTitle: 'Your cancellation request',
  request_pending: 'Pending: ends on {date}',
  request_withdrawn: 'Withdrawn',
  request_approved: 'Approved: ends on {date}',
  request_declined: 'Declined',
  request_completed: 'Completed on {date}',
  ticket: 'Support ticket',
  ticketStatus_open: 'Open',
  ticketStatus_resolved: 'Resolved',
  ticketStatus_closed: 'Closed',
  author_customer: 'You',
  author_merchant: 'Support',
  author_system: 'Notice',
  reply: 'Your reply',
  sendReply: 'Send reply',
  paymentMethods: 'Payment methods',
  noPaymentMethods: 'No payment method yet.',
  cardLabel: '{brand} ending in {last4}',
  expires: 'Expires {month}/{year}',
  expired: 'Expired',
  expiringSoon: 'Expires soon',
  default: 'Default',
  makeDefault: 'Make default',
  remove: 'Remove',
  addCard: 'Add a card',
  cardToken: 'Card token from your payment form',
  cardTokenHelp: 'Your card form (e.g. Stripe Elements) gives this token; this portal never sees a card number.',
  addCardButton: 'Add card',
  invoices: 'Invoices',
  noInvoices: 'No invoices yet.',
  invoiceNumber: 'Invoice',
  date: 'Date',
  status: 'Status',
  total: 'Total',
  due: 'Due',
  invoice_draft: 'Draft',
  invoice_open: 'Open',
  invoice_paid: 'Paid',
  invoice_void: 'Void',
  invoice_uncollectible: 'Uncollectible',
  invoiceActions: 'Actions',
  pay: 'Pay now',
  newer: 'Newer',
  older: 'Older',
  done_changePlan: 'Your plan was changed.',
  done_changeScheduled: 'Your plan changes on {date}.',
  done_pause: 'Your subscription is paused.',
  done_pauseScheduled: 'Your subscription pauses on {date}.',
  done_resume: 'Your subscription is active again.',
  done_cancel: 'Your subscription is canceled.',
  done_cancelRequested: 'We received your request. Your subscription ends on {date}.',
  done_withdraw: 'Your subscription continues.',
  done_offerAccepted: 'Offer accepted. Your subscription continues.',
  done_offerDeclined: 'Offer declined.',
  done_removeChange: 'The scheduled change was undone.',
  done_addCard: 'Card added.',
  done_default: 'Default payment method changed.',
  done_removeCard: 'Card removed.',
  done_pay: 'Invoice paid.',
  done_reply: 'Reply sent.',
  errorTitle: 'That did not work',
} as const;

export type MessageKey = keyof typeof en;
type Messages = Record<MessageKey, string>;

const de: Partial<Messages> = {
  title: 'Ihre Abonnements',
  signedInAs: 'Angemeldet als {name}',
  signOut: 'Abmelden',
  loading: 'Wird geladen…',
  noSubscriptions: 'Sie haben keine Abonnements.',
  status_trialing: 'Testphase',
  status_active: 'Aktiv',
  status_past_due: 'Zahlung fällig',
  status_paused: 'Pausiert',
  status_canceled: 'Gekündigt',
  status_unpaid: 'Unbezahlt',
  perInterval_day: '{price} pro Tag',
  perInterval_week: '{price} pro Woche',
  perInterval_month: '{price} pro Monat',
  perInterval_year: '{price} pro Jahr',
  renews: 'Verlängert sich am {date}',
  trialEnds: 'Testphase endet am {date}',
  endsOn: 'Endet am {date}',
  pausedOpen: 'Pausiert, bis Sie fortsetzen',
  pausedUntil: 'Pausiert bis {date}',
  actions: 'Aktionen für {plan}',
  changePlan: 'Tarif wechseln',
  pause: 'Pausieren',
  resume: 'Fortsetzen',
  cancel: 'Abonnement kündigen',
  withdrawCancellation: 'Abonnement behalten',
  paymentMethods: 'Zahlungsmethoden',
  invoices: 'Rechnungen',
  noInvoices: 'Noch keine Rechnungen.',
  invoiceNumber: 'Rechnung',
  date: 'Datum',
  status: 'Status',
  total: 'Summe',
  due: 'Offen',
  invoice_paid: 'Bezahlt',
  invoice_open: 'Offen',
  pay: 'Jetzt bezahlen',
  newer: 'Neuere',
  older: 'Ältere',
  default: 'Standard',
  makeDefault: 'Als Standard festlegen',
  remove: 'Entfernen',
  addCard: 'Karte hinzufügen',
  close: 'Schließen',
};

const fr: Partial<Messages> = {
  title: 'Vos abonnements',
  signedInAs: 'Connecté·e en tant que {name}',
  signOut: 'Se déconnecter',
  loading: 'Chargement…',
  status_active: 'Actif',
  status_paused: 'En pause',
  status_canceled: 'Résilié',
  status_trialing: 'Essai',
  perInterval_month: '{price} par mois',
  perInterval_year: '{price} par an',
  changePlan: 'Changer de formule',
  pause: 'Mettre en pause',
  resume: 'Reprendre',
  cancel: 'Résilier l’abonnement',
  paymentMethods: 'Moyens de paiement',
  invoices: 'Factures',
  close: 'Fermer',
};

const catalogues: Record<string, Partial<Messages>> = { en, de, fr };

/** The words and formats of one locale. */
export class Locale {
  readonly tag: string;
  private readonly messages: Partial<Messages>;

  constructor(tag: string | null | undefined) {
    const requested = tag && isValidTag(tag) ? tag : navigator.language || 'en';
    this.tag = requested;
    this.messages = catalogues[requested.split('-')[0]!.toLowerCase()] ?? en;
  }

  /** A message with `{name}` placeholders filled in. */
  t(key: MessageKey, values: Record<string, string | number> = {}): string {
    const template = this.messages[key] ?? en[key];
    return template.replace(/\{(\w+)\}/g, (_, name: string) => String(values[name] ?? `{${name}}`));
  }

  /** `1999 EUR` → `€19.99` (en) or `19,99 €` (de): minor units by the currency's own digits. */
  money(money: MoneyDto): string {
    const format = new Intl.NumberFormat(this.tag, { style: 'currency', currency: money.currency });
    const digits = format.resolvedOptions().maximumFractionDigits ?? 2;
    return format.format(money.amount / 10 ** digits);
  }

  date(iso: string): string {
    return new Intl.DateTimeFormat(this.tag, { dateStyle: 'medium' }).format(new Date(iso));
  }
}

function isValidTag(tag: string): boolean {
  try {
    return Intl.getCanonicalLocales(tag).length === 1;
  } catch {
    return false;
  }
}
