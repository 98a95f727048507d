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
 * Whether valid JSON text nests arrays and objects at most `max` deep. (PGlite silently returns
 * nothing for jsonb nested thousands deep, and PostgreSQL fails the statement.)
 */
export function jsonDepthWithin(text: string, max = MAX_JSON_DEPTH): boolean {
  return scanJson(text, max, false) === undefined;
}

/** Why valid JSON text cannot be stored as jsonb (depth or a number out of numeric's range), if it cannot. */
export function jsonShapeRefusal(text: string, maxDepth = MAX_JSON_DEPTH): 'too_deep' | 'number_out_of_range' | undefined {
  return scanJson(text, maxDepth, true);
}

/**
 * One pass over valid JSON text: strings are skipped with indexOf, structural characters counted,
 * and numbers read as runs of characters. A number of up to 15 characters without an exponent is
 * always storable, so only long or exponent numbers are parsed. (A plain charCodeAt loop: about 3×
 * less CPU than a regex token loop on a 4 KiB inventory, which allocated a match per token.)
 */
function scanJson(text: string, max: number, numbers: boolean): 'too_deep' | 'number_out_of_range' | undefined {
  let depth = 0;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // Find the closing quote: one not preceded by an odd number of backslashes.
      let end = text.indexOf('"', i + 1);
      for (;;) {
        if (end < 0) return 'too_deep'; // unterminated string: not JSON
        let slashes = 0;
        while (text.charCodeAt(end - 1 - slashes) === 0x5c) slashes++;
        if ((slashes & 1) === 0) break;
        end = text.indexOf('"', end + 1);
      }
      i = end;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return 'too_deep';
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    } else if (numbers && (c === 0x2d || (c >= 0x30 && c <= 0x39))) {
      // The number's run: digits, '.', '+', '-', 'e' and 'E' (what -?\d[\d.eE+-]* matched).
      let j = i + 1;
      let exponent = false;
      for (; j < n; j++) {
        const x = text.charCodeAt(j);
        if ((x >= 0x30 && x <= 0x39) || x === 0x2e || x === 0x2b || x === 0x2d) continue;
        if (x === 0x65 || x === 0x45) {
          exponent = true;
          continue;
        }
        break;
      }
      if ((exponent || j - i > 15) && !isStorableJsonNumber(text.slice(i, j))) return 'number_out_of_range';
      i = j - 1;
    }
  }
  return undefined;
}

// PostgreSQL stores a jsonb number as numeric, read by numeric_in: at most 131,072 digits before
// the decimal point (base-10000 weight ≤ 32767), 16,383 after it (display scale, trailing zeros
// included), and an exponent below 2^30 − 1 in magnitude (PostgreSQL 15; 17 also takes 2^30 − 1
// itself, and the stricter limit is kept). JSON.parse accepts any length, so a number beyond these
// would fail the storing statement, and with it every message batched beside it.
const MAX_DECIMAL_WEIGHT = 4 * 32768 - 1; // the most significant digit may be worth at most 10^131071
const MAX_DISPLAY_SCALE = 0x3fff;
const MAX_EXPONENT = Math.floor(0x7fffffff / 2); // numeric_in refuses |exponent| ≥ INT_MAX / 2
const NUMBER = /^-?(\d+)(?:\.(\d+))?(?:[eE]([+-]?)(\d+))?$/;

/**
 * Whether PostgreSQL's numeric (and so jsonb) accepts this JSON number literal. -0 is accepted but
 * stored as 0, as numeric has no negative zero; the value is equal, as JSON compares numbers.
 */
export function isStorableJsonNumber(literal: string): boolean {
  const m = NUMBER.exec(literal);
  if (!m) return false;
  const int = m[1]!;
  const frac = m[2] ?? '';
  const expDigits = (m[4] ?? '0').replace(/^0+(?=\d)/, '');
  if (expDigits.length > 10) return false;
  const exp = (m[3] === '-' ? -1 : 1) * Number(expDigits);
  if (Math.abs(exp) >= MAX_EXPONENT) return false;
  if (Math.max(0, frac.length - exp) > MAX_DISPLAY_SCALE) return false;
  const digits = int + frac;
  const first = digits.search(/[1-9]/);
  if (first < 0) return true; // zero: weight 0 whatever its exponent
  return int.length - 1 - first + exp <= MAX_DECIMAL_WEIGHT;
}
