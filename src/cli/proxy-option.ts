// `--proxy URL` on every command that talks HTTP (agent and admin commands): one forward proxy for
// this command, instead of HTTPS_PROXY / HTTP_PROXY (NO_PROXY still applies; see agent/proxy.ts).
import { Option, type Command } from 'commander';
import { checkProxyUrl, ProxyConfigError, useProxy } from '../agent/proxy.js';
import { CliError } from './run.js';

function parseProxy(value: string): string {
  try {
    return checkProxyUrl(value, '--proxy');
  } catch (err) {
    if (err instanceof ProxyConfigError) throw new CliError('usage', err.message, 2);
    throw err;
  }
}

/** Adds --proxy to `cmd`; the proxy is installed before its action runs. */
export function withProxyOption(cmd: Command): Command {
  return cmd
    .addOption(
      new Option('--proxy <url>', 'send through this forward proxy (default: HTTPS_PROXY / HTTP_PROXY, minus NO_PROXY)').argParser(
        parseProxy,
      ),
    )
    .hook('preAction', (_cmd, action) => {
      const proxy = action.opts<{ proxy?: string }>().proxy;
      if (proxy !== undefined) useProxy(proxy);
    });
}
