// What every view shares: the API client, the customer's locale, and one way to report
// success and failure so that screen readers hear both.

import { type Client, createTenureClient, TenureError } from '@tenure/sdk';
import { h, replace, uniqueId } from './dom';
import type { Locale } from './i18n';
import type { Session } from './session';

export interface Portal {
  client: Client;
  session: Session;
  locale: Locale;
  /** Says something went well (polite live region). */
  announce(message: string): void;
  /** Shows what went wrong in `region` (the page's alert region by default). */
  fail(error: unknown, region?: HTMLElement): void;
  /** Reloads everything from the API and renders it again. */
  refresh(): Promise<void>;
}

export function createClient(session: Session, onSessionEnded: () => void): Client {
  const client = createTenureClient({ baseUrl: session.api, credential: session.token });
  client.interceptors.request.use((request) => {
    // A token from the merchant's own identity provider names its merchant.
    if (session.merchant) {
      request.headers.set('Tenure-Merchant', session.merchant);
    }
    return request;
  });
  client.interceptors.response.use((response) => {
    if (response.status === 401) {
      onSessionEnded();
    }
    return response;
  });
  return client;
}

/**
 * A failure a view has already put in the subscriber's terms (say, which of their
 * subscriptions still ships to the address they tried to delete); `problem` is what the
 * API answered.
 */
export class ExplainedFailure extends Error {
  constructor(
    message: string,
    readonly problem: unknown,
  ) {
    super(message);
    this.name = 'ExplainedFailure';
  }
}

/** The problem as the customer should read it: the server's words, each invalid field. */
export function describeFailure(error: unknown, locale: Locale): Node[] {
  if (error instanceof ExplainedFailure) {
    return [h('p', {}, error.message)];
  }
  if (error instanceof TenureError && error.code === 'origin_not_allowed') {
    // For the merchant's developers; the subscriber cannot do anything about it.
    console.error(`Tenure refused this origin: ${error.detail}`);
    return [h('p', {}, locale.t('originNotAllowed'))];
  }
  if (error instanceof TenureError) {
    const parts: Node[] = [h('p', {}, error.detail || error.title)];
    if (error.errors.length > 0) {
      parts.push(h('ul', {}, error.errors.map((field) => h('li', {}, `${field.field}: ${field.message}`))));
    }
    return parts;
  }
  // fetch rejects with a TypeError when the network fails or CORS refuses the response.
  return [h('p', {}, locale.t('unreachable'))];
}

export function showFailure(region: HTMLElement, error: unknown, locale: Locale): void {
  replace(region, h('strong', {}, locale.t('errorTitle')), ...describeFailure(error, locale));
  region.hidden = false;
}

/**
 * Runs an action from a button: disables the button while it runs (no double submit),
 * reports its failure where the user is looking, and on success loads the page again and
 * then announces `done`, so that what is announced is already on the page (a failure to
 * load is reported as such, not as the action's).
 */
export async function act(
  portal: Portal,
  button: HTMLButtonElement,
  action: () => Promise<string | undefined>,
  region?: HTMLElement,
): Promise<boolean> {
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  let done: string | undefined;
  try {
    done = await action();
  } catch (error) {
    portal.fail(error, region);
    return false;
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
  }
  try {
    await portal.refresh();
  } catch (error) {
    if (done) {
      portal.announce(done);
    }
    portal.fail(error);
    return true;
  }
  if (done) {
    portal.announce(done);
  }
  return true;
}

/**
 * A modal dialog (the native <dialog>: focus moves in, Escape closes, the page behind is
 * inert) that gives focus back to `opener` when it closes.
 */
export function openDialog(title: string, locale: Locale, opener: HTMLElement | null, build: (dialog: Dialog) => Node[]): Dialog {
  const headingId = uniqueId('dialog-title');
  const errors = h('div', { role: 'alert', class: 'error', hidden: true });
  const body = h('div', { class: 'dialog-body' });
  const element = h(
    'dialog',
    { 'aria-labelledby': headingId },
    h('h2', { id: headingId }, title),
    errors,
    body,
    h('button', { type: 'button', class: 'secondary', onclick: () => element.close() }, locale.t('close')),
  );
  const dialog: Dialog = { element, errors, body, close: () => element.close() };
  element.addEventListener('close', () => {
    element.remove();
    // The page may have been rendered again meanwhile; then focus its heading instead.
    if (opener?.isConnected) {
      opener.focus();
    } else {
      document.getElementById('page-heading')?.focus();
    }
  });
  replace(body, build(dialog));
  document.body.append(element);
  element.showModal();
  return dialog;
}

export interface Dialog {
  element: HTMLDialogElement;
  /** Where failures inside the dialog are shown (the page behind is inert). */
  errors: HTMLElement;
  body: HTMLElement;
  close(): void;
}
