// Source-address constraints on tokens (like Wazuh's `address`): IPv4 and IPv6 CIDRs, with
// IPv4-mapped IPv6 addresses (::ffff:1.2.3.4, what dual-stack sockets report) treated as IPv4.

interface Parsed {
  v: 4 | 6;
  value: bigint;
}

function parseIPv4(s: string): bigint | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  let v = 0n;
  for (const p of parts) {
    if (!/^(0|[1-9]\d{0,2})$/.test(p) || Number(p) > 255) return undefined;
    v = (v << 8n) | BigInt(p);
  }
  return v;
}

function parseIPv6(s: string): bigint | undefined {
  if (!/^[0-9a-fA-F:.]+$/.test(s) || s.split('::').length > 2) return undefined;
  let tail4: bigint | undefined;
  let text = s;
  const lastColon = s.lastIndexOf(':');
  if (s.includes('.')) {
    tail4 = parseIPv4(s.slice(lastColon + 1));
    if (tail4 === undefined) return undefined;
    text = `${s.slice(0, lastColon + 1)}0:0`;
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const r = rest !== undefined ? (rest ? rest.split(':') : []) : [];
  const missing = 8 - h.length - r.length;
  if (rest === undefined ? h.length !== 8 : missing < 1) return undefined;
  const groups = [...h, ...Array<string>(rest === undefined ? 0 : missing).fill('0'), ...r];
  let v = 0n;
  for (const g of groups) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
    v = (v << 16n) | BigInt(parseInt(g, 16));
  }
  if (tail4 !== undefined) v = (v & ~0xffffffffn) | tail4;
  return v;
}

export function parseAddress(input: string): Parsed | undefined {
  const s = input
    .trim()
    .replace(/^\[|\]$/g, '')
    .replace(/%.*$/, '');
  const v4 = parseIPv4(s);
  if (v4 !== undefined) return { v: 4, value: v4 };
  const v6 = parseIPv6(s);
  if (v6 === undefined) return undefined;
  // IPv4-mapped: ::ffff:a.b.c.d
  if (v6 >> 32n === 0xffffn) return { v: 4, value: v6 & 0xffffffffn };
  return { v: 6, value: v6 };
}

export interface Cidr {
  v: 4 | 6;
  network: bigint;
  prefix: number;
}

/** Parses `a.b.c.d/n`, `x::y/n`, or a bare address (a single-host network). */
export function parseCidr(input: string): Cidr | undefined {
  const [addr, len, extra] = input.trim().split('/');
  if (addr === undefined || extra !== undefined) return undefined;
  const a = parseAddress(addr);
  if (!a) return undefined;
  const bits = a.v === 4 ? 32 : 128;
  const prefix = len === undefined ? bits : /^\d{1,3}$/.test(len) ? Number(len) : NaN;
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > bits) return undefined;
  const mask = prefix === 0 ? 0n : ((1n << BigInt(prefix)) - 1n) << BigInt(bits - prefix);
  return { v: a.v, network: a.value & mask, prefix };
}

export function cidrContains(cidr: Cidr, address: string | undefined): boolean {
  if (!address) return false;
  const a = parseAddress(address);
  if (!a || a.v !== cidr.v) return false;
  const bits = cidr.v === 4 ? 32 : 128;
  const mask = cidr.prefix === 0 ? 0n : ((1n << BigInt(cidr.prefix)) - 1n) << BigInt(bits - cidr.prefix);
  return (a.value & mask) === cidr.network;
}
