// The client address: what token CIDR constraints, rate limits, the audit log and the logs see.
// The TCP peer, unless the peer is a reverse proxy the operator trusts (`serve --trust-proxy CIDR`):
// then the chain the proxies reported (Forwarded, RFC 7239, when present; else X-Forwarded-For) is
// walked from the right, skipping trusted hops, and the first untrusted address is the client.
// Anyone can send these headers, so without a trusted peer they are ignored; a header that does not
// parse (or a hop reported as "unknown" or an obfuscated name) means the peer is all we know.
import type { Context } from 'hono';
import { cidrContains, parseAddress, parseCidr, type Cidr } from './services/cidr.js';

/** More hops than any real deployment has: a longer header is refused (peer used), not walked. */
const MAX_HOPS = 32;
const MAX_HEADER_CHARS = 4096;

/** Parses --trust-proxy values; undefined names the first one that is not an address or CIDR. */
export function parseTrustedProxies(values: readonly string[]): { cidrs: Cidr[] } | { invalid: string } {
  const cidrs: Cidr[] = [];
  for (const v of values) {
    const cidr = parseCidr(v);
    if (!cidr) return { invalid: v };
    cidrs.push(cidr);
  }
  return { cidrs };
}

/** An address as a proxy wrote it: bare, [IPv6], or with a port; undefined when it is none of those. */
function hopAddress(raw: string): string | undefined {
  const s = raw.trim();
  let addr: string;
  const bracketed = /^\[([^\]]+)\](?::\d{1,5})?$/.exec(s);
  if (bracketed) addr = bracketed[1]!;
  else if (/^\d{1,3}(\.\d{1,3}){3}:\d{1,5}$/.test(s)) addr = s.slice(0, s.lastIndexOf(':'));
  else addr = s;
  return parseAddress(addr) && !addr.includes('%') ? addr : undefined;
}

/** X-Forwarded-For: addresses separated by commas, the client first. */
function xForwardedFor(value: string): string[] | undefined {
  const hops = value.split(',').map(hopAddress);
  return hops.every((h): h is string => h !== undefined) ? hops : undefined;
}

/** Splits on `sep` outside quoted strings (RFC 7230 quoted-string, with backslash escapes). */
function splitOutsideQuotes(value: string, sep: string): string[] | undefined {
  const parts: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i]!;
    if (quoted && ch === '\\') {
      current += ch + (value[++i] ?? '');
      continue;
    }
    if (ch === '"') quoted = !quoted;
    if (ch === sep && !quoted) {
      parts.push(current);
      current = '';
    } else current += ch;
  }
  if (quoted) return undefined;
  parts.push(current);
  return parts;
}

/** Forwarded (RFC 7239 §4): elements separated by commas, each `for=` names one hop. */
function forwarded(value: string): string[] | undefined {
  const elements = splitOutsideQuotes(value, ',');
  if (!elements) return undefined;
  const hops: string[] = [];
  for (const element of elements) {
    const pairs = splitOutsideQuotes(element, ';');
    if (!pairs) return undefined;
    let hop: string | undefined;
    for (const pair of pairs) {
      const eq = pair.indexOf('=');
      if (eq < 1) return undefined;
      if (pair.slice(0, eq).trim().toLowerCase() !== 'for') continue;
      if (hop !== undefined) return undefined; // two for= in one element
      let v = pair.slice(eq + 1).trim();
      if (v.startsWith('"')) {
        if (v.length < 2 || !v.endsWith('"')) return undefined;
        v = v.slice(1, -1).replace(/\\(.)/g, '$1');
      }
      hop = hopAddress(v); // "unknown" and obfuscated names are not addresses: no client address known
      if (hop === undefined) return undefined;
    }
    if (hop === undefined) return undefined;
    hops.push(hop);
  }
  return hops;
}

export interface ForwardingHeaders {
  forwarded?: string | undefined;
  xForwardedFor?: string | undefined;
}

/** The one rule (see the top of this file); `peer` is the TCP peer's address. */
export function resolveClientAddress(peer: string | undefined, headers: ForwardingHeaders, trusted: readonly Cidr[]): string | undefined {
  if (peer === undefined || !trusted.some((c) => cidrContains(c, peer))) return peer;
  const header = headers.forwarded ?? headers.xForwardedFor;
  if (header === undefined || header.length > MAX_HEADER_CHARS) return peer;
  const chain = headers.forwarded !== undefined ? forwarded(header) : xForwardedFor(header);
  if (!chain || chain.length === 0 || chain.length > MAX_HOPS) return peer;
  for (let i = chain.length - 1; i >= 0; i--) {
    if (!trusted.some((c) => cidrContains(c, chain[i]))) return chain[i];
  }
  // Every hop is a trusted proxy: the farthest one is the closest thing to a client there is.
  return chain[0];
}

/** The app's clientAddress for a runtime whose TCP peer `peer` gives. */
export function clientAddressFrom(peer: (c: Context) => string | undefined, trusted: readonly Cidr[]): (c: Context) => string | undefined {
  if (trusted.length === 0) return peer;
  return (c) =>
    resolveClientAddress(peer(c), { forwarded: c.req.header('forwarded'), xForwardedFor: c.req.header('x-forwarded-for') }, trusted);
}
