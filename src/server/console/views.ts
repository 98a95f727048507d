// The console's HTML: one layout and small helpers over hono's `html` tag, which escapes every
// interpolated value (names, labels, reasons and audit details are attacker-influenced text).
// No inline script or style anywhere: the CSP (routes) allows only /console/assets/*.
import { html, raw } from 'hono/html';
import type { HtmlEscapedString } from 'hono/utils/html';

export type Html = HtmlEscapedString | Promise<HtmlEscapedString>;

export const NAV = [
  ['fleet', 'Fleet', '/console/fleet'],
  ['tokens', 'Tokens', '/console/tokens'],
  ['audit', 'Audit', '/console/audit'],
  ['relays', 'Relays', '/console/relays'],
] as const;
export type NavKey = (typeof NAV)[number][0];

export interface LayoutUser {
  name: string;
  scopes: string[];
  csrf: string;
}

export function layout(title: string, current: NavKey | undefined, user: LayoutUser | undefined, body: Html): Html {
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>${title} · Latchkey console</title>
        <link rel="stylesheet" href="/console/assets/console.css" />
        <script src="/console/assets/console.js" defer></script>
      </head>
      <body>
        <a class="skip" href="#main">Skip to content</a>
        <header>
          <nav aria-label="Console">
            <span class="brand">Latchkey</span>
            ${
              user
                ? html`${NAV.map(([key, label, href]) => html`<a href="${href}" ${key === current ? raw(' aria-current="page"') : ''}>${label}</a>`)}
                    <span class="who">Signed in as ${user.name} (${user.scopes.join(', ')})</span>
                    <form method="post" action="/console/logout">
                      <input type="hidden" name="csrf" value="${user.csrf}" /><button type="submit">Sign out</button>
                    </form>`
                : ''
            }
          </nav>
        </header>
        <main id="main">
          <h1>${title}</h1>
          ${body}
        </main>
      </body>
    </html>`;
}

export const badge = (status: string): Html => html`<span class="badge s-${status}">${status}</span>`;

/** An ISO time shown as `2026-11-28 04:19 UTC`, the full value on hover; a dash when absent. */
export function when(iso: string | null | undefined): Html {
  if (!iso) return html`<span class="muted">never</span>`;
  return html`<time datetime="${iso}" title="${iso}">${iso.slice(0, 16).replace('T', ' ')} UTC</time>`;
}

export const labelsOf = (labels: Record<string, string>): Html => {
  const entries = Object.entries(labels);
  return entries.length
    ? html`${entries.map(([k, v], i) => html`${i ? ', ' : ''}<span class="mono">${k}=${v}</span>`)}`
    : html`<span class="muted">none</span>`;
};

export const csrfField = (csrf: string): Html => html`<input type="hidden" name="csrf" value="${csrf}" />`;

/** A link to the same page with some query parameters replaced (filters kept). */
export function withQuery(path: string, query: Record<string, string | undefined>): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== '') params.set(k, v);
  const q = params.toString();
  return q ? `${path}?${q}` : path;
}

/** A table in a region that scrolls sideways on a narrow screen (focusable, so the keyboard can scroll it too). */
export function table(headers: string[], rows: Html[], empty: string, label = 'Table'): Html {
  return html`<div class="table-wrap" tabindex="0" role="region" aria-label="${label}">
    <table>
      <thead>
        <tr>
          ${headers.map((h) => html`<th scope="col">${h}</th>`)}
        </tr>
      </thead>
      <tbody>
        ${
          rows.length
            ? rows
            : html`<tr>
                <td colspan="${headers.length}" class="muted">${empty}</td>
              </tr>`
        }
      </tbody>
    </table>
  </div>`;
}

export function errorPage(code: string, message: string, signedIn: boolean): Html {
  return layout(
    'Refused',
    undefined,
    undefined,
    html`<div class="panel bad" role="alert" data-code="${code}">
      <p><strong class="mono">${code}</strong>: ${message}</p>
      <p><a href="${signedIn ? '/console/fleet' : '/console/login'}">${signedIn ? 'Back to the console' : 'Sign in'}</a></p>
    </div>`,
  );
}
