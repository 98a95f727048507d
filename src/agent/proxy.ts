// Forward proxies for everything the agent, relay and admin CLI send (http.ts is their one client):
// HTTPS_PROXY for https:// servers, HTTP_PROXY for http:// ones (an https server with only HTTP_PROXY
// set goes through that one too), hosts in NO_PROXY go direct; lowercase names win over uppercase,
// as curl reads them. `--proxy URL` replaces both proxies for one command; NO_PROXY still applies.
// A proxy sees only what a server would: sealed envelopes and signed answers (spec §16).
//
// undici's EnvHttpProxyAgent does the proxying (a CONNECT tunnel per origin). It is loaded only when a
// proxy is configured: importing it costs more than the rest of `agent send`, which fleets run every cycle.

export interface ProxySettings {
  httpProxy?: string;
  httpsProxy?: string;
  noProxy?: string;
}

type Fetch = (url: string, init: RequestInit) => Promise<Response>;

export interface Transport {
  fetch: Fetch;
  /** Whether a proxy is configured for this URL's scheme (NO_PROXY not considered): for messages only. */
  proxied(url: string): boolean;
}

/** A proxy setting that is not an http(s) URL. The value is never echoed: it may hold a password. */
export class ProxyConfigError extends Error {
  readonly code = 'usage';
  constructor(readonly source: string) {
    super(`${source} is not an http:// or https:// URL`);
    this.name = 'ProxyConfigError';
  }
}

/** Checks a proxy URL; throws ProxyConfigError naming `source` (the flag or variable), never the value. */
export function checkProxyUrl(value: string, source: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ProxyConfigError(source);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ProxyConfigError(source);
  return value;
}

function variable(env: NodeJS.ProcessEnv, name: string): { name: string; value: string } | undefined {
  for (const n of [name.toLowerCase(), name]) {
    const value = env[n];
    if (value !== undefined && value !== '') return { name: n, value };
  }
  return undefined;
}

/** What the environment (and an explicit proxy, which wins) ask for; undefined when every request goes direct. */
export function proxySettings(env: NodeJS.ProcessEnv, explicit?: string): ProxySettings | undefined {
  const noProxy = variable(env, 'NO_PROXY')?.value;
  if (explicit !== undefined) {
    checkProxyUrl(explicit, '--proxy');
    return { httpProxy: explicit, httpsProxy: explicit, ...(noProxy ? { noProxy } : {}) };
  }
  const http = variable(env, 'HTTP_PROXY');
  const https = variable(env, 'HTTPS_PROXY');
  if (!http && !https) return undefined;
  if (http) checkProxyUrl(http.value, http.name);
  if (https) checkProxyUrl(https.value, https.name);
  return {
    ...(http ? { httpProxy: http.value } : {}),
    ...(https ? { httpsProxy: https.value } : http ? { httpsProxy: http.value } : {}),
    ...(noProxy ? { noProxy } : {}),
  };
}

const direct: Transport = { fetch: (url, init) => fetch(url, init), proxied: () => false };

async function proxiedTransport(settings: ProxySettings): Promise<Transport> {
  const undici = await import('undici');
  // Passed explicitly (empty = none) so that undici never reads the environment behind our back.
  const dispatcher = new undici.EnvHttpProxyAgent({
    httpProxy: settings.httpProxy ?? '',
    httpsProxy: settings.httpsProxy ?? '',
    noProxy: settings.noProxy ?? '',
  });
  const fetchVia = undici.fetch as unknown as (
    url: string,
    init: Omit<RequestInit, 'dispatcher'> & { dispatcher: unknown },
  ) => Promise<Response>;
  return {
    fetch: (url, init) => fetchVia(url, { ...init, dispatcher }),
    proxied: (url) => Boolean(new URL(url).protocol === 'https:' ? settings.httpsProxy : settings.httpProxy),
  };
}

// One transport per process: chosen from the environment at the first request, or by useProxy (the
// --proxy flag) before it.
let explicitProxy: string | undefined;
let current: Promise<Transport> | undefined;

/** `--proxy URL` for the rest of this process (checked now: a usage error, not a failed request later). */
export function useProxy(url: string): void {
  checkProxyUrl(url, '--proxy');
  explicitProxy = url;
  current = undefined;
}

/** The transport for this process (a rejected promise when a proxy variable is not a URL). */
export function transport(): Promise<Transport> {
  if (!current) {
    try {
      const settings = proxySettings(process.env, explicitProxy);
      current = settings ? proxiedTransport(settings) : Promise.resolve(direct);
    } catch (err) {
      current = Promise.reject(err as Error);
    }
  }
  return current;
}
