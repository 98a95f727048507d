// The admin console under /console: server-rendered pages over the same services and scopes as the
// admin API (services/*, hasScope, page.ts pagination, the CreateToken schema), signed in with an
// admin API key. See http.ts for sessions and the cross-site checks, views.ts for the HTML.
import type { Context } from 'hono';
import { getCookie, setCookie } from 'hono/cookie';
import { html, raw } from 'hono/html';
import { b64u } from '../../protocol/bytes.js';
import { LatchkeyError } from '../errors.js';
import { durationSeconds } from '../lifetimes.js';
import { CreateToken } from '../routes/admin/index.js';
import { authenticateAdmin } from '../services/admin-keys.js';
import {
  fleetAgent,
  fleetCounts,
  FLEET_STATUSES,
  listFleet,
  listKeys,
  requestRenewal,
  revokeAgent,
  revokeKey,
  type FleetFilter,
  type FleetRow,
  type FleetStatus,
  type KeyView,
} from '../services/agents.js';
import { appendAuditAlone, noteRateLimited, verifyAuditChain } from '../services/audit.js';
import { listAuditNewest, type AuditFilter } from '../services/audit-read.js';
import { closeSession, openSession } from '../services/console-sessions.js';
import { inventoryHistory, inventoryOf, latestInventory } from '../services/inventory-store.js';
import { createToken, listTokens, revokeToken } from '../services/tokens.js';
import type { App } from '../types.js';
import { CONSOLE_CSS, CONSOLE_JS } from './assets.js';
import {
  action,
  can,
  clearSessionCookie,
  cookieOptions,
  currentSession,
  ownOrigin,
  page,
  PRE_SESSION_COOKIE,
  readForm,
  refuse,
  render,
  sameOriginPost,
  securityHeaders,
  setSessionCookie,
  type ConsoleContext,
} from './http.js';
import { badge, csrfField, labelsOf, layout, table, when, withQuery, type Html } from './views.js';

const PAGE_SIZE = 50;
const ID = /^[A-Za-z0-9_-]{1,64}$/;
const NAME = /^[A-Za-z0-9._-]{1,128}$/;

export function registerConsoleRoutes(app: App): void {
  app.get('/console/assets/console.css', (c) => asset(c, CONSOLE_CSS, 'text/css; charset=utf-8'));
  app.get('/console/assets/console.js', (c) => asset(c, CONSOLE_JS, 'text/javascript; charset=utf-8'));
  app.get('/console', (c) => {
    securityHeaders(c);
    return c.redirect('/console/fleet', 303);
  });

  app.get('/console/login', (c) => signInPage(c));
  app.post('/console/login', signIn);
  app.post(
    '/console/logout',
    action('read', async (c, s) => {
      await closeSession(c.get('deps').database.db, c.get('deps').ctx.now(), s.idHash);
      clearSessionCookie(c);
      return c.redirect('/console/login', 303);
    }),
  );

  app.get('/console/fleet', page(fleetPage));
  app.get('/console/relays', page(relaysPage));
  app.get('/console/agents/:id', page(agentPage));
  app.get('/console/agents/:id/inventories/:inv', page(rawInventory));
  app.post(
    '/console/agents/:id/renew-now',
    action('agents:write', async (c, s) => {
      const { database, ctx } = c.get('deps');
      const r = await requestRenewal(database.db, ctx.now, s.admin.id, agentRef(c));
      return c.redirect(`/console/agents/${encodeURIComponent(r.id)}?done=renew`, 303);
    }),
  );
  app.post(
    '/console/agents/:id/revoke',
    action('agents:write', async (c, s, form) => {
      const { database, ctx } = c.get('deps');
      const agent = await fleetAgent(database.db, ctx.now(), agentRef(c));
      const reason = requiredReason(form.reason);
      // The confirmation names the agent: a revocation is never one stray click.
      if (form.confirm !== agent.name) throw new LatchkeyError('request_invalid', 'type the agent name to confirm the revocation');
      await revokeAgent(database.db, ctx.now, s.admin.id, agent.id, reason);
      return c.redirect(`/console/agents/${encodeURIComponent(agent.id)}?done=revoked`, 303);
    }),
  );
  app.post(
    '/console/keys/:kid/revoke',
    action('agents:write', async (c, s, form) => {
      const { database, ctx } = c.get('deps');
      const kid = c.req.param('kid') ?? '';
      if (!ID.test(kid)) throw new LatchkeyError('request_invalid', 'not a key id');
      const back = form.agent && ID.test(form.agent) ? form.agent : undefined;
      await revokeKey(database.db, ctx.now, s.admin.id, kid, requiredReason(form.reason));
      return c.redirect(back ? `/console/agents/${encodeURIComponent(back)}?done=key-revoked` : '/console/fleet', 303);
    }),
  );

  app.get(
    '/console/tokens',
    page((c, s) => tokensPage(c, s, undefined)),
  );
  app.post(
    '/console/tokens',
    action('tokens:write', async (c, s, form) => {
      const { database, ctx, identity } = c.get('deps');
      const made = await createToken(database.db, ctx, identity.fingerprint, s.admin.id, tokenInput(form));
      c.header('Cache-Control', 'no-store');
      return tokensPage(c, s, made);
    }),
  );
  app.post(
    '/console/tokens/:id/revoke',
    action('tokens:write', async (c, s, form) => {
      const id = c.req.param('id') ?? '';
      if (!ID.test(id)) throw new LatchkeyError('request_invalid', 'not a token id');
      const reason = form.reason?.trim() ? form.reason.trim().slice(0, 500) : undefined;
      await revokeToken(c.get('deps').database.db, c.get('deps').ctx.now, s.admin.id, id, reason);
      return c.redirect('/console/tokens?done=revoked', 303);
    }),
  );

  app.get('/console/audit', page(auditPage));
  app.all('/console/*', async (c) =>
    refuse(c, new LatchkeyError('not_found', 'no such console page'), (await currentSession(c)) !== undefined),
  );
}

