// The `GLPI-Agent-ID` Latchkey sends for an agent when forwarding its inventories to GLPI: a
// name-based UUID (RFC 9562 version 5, SHA-1) of the agent id in Latchkey's own namespace, so the
// same agent always has the same GLPI agent id, on every instance, and no two agents share one.
// Namespace: 8d3f2b1e-6c4a-5e0f-9b7d-2a1c4e6f8b30 (fixed; never change it, GLPI keys agents by it).
import { sha1 } from '@noble/hashes/legacy.js';
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js';

const NAMESPACE = Uint8Array.from('8d3f2b1e6c4a5e0f9b7d2a1c4e6f8b30'.match(/../g)!.map((h) => parseInt(h, 16)));

export function glpiAgentUuid(agentId: string): string {
  const name = utf8ToBytes(agentId);
  const input = new Uint8Array(NAMESPACE.length + name.length);
  input.set(NAMESPACE);
  input.set(name, NAMESPACE.length);
  const b = sha1(input).slice(0, 16);
  b[6] = (b[6]! & 0x0f) | 0x50;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = bytesToHex(b);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
