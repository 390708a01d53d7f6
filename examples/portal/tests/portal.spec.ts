// The reference portal in a real browser, served from another origin than the API, through
// every action a subscriber has: what they see, and what the API holds afterwards.
import { expect, test } from '@playwright/test';
import {
  createTenureClient,
  getSubscription,
  getTicket,
  listInvoices,
  listPaymentMethods,
  listRequests,
  portalListSubscriptions,
  portalPreviewPlanChange,
  replyToTicket,
  type TenureError,
} from '@tenure/sdk';
import { API_URL } from './environment';
import { expectNoAccessibilityViolations, subscriptionCard } from './pages';
import { Shop } from './shop';

test('signs in from the merchant’s link, in the customer’s language, and keeps the token out of the address bar', async ({ page }) => {
  const shop = await Shop.open('Kaffeeclub');
  const coffee = await shop.product('Kaffee', { notice_period_days: 14 });
  const monthly = await shop.plan(coffee, 'Monatlich', 1999, 'month');
  const grete = await shop.customer('Grete', 'de-DE');
  await shop.subscribe(grete, monthly);
  // The first invoice is charged by the engine within a second or so.
  await expect
    .poll(async () => (await listInvoices({ client: shop.client, query: { customer_id: grete.id } })).data.data.map((i) => i.status))
    .toEqual(['paid']);

  await page.goto(await shop.portalLink(grete));

  await expect(page.getByRole('heading', { name: 'Ihre Abonnements', level: 1 })).toBeVisible();
  await expect(page.locator('html')).toHaveAttribute('lang', 'de-DE');
  const card = subscriptionCard(page, 'Kaffee · Monatlich');
  // German words and German money: 19,99 € a month.
  await expect(card.getByText('19,99 € pro Monat')).toBeVisible();
  await expect(card.getByText('Aktiv', { exact: true })).toBeVisible();
  await expect(card.getByRole('group', { name: 'Aktionen für Kaffee · Monatlich' }).getByRole('button')).toHaveText([
    'Pausieren',
    'Abonnement kündigen',
  ]);
  await expect(page.getByRole('table')).toContainText('Bezahlt');
  expect(page.url()).not.toContain('token');
  expect(new URL(page.url()).hash).toBe('');
  await expectNoAccessibilityViolations(page);

  // The session outlives a reload (sessionStorage), not the sign-out.
  await page.reload();
  await expect(card.getByText('19,99 € pro Monat')).toBeVisible();
  await page.getByRole('button', { name: 'Abmelden' }).click();
  await expect(page.getByRole('heading', { name: 'Anmelden', level: 1 })).toBeVisible();
  // Signed out, the customer's locale is unknown again: the browser's language (English).
  await page.reload();
  await expect(page.getByRole('heading', { name: 'Sign in', level: 1 })).toBeVisible();
});

test('a token the API does not accept ends the session with a clear message', async ({ page }) => {
  // A merchant allows the portal's origin, so the browser may read the API's 401.
  await Shop.open('Allows the portal');
  await page.goto(`/#api=${encodeURIComponent(API_URL)}&token=not-a-session-token`);
  await expect(page.getByRole('alert')).toContainText('Your session has ended');
  await expect(page.getByRole('heading', { name: 'Sign in', level: 1 })).toBeVisible();
});

test('a site the merchant did not allow cannot use the token (CORS)', async ({ page }) => {
  await Shop.open('Allows the portal');
  const shop = await Shop.open('Elsewhere', ['https://shop.example']);
  const product = await shop.product('Box');
  const plan = await shop.plan(product, 'Monthly', 1500, 'month');
  const ada = await shop.customer('Ada');
  await shop.subscribe(ada, plan);
  const refused: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') {
      refused.push(message.text());
    }
  });

  await page.goto(await shop.portalLink(ada));

  // Another merchant allows the portal's origin, so the browser reads Tenure's refusal
  // (403 origin_not_allowed) for this merchant's token.
  await expect(page.getByRole('alert')).toContainText('This site is not set up to manage your subscriptions');
  await expect(page.getByRole('heading', { name: 'Box · Monthly' })).toHaveCount(0);
  expect(refused.join('\n')).toContain('is not among the allowed origins of merchant');
});

