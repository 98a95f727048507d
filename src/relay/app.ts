// The relay's HTTP face: the agent-facing routes of the server (spec/PROTOCOL.md §17), so an agent
// cannot tell a relay from the server, plus the relay's own health and metrics.
//   GET  /.well-known/latchkey, /.well-known/jwks.json   upstream's, else built from the pinned keys;
//        the discovery document also carries {"relay":{"kid","credential"}} (the agent verifies the
//        credential with its pinned server key before it believes a relay-accept)
//   POST /v1/enroll, /v1/renew                            forwarded verbatim (sealed to the server)
//   GET  /v1/revocations                                  forwarded (signed by the server)
//   POST /v1/messages                                     checked, spooled, forwarded (§11)
//   GET  /v1/receipts/{snd}/{mid}                         the server's signed receipt, kept or upstream's
//   GET  /healthz, /readyz (upstream reachable; the revocation list's age), /metrics, /openapi.json (openapi.ts)
// POST /v1/messages answers the server's receipt when upstream answers within `receiptWaitMs`;
// otherwise 202 {"status":"queued","accept":relay-accept,"credential":relay credential}. A batch
// answers {"results":[…],"credential"} with one result per envelope: the server's, or
// {"status":"queued","accept"} or {"error"}.
import { OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { discoveryDocument } from '../protocol/discovery.js';
import { serverJwk } from '../protocol/credential.js';
import { LatchkeyError, ProtocolError, statusFor, isErrorCode } from '../protocol/errors.js';
import { signRelayAccept } from '../protocol/relay-accept.js';
import { endpoint, exchange, type HttpAnswer } from '../agent/http.js';
import { errorResponse, payloadTooLarge, toLatchkeyError } from '../server/errors.js';
import type { Logger } from '../server/logger.js';
import { admit, type AdmissionDeps } from './admission.js';
import { registerRelayDocument } from './openapi.js';
import type { Forwarder, Outcome, RelayIdentity } from './forwarder.js';
import { spoolKey, type Spool, type SpoolRecord } from './spool.js';
import { MAX_BATCH_ITEMS } from '../protocol/batch-receipt.js';

export const MAX_MESSAGE_BODY_BYTES = 8 * 1024 * 1024;
export const MAX_BODY_BYTES = 64 * 1024;

export interface RelayAppDeps {
  admission: AdmissionDeps;
  spool: Spool;
  forwarder: Forwarder;
  upstream: string;
  identity: () => RelayIdentity;
  logger: Logger;
  receiptWaitMs: number;
  clientAddress: (c: Context) => string | undefined;
  metrics: () => Promise<{ contentType: string; body: string }>;
  /** The revocation list held: its version, seconds since it last verified (null: never) and whether that is stale. */
  revocationAge: () => { version: number; ageSeconds: number | null; stale: boolean };
  /** accepted (spooled), refused at the relay (by code). */
  count: (name: 'accepted' | 'refused', label: string) => void;
}

type ItemResult =
  { receipt: unknown } | { error: { code: string; message: string }; receipt?: unknown } | { status: 'queued'; accept: unknown };

export function createRelayApp(deps: RelayAppDeps): OpenAPIHono {
  const app = new OpenAPIHono();
  registerRelayDocument(app);
  app.use('/v1/messages', bodyLimit({ maxSize: MAX_MESSAGE_BODY_BYTES, onError: payloadTooLarge }));
  app.use('*', async (c, next) => {
    if (c.req.path === '/v1/messages') return next();
    return bodyLimit({ maxSize: MAX_BODY_BYTES, onError: payloadTooLarge })(c, next);
  });

  const up = (path: string) => endpoint(deps.upstream, path);
  const unavailable = () => new LatchkeyError('unavailable', 'upstream unreachable; retry later', { retryAfterSeconds: 5 });
  /** Upstream's answer as it came (status, JSON, Retry-After): it is signed where it matters. */
  const relayAnswer = (c: Context, a: HttpAnswer) => {
    const headers: Record<string, string> = a.retryAfterSeconds !== undefined ? { 'Retry-After': String(a.retryAfterSeconds) } : {};
    return c.json((a.json ?? {}) as object, a.status as ContentfulStatusCode, headers);
  };
  const forward = async (c: Context, path: string, init: RequestInit) => {
    try {
      return relayAnswer(c, await exchange(up(path), init, { timeoutMs: 30_000 }));
    } catch {
      throw unavailable();
    }
  };

  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    const a = await exchange(up('/healthz'), { method: 'GET' }, { timeoutMs: 2000 }).catch(() => undefined);
    if (a?.status !== 200) throw unavailable();
    // Ready, and how old the revocation list is: a stale list does not stop the relay (§11.1).
    return c.json({ status: 'ready', revocations: deps.revocationAge() });
  });
  app.get('/metrics', async (c) => {
    const m = await deps.metrics();
    return c.body(m.body, 200, { 'content-type': m.contentType });
  });

  app.get('/.well-known/latchkey', async (c) => {
    const a = await exchange(up('/.well-known/latchkey'), { method: 'GET' }, { timeoutMs: 5000 }).catch(() => undefined);
    const doc =
      a?.status === 200 && typeof a.json === 'object' && a.json !== null
        ? (a.json as Record<string, unknown>)
        : (discoveryDocument(deps.admission.keys.current, { previous: deps.admission.keys.left, endorsements: [] }) as Record<
            string,
            unknown
          >);
    const me = deps.identity();
    return c.json({ ...doc, relay: { kid: me.kid, credential: me.credential } }, 200, { 'cache-control': 'public, max-age=300' });
  });
  app.get('/.well-known/jwks.json', async (c) => {
    const a = await exchange(up('/.well-known/jwks.json'), { method: 'GET' }, { timeoutMs: 5000 }).catch(() => undefined);
    if (a?.status === 200 && a.json !== undefined) return relayAnswer(c, a);
    const keys = [deps.admission.keys.current, ...deps.admission.keys.left].map((k) => serverJwk(k.signing));
    return c.json({ keys }, 200, { 'cache-control': 'public, max-age=300' });
  });

  const verbatim = async (c: Context, path: string) =>
    forward(c, path, { method: 'POST', body: await c.req.text(), headers: { 'content-type': c.req.header('content-type') ?? '' } });
  app.post('/v1/enroll', (c) => verbatim(c, '/v1/enroll'));
  app.post('/v1/renew', (c) => verbatim(c, '/v1/renew'));
  app.get('/v1/revocations', (c) => {
    const since = c.req.query('since');
    return forward(c, `/v1/revocations${since !== undefined ? `?since=${encodeURIComponent(since)}` : ''}`, { method: 'GET' });
  });

  app.get('/v1/receipts/:snd/:mid', async (c) => {
    const key = spoolKey(c.req.param('snd'), c.req.param('mid'));
    const kept = await deps.spool.receipt(key);
    if (kept !== undefined) return c.json(kept as object, 200);
    const refused = await deps.spool.refusal(key);
    if (refused && isErrorCode(refused.code)) throw new LatchkeyError(refused.code, 'upstream refused this message');
    if (deps.spool.has(key)) throw new LatchkeyError('not_found', 'not yet forwarded; ask again later');
    return forward(c, `/v1/receipts/${encodeURIComponent(c.req.param('snd'))}/${encodeURIComponent(c.req.param('mid'))}`, {
      method: 'GET',
    });
  });

  app.post('/v1/messages', async (c) => {
    if (!(c.req.header('content-type') ?? '').toLowerCase().startsWith('application/json'))
      throw new LatchkeyError('unsupported_media_type');
    const body: unknown = await c.req.json().catch(() => {
      throw new ProtocolError('envelope_malformed', 'not JSON');
    });
    const src = deps.clientAddress(c);
    const batch =
      body && typeof body === 'object' && !Array.isArray(body) && 'envelopes' in body
        ? (body as { envelopes: unknown }).envelopes
        : undefined;
    if (batch === undefined) {
      const record = await admitCounted(body, src);
      await spool([record]);
      const r = await answer(record);
      if ('status' in r && r.status === 'queued') return c.json({ ...r, credential: deps.identity().credential }, 202);
      if ('error' in r) return c.json(r, statusFor(r.error.code as never) as ContentfulStatusCode);
      return c.json((r as { receipt: unknown }).receipt as object, 200);
    }
    if (Object.keys(body as object).length !== 1) throw new ProtocolError('envelope_malformed', 'a batch has only the field envelopes');
    if (!Array.isArray(batch) || batch.length === 0 || batch.length > MAX_BATCH_ITEMS)
      throw new ProtocolError('envelope_malformed', `a batch holds 1 to ${MAX_BATCH_ITEMS} envelopes`);
    const checked: (SpoolRecord | LatchkeyError)[] = [];
    for (const item of batch) checked.push(await admitCounted(item, src).catch((err: unknown) => toLatchkeyError(err).error));
    await spool(checked.filter((r): r is SpoolRecord => !(r instanceof LatchkeyError)));
    const results = await Promise.all(
      checked.map((r): Promise<ItemResult> | ItemResult =>
        r instanceof LatchkeyError ? { error: { code: r.code, message: r.message } } : answer(r),
      ),
    );
    return c.json({ results, credential: deps.identity().credential }, 200);
  });

  async function admitCounted(object: unknown, src: string | undefined): Promise<SpoolRecord> {
    try {
      return await admit(deps.admission, object, src);
    } catch (err) {
      const { error } = toLatchkeyError(err);
      deps.count('refused', error.code);
      throw error;
    }
  }

  async function spool(records: SpoolRecord[]): Promise<void> {
    try {
      await deps.spool.put(records);
    } catch (err) {
      if (err instanceof LatchkeyError) deps.count('refused', err.code);
      throw err;
    }
    for (let i = 0; i < records.length; i++) deps.count('accepted', 'accepted');
    deps.forwarder.kick();
  }

  /** The server's receipt if it comes in time (and upstream is not known to be away), else a relay-accept. */
  async function answer(record: SpoolRecord): Promise<ItemResult> {
    const key = spoolKey(record.snd, record.mid);
    const kept = await deps.spool.receipt(key);
    const outcome: Outcome | undefined =
      kept !== undefined
        ? { receipt: kept, status: 'accepted' }
        : deps.forwarder.upstreamAway()
          ? undefined
          : await deps.forwarder.waitFor(key, deps.receiptWaitMs);
    if (outcome && 'receipt' in outcome) {
      if (outcome.status === 'accepted') return { receipt: outcome.receipt };
      const code = outcome.code && isErrorCode(outcome.code) ? outcome.code : 'payload_invalid';
      return { error: { code, message: new LatchkeyError(code).message }, receipt: outcome.receipt };
    }
    if (outcome && 'refused' in outcome) {
      const code = isErrorCode(outcome.refused) ? outcome.refused : 'payload_invalid';
      return { error: { code, message: new LatchkeyError(code).message } };
    }
    const me = deps.identity();
    const accept = await signRelayAccept(deps.admission.ctx.crypto, me, {
      mid: record.mid,
      snd: record.snd,
      env: record.env,
      rat: record.rat,
    });
    return { status: 'queued', accept };
  }

  app.notFound((c) => errorResponse(c, new LatchkeyError('not_found', 'no such route')));
  app.onError((err, c) => {
    const { error, internal } = toLatchkeyError(err);
    if (internal) deps.logger.error({ err: (err as Error).message, route: c.req.path }, 'relay: unhandled error');
    return errorResponse(c, error);
  });
  return app;
}
