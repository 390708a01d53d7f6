// Subscriptions that ship, before the next shipment: the upcoming order and its edit
// cutoff, a stock notice and the subscriber's choice, the channel the subscriber wants to
// be contacted on, and a subscription whose plan the merchant retired. Each test checks
// what the subscriber sees and what the API then holds.
import { expect, type Page, test } from '@playwright/test';
import {
  archivePlan,
  changePlanStock,
  createPlan,
  getBillingSettings,
  getCustomer,
  getSubscription,
  getSubscriptionStock,
  getUpcomingOrder,
  me,
  plans,
  portalGetSubscriptionStock,
  portalGetUpcomingOrder,
  portalSkipRenewal,
  putBillingSettings,
  TenureError,
} from '@tenure/sdk';
import { customerClient, englishDate, euros, expectNoAccessibilityViolations, subscriptionCard } from './pages';
import { Shop } from './shop';

const PARIS = { name: 'Ada Lovelace', line1: '12 Rue des Lilas', city: 'Paris', postal_code: '75011', country: 'FR' };
const PARIS_LINE = 'Ada Lovelace, 12 Rue des Lilas, 75011 Paris, FR';

/** A moment as the page prints it (the browser's own Intl and time zone). */
async function shownDateTime(page: Page, iso: string): Promise<string> {
  return page.evaluate((at) => new Intl.DateTimeFormat('en', { dateStyle: 'medium', timeStyle: 'short' }).format(new Date(at)), iso);
}

test('shows the next order and its edit cutoff; after the cutoff the edit buttons say it is locked', async ({ page }) => {
  const shop = await Shop.open('Upcoming');
  const beans = await shop.product('Beans', { allow_skip: true }, { shippable: true, max_quantity: 4 });
  const { data: dark } = await createPlan({
    client: shop.client,
    body: { product_id: beans.id, name: 'Monthly', price: { amount: 1200, currency: 'EUR' }, interval: 'month', variant: { name: 'Dark roast 250 g' } },
  });
  // Orders lock 24 hours before each renewal.
  const { data: settings } = await getBillingSettings({ client: shop.client });
  const upcoming_notice_days = settings.upcoming_notice_days;
  await putBillingSettings({ client: shop.client, body: { upcoming_notice_days, order_notice_days: 3, order_cutoff_hours: 24 } });
  const ada = await shop.customer('Ada');
  const paris = await shop.address(ada, PARIS);
  const subscription = await shop.subscribe(ada, dark, { shipping_address_id: paris.id, quantity: 2 });
  const link = await shop.portalLink(ada);
  const { data: order } = await portalGetUpcomingOrder({ client: customerClient(link), path: { id: subscription } });
  expect(order.editable).toBe(true);
  expect(order.lines.map((l) => [l.plan_name, l.variant?.name, l.quantity, l.amount.amount])).toEqual([['Monthly', 'Dark roast 250 g', 2, 2400]]);
  expect(Date.parse(order.renewal_at) - Date.parse(order.cutoff_at!)).toBe(24 * 3600_000);

  await page.goto(link);
  const card = subscriptionCard(page, 'Beans · Monthly');
  const next = card.getByRole('region', { name: 'Next order' });
  await expect(next.getByText(`Made and charged on ${englishDate(order.renewal_at)}, for ${englishDate(order.period_start)} to ${englishDate(order.period_end)}`)).toBeVisible();
  await expect(next.getByRole('listitem')).toHaveText([`2 × Beans · Monthly (Dark roast 250 g)${euros(2400)}`]);
  await expect(next.getByText(`Total: ${euros(order.amount_total.amount)}`)).toBeVisible();
  await expect(next.getByText(`To: ${PARIS_LINE}`)).toBeVisible();
  await expect(next.getByText(`Changes after ${await shownDateTime(page, order.cutoff_at!)} apply to the following order.`)).toBeVisible();
  await expect(card.getByRole('button', { name: 'Skip next delivery' })).toBeEnabled();
  await expect(card.getByRole('button', { name: 'Change quantity' })).toBeEnabled();

  // The merchant moves the cutoff to 60 days before each renewal: this order is locked now.
  await putBillingSettings({ client: shop.client, body: { upcoming_notice_days, order_notice_days: 60, order_cutoff_hours: 1440 } });
  const { data: locked } = await getUpcomingOrder({ client: shop.client, path: { id: subscription } });
  expect(locked.editable).toBe(false);
  // The page still offers the skip: the API refuses it, and the page shows the API's words.
  const problem = await portalSkipRenewal({ client: customerClient(link), path: { id: subscription } }).then(
    () => null,
    (e: unknown) => e,
  );
  expect(problem).toBeInstanceOf(TenureError);
  expect((problem as TenureError).status).toBe(409);
  expect((problem as TenureError).code).toBe('order_edit_cutoff_passed');
  await card.getByRole('button', { name: 'Skip next delivery' }).click();
  await expect(page.getByRole('alert')).toContainText('That did not work');
  await expect(page.getByRole('alert')).toContainText((problem as TenureError).detail);
  const { data: unchanged } = await getSubscription({ client: shop.client, path: { id: subscription } });
  expect(unchanged.skipped_renewals ?? []).toEqual([]);
  expect(unchanged.quantity).toBe(2);

  // Loaded again, the page says the order is locked, and its edit buttons say until when.
  await page.reload();
  const until = englishDate(locked.renewal_at);
  await expect(next.getByText(`This order is locked since ${await shownDateTime(page, locked.cutoff_at!)}: changes now apply to the following order, after ${until}.`)).toBeVisible();
  await expect(card.getByRole('button', { name: `Skip next delivery (locked until ${until})` })).toBeDisabled();
  await expect(card.getByRole('button', { name: `Change quantity (locked until ${until})` })).toBeDisabled();
  await expect(card.getByRole('button', { name: `Change address (locked until ${until}): Beans · Monthly` })).toBeDisabled();
  // What is not held stays open.
  await expect(card.getByRole('button', { name: 'Cancel subscription' })).toBeEnabled();
  await expectNoAccessibilityViolations(page);
});

