// Checks of what a user types that must fail as usage errors (exit 2) before anything is sent:
// a server URL, an input file.
import { access, constants } from 'node:fs/promises';
import { usage } from './run.js';

/** An http(s) URL: `--server 127.0.0.1:8080` (no scheme) is a usage error, not a failed request. */
export function parseServerUrl(flag: string): (text: string) => string {
  return (text) => {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      throw usage(`${flag} must be an http:// or https:// URL, got ${JSON.stringify(text)}`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw usage(`${flag} must be an http:// or https:// URL, got ${JSON.stringify(text)}`);
    return text;
  };
}

/** A file the command reads: missing or unreadable is a usage error naming the flag. */
export async function requireReadable(flag: string, path: string): Promise<void> {
  try {
    await access(path, constants.R_OK);
  } catch {
    throw usage(`${flag}: no readable file at ${path}`);
  }
}
