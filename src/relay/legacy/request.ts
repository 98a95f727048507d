// What a legacy agent sent, and what to answer it (spec/PROTOCOL.md §11.2; README "Migrating a GLPI
// fleet"). Pure request → decision: never throws (every failure is a LatchkeyError code), bounded:
// the body is at most LEGACY_MAX_BODY_BYTES (as a sealed message's), decompression stops at
// LEGACY_MAX_CONTENT_BYTES (so the sealed legacy-origin content stays within the server's bound).
//   GLPI-Agent 1.x     XML PROLOG answered {"expiration":24,"status":"ok"} (it then speaks JSON),
//                      {"action":"contact"} answered {"status":"ok","expiration":24,"tasks":{"inventory":…}},
//                      {"action":"inventory"} taken (glpi-json); identity: GLPI-Agent-ID, else deviceid
//   FusionInventory 2  XML PROLOG answered <RESPONSE>SEND</RESPONSE>, XML INVENTORY taken (fusion-xml)
//   OCS agent          the same, with Content-Type application/x-compress (ocs-xml); identity: DEVICEID
// Answers are compressed the way the request was, with the request's Content-Type.
import { deflateSync, gzipSync } from 'node:zlib';
import { fromUtf8, utf8 } from '../../protocol/bytes.js';
import { LatchkeyError } from '../../protocol/errors.js';
import { LEGACY_ID, type LegacyProtocol } from '../../protocol/legacy.js';
import { gunzipBounded, inflateBounded } from '../../runtime/zlib.js';
import { parseXml } from '../../server/glpi/legacy-xml.js';

export const LEGACY_MAX_BODY_BYTES = 8 * 1024 * 1024;
/** b64u of this many bytes, in the legacy-origin JSON, stays within the server's 16 MiB content bound. */
export const LEGACY_MAX_CONTENT_BYTES = 12 * 1024 * 1024 - 4096;
/** How often (hours) agents are told to come back. */
const PROLOG_FREQ = 24;

type Encoding = 'zlib' | 'gzip' | 'identity';

export interface LegacyReply {
  status: number;
  contentType: string;
  body: Uint8Array;
}

export type LegacyDecision =
  | { kind: 'answer'; reply: LegacyReply }
  | { kind: 'inventory'; protocol: LegacyProtocol; id: string; body: Uint8Array; reply: LegacyReply }
  | { kind: 'refused'; error: LatchkeyError };

export interface LegacyRequestInput {
  contentType: string | undefined;
  /** The GLPI-Agent-ID header, when sent. */
  agentId: string | undefined;
  body: Uint8Array;
}

const ENCODINGS: Record<string, Encoding> = {
  'application/x-compress-zlib': 'zlib',
  'application/x-compress': 'zlib',
  'application/x-compress-gzip': 'gzip',
  'application/json': 'identity',
  'application/xml': 'identity',
  'text/xml': 'identity',
};

export function decideLegacyRequest(input: LegacyRequestInput): LegacyDecision {
  try {
    return decide(input);
  } catch (err) {
    if (err instanceof LatchkeyError) return { kind: 'refused', error: err };
    // A parser's own failure (a stack overflow on absurd nesting, say) is the input's fault.
    return { kind: 'refused', error: new LatchkeyError('payload_invalid', 'not a legacy inventory request') };
  }
}