test('shows exactly the buttons each subscription’s available_actions allows', async ({ page }) => {
  const shop = await Shop.open('Two policies');
  const strict = await shop.product('Videos', { allow_pause: false, allow_plan_change: false, cancellation_mode: 'immediate' });
  const strictPlan = await shop.plan(strict, 'Pass', 499, 'month');
  const open = await shop.product('Beans', { notice_period_days: 14 });
  const monthly = await shop.plan(open, 'Monthly', 1999, 'month');
  await shop.plan(open, 'Yearly', 19900, 'year');
  const ada = await shop.customer('Ada');
  await shop.subscribe(ada, strictPlan);
  await shop.subscribe(ada, monthly);
  const link = await shop.portalLink(ada);
  const token = decodeURIComponent(/token=([^&]+)/.exec(link)![1]!);

  await page.goto(link);

  const expected = { 'Videos · Pass': ['Cancel subscription'], 'Beans · Monthly': ['Change plan', 'Pause', 'Cancel subscription'] };
  for (const [plan, buttons] of Object.entries(expected)) {
    await expect(subscriptionCard(page, plan).getByRole('group').getByRole('button')).toHaveText(buttons);
  }
  // The same as the API says to the same customer.
  const customer = createTenureClient({ baseUrl: API_URL, credential: token });
  const { data } = await portalListSubscriptions({ client: customer });
  const byPlan = new Map(data.data.map((s) => [s.plan_id, s.available_actions]));
  expect(byPlan.get(strictPlan.id)).toMatchObject({ pause: null, change_plan: null, resume: false, cancel: { mode: 'immediate' } });
  expect(byPlan.get(monthly.id)).toMatchObject({ pause: {}, cancel: { mode: 'request' }, resume: false });
});

test('changes plan after a preview of what it costs', async ({ page }) => {
  const shop = await Shop.open('Upgrades');
  const product = await shop.product('Beans');
  const basic = await shop.plan(product, 'Basic', 1000, 'month');
  const premium = await shop.plan(product, 'Premium', 2500, 'month');
  const ada = await shop.customer('Ada');
  const subscription = await shop.subscribe(ada, basic);
  const link = await shop.portalLink(ada);
  const token = decodeURIComponent(/token=([^&]+)/.exec(link)![1]!);
  const { data: preview } = await portalPreviewPlanChange({
    client: createTenureClient({ baseUrl: API_URL, credential: token }),
    path: { id: subscription },
    body: { plan_id: premium.id },
  });
  await page.goto(link);

  await subscriptionCard(page, 'Beans · Basic').getByRole('button', { name: 'Change plan' }).click();
  const dialog = page.getByRole('dialog', { name: 'Change plan' });
  await expect(dialog.getByRole('button', { name: 'Confirm plan change' })).toBeDisabled();
  await dialog.getByLabel('Beans · Premium — €25.00 a month').check();
  const whatChanges = dialog.getByRole('region', { name: 'What changes' });
  const due = `€${(preview.amount_due_now.amount / 100).toFixed(2)}`;
  expect(preview.amount_due_now.amount).toBeGreaterThan(0);
  await expect(whatChanges).toContainText(due);
  for (const line of preview.lines) {
    await expect(whatChanges).toContainText(line.description);
  }
  await dialog.getByRole('button', { name: 'Confirm plan change' }).click();

  await expect(page.getByRole('status')).toHaveText(/Your plan (was changed|changes on)/);
  await expect(dialog).toHaveCount(0);
  const { data: after } = await getSubscription({ client: shop.client, path: { id: subscription } });
  if (preview.timing === 'now') {
    expect(after.plan_id).toBe(premium.id);
    await expect(subscriptionCard(page, 'Beans · Premium')).toBeVisible();
  } else {
    expect(after.scheduled_changes.map((c) => c.type)).toEqual(['plan_change']);
    await expect(subscriptionCard(page, 'Beans · Basic').getByText('Plan change on')).toBeVisible();
  }
});

