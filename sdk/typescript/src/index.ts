// The hand-written edge of the Tenure SDK: a configured client, idempotency keys, cursor
// pagination and problem+json errors as exceptions. Everything else is generated into
// ./generated from openapi/openapi.json (scripts/clients.sh regenerates and checks it).
import { type Client, createClient, createConfig } from './generated/client';
import type { FieldError, Problem } from './generated/types.gen';

export * from './generated/sdk.gen';
export type * from './generated/types.gen';
export type { Client } from './generated/client';

export interface TenureOptions {
  /** Where the API is, e.g. `https://billing.example.com` (no trailing `/v1`). */
  baseUrl: string;
  /**
   * A merchant secret key (`sk_test_…`, for a backend only) or a customer session token
   * (for the /v1/portal routes, safe in a browser). A function is called before each
   * request, so a token can be refreshed.
   */
  credential: string | (() => string | Promise<string>);
  /** Defaults to the global `fetch`. */
  fetch?: typeof fetch;
}

/** An API error: the problem+json document the server answered with, and its status. */
export class TenureError extends Error {
  readonly status: number;
  /** The stable code to branch on (`validation_failed`, `precondition_failed`, …). */
  readonly code: string;
  readonly title: string;
  readonly detail: string;
  readonly type: string;
  /** Every invalid field, for validation failures; empty otherwise. */
  readonly errors: FieldError[];
  /** The server's request id (`X-Request-Id`), to quote to support. */
  readonly requestId: string | null;

  constructor(status: number, problem: Partial<Problem>, requestId: string | null = null) {
    super(problem.detail ?? problem.title ?? `HTTP ${status}`);
    this.name = 'TenureError';
    this.status = status;
    this.code = problem.code ?? 'unknown';
    this.title = problem.title ?? '';
    this.detail = problem.detail ?? '';
    this.type = problem.type ?? 'about:blank';
    this.errors = problem.errors ?? [];
    this.requestId = requestId;
  }
}

const IDEMPOTENCY_KEY = 'Idempotency-Key';

/**
 * A client for the generated operations: pass it as `client` to any of them.
 *
 * - sends the credential as `Authorization: Bearer …`;
 * - gives every POST an `Idempotency-Key` (a random UUID) unless the call sets one. A key
 *   generated here protects one call only; to retry a call safely after a lost response,
 *   send your own key with both attempts;
 * - throws a `TenureError` for every 4xx and 5xx answer (and rethrows network errors).
 */
export function createTenureClient(options: TenureOptions): Client {
  const client = createClient(
    createConfig({
      baseUrl: options.baseUrl.replace(/\/+$/, ''),
      auth: typeof options.credential === 'function' ? options.credential : () => options.credential as string,
      fetch: options.fetch,
      throwOnError: true,
    }),
  );
  client.interceptors.request.use((request) => {
    if (request.method === 'POST' && !request.headers.has(IDEMPOTENCY_KEY)) {
      request.headers.set(IDEMPOTENCY_KEY, crypto.randomUUID());
    }
    return request;
  });
  client.interceptors.error.use((error, response) => {
    // No response: the request never got an answer (network, abort); keep that error.
    if (response === undefined) {
      return error;
    }
    const problem = typeof error === 'object' && error !== null ? (error as Partial<Problem>) : { detail: String(error) };
    return new TenureError(response.status, problem, response.headers.get('X-Request-Id'));
  });
  return client;
}

/** The query parameters every list takes. */
export interface PageQuery {
  /** Items per page, 1 to 100. */
  limit?: number;
  starting_after?: string;
}

/** One page of a list, as every list operation answers. */
export interface Page<T> {
  data: T[];
  has_more: boolean;
  next_cursor?: string | null;
}

/**
 * Every item of a list, newest first, fetching the next page only when the previous one is
 * used up:
 *
 * ```ts
 * for await (const customer of paginate((query) => listCustomers({ client, query: { ...query, tag: 'vip' } }))) { … }
 * ```
 *
 * `fetchPage` receives `starting_after` (absent for the first page) and `limit`.
 */
export async function* paginate<T>(
  fetchPage: (page: PageQuery) => Promise<{ data?: Page<T> }>,
  options: { limit?: number } = {},
): AsyncGenerator<T, void, undefined> {
  let startingAfter: string | undefined;
  for (;;) {
    const query: PageQuery = {};
    if (options.limit !== undefined) {
      query.limit = options.limit;
    }
    if (startingAfter !== undefined) {
      query.starting_after = startingAfter;
    }
    const { data: page } = await fetchPage(query);
    if (page === undefined) {
      // Only a client without throwOnError gets here: the error was returned, not thrown.
      throw new TenureError(0, { detail: 'a page request failed', code: 'request_failed' });
    }
    yield* page.data;
    if (!page.has_more || !page.next_cursor) {
      return;
    }
    startingAfter = page.next_cursor;
  }
}