function asset(c: Context, body: string, type: string): Response {
  securityHeaders(c, 'public, max-age=3600');
  return c.body(body, 200, { 'Content-Type': type });
}

function agentRef(c: ConsoleContext): string {
  const ref = c.req.param('id') ?? '';
  if (!ID.test(ref) && !NAME.test(ref)) throw new LatchkeyError('request_invalid', 'not an agent id or name');
  return ref;
}

function requiredReason(value: string | undefined): string {
  const reason = value?.trim() ?? '';
  if (!reason) throw new LatchkeyError('request_invalid', 'a reason is required');
  if (reason.length > 500 || reason.includes('\0')) throw new LatchkeyError('request_invalid', 'the reason is at most 500 characters');
  return reason;
}

// ---- sign-in ----------------------------------------------------------------------------------

async function signInPage(c: ConsoleContext, message?: string, status = 200): Promise<Response> {
  if (!message && (await currentSession(c))) {
    securityHeaders(c);
    return c.redirect('/console/fleet', 303);
  }
  // Login CSRF: a pre-session token, in an HttpOnly SameSite=Strict cookie and in the form.
  const pre = b64u(c.get('deps').ctx.random(32));
  setCookie(c, PRE_SESSION_COOKIE, pre, cookieOptions(c, 600));
  securityHeaders(c);
  const body = html`${message ? html`<div class="panel bad" role="alert"><p>${message}</p></div>` : ''}
    <form class="stack" method="post" action="/console/login">
      <input type="hidden" name="csrf" value="${pre}" />
      <label for="key"
        >Admin API key (lka.…)<input id="key" name="key" type="password" autocomplete="off" required spellcheck="false"
      /></label>
      <button type="submit">Sign in</button>
    </form>
    <p class="muted">
      The key is checked and forgotten: the browser keeps only a session cookie (HttpOnly, SameSite=Strict) that ends after
      ${String(Math.round(c.get('deps').console.policy.idleSeconds / 60))} minutes idle or
      ${String(Math.round(c.get('deps').console.policy.absoluteSeconds / 3600))} hours in all, at sign-out, or when the key is revoked.
    </p>`;
  return c.html(await layout('Sign in', undefined, undefined, body), status as 200);
}

