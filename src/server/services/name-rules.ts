// Agent names follow Wazuh's rule: letters, digits, '-', '_', '.'; 1 to 128 bytes (ASCII only, so
// bytes = characters). Nothing else reaches the database, a shell or a log line.
export const AGENT_NAME = /^[A-Za-z0-9._-]{1,128}$/;

export function isValidAgentName(name: string): boolean {
  return AGENT_NAME.test(name);
}

/** Longest token name pattern accepted at token creation (names are at most 128 characters). */
export const MAX_NAME_PATTERN_LENGTH = 128;

/** Token name patterns: a glob with `*` and `?` over the same alphabet, anchored at both ends. */
export const NAME_PATTERN = new RegExp(`^[A-Za-z0-9._*?-]{1,${MAX_NAME_PATTERN_LENGTH}}$`);

/**
 * Glob match without a regular expression: two pointers and the position of the last `*`, so the
 * work is at most pattern length × name length steps (128 × 128), never exponential. A regex built
 * from `*-*-*-*-*-*.x` backtracked for 28 s on one 128-character name and blocked the event loop.
 * `*` matches any run of name characters (possibly empty), `?` exactly one, anything else itself.
 */
export function globMatches(pattern: string, name: string): boolean {
  let p = 0;
  let n = 0;
  let star = -1; // pattern index just after the last `*` seen
  let resume = 0; // name index that `*` will absorb up to on the next backtrack
  while (n < name.length) {
    const c = pattern[p];
    if (c === '*') {
      star = ++p;
      resume = n;
    } else if (c !== undefined && (c === '?' || c === name[n])) {
      p++;
      n++;
    } else if (star >= 0) {
      p = star;
      n = ++resume;
    } else {
      return false;
    }
  }
  while (pattern[p] === '*') p++;
  return p === pattern.length;
}