test('redeems a code on a plan change: the preview shows the API’s discount, a refused code the API’s words', async ({ page }) => {
  const shop = await Shop.open('Codes');
  const product = await shop.product('Beans');
  const basic = await shop.plan(product, 'Basic', 1000, 'month');
  const yearly = await shop.plan(product, 'Yearly', 10000, 'year');
  const ada = await shop.customer('Ada');
  const subscription = await shop.subscribe(ada, basic);
  await shop.promotionCode('WELCOME20', { percent_off: 20, duration: 'once' });
  const link = await shop.portalLink(ada);
  const token = decodeURIComponent(/token=([^&]+)/.exec(link)![1]!);
  const asAda = createTenureClient({ baseUrl: API_URL, credential: token });
  const refusal = await portalPreviewPlanChange({ client: asAda, path: { id: subscription }, body: { plan_id: yearly.id, promotion_code: 'NOSUCHCODE' } }).then(
    () => null,
    (error: unknown) => error as TenureError,
  );
  expect(refusal?.code).toBe('promotion_code_invalid');
  const { data: preview } = await portalPreviewPlanChange({
    client: asAda,
    path: { id: subscription },
    body: { plan_id: yearly.id, promotion_code: 'welcome20' },
  });
  const discount = preview.discount!;
  expect(discount.amount_off.amount).toBeGreaterThan(0);
  const euros = (amount: number) => `€${(amount / 100).toFixed(2)}`;
  await page.goto(link);

  await subscriptionCard(page, 'Beans · Basic').getByRole('button', { name: 'Change plan' }).click();
  const dialog = page.getByRole('dialog', { name: 'Change plan' });
  await dialog.getByLabel('Beans · Yearly — €100.00 a year').check();
  const whatChanges = dialog.getByRole('region', { name: 'What changes' });
  await expect(whatChanges).toContainText(euros(preview.amount_due_now.amount));
  await expect(whatChanges).not.toContainText('Invoice total with the code');

  // A code the API refuses: its own words, and the change without the code.
  await dialog.getByLabel('Have a code?').fill('NOSUCHCODE');
  await dialog.getByRole('button', { name: 'Apply code' }).click();
  await expect(dialog.getByRole('alert').filter({ hasText: refusal!.detail })).toBeVisible();
  await expect(dialog.getByRole('button', { name: 'Confirm plan change' })).toBeEnabled();
  await expect(whatChanges).not.toContainText('Invoice total with the code');

  await dialog.getByLabel('Have a code?').fill('welcome20');
  await dialog.getByRole('button', { name: 'Apply code' }).click();
  await expect(whatChanges).toContainText('Invoice total with the code');
  await expect(whatChanges).toContainText(`Invoice before the code${euros(discount.subtotal.amount)}`);
  await expect(whatChanges).toContainText(`Code WELCOME20−${euros(discount.amount_off.amount)}`);
  await expect(whatChanges).toContainText(`Invoice total with the code${euros(discount.total.amount)}`);
  await dialog.getByRole('button', { name: 'Confirm plan change' }).click();

  await expect(page.getByRole('status')).toHaveText('Your plan was changed.');
  await expect(subscriptionCard(page, 'Beans · Yearly')).toBeVisible();
  // Another cadence is invoiced at once: that invoice carries the code's discount.
  const { data: invoices } = await listInvoices({ client: shop.client, query: { customer_id: ada.id } });
  const invoice = invoices.data[0]!;
  expect(invoice.subscription_id).toBe(subscription);
  expect(invoice.subtotal.amount).toBe(discount.subtotal.amount);
  expect(invoice.discount.amount).toBe(-discount.amount_off.amount);
  expect(invoice.total.amount).toBe(discount.total.amount);
  expect(invoice.lines.some((line) => line.description.includes('WELCOME20'))).toBe(true);
});