async function signIn(c: ConsoleContext): Promise<Response> {
  const deps = c.get('deps');
  if (!sameOriginPost(c)) return refuse(c, new LatchkeyError('csrf_failed', 'this form was not sent from a console page'), false);
  const source = deps.clientAddress(c) ?? 'unknown';
  const seat = await deps.console.signInLimiter.reserve(source);
  if (!seat.ok) {
    noteRateLimited(deps, deps.console.refusals, { actor: 'console', action: 'console.sign-in', sourceAddr: source });
    return refuse(
      c,
      new LatchkeyError('rate_limited', 'too many failed sign-ins; retry later', { retryAfterSeconds: seat.retryAfterSeconds }),
      false,
    );
  }
  let charge = true;
  try {
    const form = await readForm(c);
    const pre = getCookie(c, 'lk_console_signin');
    if (!pre || form.csrf !== pre) {
      charge = false;
      return await refuse(c, new LatchkeyError('csrf_failed', 'the sign-in form is stale: reload it'), false);
    }
    const admin = await authenticateAdmin(deps.database.db, form.key ?? '');
    const at = new Date(deps.ctx.now());
    if (!admin) {
      // Audited (never the key itself) and charged to the source's budget.
      await appendAuditAlone(deps.database.db, {
        at,
        actor: 'console',
        action: 'console.sign-in',
        outcome: 'failure',
        code: 'unauthorized',
        sourceAddr: source,
        details: {},
      });
      return await signInPage(c, 'That admin API key is not valid.', 401);
    }
    charge = false;
    const { cookie } = await openSession(deps.database.db, deps.ctx, deps.console.policy, admin.id, source);
    await appendAuditAlone(deps.database.db, {
      at,
      actor: admin.id,
      action: 'console.sign-in',
      outcome: 'success',
      sourceAddr: source,
      details: {},
    });
    setSessionCookie(c, cookie, deps.console.policy.absoluteSeconds);
    securityHeaders(c);
    return c.redirect('/console/fleet', 303);
  } catch (err) {
    return await refuse(c, err, false);
  } finally {
    seat.settle(charge);
  }
}

// ---- fleet ------------------------------------------------------------------------------------

function fleetFilter(c: ConsoleContext): FleetFilter {
  const q = c.req.query();
  const status = FLEET_STATUSES.includes(q.status as FleetStatus) ? (q.status as FleetStatus) : undefined;
  const role = q.role === 'agent' || q.role === 'relay' ? q.role : undefined;
  const label = /^([A-Za-z0-9._-]{1,64})=(.{0,256})$/s.exec(q.label ?? '');
  const search = q.q?.trim().slice(0, 128) || undefined;
  if (q.label && !label) throw new LatchkeyError('request_invalid', 'the label filter is key=value');
  return { status, role, label: label ? { key: label[1]!, value: label[2]! } : undefined, search };
}

function cursorOf(c: ConsoleContext): string | undefined {
  const cursor = c.req.query('cursor');
  if (cursor !== undefined && cursor.length > 256) throw new LatchkeyError('request_invalid', 'cursor is not one this server issued');
  return cursor || undefined;
}

/** The path of the agent's last message, agent side first: "direct", or "via relay-a → relay-b" (spec §11). */
const pathOf = (agent: FleetRow): string => {
  if (agent.lastPath === null) return '—';
  if (agent.lastPath.length === 0) return 'direct';
  return `via ${[...agent.lastPath]
    .reverse()
    .map((hop) => hop.name)
    .join(' → ')}`;
};

async function fleetPage(c: ConsoleContext, s: Parameters<Parameters<typeof page>[0]>[1]): Promise<Response> {
  const { database, ctx } = c.get('deps');
  const filter = fleetFilter(c);
  const now = ctx.now();
  const [counts, { agents, nextCursor }] = await Promise.all([
    fleetCounts(database.db, now),
    listFleet(database.db, now, filter, { limit: PAGE_SIZE, cursor: cursorOf(c) }),
  ]);
  const q = c.req.query();
  const total = FLEET_STATUSES.reduce((n, k) => n + counts[k], 0);
  const body = html`<ul class="counts" aria-label="Agents per status">
      <li>
        <a href="/console/fleet"><strong>${total}</strong>all</a>
      </li>
      ${FLEET_STATUSES.map(
        (k) =>
          html`<li>
            <a href="${withQuery('/console/fleet', { status: k })}"
              ><strong>${counts[k]}</strong>${k === 'expiring' ? 'expiring within 7 days' : k}</a
            >
          </li>`,
      )}
    </ul>
    <form class="filters" method="get" action="/console/fleet" role="search">
      <label for="f-q">Name contains<input id="f-q" name="q" value="${q.q ?? ''}" /></label>
      <label for="f-status"
        >Status<select id="f-status" name="status">
          ${option('', 'any', q.status)}${FLEET_STATUSES.map((k) => option(k, k, q.status))}
        </select></label
      >
      <label for="f-role"
        >Role<select id="f-role" name="role">
          ${option('', 'any', q.role)}${option('agent', 'agent', q.role)}${option('relay', 'relay', q.role)}
        </select></label
      >
      <label for="f-label">Label (key=value)<input id="f-label" name="label" value="${q.label ?? ''}" /></label>
      <button type="submit">Filter</button>
    </form>
    ${table(
      ['Name', 'Role', 'Labels', 'Status', 'Credential expiry', 'Last seen', 'Path of last message'],
      agents.map(
        (a) =>
          html`<tr>
            <td><a href="/console/agents/${a.id}">${a.name}</a></td>
            <td>${a.role}</td>
            <td>${labelsOf(a.labels)}</td>
            <td>${badge(a.status)}</td>
            <td>${when(a.expiresAt)}</td>
            <td>${when(a.lastSeenAt)}</td>
            <td>${pathOf(a)}</td>
          </tr>`,
      ),
      'No agents match.',
      'Fleet',
    )}
    ${nextCursor ? html`<p class="pager"><a rel="next" href="${withQuery('/console/fleet', { ...q, cursor: nextCursor })}">Next page</a></p>` : ''}`;
  return render(c, s, 'Fleet', 'fleet', body);
}

