// Signing in. The merchant's backend mints a customer session
// (`POST /v1/customer_sessions` with its secret key) and sends the subscriber here with
// `#api=<API address>&token=<session token>` in the URL fragment, which browsers never
// send to a server. The portal keeps both in sessionStorage (gone when the tab closes) and
// takes the fragment out of the address bar, so the token is not bookmarked or shared.

export interface Session {
  /** The API's address, e.g. `https://billing.example.com`. */
  api: string;
  /** A customer session token (a JWT) for the /v1/portal routes. */
  token: string;
  /** Only for tokens from the merchant's own identity provider: its `mer_…` id. */
  merchant?: string;
  /** Invoices per page (1 to 100). */
  pageSize: number;
}

const STORAGE_KEY = 'tenure-portal-session';
const DEFAULT_PAGE_SIZE = 10;

/** The session from the URL fragment (then stored) or from storage; null when signed out. */
export function readSession(location: Location, storage: Storage): Session | null {
  const fragment = new URLSearchParams(location.hash.replace(/^#/, ''));
  const token = fragment.get('token');
  const api = fragment.get('api');
  if (token && api) {
    const session = parse({ api, token, merchant: fragment.get('merchant'), pageSize: fragment.get('page_size') });
    if (session) {
      storage.setItem(STORAGE_KEY, JSON.stringify(session));
      history.replaceState(null, '', location.pathname + location.search);
      return session;
    }
  }
  const stored = storage.getItem(STORAGE_KEY);
  if (!stored) {
    return null;
  }
  try {
    return parse(JSON.parse(stored) as Record<string, unknown>);
  } catch {
    return null;
  }
}

export function saveSession(session: Session, storage: Storage): void {
  storage.setItem(STORAGE_KEY, JSON.stringify(session));
}

export function signOut(storage: Storage): void {
  storage.removeItem(STORAGE_KEY);
}

/** A session from untrusted input, or null: an http(s) API address and a non-empty token. */
export function parse(input: Record<string, unknown>): Session | null {
  const { api, token, merchant, pageSize } = input;
  if (typeof api !== 'string' || typeof token !== 'string' || token.trim() === '') {
    return null;
  }
  let url: URL;
  try {
    url = new URL(api);
  } catch {
    return null;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    return null;
  }
  const size = Number(pageSize ?? DEFAULT_PAGE_SIZE);
  return {
    api: url.origin + url.pathname.replace(/\/+$/, ''),
    token: token.trim(),
    merchant: typeof merchant === 'string' && merchant !== '' ? merchant : undefined,
    pageSize: Number.isInteger(size) && size >= 1 && size <= 100 ? size : DEFAULT_PAGE_SIZE,
  };
}