test('changes the quantity after a preview of what it costs', async ({ page }) => {
  const shop = await Shop.open('Quantities');
  const product = await shop.product('Beans', {}, { shippable: true, min_quantity: 1, max_quantity: 5 });
  const plan = await shop.plan(product, 'Bag', 1000, 'month');
  const ada = await shop.customer('Ada');
  const subscription = await shop.subscribe(ada, plan);
  await page.goto(await shop.portalLink(ada));
  const card = subscriptionCard(page, 'Beans · Bag');
  await expect(card.getByText('Quantity: 1')).toBeVisible();

  await card.getByRole('button', { name: 'Change quantity' }).click();
  const dialog = page.getByRole('dialog', { name: 'Change quantity' });
  await expect(dialog.getByText('From 1 to 5.')).toBeVisible();
  await dialog.getByLabel('Quantity').fill('3');
  await dialog.getByLabel('Quantity').press('Tab');
  const whatChanges = dialog.getByRole('region', { name: 'What changes' });
  await expect(whatChanges).toContainText('A full period will cost €30.00.');
  await dialog.getByRole('button', { name: 'Confirm quantity' }).click();

  await expect(page.getByRole('status')).toHaveText('Your quantity is now 3.');
  await expect(card.getByText('Quantity: 3')).toBeVisible();
  const { data: after } = await getSubscription({ client: shop.client, path: { id: subscription } });
  expect(after.quantity).toBe(3);
});

test('pauses and resumes with the keyboard alone', async ({ page }) => {
  const shop = await Shop.open('Keyboard');
  const product = await shop.product('Beans', { max_pause_days: 90 });
  const plan = await shop.plan(product, 'Monthly', 1999, 'month');
  const ada = await shop.customer('Ada');
  const subscription = await shop.subscribe(ada, plan);
  await page.goto(await shop.portalLink(ada));
  const card = subscriptionCard(page, 'Beans · Monthly');

  await card.getByRole('button', { name: 'Pause' }).focus();
  await page.keyboard.press('Enter');
  const dialog = page.getByRole('dialog', { name: 'Pause your subscription' });
  await expect(dialog).toBeVisible();
  await expect(dialog.getByText('You can pause for at most 90 days.')).toBeVisible();
  // Focus starts on the first choice (start at period end); the arrow picks "now", Enter submits.
  await expect(dialog.getByRole('radio').first()).toBeFocused();
  await page.keyboard.press('ArrowDown');
  await expect(dialog.getByLabel('Takes effect now')).toBeChecked();
  await page.keyboard.press('Enter');

  await expect(page.getByRole('status')).toHaveText('Your subscription is paused.');
  await expect(card.getByText('Paused', { exact: true })).toBeVisible();
  await expect(page.locator('#page-heading')).toBeFocused();
  const { data: paused } = await getSubscription({ client: shop.client, path: { id: subscription } });
  expect(paused.status).toBe('paused');

  await card.getByRole('button', { name: 'Resume' }).focus();
  await page.keyboard.press('Enter');
  await expect(page.getByRole('status')).toHaveText('Your subscription is active again.');
  await expect(card.getByText('Active', { exact: true })).toBeVisible();
  const { data: resumed } = await getSubscription({ client: shop.client, path: { id: subscription } });
  expect(resumed.status).toBe('active');
  await expectNoAccessibilityViolations(page);
});

