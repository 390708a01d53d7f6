// A merchant's backend, as the tests play it: a merchant made with `tenure merchant
// create`, then everything else through the SDK with its secret key. The tests use it to
// set the scene before the browser opens and to check what the API holds afterwards.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import {
  type AddressDto,
  type Client,
  createAddress,
  createCoupon,
  createCustomer,
  createCustomerSession,
  createOffer,
  createPlan,
  createPromotionCode,
  createProduct,
  createSubscription,
  createTenureClient,
  type CreateAddress,
  type CreateCoupon,
  type CreateProduct,
  type CreateRetentionOffer,
  type CreateSubscription,
  type CustomerDto,
  type PlanDto,
  type PortalPolicyInput,
  type ProductDto,
  putCorsSettings,
  attachPaymentMethod,
} from '@tenure/sdk';
import { API_URL, apiEnvironment, PORTAL_URL, tenureBinary } from './environment';

/** Short and mostly letters: a long run of digits would read as a card number (422). */
function uniqueSuffix(): string {
  return `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
}

export class Shop {
  private constructor(
    readonly id: string,
    readonly client: Client,
  ) {}

  /** A new merchant whose CORS settings allow the portal's origin (or `origins`). */
  static async open(name: string, origins: string[] = [PORTAL_URL]): Promise<Shop> {
    // Not execFileSync: blocking the event loop for the seconds this takes on a busy machine
    // keeps it from seeing the API close an idle keep-alive connection, and the next request
    // on that connection fails ("other side closed").
    const { stdout: output } = await promisify(execFile)(tenureBinary, ['merchant', 'create', '--name', name, '--json'], {
      env: { ...process.env, ...apiEnvironment },
      encoding: 'utf8',
    });
    const created = JSON.parse(output) as { id: string; secret_key: string };
    const client = createTenureClient({ baseUrl: API_URL, credential: created.secret_key });
    await putCorsSettings({ client, body: { allowed_origins: origins } });
    return new Shop(created.id, client);
  }

  async product(name: string, policy: PortalPolicyInput = {}, extra: Omit<CreateProduct, 'name' | 'portal_policy'> = {}): Promise<ProductDto> {
    const { data } = await createProduct({ client: this.client, body: { name, portal_policy: policy, ...extra } });
    return data;
  }

  async plan(product: ProductDto, name: string, amount: number, interval: PlanDto['interval'], currency = 'EUR'): Promise<PlanDto> {
    const { data } = await createPlan({
      client: this.client,
      body: { product_id: product.id, name, price: { amount, currency }, interval },
    });
    return data;
  }

  /** A customer with a Visa card on file (so first invoices are paid at once). */
  async customer(name: string, locale = 'en', card = 'pm_card_visa'): Promise<CustomerDto> {
    const { data } = await createCustomer({
      client: this.client,
      body: { external_id: `${name.toLowerCase()}-${uniqueSuffix()}`, name, email: `${name.toLowerCase().replace(/\W/g, '')}@example.com`, locale },
    });
    await attachPaymentMethod({ client: this.client, path: { id: data.id }, body: { token: card } });
    return data;
  }

  async subscribe(customer: CustomerDto, plan: PlanDto, extra: Omit<CreateSubscription, 'customer_id' | 'plan_id'> = {}): Promise<string> {
    const { data } = await createSubscription({ client: this.client, body: { customer_id: customer.id, plan_id: plan.id, ...extra } });
    return data.id;
  }

  /** An entry of the customer's address book. */
  async address(customer: CustomerDto, body: CreateAddress): Promise<AddressDto> {
    const { data } = await createAddress({ client: this.client, path: { id: customer.id }, body });
    return data;
  }

  /** A promotion code `code` for a new coupon of `terms`. */
  async promotionCode(code: string, terms: CreateCoupon): Promise<string> {
    const { data: coupon } = await createCoupon({ client: this.client, body: terms });
    const { data } = await createPromotionCode({ client: this.client, body: { coupon_id: coupon.id, code } });
    return data.id;
  }

  async offer(body: CreateRetentionOffer): Promise<string> {
    const { data } = await createOffer({ client: this.client, body });
    return data.id;
  }

  /** The link the merchant's account page sends the subscriber to. */
  async portalLink(customer: CustomerDto, extra = ''): Promise<string> {
    const { data } = await createCustomerSession({ client: this.client, body: { customer_id: customer.id } });
    return `${PORTAL_URL}/#api=${encodeURIComponent(API_URL)}&token=${encodeURIComponent(data.token)}${extra}`;
  }
}
