// The relay's legacy listener (`--legacy-listen`, `--legacy-trust`; spec/PROTOCOL.md §11.2): a second
// HTTP face taking plain inventory traffic from GLPI, FusionInventory and OCS agents on a trusted LAN.
// Only sources inside a `--legacy-trust` network are heard (none by default); others get 403
// `source_not_allowed`, a log line and a count. An inventory is sealed as the relay's OWN signed
// submission marked legacy-origin (protocol/legacy.ts) and written to the spool durably, like any
// envelope, before the agent is answered; the forwarder takes it upstream from there.
import { gzipSync } from 'node:zlib';
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { Envelope } from '../../protocol/envelope.js';
import { parseEnvelope } from '../../protocol/envelope.js';
import { LatchkeyError } from '../../protocol/errors.js';
import { bodyTypeOf, LEGACY_CONTENT_TYPE, serializeLegacyOrigin } from '../../protocol/legacy.js';
import { envelopeBinding } from '../../protocol/receipt.js';
import { errorResponse, toLatchkeyError } from '../../server/errors.js';
import type { Logger } from '../../server/logger.js';
import { cidrContains, type Cidr } from '../../server/services/cidr.js';
import type { Spool, SpoolRecord } from '../spool.js';
import { decideLegacyRequest, LEGACY_MAX_BODY_BYTES } from './request.js';

export interface LegacyListenerDeps {
  /** Networks whose agents may use the listener (`--legacy-trust`); empty: nobody. */
  trust: Cidr[];
  /** Seals content as the relay's own envelope (typ inventory) with this content type, gzip-encoded. */
  seal: (contentType: string, gzipped: Uint8Array) => Promise<Envelope>;
  spool: Spool;
  kick: () => void;
  now: () => number;
  logger: Logger;
  clientAddress: (c: Context) => string | undefined;
  /** accepted (spooled, by protocol) or refused (by code). */
  count: (outcome: 'accepted' | 'refused', label: string) => void;
}

export function createLegacyApp(deps: LegacyListenerDeps): Hono {
  const app = new Hono();
  const refuse = (c: Context, err: LatchkeyError, src: string | undefined) => {
    deps.count('refused', err.code);
    deps.logger.warn({ code: err.code, src }, 'relay legacy listener: request refused');
    return errorResponse(c, err);
  };
  app.use('*', async (c, next) => {
    const src = deps.clientAddress(c);
    if (!deps.trust.some((net) => cidrContains(net, src)))
      return refuse(c, new LatchkeyError('source_not_allowed', 'this address is not in the relay legacy trust (--legacy-trust)'), src);
    return next();
  });
  app.use(
    '*',
    bodyLimit({
      maxSize: LEGACY_MAX_BODY_BYTES,
      onError: (c) => refuse(c, new LatchkeyError('payload_too_large', 'request body too large'), deps.clientAddress(c)),
    }),
  );
  // Agents post to exactly the URL they were given, whatever its path.
  app.post('*', async (c) => {
    const src = deps.clientAddress(c);
    const decision = decideLegacyRequest({
      contentType: c.req.header('content-type'),
      agentId: c.req.header('glpi-agent-id'),
      body: new Uint8Array(await c.req.arrayBuffer()),
    });
    if (decision.kind === 'refused') return refuse(c, decision.error, src);
    if (decision.kind === 'inventory') {
      const content = serializeLegacyOrigin({
        id: decision.id,
        protocol: decision.protocol,
        cty: bodyTypeOf(decision.protocol),
        body: decision.body,
      });
      const envelope = await deps.seal(LEGACY_CONTENT_TYPE, gzipSync(content));
      const env = parseEnvelope(envelope);
      const record: SpoolRecord = {
        v: 1,
        rat: deps.now(),
        snd: env.header.snd,
        mid: env.header.mid,
        env: envelopeBinding(env),
        iat: env.header.iat,
        object: envelope,
      };
      if (src) record.src = src;
      try {
        await deps.spool.put([record]);
      } catch (err) {
        return refuse(c, toLatchkeyError(err).error, src);
      }
      deps.count('accepted', decision.protocol);
      deps.logger.info({ legacyId: decision.id, protocol: decision.protocol, mid: env.header.mid, src }, 'relay legacy inventory spooled');
      deps.kick();
    }
    const { reply } = decision;
    return c.body(reply.body as Uint8Array<ArrayBuffer>, reply.status as 200, { 'content-type': reply.contentType });
  });
  app.notFound((c) => errorResponse(c, new LatchkeyError('not_found', 'legacy agents POST their messages')));
  app.onError((err, c) => {
    const { error, internal } = toLatchkeyError(err);
    if (internal) deps.logger.error({ err: (err as Error).message }, 'relay legacy listener: unhandled error');
    return errorResponse(c, error);
  });
  return app;
}