test('schedules a pause for the end of the period and undoes it', async ({ page }) => {
  const shop = await Shop.open('Undo');
  const product = await shop.product('Beans');
  const plan = await shop.plan(product, 'Monthly', 1999, 'month');
  const ada = await shop.customer('Ada');
  const subscription = await shop.subscribe(ada, plan);
  await page.goto(await shop.portalLink(ada));
  const card = subscriptionCard(page, 'Beans · Monthly');

  await card.getByRole('button', { name: 'Pause' }).click();
  const dialog = page.getByRole('dialog', { name: 'Pause your subscription' });
  await dialog.getByLabel('Skip a number of renewals').check();
  await dialog.getByLabel('Renewals to skip').fill('2');
  await dialog.getByRole('button', { name: 'Pause subscription' }).click();

  await expect(page.getByRole('status')).toHaveText(/^Your subscription pauses on /);
  const { data: scheduled } = await getSubscription({ client: shop.client, path: { id: subscription } });
  expect(scheduled.status).toBe('active');
  expect(scheduled.scheduled_changes.map((c) => [c.type, c.due_at])).toEqual([['pause', scheduled.current_period.end]]);
  await expect(card.getByText('Active', { exact: true })).toBeVisible();

  await card.getByRole('button', { name: /^Undo: Pause on / }).click();
  await expect(page.getByRole('status')).toHaveText('The scheduled change was undone.');
  await expect(card.getByRole('button', { name: /^Undo/ })).toHaveCount(0);
  const { data: after } = await getSubscription({ client: shop.client, path: { id: subscription } });
  expect(after.scheduled_changes).toEqual([]);
});

test('asks to cancel with a reason, is offered a discount, and stays', async ({ page }) => {
  const shop = await Shop.open('Retention');
  const product = await shop.product('Beans', { notice_period_days: 14 });
  const plan = await shop.plan(product, 'Monthly', 1999, 'month');
  await shop.offer({ name: 'Stay for less', kind: { type: 'discount_percent', percent: 20, cycles: 3 }, eligibility: { reasons: ['too_expensive'] } });
  const ada = await shop.customer('Ada');
  const subscription = await shop.subscribe(ada, plan);
  await page.goto(await shop.portalLink(ada));
  const card = subscriptionCard(page, 'Beans · Monthly');

  await card.getByRole('button', { name: 'Cancel subscription' }).click();
  const dialog = page.getByRole('dialog', { name: 'Cancel your subscription' });
  await expect(dialog).toContainText('14 days’ notice');
  await dialog.getByRole('button', { name: 'Cancel subscription' }).click();
  // The reason is required: the browser refuses to submit without one.
  await expect(dialog.getByRole('heading', { name: 'Before you go' })).toHaveCount(0);
  await dialog.getByLabel('Why are you leaving?').selectOption({ label: 'It is too expensive' });
  await dialog.getByLabel('Anything you would like us to know? (optional)').fill('On a budget this year.');
  await dialog.getByRole('button', { name: 'Cancel subscription' }).click();

  await expect(dialog.getByRole('heading', { name: 'Before you go' })).toBeVisible();
  await expect(dialog.getByText('20% off your next 3 invoices')).toBeVisible();
  await dialog.getByRole('button', { name: 'Accept: 20% off your next 3 invoices' }).click();

  await expect(page.getByRole('status')).toHaveText('Offer accepted. Your subscription continues.');
  await expect(card.getByText('20% off the next 3 invoices')).toBeVisible();
  await expect(card.getByRole('button', { name: 'Cancel subscription' })).toBeVisible();
  const { data: requests } = await listRequests({ client: shop.client });
  expect(requests.data.map((r) => [r.subscription_id, r.reason, r.message, r.status])).toEqual([
    [subscription, 'too_expensive', 'On a budget this year.', 'withdrawn'],
  ]);
  const { data: after } = await getSubscription({ client: shop.client, path: { id: subscription } });
  expect(after.discounts?.map((d) => [d.percent, d.cycles_remaining])).toEqual([[20, 3]]);
  expect(after.cancel_at ?? null).toBeNull();
});