const option = (value: string, label: string, current: string | undefined): Html =>
  html`<option value="${value}" ${(current ?? '') === value ? raw(' selected') : ''}>${label}</option>`;

async function relaysPage(c: ConsoleContext, s: Parameters<Parameters<typeof page>[0]>[1]): Promise<Response> {
  const { database, ctx } = c.get('deps');
  const { agents, nextCursor } = await listFleet(database.db, ctx.now(), { role: 'relay' }, { limit: PAGE_SIZE, cursor: cursorOf(c) });
  const body = html`<div class="panel notice">
      <p>
        Relays do not report their spool yet: spool depth, the oldest queued message and the agents behind each relay will appear here once
        relays send that status. Until then this page lists the agents enrolled with the relay role and when the server last heard from
        each.
      </p>
    </div>
    ${table(
      ['Name', 'Status', 'Last contact', 'Credential expiry', 'Labels'],
      agents.map(
        (a) =>
          html`<tr>
            <td><a href="/console/agents/${a.id}">${a.name}</a></td>
            <td>${badge(a.status)}</td>
            <td>${when(a.lastSeenAt)}</td>
            <td>${when(a.expiresAt)}</td>
            <td>${labelsOf(a.labels)}</td>
          </tr>`,
      ),
      'No relay is enrolled.',
      'Relays',
    )}
    ${nextCursor ? html`<p class="pager"><a rel="next" href="${withQuery('/console/relays', { cursor: nextCursor })}">Next page</a></p>` : ''}`;
  return render(c, s, 'Relays', 'relays', body);
}

// ---- one agent --------------------------------------------------------------------------------

const DONE: Record<string, string> = {
  renew: 'Renewal requested: the agent renews on its next message.',
  revoked: 'Revoked.',
  'key-revoked': 'Key revoked.',
};

