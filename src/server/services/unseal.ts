// Opening an accepted envelope and checking its inventory: HPKE open, bounded gunzip, UTF-8, JSON,
// what PostgreSQL cannot store (NUL, lone surrogates, depth, numbers beyond numeric's range), the
// GLPI schema. Pure CPU work with no state. (Running it on a worker thread was measured: no gain on
// 2 cores, where the event loop is not what limits ingest.)
import { fromUtf8 } from '../../protocol/bytes.js';
import type { ProtocolContext } from '../../protocol/crypto/types.js';
import { openEnvelope, type ParsedEnvelope } from '../../protocol/envelope.js';
import { ProtocolError } from '../../protocol/errors.js';
import { validateInventory } from '../glpi/inventory-schema.js';
import { LEGACY_CONTENT_TYPE, legacyAgentId, parseLegacyOrigin } from '../../protocol/legacy.js';
import { xmlInventoryToGlpi } from '../glpi/legacy-xml.js';
import type { StoreItem } from './store-batcher.js';
import type { Gunzip } from './decompress.js';
import { isStorableJsonText, isStorableText, jsonShapeRefusal, MAX_JSON_DEPTH } from './storable.js';

export interface UnsealJob {
  env: ParsedEnvelope;
  senderAgreementKey: Uint8Array;
  maxContentBytes: number;
  gunzip: Gunzip;
}

/**
 * The inventory's JSON text and its size in bytes; ProtocolError otherwise. A legacy-origin envelope
 * (§11.2; the caller checked the sender is a relay) yields the legacy agent's inventory as GLPI JSON
 * (its XML mapped, glpi/legacy-xml.ts) and what to store about its origin.
 */
export async function unsealInventory(
  ctx: ProtocolContext,
  recipient: { privateKey: Uint8Array; publicKey: Uint8Array; kid: string },
  job: UnsealJob,
): Promise<{ text: string; size: number; legacy?: StoreItem['legacy'] }> {
  const { env, maxContentBytes } = job;
  const sealed = await openEnvelope(ctx, env, recipient, job.senderAgreementKey);
  const content = env.header.cen === 'gzip' ? job.gunzip(sealed, maxContentBytes) : sealed;
  if (content.length > maxContentBytes) throw new ProtocolError('payload_too_large');
  if (env.header.cty === LEGACY_CONTENT_TYPE) {
    const origin = parseLegacyOrigin(content);
    const meta = { id: origin.id, protocol: origin.protocol, cty: origin.cty };
    if (origin.cty === 'application/json') return { ...checkInventory(origin.body), legacy: { agentId: legacyAgentId(origin.id), meta } };
    const raw = fromUtf8(origin.body);
    if (!isStorableText(raw)) throw new ProtocolError('payload_invalid', 'the XML contains a NUL character, which cannot be stored');
    let mapped: string;
    try {
      mapped = JSON.stringify(xmlInventoryToGlpi(origin.body));
    } catch (err) {
      if (err instanceof ProtocolError) throw err;
      throw new ProtocolError('payload_invalid', 'the XML inventory cannot be read');
    }
    const checked = checkInventory(new TextEncoder().encode(mapped));
    return { text: checked.text, size: checked.size + origin.body.length, legacy: { agentId: legacyAgentId(origin.id), meta, raw } };
  }
  if (env.header.cty !== 'application/json') throw new ProtocolError('payload_invalid', 'content type must be application/json');
  return checkInventory(content);
}

/** GLPI JSON content, checked: UTF-8, JSON, storable by PostgreSQL, the GLPI schema. */
function checkInventory(content: Uint8Array): { text: string; size: number } {
  const text = fromUtf8(content);
  let inventory: unknown;
  try {
    inventory = JSON.parse(text);
  } catch {
    throw new ProtocolError('payload_invalid', 'inventory is not JSON');
  }
  const shape = jsonShapeRefusal(text);
  if (shape === 'too_deep') throw new ProtocolError('payload_invalid', `inventory nests deeper than ${MAX_JSON_DEPTH} levels`);
  // Refused here, before the database: one such number would fail a whole group-commit statement.
  if (shape) throw new ProtocolError('payload_invalid', "inventory holds a number beyond PostgreSQL's numeric range");
  if (!isStorableJsonText(text))
    throw new ProtocolError('payload_invalid', 'inventory contains a NUL character or an unpaired surrogate, which cannot be stored');
  const valid = validateInventory(inventory);
  if (!valid.ok)
    throw new ProtocolError('payload_invalid', `inventory does not match the GLPI schema at ${valid.issues.map((i) => i.path).join(', ')}`);
  return { text, size: content.length };
}
