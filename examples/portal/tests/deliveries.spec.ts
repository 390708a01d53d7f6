// Subscriptions that ship, in a real browser: skipping the next delivery and taking it
// back, the orders with their shipment, the address book and where each subscription
// ships. Each test checks what the subscriber sees and what the API then holds.
import { expect, test } from '@playwright/test';
import {
  getAddress,
  getOrder,
  getShippingAddress,
  getSubscription,
  listAddresses,
  listOrders,
  pauseSubscription,
  portalCreateAddress,
  portalGetSubscription,
  portalListOrders,
  portalSkipRenewal,
  shipOrder,
  TenureError,
} from '@tenure/sdk';
import { customerClient, englishDate, euros, expectNoAccessibilityViolations, subscriptionCard } from './pages';
import { Shop } from './shop';

const PARIS = { name: 'Ada Lovelace', line1: '12 Rue des Lilas', city: 'Paris', postal_code: '75011', country: 'FR' };

/** The error the API answers to `call`, which must fail. */
async function refusal(call: () => Promise<unknown>): Promise<TenureError> {
  const error = await call().then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(TenureError);
  return error as TenureError;
}

test('skips the next delivery and takes the skip back, as the policy allows', async ({ page }) => {
  const shop = await Shop.open('Skips');
  const beans = await shop.product('Beans', { allow_skip: true, max_consecutive_skips: 1 }, { shippable: true });
  const monthly = await shop.plan(beans, 'Monthly', 1999, 'month');
  const ada = await shop.customer('Ada');
  const paris = await shop.address(ada, PARIS);
  const subscription = await shop.subscribe(ada, monthly, { shipping_address_id: paris.id });
  const link = await shop.portalLink(ada);
  const { data: before } = await portalGetSubscription({ client: customerClient(link), path: { id: subscription } });
  const next = before.available_actions.skip!.renewal_at;
  expect(next).toBe(before.current_period.end);
  await page.goto(link);
  const card = subscriptionCard(page, 'Beans · Monthly');

  await expect(card.getByText(`Next delivery: ${englishDate(next)}`)).toBeVisible();
  await expect(card.getByText('Ships to: Ada Lovelace, 12 Rue des Lilas, 75011 Paris, FR')).toBeVisible();
  await expect(card.getByRole('group').getByRole('button')).toHaveText(['Skip next delivery', 'Pause', 'Cancel subscription']);
  await card.getByRole('button', { name: 'Skip next delivery' }).click();

  await expect(page.getByRole('status')).toHaveText(`The delivery of ${englishDate(next)} is skipped: nothing is sent or charged for it.`);
  const { data: skipped } = await getSubscription({ client: shop.client, path: { id: subscription } });
  expect(skipped.skipped_renewals?.map((s) => [s.renewal_at, s.requested_by])).toEqual([[next, 'customer']]);
  expect(skipped.status).toBe('active');
  await expect(card.getByRole('list', { name: 'Skipped' }).getByRole('listitem')).toHaveText([`Delivery of ${englishDate(next)} skipped`]);
  // One skip in a row is the limit: the API offers no second one, and neither does the page.
  const { data: offered } = await portalGetSubscription({ client: customerClient(link), path: { id: subscription } });
  expect(offered.available_actions.skip ?? null).toBeNull();
  expect(offered.available_actions.unskip).toBe(true);
  await expect(card.getByRole('group').getByRole('button')).toHaveText(['Undo skip', 'Pause', 'Cancel subscription']);
  await expectNoAccessibilityViolations(page);

  await card.getByRole('button', { name: 'Undo skip' }).click();
  await expect(page.getByRole('status')).toHaveText(`The delivery of ${englishDate(next)} is no longer skipped.`);
  await expect(card.getByRole('list', { name: 'Skipped' })).toHaveCount(0);
  await expect(card.getByRole('button', { name: 'Skip next delivery' })).toBeVisible();
  const { data: after } = await getSubscription({ client: shop.client, path: { id: subscription } });
  expect(after.skipped_renewals ?? []).toEqual([]);
});

