// Agent names follow Wazuh's rule: letters, digits, '-', '_', '.'; 1 to 128 bytes (ASCII only, so
// bytes = characters). Nothing else reaches the database, a shell or a log line.
export const AGENT_NAME = /^[A-Za-z0-9._-]{1,128}$/;

export function isValidAgentName(name: string): boolean {
  return AGENT_NAME.test(name);
}

/** Token name patterns: a glob with `*` and `?` over the same alphabet, anchored at both ends. */
export const NAME_PATTERN = /^[A-Za-z0-9._*?-]{1,128}$/;

export function globMatches(pattern: string, name: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.*?-]/g, (ch) => (ch === '*' ? '[A-Za-z0-9._-]*' : ch === '?' ? '[A-Za-z0-9._-]' : `\\${ch}`))}$`);
  return re.test(name);
}