test('asks to cancel, declines the offer, talks to support on the ticket, then keeps the subscription', async ({ page }) => {
  const shop = await Shop.open('Support');
  const product = await shop.product('Beans', { notice_period_days: 14 });
  const plan = await shop.plan(product, 'Monthly', 1999, 'month');
  await shop.offer({ name: 'Take a break', kind: { type: 'pause_instead', days: 30 } });
  const ada = await shop.customer('Ada');
  const subscription = await shop.subscribe(ada, plan);
  await page.goto(await shop.portalLink(ada));
  const card = subscriptionCard(page, 'Beans · Monthly');

  await card.getByRole('button', { name: 'Cancel subscription' }).click();
  const dialog = page.getByRole('dialog', { name: 'Cancel your subscription' });
  await dialog.getByLabel('Why are you leaving?').selectOption('unused');
  await dialog.getByRole('button', { name: 'Cancel subscription' }).click();
  await dialog.getByRole('button', { name: 'No, thanks: Pause for 30 days instead' }).click();
  await expect(dialog).toHaveCount(0);

  const { data: requests } = await listRequests({ client: shop.client });
  const request = requests.data[0]!;
  expect([request.subscription_id, request.status, request.reason]).toEqual([subscription, 'pending', 'unused']);
  const panel = card.getByRole('region', { name: 'Your cancellation request' });
  await expect(panel).toContainText('Pending: ends on');
  await expect(card.getByText(/^Ends on/)).toBeVisible();

  await panel.getByText(/^Support ticket:/).click();
  await panel.getByLabel('Your reply').fill('Could you call me first?');
  await panel.getByRole('button', { name: 'Send reply' }).click();
  await expect(page.getByRole('status')).toHaveText('Reply sent.');
  const { data: ticket } = await getTicket({ client: shop.client, path: { id: request.ticket_id } });
  expect(ticket.messages?.at(-1)).toMatchObject({ author: 'customer', body: 'Could you call me first?' });

  await replyToTicket({ client: shop.client, path: { id: request.ticket_id }, body: { body: 'Happy to: what number?' } });
  await page.reload();
  await panel.getByText(/^Support ticket:/).click();
  await expect(panel.getByRole('listitem').filter({ hasText: 'Support' })).toContainText('Happy to: what number?');

  await card.getByRole('button', { name: 'Keep my subscription' }).click();
  await expect(page.getByRole('status')).toHaveText('Your subscription continues.');
  await expect(panel).toHaveCount(0);
  const { data: after } = await listRequests({ client: shop.client });
  expect(after.data[0]!.status).toBe('withdrawn');
  await expect(card.getByRole('button', { name: 'Cancel subscription' })).toBeVisible();
});

test('cancels at once where the policy says so, after an explicit confirmation', async ({ page }) => {
  const shop = await Shop.open('Immediate');
  const product = await shop.product('Videos', { cancellation_mode: 'immediate', allow_pause: false });
  const plan = await shop.plan(product, 'Pass', 499, 'month');
  const ada = await shop.customer('Ada');
  const subscription = await shop.subscribe(ada, plan);
  await page.goto(await shop.portalLink(ada));
  const card = subscriptionCard(page, 'Videos · Pass');

  await card.getByRole('button', { name: 'Cancel subscription' }).click();
  const dialog = page.getByRole('dialog', { name: 'Cancel your subscription' });
  await dialog.getByRole('button', { name: 'Cancel subscription' }).click();
  await expect(dialog).toBeVisible(); // not confirmed yet
  await dialog.getByLabel('Yes, cancel my subscription now').check();
  await dialog.getByRole('button', { name: 'Cancel subscription' }).click();

  await expect(page.getByRole('status')).toHaveText('Your subscription is canceled.');
  await expect(card.getByText('Canceled', { exact: true })).toBeVisible();
  await expect(card.getByRole('group')).toHaveCount(0);
  const { data: after } = await getSubscription({ client: shop.client, path: { id: subscription } });
  expect(after.status).toBe('canceled');
});