test('a skip the API refuses shows the API’s reason, and nothing is skipped', async ({ page }) => {
  const shop = await Shop.open('Refusals');
  const beans = await shop.product('Beans', { allow_skip: true }, { shippable: true });
  const monthly = await shop.plan(beans, 'Monthly', 1999, 'month');
  const ada = await shop.customer('Ada');
  const paris = await shop.address(ada, PARIS);
  const subscription = await shop.subscribe(ada, monthly, { shipping_address_id: paris.id });
  const link = await shop.portalLink(ada);
  await page.goto(link);
  const card = subscriptionCard(page, 'Beans · Monthly');
  await expect(card.getByRole('button', { name: 'Skip next delivery' })).toBeVisible();

  // Meanwhile the merchant pauses the subscription: the button on the page is now stale.
  await pauseSubscription({ client: shop.client, path: { id: subscription }, body: { start: { type: 'now' }, end: { type: 'open_ended' } } });
  const problem = await refusal(() => portalSkipRenewal({ client: customerClient(link), path: { id: subscription } }));
  expect(problem.status).toBe(409);
  await card.getByRole('button', { name: 'Skip next delivery' }).click();

  await expect(page.getByRole('alert')).toContainText('That did not work');
  await expect(page.getByRole('alert')).toContainText(problem.detail);
  const { data: after } = await getSubscription({ client: shop.client, path: { id: subscription } });
  expect(after.skipped_renewals ?? []).toEqual([]);
  expect(after.status).toBe('paused');
});

test('a subscriber with nothing that ships skips renewals and sees no orders or addresses', async ({ page }) => {
  const shop = await Shop.open('Digital');
  const videos = await shop.product('Videos', { allow_skip: true });
  const pass = await shop.plan(videos, 'Pass', 499, 'month');
  const ada = await shop.customer('Ada');
  const subscription = await shop.subscribe(ada, pass);
  await page.goto(await shop.portalLink(ada));
  const card = subscriptionCard(page, 'Videos · Pass');

  await card.getByRole('button', { name: 'Skip next renewal' }).click();
  await expect(page.getByRole('status')).toHaveText(/^The renewal of .* is skipped: nothing is charged for it\.$/);
  const { data: after } = await getSubscription({ client: shop.client, path: { id: subscription } });
  expect(after.skipped_renewals?.map((s) => s.renewal_at)).toEqual([after.current_period.end]);
  await expect(card.getByRole('list', { name: 'Skipped' })).toHaveText(`Renewal of ${englishDate(after.current_period.end)} skipped`);
  await expect(card.getByText(/^Ships to|No shipping address/)).toHaveCount(0);
  await expect(page.getByRole('heading', { name: 'Payment methods' })).toBeVisible();
  await expect(page.getByRole('region', { name: 'Orders' })).toHaveCount(0);
  await expect(page.getByRole('region', { name: 'Addresses' })).toHaveCount(0);
});

test('lists the orders the API holds: lines, total, status, and the carrier with a tracking link once shipped', async ({ page }) => {
  const shop = await Shop.open('Orders');
  const beans = await shop.product('Beans', {}, { shippable: true, max_quantity: 4 });
  const monthly = await shop.plan(beans, 'Monthly', 1200, 'month');
  const decaf = await shop.plan(beans, 'Decaf', 900, 'month');
  const ada = await shop.customer('Ada');
  const paris = await shop.address(ada, PARIS);
  const twoBags = await shop.subscribe(ada, monthly, { shipping_address_id: paris.id, quantity: 2 });
  // The merchant subscribed before it had an address: the order waits for one.
  const noAddress = await shop.subscribe(ada, decaf);
  // Each first invoice is paid by the engine within a second or so, which releases its order.
  await expect
    .poll(async () => (await listOrders({ client: shop.client, query: { customer_id: ada.id } })).data.data.map((o) => o.status))
    .toEqual(['unfulfilled', 'unfulfilled']);
  const { data: merchantView } = await listOrders({ client: shop.client, query: { customer_id: ada.id } });
  const shipped = merchantView.data.find((o) => o.subscription_id === twoBags)!;
  const waiting = merchantView.data.find((o) => o.subscription_id === noAddress)!;
  const trackingUrl = 'https://tracking.example/parcels/ZX7TRACK42';
  await shipOrder({ client: shop.client, path: { id: shipped.id }, body: { carrier: 'DHL', tracking_number: 'ZX7TRACK42', tracking_url: trackingUrl } });
  const link = await shop.portalLink(ada);
  const { data: portalView } = await portalListOrders({ client: customerClient(link) });

  await page.goto(link);
  const orders = page.getByRole('region', { name: 'Orders' });

  // The same orders, in the same order (newest first), as the API lists to the customer and the merchant.
  await expect(orders.getByRole('article')).toHaveCount(2);
  const shown = await orders.locator('[data-order]').evaluateAll((cards) => cards.map((card) => card.getAttribute('data-order')));
  expect(shown).toEqual(portalView.data.map((o) => o.id));
  expect(shown).toEqual(merchantView.data.map((o) => o.id));

  const { data: shippedNow } = await getOrder({ client: shop.client, path: { id: shipped.id } });
  expect(shippedNow.status).toBe('shipped');
  const first = orders.locator(`[data-order="${shipped.id}"]`);
  await expect(first.getByText('Shipped', { exact: true })).toBeVisible();
  expect(shippedNow.lines.map((l) => [l.quantity, l.amount.amount])).toEqual([[2, 2400]]);
  await expect(first.getByRole('listitem')).toHaveText([`2 × Beans · Monthly${euros(2400)}`]);
  await expect(first.getByText(`Total: ${euros(shippedNow.amount_total.amount)}`)).toBeVisible();
  await expect(first.getByText('To: Ada Lovelace, 12 Rue des Lilas, 75011 Paris, FR')).toBeVisible();
  await expect(first.getByText('DHL, tracking number ZX7TRACK42')).toBeVisible();
  await expect(first.getByRole('link', { name: 'Track parcel: ZX7TRACK42' })).toHaveAttribute('href', trackingUrl);

  const second = orders.locator(`[data-order="${waiting.id}"]`);
  await expect(second.getByText('Being prepared', { exact: true })).toBeVisible();
  await expect(second.getByRole('listitem')).toHaveText([`1 × Beans · Decaf${euros(900)}`]);
  await expect(second.getByText(`Total: ${euros(waiting.amount_total.amount)}`)).toBeVisible();
  await expect(second.getByText('No shipping address yet', { exact: true })).toBeVisible();
  await expect(second.getByRole('link')).toHaveCount(0);
  await expectNoAccessibilityViolations(page);
});

