// Legacy origin (spec/PROTOCOL.md §11.2): a relay's legacy listener takes plain inventories from
// GLPI, FusionInventory and OCS agents on a trusted LAN and sends each upstream as its OWN sealed,
// signed `inventory` envelope whose content type is LEGACY_CONTENT_TYPE and whose content is
//
//   utf8(JSON {"origin":"legacy","id":legacy agent id,"protocol":"glpi-json"|"fusion-xml"|"ocs-xml",
//              "cty":"application/json"|"application/xml","body":b64u(the agent's inventory, decompressed)})
//
// (members in this order, closed). The server takes such envelopes from identities with role relay
// only, and stores them under the legacy agent LEGACY_AGENT_PREFIX + b64u(16 bytes of
// SHA-256(label("latchkey/1 legacy-agent") || utf8(id))): one stable record per legacy id, whatever
// relay it came through. Pure: bytes in, bytes out.
import { sha256 } from '@noble/hashes/sha2.js';
import { b64u, concatBytes, fromB64u, label, utf8 } from './bytes.js';
import { ProtocolError } from './errors.js';
import { onlyKeys, parseJsonObject, str } from './json.js';

/** The envelope header's `cty` for a legacy-origin inventory (its `typ` is `inventory`). */
export const LEGACY_CONTENT_TYPE = 'application/vnd.latchkey.legacy+json';
export const LEGACY_PROTOCOLS = ['glpi-json', 'fusion-xml', 'ocs-xml'] as const;
export type LegacyProtocol = (typeof LEGACY_PROTOCOLS)[number];
export const LEGACY_BODY_TYPES = ['application/json', 'application/xml'] as const;
export type LegacyBodyType = (typeof LEGACY_BODY_TYPES)[number];
/** A legacy id: 1 to 128 printable ASCII characters, no space (a GLPI-Agent-ID UUID, or a deviceid). */
export const LEGACY_ID = /^[\x21-\x7e]{1,128}$/;
export const LEGACY_AGENT_PREFIX = 'legacy-';

const AGENT_LABEL = label('latchkey/1 legacy-agent');
const KEYS = ['origin', 'id', 'protocol', 'cty', 'body'] as const;

export interface LegacyOrigin {
  id: string;
  protocol: LegacyProtocol;
  cty: LegacyBodyType;
  body: Uint8Array;
}

/** The body type each protocol carries. */
export const bodyTypeOf = (p: LegacyProtocol): LegacyBodyType => (p === 'glpi-json' ? 'application/json' : 'application/xml');

export function serializeLegacyOrigin(o: LegacyOrigin): Uint8Array {
  checkFields(o.id, o.protocol, o.cty);
  return utf8(JSON.stringify({ origin: 'legacy', id: o.id, protocol: o.protocol, cty: o.cty, body: b64u(o.body) }));
}

/** Parses the decrypted, decompressed content of a legacy-origin envelope; `payload_invalid` otherwise. */
export function parseLegacyOrigin(content: Uint8Array | string): LegacyOrigin {
  const bad = 'payload_invalid' as const;
  const o = parseJsonObject(content, bad);
  onlyKeys(o, KEYS, [], bad);
  if (o.origin !== 'legacy') throw new ProtocolError(bad, 'origin must be legacy');
  const id = str(o, 'id', bad, 128);
  const protocol = str(o, 'protocol', bad, 16) as LegacyProtocol;
  const cty = str(o, 'cty', bad, 32) as LegacyBodyType;
  checkFields(id, protocol, cty);
  const body = fromB64u(str(o, 'body', bad, Number.MAX_SAFE_INTEGER), bad);
  return { id, protocol, cty, body };
}

function checkFields(id: string, protocol: string, cty: string): void {
  const bad = 'payload_invalid' as const;
  if (!LEGACY_ID.test(id)) throw new ProtocolError(bad, 'legacy id must be 1 to 128 printable ASCII characters');
  if (!(LEGACY_PROTOCOLS as readonly string[]).includes(protocol)) throw new ProtocolError(bad, 'unknown legacy protocol');
  if (cty !== bodyTypeOf(protocol as LegacyProtocol)) throw new ProtocolError(bad, 'content type does not match the legacy protocol');
}

/** The agent id (and name) the server stores a legacy id's inventories under. */
export function legacyAgentId(id: string): string {
  return LEGACY_AGENT_PREFIX + b64u(sha256(concatBytes(AGENT_LABEL, utf8(id))).slice(0, 16));
}
