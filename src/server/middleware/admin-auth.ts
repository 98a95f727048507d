// Admin bearer authentication with scopes. `*` (the bootstrap key) may do anything; otherwise the
// route's scope must be granted explicitly (hasScope, the one rule, shared with the console).
// Missing or wrong credentials: 401 `unauthorized`; a valid credential without the scope: 403
// `forbidden`. The credential is never logged or echoed.
import type { MiddlewareHandler } from 'hono';
import { ApiError } from '../errors.js';
import { hasScope, type AdminScope } from '../services/admin-credentials.js';
import { authenticateAdmin } from '../services/admin-keys.js';
import type { AppEnv } from '../types.js';

/** `scope` '*' admits only full (bootstrap-grade) credentials, e.g. for managing admin keys. */
export function requireAdmin(scope: AdminScope): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const { logger, telemetry } = c.get('deps');
    // A failed sign-in is logged at info with its code and why, and counted; never with the credential
    // (its public key id at most, which is what an operator revokes).
    const refuse = (code: 'unauthorized' | 'forbidden', reason: string, keyId?: string) => {
      logger.info({ code, reason, route: c.req.routePath, ...(keyId ? { adminKeyId: keyId } : {}) }, 'admin sign-in refused');
      telemetry.count('admin_auth_failures_total', { code });
    };
    const header = c.req.header('authorization') ?? '';
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match) {
      refuse('unauthorized', 'no bearer credential');
      throw new ApiError('unauthorized', 'admin credential required');
    }
    const admin = await authenticateAdmin(c.get('deps').database.db, match[1]!);
    // Same answer for a malformed credential, unknown id, wrong secret and revoked key: nothing to enumerate.
    if (!admin) {
      refuse('unauthorized', 'malformed, unknown, revoked or wrong credential');
      throw new ApiError('unauthorized', 'invalid admin credential');
    }
    if (!hasScope(admin.scopes, scope)) {
      refuse('forbidden', `lacks scope ${scope}`, admin.id);
      throw new ApiError(
        'forbidden',
        scope === '*' ? 'this action needs a full admin credential' : `this credential lacks the ${scope} scope`,
      );
    }
    c.set('admin', admin);
    await next();
  };
}
