// What the browser tests share about the page: finding a subscription's card, checking
// accessibility, and the API as the signed-in customer sees it.
import AxeBuilder from '@axe-core/playwright';
import { expect, type Page } from '@playwright/test';
import { type Client, createTenureClient } from '@tenure/sdk';
import { API_URL } from './environment';

/** The card of one subscription, found by its plan's name. */
export function subscriptionCard(page: Page, planName: string) {
  return page.getByRole('article').filter({ has: page.getByRole('heading', { name: planName, level: 3 }) });
}

export async function expectNoAccessibilityViolations(page: Page): Promise<void> {
  const results = await new AxeBuilder({ page }).analyze();
  expect(results.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)).toEqual([]);
}

/** The API as the customer behind a portal link (the same token the page holds). */
export function customerClient(link: string): Client {
  const token = decodeURIComponent(/token=([^&]+)/.exec(link)![1]!);
  return createTenureClient({ baseUrl: API_URL, credential: token });
}

/** A date as the portal prints it for an English-speaking customer. */
export function englishDate(iso: string): string {
  return new Intl.DateTimeFormat('en', { dateStyle: 'medium' }).format(new Date(iso));
}

/** Minor units of euros as the portal prints them in English. */
export function euros(amount: number): string {
  return `€${(amount / 100).toFixed(2)}`;
}