test('shows a stock notice and records the subscriber’s choice for the next order', async ({ page }) => {
  const shop = await Shop.open('Stock');
  const beans = await shop.product('Beans', {}, { shippable: true });
  const monthly = await shop.plan(beans, 'Monthly', 1200, 'month');
  const decaf = await shop.plan(beans, 'Decaf', 1100, 'month');
  const ada = await shop.customer('Ada');
  const paris = await shop.address(ada, PARIS);
  const subscription = await shop.subscribe(ada, monthly, { shipping_address_id: paris.id });
  const expected = new Date(Date.now() + 20 * 86_400_000).toISOString();
  await changePlanStock({
    client: shop.client,
    path: { id: monthly.id },
    body: { status: 'out_of_stock', expected_at: expected, next_order: 'skip', substitute_plan_id: decaf.id, choices: ['ship_anyway', 'swap'] },
  });
  const link = await shop.portalLink(ada);
  // The worker notifies subscribers after the answer.
  await expect
    .poll(async () => (await portalGetSubscriptionStock({ client: customerClient(link), path: { id: subscription } })).data.notice?.next_order ?? null)
    .toBe('skip');
  const { data: notified } = await portalGetSubscriptionStock({ client: customerClient(link), path: { id: subscription } });
  expect(notified.notice!.choices).toEqual(['ship_anyway', 'skip', 'swap']);

  await page.goto(link);
  const card = subscriptionCard(page, 'Beans · Monthly');
  const stock = card.getByRole('region', { name: 'Stock' });
  await expect(stock.getByText('Out of stock', { exact: true })).toBeVisible();
  await expect(stock.getByText(`Expected back on ${englishDate(notified.stock.expected_at!)}.`)).toBeVisible();
  await expect(stock.getByText('Your next delivery is skipped: nothing is sent or charged for it.')).toBeVisible();
  const choices = stock.getByRole('group', { name: 'What should happen to your next order?' });
  await expect(choices.getByRole('radio')).toHaveCount(3);
  await expect(choices.getByLabel('Skip it')).toBeChecked();
  await expect(choices.getByLabel('Ship it anyway')).not.toBeChecked();
  await expectNoAccessibilityViolations(page);

  await choices.getByLabel('Send Beans · Decaf instead').check();
  await stock.getByRole('button', { name: 'Save my choice' }).click();
  await expect(page.getByRole('status')).toHaveText('Saved: your next order is Beans · Decaf instead.');
  await expect(stock.getByText('Your next order is Beans · Decaf instead.')).toBeVisible();
  await expect(stock.getByLabel('Send Beans · Decaf instead')).toBeChecked();

  // The API holds the choice: the merchant's skip taken back, a swap to Decaf at the renewal.
  const { data: held } = await getSubscriptionStock({ client: shop.client, path: { id: subscription } });
  expect([held.notice?.choice, held.notice?.next_order, held.notice?.merchant_action]).toEqual(['swap', 'swap', 'skip']);
  const { data: after } = await getSubscription({ client: shop.client, path: { id: subscription } });
  expect(after.skipped_renewals ?? []).toEqual([]);
  expect(after.scheduled_changes.map((c) => [c.type, (c.details as { plan_id?: string }).plan_id])).toEqual([['plan_change', decaf.id]]);

  // Ship anyway after all: the swap goes too.
  await stock.getByLabel('Ship it anyway').check();
  await stock.getByRole('button', { name: 'Save my choice' }).click();
  await expect(page.getByRole('status')).toHaveText('Saved: your next order ships as planned.');
  await expect(stock.getByText('Your next order ships as planned.')).toBeVisible();
  const { data: shipped } = await getSubscription({ client: shop.client, path: { id: subscription } });
  expect(shipped.scheduled_changes).toEqual([]);
  expect(shipped.skipped_renewals ?? []).toEqual([]);
  const { data: final } = await getSubscriptionStock({ client: shop.client, path: { id: subscription } });
  expect(final.notice?.choice).toBe('ship_anyway');
});