test('keeps an address book and chooses where a subscription ships; an address in use is not deleted', async ({ page }) => {
  const shop = await Shop.open('Addresses');
  const beans = await shop.product('Beans', {}, { shippable: true });
  const monthly = await shop.plan(beans, 'Monthly', 1999, 'month');
  const ada = await shop.customer('Ada');
  const subscription = await shop.subscribe(ada, monthly);
  const link = await shop.portalLink(ada);
  await page.goto(link);
  const card = subscriptionCard(page, 'Beans · Monthly');
  const book = page.getByRole('region', { name: 'Addresses' });
  await expect(card.getByText('No shipping address yet: choose one so that your orders can ship.')).toBeVisible();
  await expect(book.getByText('No addresses yet.')).toBeVisible();

  // A country the API refuses: its words, on the field.
  const invalid = { ...PARIS, country: 'UK' };
  const problem = await refusal(() => portalCreateAddress({ client: customerClient(link), body: invalid }));
  expect(problem.errors.map((e) => e.field)).toEqual(['country']);
  await book.getByRole('button', { name: 'Add an address' }).click();
  const dialog = page.getByRole('dialog', { name: 'New address' });
  await dialog.getByLabel('Recipient').fill(invalid.name);
  await dialog.getByLabel('Street and number').fill(invalid.line1);
  await dialog.getByLabel('Postal code').fill(invalid.postal_code);
  await dialog.getByLabel('City').fill(invalid.city);
  await dialog.getByLabel('Country code').fill('UK');
  await dialog.getByRole('button', { name: 'Save address' }).click();
  await expect(dialog.getByRole('alert')).toContainText(`country: ${problem.errors[0]!.message}`);
  await expect(dialog.getByLabel('Country code')).toHaveAttribute('aria-invalid', 'true');
  await expect(dialog.getByLabel('Country code')).toBeFocused();
  await dialog.getByLabel('Country code').fill('fr');
  await dialog.getByRole('button', { name: 'Save address' }).click();
  await expect(page.getByRole('status')).toHaveText('Address added.');
  await expect(dialog).toHaveCount(0);
  const { data: book1 } = await listAddresses({ client: shop.client, path: { id: ada.id } });
  expect(book1.data.map((a) => [a.name, a.line1, a.postal_code, a.city, a.country, a.line2 ?? null])).toEqual([
    ['Ada Lovelace', '12 Rue des Lilas', '75011', 'Paris', 'FR', null],
  ]);
  const paris = book1.data[0]!;

  // Ship the subscription there: the API holds it, and the order made without an address takes it.
  await card.getByRole('button', { name: 'Choose address: Beans · Monthly' }).click();
  const choose = page.getByRole('dialog', { name: 'Where should Beans · Monthly ship?' });
  await choose.getByLabel('Ada Lovelace, 12 Rue des Lilas, 75011 Paris, FR').check();
  await choose.getByRole('button', { name: 'Ship here' }).click();
  await expect(page.getByRole('status')).toHaveText('It now ships to Ada Lovelace, 12 Rue des Lilas, 75011 Paris, FR.');
  await expect(card.getByText('Ships to: Ada Lovelace, 12 Rue des Lilas, 75011 Paris, FR')).toBeVisible();
  const { data: shipping } = await getShippingAddress({ client: shop.client, path: { id: subscription } });
  expect(shipping.address?.id).toBe(paris.id);
  await expect
    .poll(async () => (await listOrders({ client: shop.client, query: { subscription_id: subscription } })).data.data.map((o) => o.shipping_address?.city))
    .toEqual(['Paris']);
  await page.reload();
  await expect(page.getByRole('region', { name: 'Orders' }).getByText('To: Ada Lovelace, 12 Rue des Lilas, 75011 Paris, FR')).toBeVisible();

  // Edit it: the API holds the new street, the card shows it.
  await book.getByRole('button', { name: 'Edit: Ada Lovelace, 12 Rue des Lilas, 75011 Paris, FR' }).click();
  const edit = page.getByRole('dialog', { name: 'Edit address' });
  await expect(edit.getByLabel('City')).toHaveValue('Paris');
  await edit.getByLabel('Street and number').fill('14 Rue des Lilas');
  await edit.getByRole('button', { name: 'Save address' }).click();
  await expect(page.getByRole('status')).toHaveText('Address saved.');
  await expect(card.getByText('Ships to: Ada Lovelace, 14 Rue des Lilas, 75011 Paris, FR')).toBeVisible();
  const { data: edited } = await getAddress({ client: shop.client, path: { id: ada.id, address_id: paris.id } });
  expect([edited.line1, edited.city]).toEqual(['14 Rue des Lilas', 'Paris']);
  await expect(book.getByText('Ships: Beans · Monthly')).toBeVisible();

  // Deleting it while the subscription ships there: the API refuses (409), the page says what to do.
  await book.getByRole('button', { name: 'Delete: Ada Lovelace, 14 Rue des Lilas, 75011 Paris, FR' }).click();
  await expect(page.getByRole('alert')).toContainText(
    'This address is where Beans · Monthly ships. Choose another shipping address for it first, then delete this one.',
  );
  const { data: book2 } = await listAddresses({ client: shop.client, path: { id: ada.id } });
  expect(book2.data.map((a) => a.id)).toEqual([paris.id]);

  // A second address, the subscription moved to it, then the first one goes.
  await book.getByRole('button', { name: 'Add an address' }).click();
  const second = page.getByRole('dialog', { name: 'New address' });
  await second.getByLabel('Recipient').fill('Ada Lovelace');
  await second.getByLabel('Street and number').fill('Lindenstraße 3');
  await second.getByLabel('Postal code').fill('10969');
  await second.getByLabel('City').fill('Berlin');
  await second.getByLabel('Country code').fill('DE');
  await second.getByRole('button', { name: 'Save address' }).click();
  await expect(page.getByRole('status')).toHaveText('Address added.');
  await expect(book.getByRole('article')).toHaveCount(2);
  await card.getByRole('button', { name: 'Change address: Beans · Monthly' }).click();
  const move = page.getByRole('dialog', { name: 'Where should Beans · Monthly ship?' });
  await expect(move.getByLabel('Ada Lovelace, 14 Rue des Lilas, 75011 Paris, FR')).toBeChecked();
  await move.getByLabel('Ada Lovelace, Lindenstraße 3, 10969 Berlin, DE').check();
  await move.getByRole('button', { name: 'Ship here' }).click();
  await expect(card.getByText('Ships to: Ada Lovelace, Lindenstraße 3, 10969 Berlin, DE')).toBeVisible();
  await book.getByRole('button', { name: 'Delete: Ada Lovelace, 14 Rue des Lilas, 75011 Paris, FR' }).click();
  await expect(page.getByRole('status')).toHaveText('Address deleted.');
  await expect(book.getByRole('article')).toHaveCount(1);
  const { data: book3 } = await listAddresses({ client: shop.client, path: { id: ada.id } });
  expect(book3.data.map((a) => a.city)).toEqual(['Berlin']);
  const { data: moved } = await getShippingAddress({ client: shop.client, path: { id: subscription } });
  expect(moved.address?.id).toBe(book3.data[0]!.id);
  await expectNoAccessibilityViolations(page);
});
