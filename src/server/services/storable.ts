// PostgreSQL cannot store U+0000 (not in text, not as \u0000 in jsonb: 22P05), nor an unpaired
// UTF-16 surrogate (jsonb refuses a lone \ud800 escape). JavaScript strings and JSON.parse accept
// both, so input carrying one is refused at the boundary with a 4xx, not failed in the database as
// a 500.

// With the u flag, a surrogate range matches only surrogates that are not part of a pair.
const UNSTORABLE = /\0|[\uD800-\uDFFF]/u;

/** A string PostgreSQL can store as text or inside jsonb. */
export const isStorableText = (s: string): boolean => !UNSTORABLE.test(s);

// An escaped backslash (consumed as a pair, so what follows it is literal) or a \uXXXX escape.
const ESCAPE = /\\(?:\\|u([0-9a-fA-F]{4}))/g;

/**
 * JSON text (already accepted by JSON.parse) whose strings and keys PostgreSQL's jsonb can store.
 * Valid JSON can only spell NUL or a surrogate as a \u escape (raw control characters are not
 * allowed in JSON strings and the text came from strict UTF-8), so only escapes are examined.
 */
export function isStorableJsonText(text: string): boolean {
  if (!text.includes('\\u')) return true;
  let pendingHigh = -1; // index just after an unpaired high surrogate escape
  for (const m of text.matchAll(ESCAPE)) {
    const code = m[1] === undefined ? -1 : parseInt(m[1], 16);
    if (pendingHigh >= 0) {
      if (m.index !== pendingHigh || code < 0xdc00 || code > 0xdfff) return false;
      pendingHigh = -1;
      continue;
    }
    if (code === 0) return false;
    if (code >= 0xd800 && code <= 0xdbff) pendingHigh = m.index + m[0].length;
    else if (code >= 0xdc00 && code <= 0xdfff) return false;
  }
  return pendingHigh < 0;
}

/**
 * A database refusal that only the stored value can cause: a data exception (SQLSTATE class 22,
 * e.g. a number beyond numeric's range) or a program limit (54xxx, e.g. nesting too deep for jsonb).
 * Raised by a statement holding a single message, it is that message's fault: a 4xx, not a 500.
 */
export function isUnstorableValueError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^(22|54)[0-9A-Z]{3}$/.test(code);
}

/** Deeper than this is refused: real inventories nest about six levels; databases have stack limits. */
export const MAX_JSON_DEPTH = 128;

/**
 * Whether valid JSON text nests arrays and objects at most `max` deep. Strings are skipped with
 * indexOf, so the scan costs little more than a pass over the structural characters. (PGlite
 * silently returns nothing for jsonb nested thousands deep, and PostgreSQL fails the statement.)
 */
export function jsonDepthWithin(text: string, max = MAX_JSON_DEPTH): boolean {
  const structural = /["[\]{}]/g; // the regex engine skips everything else natively
  let depth = 0;
  for (let m = structural.exec(text); m !== null; m = structural.exec(text)) {
    const c = text.charCodeAt(m.index);
    if (c === 0x22) {
      // Find the closing quote: one not preceded by an odd number of backslashes.
      let end = text.indexOf('"', m.index + 1);
      for (;;) {
        if (end < 0) return false; // unterminated string: not JSON
        let slashes = 0;
        while (text.charCodeAt(end - 1 - slashes) === 0x5c) slashes++;
        if (slashes % 2 === 0) break;
        end = text.indexOf('"', end + 1);
      }
      structural.lastIndex = end + 1;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return false;
    } else {
      depth--;
    }
  }
  return true;
}
