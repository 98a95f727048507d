import { describe, expect, it } from 'vitest';
import { cidrContains, parseCidr } from '../../src/server/services/cidr.js';
import { globMatches } from '../../src/server/services/name-rules.js';

describe('CIDR constraints', () => {
  const inside = (cidr: string, addr: string) => cidrContains(parseCidr(cidr)!, addr);
  it('matches IPv4, IPv6 and IPv4-mapped IPv6 addresses', () => {
    expect(inside('10.0.0.0/8', '10.200.3.4')).toBe(true);
    expect(inside('10.0.0.0/8', '11.0.0.1')).toBe(false);
    expect(inside('10.0.0.0/8', '::ffff:10.1.2.3')).toBe(true);
    expect(inside('192.168.1.7', '192.168.1.7')).toBe(true);
    expect(inside('192.168.1.7', '192.168.1.8')).toBe(false);
    expect(inside('2001:db8::/32', '2001:db8:ffff::1')).toBe(true);
    expect(inside('2001:db8::/32', '2001:db9::1')).toBe(false);
    expect(inside('::1/128', '127.0.0.1')).toBe(false);
    expect(inside('0.0.0.0/0', '8.8.8.8')).toBe(true);
    expect(inside('10.0.0.0/8', undefined as unknown as string)).toBe(false);
  });
  it('refuses malformed CIDRs', () => {
    for (const bad of [
      '10.0.0.0/33',
      '10.0.0/8',
      '256.0.0.0/8',
      '1.2.3.4/-1',
      'x',
      '::1/129',
      '1::2::3/64',
      '10.0.0.01/8',
      '1.2.3.4/8/9',
    ]) {
      expect(parseCidr(bad), bad).toBeUndefined();
    }
  });
  it('name patterns are anchored globs with * and ?', () => {
    expect(globMatches('web-*', 'web-01')).toBe(true);
    expect(globMatches('web-*', 'xweb-01')).toBe(false);
    expect(globMatches('db-??', 'db-01')).toBe(true);
    expect(globMatches('db-??', 'db-1')).toBe(false);
    expect(globMatches('a.b', 'aXb')).toBe(false);
  });
});
