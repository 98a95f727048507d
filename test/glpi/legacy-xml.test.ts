// The XML → GLPI JSON mapping (src/server/glpi/legacy-xml.ts) on a real FusionInventory-Agent 2.6
// inventory (test/fixtures/legacy: `fusioninventory-agent --local` on this project's machine), and the
// legacy request decisions (src/relay/legacy/request.ts): the answers real agents expect, and, as
// properties, that the parser never throws and stays bounded whatever it is sent.
import { readFileSync } from 'node:fs';
import { deflateSync, gzipSync, inflateSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { utf8 } from '../../src/protocol/bytes.js';
import { decideLegacyRequest, LEGACY_MAX_CONTENT_BYTES } from '../../src/relay/legacy/request.js';
import { parseXml, xmlInventoryToGlpi } from '../../src/server/glpi/legacy-xml.js';
import { validateInventory } from '../../src/server/glpi/inventory-schema.js';

const fusion = readFileSync(new URL('../fixtures/legacy/fusioninventory-2.6.xml', import.meta.url), 'utf8');

describe('XML inventory → GLPI JSON', () => {
  it('maps a real FusionInventory-Agent inventory: hardware name, OS, serial, and it is valid GLPI JSON', () => {
    const withSerial = fusion.replace('<SSN></SSN>', '<SSN>CZJ1234XYZ</SSN><SMANUFACTURER>HP</SMANUFACTURER>');
    const json = xmlInventoryToGlpi(utf8(withSerial)) as {
      deviceid: string;
      content: {
        versionclient: string;
        hardware: Record<string, unknown>;
        operatingsystem: Record<string, unknown>;
        bios: Record<string, unknown>;
      };
    };
    expect(json.deviceid).toBe('vm-2026-11-28-07-48-51');
    expect(json.content.versionclient).toMatch(/^FusionInventory-Agent_v2\.6/);
    expect(json.content.hardware).toMatchObject({ name: 'vm', memory: 24105, vmsystem: 'Docker' });
    expect(json.content.operatingsystem).toMatchObject({
      name: 'Debian GNU/Linux',
      version: '12.11',
      full_name: 'Debian GNU/Linux 12 (bookworm)',
      kernel_version: '6.18.44-fc-v782',
      arch: 'x86_64',
    });
    expect(json.content.bios).toEqual({ ssn: 'CZJ1234XYZ', smanufacturer: 'HP' });
    expect(validateInventory(json).ok).toBe(true);
  });

  it('falls back to HARDWARE/OSNAME and OSVERSION (what OCS agents send) and leaves empty values out', () => {
    const ocs = fusion.replace(/<OPERATINGSYSTEM>[\s\S]*<\/OPERATINGSYSTEM>/, '');
    const json = xmlInventoryToGlpi(utf8(ocs)) as { content: Record<string, Record<string, unknown>> };
    expect(json.content.operatingsystem).toEqual({ name: 'Debian GNU/Linux 12 (bookworm)', version: '6.18.44-fc-v782' });
    expect(json.content.bios).toBeUndefined(); // its only member, SSN, is empty here
    expect(validateInventory(json).ok).toBe(true);
  });

  it('refuses what is not an XML inventory, DOCTYPEs (no entity expansion) and absurd nesting', () => {
    expect(() => xmlInventoryToGlpi(utf8('<REQUEST><QUERY>PROLOG</QUERY></REQUEST>'))).toThrow(/not an XML inventory/);
    const laughs = '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><REQUEST>&b;</REQUEST>';
    expect(() => parseXml(utf8(laughs))).toThrow(/DOCTYPE/);
    expect(() => parseXml(utf8('<a>'.repeat(100_000) + '</a>'.repeat(100_000)))).toThrow(/too deeply/);
    expect(() => parseXml(utf8('<REQUEST><A></REQUEST>'))).toThrow(/well-formed/);
  });
});

describe('legacy requests', () => {
  const prolog = (id = 'pc-2026-01-01-00-00-00') =>
    utf8(`<?xml version="1.0" encoding="UTF-8" ?>\n<REQUEST><DEVICEID>${id}</DEVICEID><QUERY>PROLOG</QUERY></REQUEST>`);

  it('answers a FusionInventory PROLOG with SEND in XML, compressed as it came', () => {
    const d = decideLegacyRequest({ contentType: 'application/x-compress-zlib', agentId: undefined, body: deflateSync(prolog()) });
    expect(d.kind).toBe('answer');
    if (d.kind !== 'answer') return;
    expect(d.reply.contentType).toBe('application/x-compress-zlib');
    expect(inflateSync(d.reply.body).toString()).toContain('<REPLY><RESPONSE>SEND</RESPONSE><PROLOG_FREQ>24</PROLOG_FREQ></REPLY>');
  });

  it('answers a GLPI-Agent PROLOG (it sends GLPI-Agent-ID) with the JSON that switches it to JSON, and its contact with a status', () => {
    const d = decideLegacyRequest({
      contentType: 'application/x-compress-zlib',
      agentId: '1b4d6f9e-0c1a-4e8e-9a3f-5d2c7b8a9e10',
      body: deflateSync(prolog()),
    });
    if (d.kind !== 'answer') throw new Error(d.kind);
    expect(JSON.parse(inflateSync(d.reply.body).toString())).toEqual({ expiration: 24, status: 'ok' });
    const c = decideLegacyRequest({ contentType: 'application/json', agentId: 'x', body: utf8('{"action":"contact","deviceid":"pc"}') });
    if (c.kind !== 'answer') throw new Error(c.kind);
    expect(c.reply.contentType).toBe('application/json');
    expect(JSON.parse(Buffer.from(c.reply.body).toString())).toMatchObject({ status: 'ok' });
  });

  it('takes inventories: GLPI JSON (gzip) under GLPI-Agent-ID, else deviceid; XML under DEVICEID; OCS by its content type', () => {
    const json = utf8('{"action":"inventory","deviceid":"pc-1","content":{"versionclient":"GLPI-Agent_v1.12"}}');
    const a = decideLegacyRequest({ contentType: 'application/x-compress-gzip', agentId: 'uuid-1', body: gzipSync(json) });
    expect(a).toMatchObject({ kind: 'inventory', protocol: 'glpi-json', id: 'uuid-1' });
    expect(decideLegacyRequest({ contentType: 'application/json', agentId: undefined, body: json })).toMatchObject({ id: 'pc-1' });
    const x = decideLegacyRequest({ contentType: 'application/x-compress-zlib', agentId: undefined, body: deflateSync(utf8(fusion)) });
    expect(x).toMatchObject({ kind: 'inventory', protocol: 'fusion-xml', id: 'vm-2026-11-28-07-48-51' });
    if (x.kind !== 'inventory') return;
    expect(inflateSync(x.reply.body).toString()).toContain('<RESPONSE>no_account_update</RESPONSE>');
    expect(
      decideLegacyRequest({ contentType: 'application/x-compress', agentId: undefined, body: deflateSync(utf8(fusion)) }),
    ).toMatchObject({
      protocol: 'ocs-xml',
    });
  });

  it('refuses with stable codes: unknown media types, no identity, a zlib bomb past the bound', () => {
    expect(decideLegacyRequest({ contentType: 'text/plain', agentId: undefined, body: utf8('hi') })).toMatchObject({
      kind: 'refused',
      error: { code: 'unsupported_media_type' },
    });
    expect(
      decideLegacyRequest({ contentType: 'application/json', agentId: undefined, body: utf8('{"action":"inventory"}') }),
    ).toMatchObject({
      error: { code: 'payload_invalid' },
    });
    const bomb = deflateSync(Buffer.alloc(LEGACY_MAX_CONTENT_BYTES + 1, 0x20));
    expect(decideLegacyRequest({ contentType: 'application/x-compress-zlib', agentId: undefined, body: bomb })).toMatchObject({
      error: { code: 'payload_too_large' },
    });
  });

  it('never throws, and always decides, for any body, content type and header (property)', () => {
    const types = fc.constantFrom(
      'application/x-compress-zlib',
      'application/x-compress',
      'application/x-compress-gzip',
      'application/json',
      'application/xml',
      'text/html',
      '',
    );
    const bodies = fc.oneof(
      fc.uint8Array({ maxLength: 512 }),
      fc.string({ maxLength: 256 }).map((s) => utf8(s)),
      fc
        .string({ maxLength: 64 })
        .map((s) => utf8(`<REQUEST><DEVICEID>${s}</DEVICEID><QUERY>INVENTORY</QUERY><CONTENT>${s}</CONTENT></REQUEST>`)),
      fc.jsonValue({ maxDepth: 4 }).map((v) => utf8(JSON.stringify(v))),
      fc
        .record({ action: fc.constantFrom('inventory', 'contact', 'x'), deviceid: fc.string({ maxLength: 140 }) })
        .map((o) => utf8(JSON.stringify(o))),
    );
    fc.assert(
      fc.property(
        types,
        bodies,
        fc.option(fc.string({ maxLength: 140 })),
        fc.constantFrom('none', 'zlib', 'gzip'),
        (type, body, agentId, pack) => {
          const packed = pack === 'zlib' ? deflateSync(body) : pack === 'gzip' ? gzipSync(body) : body;
          const d = decideLegacyRequest({ contentType: type, agentId: agentId ?? undefined, body: packed });
          expect(['answer', 'inventory', 'refused']).toContain(d.kind);
          if (d.kind === 'refused') expect(d.error.status).toBeGreaterThanOrEqual(400);
          if (d.kind === 'refused') expect(d.error.status).toBeLessThan(500);
          if (d.kind === 'inventory') {
            expect(d.id).toMatch(/^[\x21-\x7e]{1,128}$/);
            expect(d.body.length).toBeLessThanOrEqual(LEGACY_MAX_CONTENT_BYTES);
          }
        },
      ),
      { numRuns: 400 },
    );
  });
});