function decide(input: LegacyRequestInput): LegacyDecision {
  if (input.body.length > LEGACY_MAX_BODY_BYTES) throw new LatchkeyError('payload_too_large');
  const type = (input.contentType ?? '').split(';')[0]!.trim().toLowerCase();
  const encoding = ENCODINGS[type];
  if (!encoding) throw new LatchkeyError('unsupported_media_type', 'legacy agents send zlib, gzip, JSON or XML');
  const content =
    encoding === 'zlib'
      ? inflateBounded(input.body, LEGACY_MAX_CONTENT_BYTES)
      : encoding === 'gzip'
        ? gunzipBounded(input.body, LEGACY_MAX_CONTENT_BYTES)
        : input.body;
  if (content.length > LEGACY_MAX_CONTENT_BYTES) throw new LatchkeyError('payload_too_large');
  const answer = (text: string, fallbackType: string, status = 200): LegacyReply => ({
    status,
    contentType: encoding === 'identity' ? fallbackType : type,
    body: encoding === 'zlib' ? deflateSync(utf8(text)) : encoding === 'gzip' ? gzipSync(utf8(text)) : utf8(text),
  });
  const json = (o: object, status = 200) => answer(JSON.stringify(o), 'application/json', status);
  const xml = (inner: string) => answer(`<?xml version="1.0" encoding="UTF-8" ?>\n<REPLY>${inner}</REPLY>\n`, 'application/xml');
  const headerId = input.agentId?.trim();

  const first = firstNonSpace(content);
  if (first === 0x7b /* { */) {
    let msg: unknown;
    try {
      msg = JSON.parse(fromUtf8(content));
    } catch {
      throw new LatchkeyError('payload_invalid', 'not JSON');
    }
    if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) throw new LatchkeyError('payload_invalid', 'not a JSON object');
    const { action, deviceid } = msg as { action?: unknown; deviceid?: unknown };
    // As GLPI answers: naming the inventory task spares the agent a PROLOG on every later run
    // (10.0.0 is also what it assumes when a server names no version).
    if (action === 'contact')
      return {
        kind: 'answer',
        reply: json({ status: 'ok', expiration: PROLOG_FREQ, tasks: { inventory: { server: 'glpi', version: '10.0.0' } } }),
      };
    if (action !== 'inventory')
      return { kind: 'answer', reply: json({ status: 'error', message: 'this relay only takes inventories' }, 400) };
    const id = identity(headerId || (typeof deviceid === 'string' ? deviceid : undefined));
    return { kind: 'inventory', protocol: 'glpi-json', id, body: content, reply: json({ status: 'ok' }) };
  }
  if (first === 0x3c /* < */) {
    const doc = parseXml(content);
    const request = doc.REQUEST;
    if (typeof request !== 'object' || request === null) throw new LatchkeyError('payload_invalid', 'not an XML REQUEST');
    const { QUERY, DEVICEID } = request as Record<string, unknown>;
    const query = typeof QUERY === 'string' ? QUERY.toUpperCase() : '';
    if (query === 'PROLOG') {
      // GLPI-Agent names itself with its header: answered so that it switches to the JSON protocol.
      if (headerId) return { kind: 'answer', reply: json({ expiration: PROLOG_FREQ, status: 'ok' }) };
      return { kind: 'answer', reply: xml(`<RESPONSE>SEND</RESPONSE><PROLOG_FREQ>${PROLOG_FREQ}</PROLOG_FREQ>`) };
    }
    if (query !== 'INVENTORY') throw new LatchkeyError('payload_invalid', 'this relay only takes PROLOG and INVENTORY queries');
    const id = identity(typeof DEVICEID === 'string' ? DEVICEID : undefined);
    const protocol: LegacyProtocol = type === 'application/x-compress' ? 'ocs-xml' : 'fusion-xml';
    return { kind: 'inventory', protocol, id, body: content, reply: xml('<RESPONSE>no_account_update</RESPONSE>') };
  }
  throw new LatchkeyError('payload_invalid', 'neither JSON nor XML');
}

function identity(id: string | undefined): string {
  const trimmed = id?.trim();
  if (!trimmed || !LEGACY_ID.test(trimmed))
    throw new LatchkeyError('payload_invalid', 'no agent identity (GLPI-Agent-ID, deviceid or DEVICEID: 1 to 128 printable characters)');
  return trimmed;
}

function firstNonSpace(b: Uint8Array): number | undefined {
  let i = 0;
  // A UTF-8 byte order mark, then whitespace.
  if (b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf) i = 3;
  while (i < b.length && (b[i] === 0x20 || b[i] === 0x09 || b[i] === 0x0a || b[i] === 0x0d)) i++;
  return b[i];
}