test('adds a card, makes it the default and removes the old one', async ({ page }) => {
  const shop = await Shop.open('Cards');
  const ada = await shop.customer('Ada');
  await page.goto(await shop.portalLink(ada));
  const cards = page.getByRole('region', { name: 'Payment methods' });
  await expect(cards.getByRole('article')).toHaveCount(1);

  await cards.getByLabel('Card token from your payment form').fill('pm_card_mastercard');
  await cards.getByRole('button', { name: 'Add card' }).click();
  await expect(page.getByRole('status')).toHaveText('Card added.');
  await expect(cards.getByRole('article')).toHaveCount(2);

  const { data: methods } = await listPaymentMethods({ client: shop.client, path: { id: ada.id } });
  const mastercard = methods.data.find((m) => m.brand === 'mastercard')!;
  const visa = methods.data.find((m) => m.brand === 'visa')!;
  expect(visa.is_default).toBe(true);
  await cards.getByRole('button', { name: `Make default: Mastercard ending in ${mastercard.last4}` }).click();
  await expect(page.getByRole('status')).toHaveText('Default payment method changed.');
  await cards.getByRole('button', { name: `Remove: Visa ending in ${visa.last4}` }).click();
  await expect(page.getByRole('status')).toHaveText('Card removed.');
  await expect(cards.getByRole('article')).toHaveCount(1);
  await expect(cards.getByRole('article')).toContainText('Default');

  const { data: after } = await listPaymentMethods({ client: shop.client, path: { id: ada.id } });
  expect(after.data.map((m) => [m.brand, m.is_default])).toEqual([['mastercard', true]]);

  // A card number is refused, and the form says why.
  await cards.getByLabel('Card token from your payment form').fill('4242 4242 4242 4242');
  await cards.getByRole('button', { name: 'Add card' }).click();
  await expect(page.getByRole('alert')).toContainText('That did not work');
});

test('pages through invoices, sees a declined payment, and pays with a new default card', async ({ page }) => {
  const shop = await Shop.open('Invoices');
  const product = await shop.product('Beans');
  const plans = [await shop.plan(product, 'Small', 1000, 'month'), await shop.plan(product, 'Medium', 2000, 'month'), await shop.plan(product, 'Large', 3000, 'month')];
  const ada = await shop.customer('Ada', 'en', 'pm_card_chargeDeclined');
  for (const plan of plans) {
    await shop.subscribe(ada, plan);
  }
  // Each first invoice is charged (and declined) by the engine within a second or so.
  await expect
    .poll(async () => (await listInvoices({ client: shop.client, query: { customer_id: ada.id } })).data.data.filter((i) => i.attempt_count > 0).length)
    .toBe(3);
  await page.goto(await shop.portalLink(ada, '&page_size=2'));
  const invoices = page.getByRole('region', { name: 'Invoices' });
  const rows = invoices.getByRole('row').filter({ has: page.getByRole('rowheader') });

  await expect(rows).toHaveCount(2);
  await expect(invoices.getByRole('button', { name: 'Newer' })).toBeDisabled();
  await invoices.getByRole('button', { name: 'Older' }).click();
  await expect(rows).toHaveCount(1);
  await expect(rows).toContainText('#1');
  await expect(invoices.getByRole('button', { name: 'Older' })).toBeDisabled();
  await invoices.getByRole('button', { name: 'Newer' }).click();
  await expect(rows).toHaveCount(2);
  await expect(rows.first()).toContainText('#3');

  // Pay now with the declined card: the decline is shown; the invoice stays open.
  await invoices.getByRole('button', { name: 'Pay now: Invoice 3' }).click();
  await expect(page.getByRole('alert')).toContainText('That did not work');
  const { data: stillOpen } = await listInvoices({ client: shop.client, query: { customer_id: ada.id } });
  expect(stillOpen.data.map((i) => i.status)).toEqual(['open', 'open', 'open']);

  // A working card as the new default: the engine retries every open invoice at once.
  const cards = page.getByRole('region', { name: 'Payment methods' });
  await cards.getByLabel('Card token from your payment form').fill('pm_card_visa');
  await cards.getByRole('button', { name: 'Add card' }).click();
  await cards.getByRole('button', { name: /^Make default: Visa/ }).click();
  await expect
    .poll(async () => (await listInvoices({ client: shop.client, query: { customer_id: ada.id } })).data.data.map((i) => i.status))
    .toEqual(['paid', 'paid', 'paid']);
  await page.reload();
  await expect(rows.first()).toContainText('Paid');
  await expect(invoices.getByRole('button', { name: /^Pay now/ })).toHaveCount(0);
});
