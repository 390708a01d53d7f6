// The wrapper's behaviour over a recording fetch: the requests it sends (credential,
// Idempotency-Key) and what it makes of the answers (pages, problem+json). The API itself
// is tested against the real server by the Rust suites and Schemathesis.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { TenureError, createCustomer, createTenureClient, getCustomer, listCustomers, paginate } from '../src/index';

type Answer = { status: number; body: unknown; headers?: Record<string, string> };

/** A fetch that records each request and answers from `answers`, in order. */
function recordingFetch(answers: Answer[]) {
  const requests: Request[] = [];
  const fetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const request = new Request(input, init);
    requests.push(request);
    const answer = answers.shift();
    assert.ok(answer, `unexpected request ${request.method} ${request.url}`);
    const type = answer.status >= 400 ? 'application/problem+json' : 'application/json';
    return new Response(JSON.stringify(answer.body), {
      status: answer.status,
      headers: { 'Content-Type': type, ...answer.headers },
    });
  };
  return { fetch: fetch as typeof globalThis.fetch, requests };
}

const customer = (id: string) => ({ id, object: 'customer', external_id: id, tags: [] });

test('sends the credential and an idempotency key on POST only, keeping one the call gives', async () => {
  const { fetch, requests } = recordingFetch([
    { status: 201, body: customer('cus_1') },
    { status: 201, body: customer('cus_2') },
    { status: 200, body: customer('cus_2') },
  ]);
  const client = createTenureClient({ baseUrl: 'http://tenure.test/', credential: 'sk_test_abc', fetch });
  await createCustomer({ client, body: { external_id: 'a' } });
  await createCustomer({ client, body: { external_id: 'b' }, headers: { 'Idempotency-Key': 'mine-1' } });
  await getCustomer({ client, path: { id: 'cus_2' } });

  assert.equal(requests[0].url, 'http://tenure.test/v1/customers');
  assert.equal(requests[0].headers.get('Authorization'), 'Bearer sk_test_abc');
  assert.match(requests[0].headers.get('Idempotency-Key') ?? '', /^[0-9a-f-]{36}$/);
  assert.equal(requests[1].headers.get('Idempotency-Key'), 'mine-1');
  assert.equal(requests[2].method, 'GET');
  assert.equal(requests[2].headers.get('Idempotency-Key'), null);
});

test('a credential function is asked before each request', async () => {
  const { fetch, requests } = recordingFetch([
    { status: 200, body: customer('cus_1') },
    { status: 200, body: customer('cus_1') },
  ]);
  let issued = 0;
  const client = createTenureClient({ baseUrl: 'http://tenure.test', credential: async () => `token-${++issued}`, fetch });
  await getCustomer({ client, path: { id: 'cus_1' } });
  await getCustomer({ client, path: { id: 'cus_1' } });
  assert.deepEqual(
    requests.map((r) => r.headers.get('Authorization')),
    ['Bearer token-1', 'Bearer token-2'],
  );
});

test('paginate follows next_cursor until has_more is false', async () => {
  const { fetch, requests } = recordingFetch([
    { status: 200, body: { data: [customer('cus_3'), customer('cus_2')], has_more: true, next_cursor: 'cus_2' } },
    { status: 200, body: { data: [customer('cus_1')], has_more: false, next_cursor: null } },
  ]);
  const client = createTenureClient({ baseUrl: 'http://tenure.test', credential: 'sk_test_abc', fetch });
  const ids: string[] = [];
  for await (const c of paginate((query) => listCustomers({ client, query: { ...query, tag: 'vip' } }), { limit: 2 })) {
    ids.push(c.id);
  }
  assert.deepEqual(ids, ['cus_3', 'cus_2', 'cus_1']);
  const queries = requests.map((r) => Object.fromEntries(new URL(r.url).searchParams));
  assert.deepEqual(queries, [
    { limit: '2', tag: 'vip' },
    { limit: '2', starting_after: 'cus_2', tag: 'vip' },
  ]);
});

test('a problem+json answer is thrown as a TenureError', async () => {
  const problem = {
    type: 'https://tenure.dev/problems/validation_failed',
    title: 'Invalid request',
    status: 422,
    detail: 'email is not an e-mail address',
    code: 'validation_failed',
    errors: [{ field: 'email', message: 'is not an e-mail address' }],
  };
  const { fetch } = recordingFetch([{ status: 422, body: problem, headers: { 'X-Request-Id': 'req-7' } }]);
  const client = createTenureClient({ baseUrl: 'http://tenure.test', credential: 'sk_test_abc', fetch });
  await assert.rejects(
    createCustomer({ client, body: { external_id: 'a', email: 'nope' } }),
    (error: unknown) => {
      assert.ok(error instanceof TenureError);
      assert.equal(error.status, 422);
      assert.equal(error.code, 'validation_failed');
      assert.equal(error.detail, problem.detail);
      assert.deepEqual(error.errors, problem.errors);
      assert.equal(error.requestId, 'req-7');
      return true;
    },
  );
});
