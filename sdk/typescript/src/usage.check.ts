// Type-level checks of the wrapper against real generated operations: tsc --noEmit (in
// scripts/clients.sh) fails when a regeneration or a wrapper change breaks these uses.
// Never executed.
import {
  type CustomerDto,
  type SubscriptionStatusDto,
  TenureError,
  createCustomer,
  createTenureClient,
  listCustomers,
  paginate,
  portalListSubscriptions,
} from './index';

export async function merchantBackend(): Promise<string[]> {
  const client = createTenureClient({ baseUrl: 'http://127.0.0.1:8080', credential: 'sk_test_x' });
  const { data: created } = await createCustomer({
    client,
    body: { external_id: 'user-42', email: 'ada@example.com' },
    headers: { 'Idempotency-Key': 'signup-42' },
  });
  const emails: string[] = [created.external_id];
  for await (const customer of paginate((query) => listCustomers({ client, query: { ...query, tag: 'vip' } }), { limit: 100 })) {
    const typed: CustomerDto = customer;
    emails.push(typed.external_id);
  }
  return emails;
}

export async function portalPage(token: () => Promise<string>): Promise<SubscriptionStatusDto[]> {
  const client = createTenureClient({ baseUrl: 'https://billing.example.com', credential: token });
  try {
    const statuses: SubscriptionStatusDto[] = [];
    for await (const subscription of paginate((query) => portalListSubscriptions({ client, query }))) {
      statuses.push(subscription.status);
    }
    return statuses;
  } catch (error) {
    if (error instanceof TenureError && error.code === 'validation_failed') {
      return error.errors.map((field) => field.field as SubscriptionStatusDto);
    }
    throw error;
  }
}
