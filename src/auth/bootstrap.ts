// First-run bootstrap of the `admin` user. There is never a default password: either the operator
// gives one (SHOAL_ADMIN_PASSWORD, checked like any new password) or, with token auth on and no
// user at all, a random one is generated, printed once to stderr and left in
// <data>/auth/initial-admin-password (0600) for the operator to read and then change.
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { writeFileAtomic } from '../storage/durable-file.js';
import type { AuditLog } from './audit.js';
import { checkPasswordStrength, hashPassword } from './password.js';
import type { AuthStore } from './store.js';

export const INITIAL_PASSWORD_FILE = 'initial-admin-password';

export interface BootstrapOptions {
  store: AuthStore;
  audit: AuditLog;
  log: Logger;
  dataDir: string;
  auth: boolean;
  /** SHOAL_ADMIN_PASSWORD, when set. */
  adminPassword?: string;
  /** Where the one-time line with a generated password goes (stderr: not in the JSON log stream). */
  announce?: (line: string) => void;
}

export async function bootstrapAdmin(opts: BootstrapOptions): Promise<void> {
  const { store, audit, log } = opts;
  if (opts.adminPassword) {
    if (await store.getUser('admin')) return;
    // Only checked when it is about to become the password: an existing admin is never changed by it.
    const weak = checkPasswordStrength(opts.adminPassword);
    if (weak) throw new Error(`SHOAL_ADMIN_PASSWORD is too weak: ${weak}`);
    await createAdmin(store, opts.adminPassword, audit, 'SHOAL_ADMIN_PASSWORD');
    log.info('created user "admin" from SHOAL_ADMIN_PASSWORD');
    return;
  }
  if (!opts.auth || (await store.listUsers()).length > 0) return;
  // 24 base64url characters = 144 random bits.
  const password = randomBytes(18).toString('base64url');
  const file = join(opts.dataDir, 'auth', INITIAL_PASSWORD_FILE);
  // The file is written before the user exists: a crash in between leaves no admin, so the next
  // start generates (and writes) a new password; the other order could lose the only password.
  await mkdir(join(file, '..'), { recursive: true, mode: 0o700 });
  // 0600, and the directory synced: the file is either absent or whole, and never world-readable.
  await writeFileAtomic(file, `${password}\n`, { mode: 0o600, syncDir: true });
  await createAdmin(store, password, audit, 'generated');
  (opts.announce ?? ((l) => process.stderr.write(`${l}\n`)))(
    `shoal: created user "admin" with generated password ${password} (also in ${file}); log in and change it now: shoal user passwd admin`,
  );
  log.warn({ file }, 'created user "admin" with a generated password; change it');
}

async function createAdmin(store: AuthStore, password: string, audit: AuditLog, source: string): Promise<void> {
  await store.putUser({ name: 'admin', passwordHash: await hashPassword(password), isAdmin: true, createdAt: Date.now() });
  audit.record({ at: Date.now(), actor: 'bootstrap', action: 'user.create', target: 'admin', clientIp: '', outcome: 'ok', detail: { admin: true, password: source } });
}