test('shows and changes how the subscriber wants to be contacted', async ({ page }) => {
  const shop = await Shop.open('Channels');
  const videos = await shop.product('Videos');
  const pass = await shop.plan(videos, 'Pass', 499, 'month');
  const ada = await shop.customer('Ada');
  await shop.subscribe(ada, pass);
  const link = await shop.portalLink(ada);
  await page.goto(link);
  const account = page.getByRole('region', { name: 'Your account' });
  const channels = account.getByRole('group', { name: 'How should we contact you?' });
  await expect(channels.getByRole('radio')).toHaveCount(4);
  await expect(channels.getByLabel('Email')).toBeChecked();

  await channels.getByLabel('SMS').check();
  await account.getByRole('button', { name: 'Save preference' }).click();
  await expect(page.getByRole('status')).toHaveText('Saved: SMS.');
  const { data: customer } = await getCustomer({ client: shop.client, path: { id: ada.id } });
  expect(customer.channel_preference).toBe('sms');
  await page.reload();
  await expect(channels.getByLabel('SMS')).toBeChecked();

  await channels.getByLabel('Do not contact me').check();
  await account.getByRole('button', { name: 'Save preference' }).click();
  await expect(page.getByRole('status')).toHaveText('Saved: Do not contact me.');
  const { data: self } = await me({ client: customerClient(link) });
  expect(self.channel_preference).toBe('none');
  await expectNoAccessibilityViolations(page);
});

test('a subscription on a plan the merchant retired still shows its plan’s name and price', async ({ page }) => {
  const shop = await Shop.open('Retired');
  const beans = await shop.product('Beans', {}, { shippable: true });
  const classic = await shop.plan(beans, 'Classic', 1350, 'month');
  const ada = await shop.customer('Ada');
  const paris = await shop.address(ada, PARIS);
  const subscription = await shop.subscribe(ada, classic, { shipping_address_id: paris.id });
  await archivePlan({ client: shop.client, path: { id: classic.id } });
  const link = await shop.portalLink(ada);
  // The plans a subscriber may choose no longer show it.
  const { data: offered } = await plans({ client: customerClient(link) });
  expect(offered.map((p) => p.id)).not.toContain(classic.id);

  await page.goto(link);
  const card = subscriptionCard(page, 'Beans · Classic');
  await expect(card).toHaveAttribute('data-subscription', subscription);
  await expect(card.getByText(`${euros(1350)} a month`)).toBeVisible();
  // It still ships: its address is shown, and its next order names the plan.
  await expect(card.getByText(`Ships to: ${PARIS_LINE}`)).toBeVisible();
  await expect(card.getByRole('region', { name: 'Next order' }).getByRole('listitem')).toHaveText([`1 × Beans · Classic${euros(1350)}`]);
  await expect(page.getByText(classic.id)).toHaveCount(0);
});
