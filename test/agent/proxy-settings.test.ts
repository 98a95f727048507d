// Which forward proxy the agent's HTTP client uses (agent/proxy.ts): the environment (lowercase names
// first), --proxy over it, NO_PROXY kept, and settings that are not http(s) URLs refused without
// echoing them. Requests through real proxies: test/cli/forward-proxy-cli.test.ts.
import { describe, expect, it } from 'vitest';
import { checkProxyUrl, ProxyConfigError, proxySettings } from '../../src/agent/proxy.js';

describe('forward proxy settings', () => {
  it('goes direct when nothing is set (empty values count as unset)', () => {
    expect(proxySettings({})).toBeUndefined();
    expect(proxySettings({ HTTP_PROXY: '', https_proxy: '', NO_PROXY: 'x' })).toBeUndefined();
  });

  it('reads HTTP_PROXY / HTTPS_PROXY, lowercase first; https falls back to the http proxy', () => {
    expect(proxySettings({ HTTP_PROXY: 'http://up:1', http_proxy: 'http://low:1' })).toEqual({
      httpProxy: 'http://low:1',
      httpsProxy: 'http://low:1',
    });
    expect(proxySettings({ HTTPS_PROXY: 'http://s:1' })).toEqual({ httpsProxy: 'http://s:1' });
    expect(proxySettings({ HTTP_PROXY: 'http://h:1', HTTPS_PROXY: 'https://s:1', no_proxy: 'a,.b', NO_PROXY: 'c' })).toEqual({
      httpProxy: 'http://h:1',
      httpsProxy: 'https://s:1',
      noProxy: 'a,.b',
    });
  });

  it('--proxy replaces both, NO_PROXY still applies', () => {
    expect(proxySettings({ HTTP_PROXY: 'http://h:1', NO_PROXY: 'localhost' }, 'http://flag:3128')).toEqual({
      httpProxy: 'http://flag:3128',
      httpsProxy: 'http://flag:3128',
      noProxy: 'localhost',
    });
  });

  it('refuses what is not an http(s) URL, naming the setting but never its value', () => {
    for (const [env, name] of [
      [{ HTTP_PROXY: 'user:secret@proxy' }, 'HTTP_PROXY'],
      [{ https_proxy: 'socks5://secret@proxy:1080' }, 'https_proxy'],
    ] as const) {
      let err: unknown;
      try {
        proxySettings(env);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ProxyConfigError);
      expect((err as Error).message).toBe(`${name} is not an http:// or https:// URL`);
      expect((err as Error).message).not.toContain('secret');
    }
    expect(() => proxySettings({}, 'ftp://x')).toThrow(ProxyConfigError);
    expect(checkProxyUrl('https://u:p@proxy:8443', '--proxy')).toBe('https://u:p@proxy:8443');
  });
});
