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