async function agentPage(c: ConsoleContext, s: Parameters<Parameters<typeof page>[0]>[1]): Promise<Response> {
  const { database, ctx } = c.get('deps');
  const now = ctx.now();
  const agent = await fleetAgent(database.db, now, agentRef(c));
  const [{ keys }, latest, history] = await Promise.all([
    listKeys(database.db, now, { limit: 200 }, agent.id),
    latestInventory(database.db, agent.id),
    inventoryHistory(database.db, agent.id, 20),
  ]);
  const write = can(s, 'agents:write') && agent.status !== 'revoked';
  const csrf = b64u(s.csrfSecret);
  const done = DONE[c.req.query('done') ?? ''];
  const summary = latest ? summarise(latest.content) : undefined;
  const body = html`${done ? html`<div class="panel notice" role="status"><p>${done}</p></div>` : ''}
    <dl class="facts">
      <dt>Name</dt>
      <dd>${agent.name}</dd>
      <dt>Id</dt>
      <dd class="mono">${agent.id}</dd>
      <dt>Role</dt>
      <dd>${agent.role}</dd>
      <dt>Status</dt>
      <dd>${badge(agent.status)}</dd>
      <dt>Credential expiry</dt>
      <dd>${when(agent.expiresAt)}</dd>
      <dt>Last seen</dt>
      <dd>${when(agent.lastSeenAt)}</dd>
      <dt>Path of last message</dt>
      <dd>${pathOf(agent)}</dd>
      <dt>Labels</dt>
      <dd>${labelsOf(agent.labels)}</dd>
      <dt>Enrolled</dt>
      <dd>${when(agent.createdAt)} with token <span class="mono">${agent.tokenId ?? 'unknown'}</span></dd>
      ${
        agent.renewRequestedAt
          ? html`<dt>Renewal requested</dt>
              <dd>${when(agent.renewRequestedAt)}</dd>`
          : ''
      }
      ${
        agent.revokedAt
          ? html`<dt>Revoked</dt>
              <dd>${when(agent.revokedAt)}</dd>`
          : ''
      }
    </dl>
    ${
      write
        ? html`<h2>Actions</h2>
            <div class="actions">
              <form class="stack" method="post" action="/console/agents/${agent.id}/renew-now">
                ${csrfField(csrf)}
                <p class="muted">Ask the agent to renew its keys and credential on its next message.</p>
                <button type="submit">Renew now</button>
              </form>
              <form class="stack" method="post" action="/console/agents/${agent.id}/revoke">
                ${csrfField(csrf)}
                <label for="revoke-reason"
                  >Reason (recorded in the audit log)<textarea
                    id="revoke-reason"
                    name="reason"
                    required
                    maxlength="500"
                    rows="2"
                  ></textarea>
                </label>
                <label for="revoke-confirm"
                  >Type the agent name, ${agent.name}, to confirm<input
                    id="revoke-confirm"
                    name="confirm"
                    required
                    autocomplete="off"
                    data-confirm-name="${agent.name}"
                /></label>
                <button type="submit" class="danger">Revoke agent ${agent.name}</button>
              </form>
            </div>`
        : ''
    }
    <h2>Keys and their history</h2>
    ${table(
      ['Signing key', 'Status', 'Issued', 'Expires', 'Superseded', 'Revoked', 'Reason', ...(write ? ['Action'] : [])],
      keys.map((k) => keyRow(k, write, csrf, agent.id)),
      'No keys.',
      'Keys',
    )}
    ${keyHistory(keys)}
    <h2>Latest inventory</h2>
    ${
      latest && summary
        ? html`<dl class="facts">
              <dt>Received</dt>
              <dd>${when(latest.receivedAt.toISOString())} (${latest.size} bytes)</dd>
              <dt>Operating system</dt>
              <dd>${summary.os}</dd>
              <dt>Hardware</dt>
              <dd>${summary.hardware}</dd>
              <dt>Software packages</dt>
              <dd>${summary.software}</dd>
            </dl>
            <p><a href="/console/agents/${agent.id}/inventories/${latest.id}">Raw JSON of the latest inventory</a></p>`
        : html`<p class="muted">No inventory received yet.</p>`
    }
    <h2>Inventory history</h2>
    ${table(
      ['Received', 'Size', 'Raw'],
      history.map(
        (h) =>
          html`<tr>
            <td>${when(h.receivedAt.toISOString())}</td>
            <td>${h.size} bytes</td>
            <td>
              <a href="/console/agents/${agent.id}/inventories/${h.id}">JSON<span class="skip"> of inventory ${h.id}</span></a>
            </td>
          </tr>`,
      ),
      'None stored.',
      'Inventory history',
    )}`;
  return render(c, s, `Agent ${agent.name}`, 'fleet', body);
}

function keyRow(k: KeyView, write: boolean, csrf: string, agentId: string): Html {
  const revocable = write && (k.status === 'active' || k.status === 'superseded');
  return html`<tr>
    <td class="mono">${k.sigKid}</td>
    <td>${badge(k.status)}</td>
    <td>${when(k.createdAt)}</td>
    <td>${when(k.expiresAt)}</td>
    <td>${k.supersededAt ? html`${when(k.supersededAt)}, accepted until ${when(k.supersededUntil)}` : ''}</td>
    <td>${k.revokedAt ? when(k.revokedAt) : ''}</td>
    <td>${k.revocationReason ?? ''}</td>
    ${
      write
        ? html`<td>
            ${
              revocable
                ? html`<form class="inline" method="post" action="/console/keys/${k.sigKid}/revoke">
                    ${csrfField(csrf)}
                    <input type="hidden" name="agent" value="${agentId}" />
                    <label for="kr-${k.sigKid}">Reason<input id="kr-${k.sigKid}" name="reason" required maxlength="500" /></label>
                    <button type="submit" class="danger">Revoke key</button>
                  </form>`
                : ''
            }
          </td>`
        : ''
    }
  </tr>`;
}

