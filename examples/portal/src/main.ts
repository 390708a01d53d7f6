// The reference self-service portal: signs the subscriber in with the session the
// merchant's backend minted, then shows their subscriptions (with only the actions the
// policy allows), and, when something ships, their address book and orders; then payment
// methods, invoices, and their account (how they want to be contacted). Every call goes
// through the Tenure SDK.

import { me, portalListPaymentMethods } from '@tenure/sdk';
import { h, replace, uniqueId } from './dom';
import { Locale } from './i18n';
import { createClient, type Portal, showFailure } from './portal';
import { parse, readSession, type Session, saveSession, signOut } from './session';
import { loadAccount } from './views/account';
import { addressBook } from './views/addresses';
import { InvoiceHistory } from './views/invoices';
import { OrderHistory } from './views/orders';
import { accountSection } from './views/profile';
import { paymentMethodList } from './views/payment-methods';
import { subscriptionList } from './views/subscriptions';
import './style.css';

const root = document.getElementById('app')!;
const status = document.getElementById('status')!;
const alert = document.getElementById('alert')!;

function start(): void {
  const session = readSession(window.location, window.sessionStorage);
  if (session) {
    void signedIn(session);
  } else {
    signInForm(new Locale(null));
  }
}

async function signedIn(session: Session): Promise<void> {
  let ended = false;
  const client = createClient(session, () => {
    if (!ended) {
      ended = true;
      signOut(window.sessionStorage);
      for (const dialog of document.querySelectorAll('dialog')) {
        dialog.close();
      }
      signInForm(portal.locale, portal.locale.t('sessionExpired'));
    }
  });
  const portal: Portal = {
    client,
    session,
    locale: new Locale(null),
    announce(message) {
      alert.hidden = true;
      // Emptied first so that the same message twice is announced twice.
      status.textContent = '';
      window.setTimeout(() => (status.textContent = message), 50);
    },
    fail(error, region = alert) {
      if (!ended) {
        showFailure(region, error, portal.locale);
      }
    },
    refresh: async () => {},
  };
  replace(root, h('p', {}, portal.locale.t('loading')));
  try {
    const { data: customer } = await me({ client });
    portal.locale = new Locale(customer.locale);
    document.documentElement.lang = portal.locale.tag;
    document.title = portal.locale.t('title');
    const invoices = new InvoiceHistory(portal);
    const orders = new OrderHistory(portal);
    const subscriptionsSlot = h('div', {});
    const addressesSlot = h('div', {});
    const paymentMethodsSlot = h('div', {});
    const accountSlot = h('div', {});
    const signOutButton = h('button', { type: 'button', class: 'secondary' }, portal.locale.t('signOut'));
    signOutButton.addEventListener('click', () => {
      ended = true;
      signOut(window.sessionStorage);
      signInForm(portal.locale);
    });
    replace(
      root,
      h(
        'header',
        {},
        h('h1', { id: 'page-heading', tabindex: -1 }, portal.locale.t('title')),
        h('p', {}, portal.locale.t('signedInAs', { name: customer.name ?? customer.email ?? customer.id })),
        signOutButton,
      ),
      h('main', {}, subscriptionsSlot, orders.element, addressesSlot, paymentMethodsSlot, invoices.element, accountSlot),
    );
    portal.refresh = async () => {
      const [account, methods, profile] = await Promise.all([
        loadAccount(portal),
        portalListPaymentMethods({ client }),
        me({ client }),
        invoices.reload(),
        orders.reload(),
      ]);
      replace(subscriptionsSlot, subscriptionList(portal, account));
      // Orders and addresses only for a subscriber with something that ships (or had).
      const shipsSomething = account.shipping.size > 0 || account.addresses.length > 0 || orders.hasOrders;
      orders.element.hidden = !shipsSomething;
      replace(addressesSlot, shipsSomething ? addressBook(portal, account) : null);
      replace(paymentMethodsSlot, paymentMethodList(portal, methods.data.data));
      replace(accountSlot, accountSection(portal, profile.data));
      // The button that had focus was just replaced: keep keyboard users in the page.
      if (document.activeElement === document.body && !document.querySelector('dialog[open]')) {
        document.getElementById('page-heading')?.focus();
      }
    };
    await portal.refresh();
    root.setAttribute('aria-busy', 'false');
  } catch (error) {
    // A 401 has already replaced the page with the sign-in form.
    if (!ended) {
      replace(root);
      portal.fail(error);
    }
  }
}

/** For development: the API address and a token by hand. */
function signInForm(locale: Locale, notice?: string): void {
  const apiId = uniqueId('api');
  const tokenId = uniqueId('token');
  const api = h('input', { id: apiId, type: 'url', required: true, value: 'http://127.0.0.1:8080', autocomplete: 'url' });
  const token = h('textarea', { id: tokenId, required: true, rows: 3, autocomplete: 'off' });
  const form = h(
    'form',
    {},
    h('label', { for: apiId }, locale.t('apiUrl')),
    api,
    h('label', { for: tokenId }, locale.t('token')),
    token,
    h('button', { type: 'submit', class: 'primary' }, locale.t('signIn')),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const session = parse({ api: api.value, token: token.value });
    if (session) {
      saveSession(session, window.sessionStorage);
      void signedIn(session);
    }
  });
  status.textContent = '';
  if (notice) {
    replace(alert, h('p', {}, notice));
    alert.hidden = false;
  } else {
    alert.hidden = true;
  }
  replace(root, h('main', {}, h('h1', { id: 'page-heading', tabindex: -1 }, locale.t('signInTitle')), h('p', {}, locale.t('signInHelp')), form));
}

start();
