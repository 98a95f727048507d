// The XML of FusionInventory-Agent 2.x and OCS agents (spec/PROTOCOL.md §11.2): parsed safely, and
// mapped to GLPI native JSON where the mapping is known, so XML agents appear beside JSON ones.
// The one place that knows the mapping (test/glpi/legacy-xml.test.ts holds real agents' XML):
//   REQUEST/DEVICEID                          → deviceid
//   CONTENT/VERSIONCLIENT                     → content.versionclient
//   CONTENT/HARDWARE/{NAME,UUID,WORKGROUP,
//     CHASSIS_TYPE,VMSYSTEM,DESCRIPTION,DNS,DEFAULTGATEWAY,LASTLOGGEDUSER}  → content.hardware.*
//   CONTENT/HARDWARE/MEMORY, SWAP (MB)        → content.hardware.memory, swap (integers)
//   CONTENT/OPERATINGSYSTEM/{NAME,VERSION,FULL_NAME,KERNEL_NAME,KERNEL_VERSION,ARCH,FQDN,
//     DNS_DOMAIN,SERVICE_PACK,HOSTID}         → content.operatingsystem.*
//     (else HARDWARE/OSNAME, OSVERSION: what OCS agents send)
//   CONTENT/BIOS/{SSN,SMANUFACTURER,SMODEL,BMANUFACTURER,BVERSION,MMANUFACTURER,MMODEL,MSN,
//     ASSETTAG,SKUNUMBER,BIOSSERIAL,ENCLOSURESERIAL} → content.bios.*
// Everything else stays only in the stored XML. Strings only where the schema wants strings.
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { fromUtf8 } from '../../protocol/bytes.js';
import { ProtocolError } from '../../protocol/errors.js';

const parser = new XMLParser({
  // No entity expansion of any kind (no DOCTYPE entities, no HTML entities): a billion laughs is text.
  processEntities: false,
  htmlEntities: false,
  ignoreAttributes: true,
  parseTagValue: false,
  trimValues: true,
  ignoreDeclaration: true,
  ignorePiTags: true,
});

/** Nesting deeper than this is refused before parsing (real inventories nest four or five levels). */
const MAX_XML_DEPTH = 64;

/** Parses agent XML (UTF-8) into plain objects; `payload_invalid` for anything that is not well-formed XML. */
export function parseXml(bytes: Uint8Array): Record<string, unknown> {
  const text = fromUtf8(bytes);
  if (/<!DOCTYPE|<!ENTITY/i.test(text)) throw new ProtocolError('payload_invalid', 'XML with a DOCTYPE is refused');
  if (!depthWithin(text, MAX_XML_DEPTH)) throw new ProtocolError('payload_invalid', 'XML nests too deeply');
  if (XMLValidator.validate(text) !== true) throw new ProtocolError('payload_invalid', 'not well-formed XML');
  const doc: unknown = parser.parse(text);
  if (typeof doc !== 'object' || doc === null) throw new ProtocolError('payload_invalid', 'not XML');
  return doc as Record<string, unknown>;
}

/** A cheap upper bound on element depth: opening tags minus closing ones, never deeper than `max`. */
function depthWithin(text: string, max: number): boolean {
  let depth = 0;
  for (const m of text.matchAll(/<(\/?)[A-Za-z_][^>]*?(\/?)>/g)) {
    if (m[1]) depth--;
    else if (!m[2] && ++depth > max) return false;
  }
  return true;
}

const HARDWARE = ['NAME', 'UUID', 'WORKGROUP', 'CHASSIS_TYPE', 'VMSYSTEM', 'DESCRIPTION', 'DNS', 'DEFAULTGATEWAY', 'LASTLOGGEDUSER'];
const OS = ['NAME', 'VERSION', 'FULL_NAME', 'KERNEL_NAME', 'KERNEL_VERSION', 'ARCH', 'FQDN', 'DNS_DOMAIN', 'SERVICE_PACK', 'HOSTID'];
const BIOS = [
  'SSN',
  'SMANUFACTURER',
  'SMODEL',
  'BMANUFACTURER',
  'BVERSION',
  'MMANUFACTURER',
  'MMODEL',
  'MSN',
  'ASSETTAG',
  'SKUNUMBER',
  'BIOSSERIAL',
  'ENCLOSURESERIAL',
];

const one = (v: unknown): Record<string, unknown> | undefined => {
  const x = Array.isArray(v) ? v[0] : v;
  return typeof x === 'object' && x !== null ? (x as Record<string, unknown>) : undefined;
};
const text = (v: unknown): string | undefined => (typeof v === 'string' && v.length > 0 ? v : undefined);

function pick(from: Record<string, unknown> | undefined, keys: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of keys) {
    const v = text(from?.[k]);
    if (v !== undefined) out[k.toLowerCase()] = v;
  }
  return out;
}

/**
 * GLPI native JSON for an agent's XML inventory (REQUEST with QUERY INVENTORY), as the mapping
 * above says; `payload_invalid` when it is not one.
 */
export function xmlInventoryToGlpi(bytes: Uint8Array): Record<string, unknown> {
  const request = one(parseXml(bytes).REQUEST);
  const content = one(request?.CONTENT);
  const deviceid = text(request?.DEVICEID);
  if (!request || !content || !deviceid) throw new ProtocolError('payload_invalid', 'not an XML inventory (REQUEST, CONTENT, DEVICEID)');
  const hw = one(content.HARDWARE);
  const hardware: Record<string, unknown> = pick(hw, HARDWARE);
  for (const k of ['MEMORY', 'SWAP']) {
    const v = text(hw?.[k]);
    if (v !== undefined && /^\d{1,15}$/.test(v)) hardware[k.toLowerCase()] = Number(v);
  }
  const operatingsystem = pick(one(content.OPERATINGSYSTEM), OS);
  if (operatingsystem.name === undefined && text(hw?.OSNAME)) operatingsystem.name = text(hw?.OSNAME)!;
  if (operatingsystem.version === undefined && text(hw?.OSVERSION)) operatingsystem.version = text(hw?.OSVERSION)!;
  const bios = pick(one(content.BIOS), BIOS);
  const out: Record<string, unknown> = { versionclient: text(content.VERSIONCLIENT) ?? 'unknown' };
  if (Object.keys(hardware).length) out.hardware = hardware;
  if (Object.keys(operatingsystem).length) out.operatingsystem = operatingsystem;
  if (Object.keys(bios).length) out.bios = bios;
  return { action: 'inventory', deviceid, itemtype: 'Computer', content: out };
}