/** The keys' life as events: issued at enrollment, renewed, superseded, revoked (with reasons). */
function keyHistory(keys: KeyView[]): Html {
  const ordered = [...keys].sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  const events: { at: string; text: Html }[] = [];
  ordered.forEach((k, i) => {
    events.push({
      at: k.createdAt,
      text: html`${i === 0 ? 'issued at enrollment' : 'issued by a renewal'}: <span class="mono">${k.sigKid}</span>`,
    });
    if (k.supersededAt)
      events.push({
        at: k.supersededAt,
        text: html`superseded by <span class="mono">${k.replacedBy ?? '?'}</span>: <span class="mono">${k.sigKid}</span>`,
      });
    if (k.revokedAt)
      events.push({
        at: k.revokedAt,
        text: html`revoked: <span class="mono">${k.sigKid}</span>${k.revocationReason ? html` (reason: ${k.revocationReason})` : ''}`,
      });
  });
  events.sort((a, b) => a.at.localeCompare(b.at));
  return html`<ol aria-label="Key history">
    ${events.map((e) => html`<li>${when(e.at)}: ${e.text}</li>`)}
  </ol>`;
}

/** OS, hardware and software count from a GLPI native inventory (its `content`, or the bare object). */
function summarise(stored: unknown): { os: string; hardware: string; software: string } {
  const obj = (v: unknown): Record<string, unknown> =>
    v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  const str = (v: unknown): string | undefined => (typeof v === 'string' && v ? v : typeof v === 'number' ? String(v) : undefined);
  const root = obj(stored);
  const content = 'content' in root ? obj(root.content) : root;
  const os = obj(content.operatingsystem);
  const hw = obj(content.hardware);
  const bios = obj(content.bios);
  const cpu = Array.isArray(content.cpus) ? obj(content.cpus[0]) : {};
  const osText = [str(os.full_name) ?? str(os.name), str(os.version), str(os.arch)].filter(Boolean).join(', ');
  const hwText = [
    str(hw.name),
    str(bios.smanufacturer) ?? str(bios.mmanufacturer),
    str(bios.smodel) ?? str(bios.mmodel),
    str(cpu.name),
    str(hw.memory) ? `${str(hw.memory)!} MB memory` : undefined,
    str(hw.chassis_type),
  ]
    .filter(Boolean)
    .join(', ');
  const software = Array.isArray(content.softwares) ? String(content.softwares.length) : 'not reported';
  return { os: osText || 'not reported', hardware: hwText || 'not reported', software };
}

async function rawInventory(c: ConsoleContext): Promise<Response> {
  const { database } = c.get('deps');
  const agentId = c.req.param('id') ?? '';
  const inv = Number(c.req.param('inv'));
  if (!ID.test(agentId) || !Number.isSafeInteger(inv) || inv < 1) throw new LatchkeyError('request_invalid', 'not an inventory');
  const row = await inventoryOf(database.db, agentId, inv);
  if (!row) throw new LatchkeyError('not_found', 'no such inventory');
  securityHeaders(c);
  return c.body(JSON.stringify(row.content, null, 2), 200, { 'Content-Type': 'application/json; charset=utf-8' });
}

// ---- tokens -----------------------------------------------------------------------------------

