// The console's HTTP plumbing: security headers on every response, the cross-site checks on every
// POST (Origin / Sec-Fetch-Site, then the session's synchroniser token), the session cookie, and
// the scope rule (hasScope, shared with the admin API). Refusals are HTML pages with the error code.
import type { Context } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { LatchkeyError, toLatchkeyError } from '../errors.js';
import { hasScope, type AdminScope } from '../services/admin-credentials.js';
import { csrfMatches, csrfToken, findSession, type ConsoleSession } from '../services/console-sessions.js';
import type { AppEnv } from '../types.js';
import { errorPage, layout, type Html, type LayoutUser, type NavKey } from './views.js';

export type ConsoleContext = Context<AppEnv>;

export const SESSION_COOKIE = 'lk_console';
export const PRE_SESSION_COOKIE = 'lk_console_signin';

export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');

export function securityHeaders(c: ConsoleContext, cache = 'no-store'): void {
  c.header('Content-Security-Policy', CONSOLE_CSP);
  c.header('X-Content-Type-Options', 'nosniff');
  // same-origin, not no-referrer: with no-referrer a browser sends `Origin: null` on POST.
  c.header('Referrer-Policy', 'same-origin');
  c.header('X-Frame-Options', 'DENY');
  c.header('Cache-Control', cache);
}

/** Is this request HTTPS (as received, or as a trusted proxy says)? */
export function isHttps(c: ConsoleContext): boolean {
  if (new URL(c.req.url).protocol === 'https:') return true;
  return c.get('deps').console.trustForwardedProto && c.req.header('x-forwarded-proto')?.split(',')[0]?.trim() === 'https';
}

/** This server's origin as the browser sees it. */
export function ownOrigin(c: ConsoleContext): string {
  const url = new URL(c.req.url);
  return `${isHttps(c) ? 'https:' : url.protocol}//${url.host}`;
}

/**
 * A POST must come from a page of this origin: its Origin header (every current browser sends one
 * on POST) must be ours, and Sec-Fetch-Site, when sent, `same-origin`. Neither header: refused.
 */
export function sameOriginPost(c: ConsoleContext): boolean {
  const origin = c.req.header('origin');
  const site = c.req.header('sec-fetch-site');
  if (site !== undefined && site !== 'same-origin') return false;
  if (origin !== undefined) return origin === ownOrigin(c);
  return site === 'same-origin';
}

export function cookieOptions(c: ConsoleContext, maxAgeSeconds: number) {
  return { path: '/console', httpOnly: true, secure: isHttps(c), sameSite: 'Strict' as const, maxAge: maxAgeSeconds };
}

export function setSessionCookie(c: ConsoleContext, value: string, maxAgeSeconds: number): void {
  setCookie(c, SESSION_COOKIE, value, cookieOptions(c, maxAgeSeconds));
}

export function clearSessionCookie(c: ConsoleContext): void {
  deleteCookie(c, SESSION_COOKIE, { path: '/console', secure: isHttps(c) });
}

export async function currentSession(c: ConsoleContext): Promise<ConsoleSession | undefined> {
  const cookie = getCookie(c, SESSION_COOKIE);
  if (!cookie || cookie.length > 64) return undefined;
  const { database, ctx, console } = c.get('deps');
  return findSession(database.db, ctx.now(), console.policy, cookie);
}

export const can = (s: ConsoleSession, scope: AdminScope): boolean => hasScope(s.admin.scopes, scope);

export function userOf(s: ConsoleSession): LayoutUser {
  return { name: s.admin.name, scopes: s.admin.scopes, csrf: csrfToken(s) };
}

export async function render(c: ConsoleContext, s: ConsoleSession, title: string, nav: NavKey | undefined, body: Html, status = 200) {
  securityHeaders(c);
  return c.html(await layout(title, nav, userOf(s), body), status as ContentfulStatusCode);
}

export async function refuse(c: ConsoleContext, err: unknown, signedIn: boolean): Promise<Response> {
  const { error, internal } = toLatchkeyError(err);
  if (internal)
    c.get('deps').logger.error({ err: err instanceof Error ? err.message.split('\nparams:')[0] : String(err) }, 'console error');
  securityHeaders(c);
  if (error.retryAfterSeconds !== undefined) c.header('Retry-After', String(Math.max(1, Math.ceil(error.retryAfterSeconds))));
  return c.html(await errorPage(error.code, error.message, signedIn), error.status as ContentfulStatusCode);
}

type Form = Record<string, string>;

/** A GET page behind a live session (else to the sign-in page). */
export function page(handler: (c: ConsoleContext, s: ConsoleSession) => Promise<Response>) {
  return async (c: ConsoleContext): Promise<Response> => {
    const s = await currentSession(c);
    if (!s) {
      securityHeaders(c);
      return c.redirect('/console/login', 303);
    }
    try {
      return await handler(c, s);
    } catch (err) {
      return refuse(c, err, true);
    }
  };
}

/**
 * A POST behind, in this order: the origin check, a live session, the session's CSRF token
 * (constant-time compare) and the scope. Each refusal changes nothing.
 */
export function action(scope: AdminScope, handler: (c: ConsoleContext, s: ConsoleSession, form: Form) => Promise<Response>) {
  return async (c: ConsoleContext): Promise<Response> => {
    if (!sameOriginPost(c)) return refuse(c, new LatchkeyError('csrf_failed', 'this form was not sent from a console page'), false);
    const s = await currentSession(c);
    if (!s) return refuse(c, new LatchkeyError('unauthorized', 'sign in first'), false);
    try {
      const form = await readForm(c);
      if (!csrfMatches(s, form.csrf)) throw new LatchkeyError('csrf_failed', 'the form is missing its CSRF token, or it is stale');
      if (!can(s, scope)) throw new LatchkeyError('forbidden', `this admin key lacks the ${scope} scope`);
      return await handler(c, s, form);
    } catch (err) {
      return refuse(c, err, true);
    }
  };
}

/** The form fields (strings only; files and repeated fields are refused). */
export async function readForm(c: ConsoleContext): Promise<Form> {
  const type = c.req.header('content-type') ?? '';
  if (!type.startsWith('application/x-www-form-urlencoded')) throw new LatchkeyError('request_invalid', 'expected a form');
  const params = new URLSearchParams(await c.req.text());
  const form: Form = {};
  for (const [k, v] of params) {
    if (k in form) throw new LatchkeyError('request_invalid', 'a form field is repeated');
    form[k] = v;
  }
  return form;
}