/** The form as the admin API's CreateToken body, validated by the same schema (one place for the constraints). */
function tokenInput(form: Record<string, string>) {
  const duration = (field: string, text: string | undefined) => {
    if (text === undefined || text.trim() === '') return undefined;
    const seconds = durationSeconds(text);
    if (seconds === undefined) throw new LatchkeyError('request_invalid', `${field}: use e.g. 30m, 1h, 7d`);
    return seconds;
  };
  const labels: Record<string, string> = {};
  for (const line of (form.labels ?? '').split(/\r?\n/)) {
    if (!line.trim()) continue;
    const eq = line.indexOf('=');
    if (eq < 1) throw new LatchkeyError('request_invalid', 'labels: one key=value a line');
    labels[line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
  }
  const body: Record<string, unknown> = {
    ttlSeconds: duration('Valid for', form.ttl) ?? 3600,
    uses: form.uses?.trim() ? Number(form.uses) : 1,
    role: form.role || 'agent',
    labels,
  };
  if (form.cidr?.trim()) body.cidr = form.cidr.trim();
  if (form.namePattern?.trim()) body.namePattern = form.namePattern.trim();
  const credentialTtl = duration('Credential lifetime', form.credentialTtl);
  if (credentialTtl !== undefined) body.credentialTtlSeconds = credentialTtl;
  const parsed = CreateToken.safeParse(body);
  if (!parsed.success) {
    const where = parsed.error.issues
      .slice(0, 3)
      .map((i) => i.path.map(String).join('.'))
      .join(', ');
    throw new LatchkeyError('request_invalid', `invalid token settings: ${where}`);
  }
  return parsed.data;
}

async function tokensPage(
  c: ConsoleContext,
  s: Parameters<Parameters<typeof page>[0]>[1],
  made: { token: string; id: string; expiresAt: string } | undefined,
): Promise<Response> {
  const { database, ctx } = c.get('deps');
  const { tokens, nextCursor } = await listTokens(database.db, ctx.now(), { limit: PAGE_SIZE, cursor: cursorOf(c) });
  const write = can(s, 'tokens:write');
  const csrf = b64u(s.csrfSecret);
  const enroll = made ? `latchkey agent enroll --server ${ownOrigin(c)} --token ${made.token} --state-dir /var/lib/latchkey-agent` : '';
  const body = html`${
      made
        ? html`<section class="panel notice" aria-labelledby="made-title">
            <h2 id="made-title">Token created</h2>
            <p>Shown once: it cannot be recovered. Token <span class="mono">${made.id}</span>, valid until ${when(made.expiresAt)}.</p>
            <p><strong>Token</strong> <button type="button" data-copy="new-token" hidden>Copy token</button></p>
            <code class="secret mono" id="new-token">${made.token}</code>
            <p><strong>Enroll a machine with</strong> <button type="button" data-copy="enroll-line" hidden>Copy command</button></p>
            <code class="secret mono" id="enroll-line">${enroll}</code>
          </section>`
        : c.req.query('done') === 'revoked'
          ? html`<div class="panel notice" role="status"><p>Token revoked.</p></div>`
          : ''
    }
    ${
      write
        ? html`<h2>Create a token</h2>
            <form class="filters" method="post" action="/console/tokens">
              ${csrfField(csrf)}
              <label for="t-ttl">Valid for<input id="t-ttl" name="ttl" value="1h" size="6" /></label>
              <label for="t-uses">Uses<input id="t-uses" name="uses" type="number" min="1" max="10000" value="1" /></label>
              <label for="t-role"
                >Role<select id="t-role" name="role">
                  <option value="agent">agent</option>
                  <option value="relay">relay</option>
                </select></label
              >
              <label for="t-cidr">Allowed network (CIDR)<input id="t-cidr" name="cidr" placeholder="10.0.0.0/8" /></label>
              <label for="t-name">Allowed names<input id="t-name" name="namePattern" placeholder="web-*" /></label>
              <label for="t-cred"
                >Credential lifetime<input id="t-cred" name="credentialTtl" placeholder="server default" size="10"
              /></label>
              <label for="t-labels">Labels (key=value a line)<textarea id="t-labels" name="labels" rows="2"></textarea></label>
              <button type="submit">Create token</button>
            </form>`
        : ''
    }
    <h2>Tokens</h2>
    ${table(
      ['Id', 'Role', 'Status', 'Uses left', 'Expires', 'Constraints', 'Uses', ...(write ? ['Action'] : [])],
      tokens.map(
        (t) =>
          html`<tr>
            <td class="mono">${t.id}</td>
            <td>${t.role}</td>
            <td>${badge(t.status)}</td>
            <td>${t.usesLeft} of ${t.usesTotal}</td>
            <td>${when(t.expiresAt)}</td>
            <td>
              ${[
                t.cidr ? `network ${t.cidr}` : '',
                t.namePattern ? `names ${t.namePattern}` : '',
                t.credentialTtlSeconds ? `credential ${String(t.credentialTtlSeconds)} s` : '',
              ]
                .filter(Boolean)
                .join('; ')}${Object.keys(t.labels).length ? html` labels ${labelsOf(t.labels)}` : ''}
            </td>
            <td>
              ${
                t.uses.length
                  ? html`<ul>
                      ${t.uses.map((u) => html`<li>${when(u.usedAt)} from <span class="mono">${u.sourceAddr ?? '?'}</span> by <a href="/console/agents/${u.agentId}">${u.agentId}</a></li>`)}
                    </ul>`
                  : html`<span class="muted">none</span>`
              }
            </td>
            ${
              write
                ? html`<td>
                    ${
                      t.status === 'active'
                        ? html`<form class="inline" method="post" action="/console/tokens/${t.id}/revoke">
                            ${csrfField(csrf)} <label for="tr-${t.id}">Reason<input id="tr-${t.id}" name="reason" maxlength="500" /></label
                            ><button type="submit" class="danger">Revoke</button>
                          </form>`
                        : ''
                    }
                  </td>`
                : ''
            }
          </tr>`,
      ),
      'No tokens yet.',
      'Tokens',
    )}
    ${nextCursor ? html`<p class="pager"><a rel="next" href="${withQuery('/console/tokens', { cursor: nextCursor })}">Next page</a></p>` : ''}`;
  return render(c, s, 'Enrollment tokens', 'tokens', body);
}

// ---- audit ------------------------------------------------------------------------------------

async function auditPage(c: ConsoleContext, s: Parameters<Parameters<typeof page>[0]>[1]): Promise<Response> {
  const { database } = c.get('deps');
  const q = c.req.query();
  const before = q.before !== undefined && /^\d{1,15}$/.test(q.before) ? Number(q.before) : undefined;
  const filter: AuditFilter = {
    action: q.action && /^[a-z_.-]{1,64}$/.test(q.action) ? q.action : undefined,
    outcome: q.outcome === 'success' || q.outcome === 'failure' ? q.outcome : undefined,
    subject: q.subject && ID.test(q.subject) ? q.subject : undefined,
  };
  const [chain, { entries, before: next }] = await Promise.all([
    verifyAuditChain(database.db, undefined),
    listAuditNewest(database.db, before, PAGE_SIZE, filter),
  ]);
  const body = html`<div class="panel ${chain.ok ? 'notice' : 'bad'}" role="status" data-chain="${chain.ok ? 'ok' : 'broken'}">
      <p>
        ${
          chain.ok
            ? html`Hash chain verified: ${chain.entries} entries, intact.`
            : html`<strong>Hash chain broken</strong> at entry ${chain.brokenAt ?? '?'} (${chain.problem ?? 'broken'}): entries were altered
                or removed.`
        }
      </p>
    </div>
    <form class="filters" method="get" action="/console/audit" role="search">
      <label for="a-action">Action (e.g. agent.revoke, or agent.)<input id="a-action" name="action" value="${q.action ?? ''}" /></label>
      <label for="a-outcome"
        >Outcome<select id="a-outcome" name="outcome">
          ${option('', 'any', q.outcome)}${option('success', 'success', q.outcome)}${option('failure', 'failure', q.outcome)}
        </select></label
      >
      <label for="a-subject">Agent, token or actor id<input id="a-subject" name="subject" value="${q.subject ?? ''}" /></label>
      <button type="submit">Filter</button>
    </form>
    ${table(
      ['#', 'Time', 'Actor', 'Action', 'Outcome', 'Code', 'Source', 'Agent', 'Token', 'Details'],
      entries.map(
        (e) =>
          html`<tr>
            <td>${e.seq}</td>
            <td>${when(e.at)}</td>
            <td class="mono">${e.actor}</td>
            <td class="mono">${e.action}</td>
            <td>${badge(e.outcome)}</td>
            <td class="mono">${e.code ?? ''}</td>
            <td class="mono">${e.sourceAddr ?? ''}</td>
            <td>${e.agentId ? html`<a class="mono" href="/console/agents/${e.agentId}">${e.agentId}</a>` : ''}</td>
            <td class="mono">${e.tokenId ?? ''}</td>
            <td class="mono">${Object.keys(e.details).length ? JSON.stringify(e.details) : ''}</td>
          </tr>`,
      ),
      'No entries match.',
      'Audit log entries',
    )}
    ${next !== null ? html`<p class="pager"><a rel="next" href="${withQuery('/console/audit', { ...q, before: String(next) })}">Older entries</a></p>` : ''}`;
  return render(c, s, 'Audit log', 'audit', body);
}
