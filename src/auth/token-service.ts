// Issues Docker registry tokens: authenticates credentials (users by password, robots by secret),
// grants requested ∩ allowed scopes, signs short-lived JWTs and longer refresh tokens (a user's are
// bound to their current password).
import { createHash, randomUUID } from 'node:crypto';
import { Authorizer, type Subject } from './authorizer.js';
import { signJwt, verifyJwt, type AccessEntry, type TokenClaims } from './jwt.js';
import type { KeyRing } from './keys.js';
import { hashPassword, secretMatches, verifyPassword } from './password.js';
import type { Scope } from './scope.js';
import { ROBOT_PREFIX, type AuthStore } from './store.js';

export interface TokenServiceOptions {
  store: AuthStore;
  keys: KeyRing;
  /** The `service` of the challenge and the `aud` of tokens. */
  service: string;
  issuer: string;
  accessTtlSeconds: number;
  refreshTtlSeconds: number;
  now?: () => number;
}

export interface IssuedToken {
  token: string;
  access_token: string;
  expires_in: number;
  issued_at: string;
  refresh_token?: string;
}

/** Successful password checks are remembered briefly: scrypt is deliberately slow (~50 ms of CPU). */
const PASSWORD_CACHE_MS = 60_000;
const SUBJECT_CACHE_MS = 2_000;
const VERIFIED_CACHE_SIZE = 20_000;

export class TokenService {
  readonly authorizer: Authorizer;
  private readonly now: () => number;
  private readonly passwordOk = new Map<string, number>();
  private readonly activeSubjects = new Map<string, { active: boolean; until: number }>();
  /** Access tokens whose signature was checked, oldest first (Map order). */
  private readonly verified = new Map<string, TokenClaims>();

  constructor(private readonly opts: TokenServiceOptions) {
    this.authorizer = new Authorizer(opts.store);
    this.now = opts.now ?? Date.now;
  }

  get service(): string {
    return this.opts.service;
  }

  /** Checks a user's password or a robot's secret; null when they do not match or the account cannot log in. */
  async authenticate(username: string, password: string): Promise<Subject | null> {
    if (username.startsWith(ROBOT_PREFIX)) {
      const robot = await this.opts.store.getRobot(username);
      if (!robot || !secretMatches(password, robot.secretHash) || !this.robotActive(robot)) return null;
      return { name: robot.name, kind: 'robot', isAdmin: false };
    }
    const user = await this.opts.store.getUser(username);
    if (!user) {
      // Spend the same scrypt time as for a real user, so response times do not reveal which names exist.
      await verifyPassword(password, await this.dummyHash());
      return null;
    }
    const cacheKey = createHash('sha256').update(`${username}\0${password}\0${user.passwordHash}`).digest('hex');
    const cached = this.passwordOk.get(cacheKey);
    if (cached === undefined || cached < this.now()) {
      if (!(await verifyPassword(password, user.passwordHash))) return null;
      if (this.passwordOk.size > 10_000) this.passwordOk.clear();
      this.passwordOk.set(cacheKey, this.now() + PASSWORD_CACHE_MS);
    }
    return { name: user.name, kind: 'user', isAdmin: user.isAdmin };
  }

  /** Grants requested ∩ allowed for each scope (a scope with nothing granted is left out). */
  async grant(subject: Subject, scopes: Scope[]): Promise<AccessEntry[]> {
    const out: AccessEntry[] = [];
    for (const s of scopes) {
      if (s.type === 'registry') {
        if (s.name === 'catalog' && this.authorizer.mayListCatalog(subject)) out.push({ type: 'registry', name: 'catalog', actions: ['*'] });
        continue;
      }
      const allowed = await this.authorizer.allowedActions(subject, s.name);
      const wanted = s.actions.includes('*') ? [...allowed] : s.actions;
      const actions = [...new Set(wanted.filter((a) => allowed.has(a as never)))];
      if (actions.length > 0) out.push({ type: s.type, name: s.name, actions });
    }
    return out;
  }

  async issue(subject: Subject, scopes: Scope[], withRefresh: boolean): Promise<IssuedToken> {
    const access = await this.grant(subject, scopes);
    const iat = Math.floor(this.now() / 1000);
    const claims: TokenClaims = {
      iss: this.opts.issuer,
      sub: subject.name,
      aud: this.opts.service,
      iat,
      nbf: iat - 1,
      exp: iat + this.opts.accessTtlSeconds,
      jti: randomUUID(),
      access,
      kind: subject.kind,
      ...(subject.isAdmin ? { adm: true } : {}),
    };
    const token = signJwt(claims, this.opts.keys);
    const issued: IssuedToken = { token, access_token: token, expires_in: this.opts.accessTtlSeconds, issued_at: new Date(iat * 1000).toISOString() };
    if (withRefresh && subject.kind !== 'anonymous') {
      const pwf = subject.kind === 'user' ? await this.passwordFingerprint(subject.name) : undefined;
      issued.refresh_token = signJwt(
        { ...claims, jti: randomUUID(), access: [], exp: iat + this.opts.refreshTtlSeconds, use: 'refresh', ...(pwf ? { pwf } : {}) },
        this.opts.keys,
      );
    }
    return issued;
  }

  /** The subject of a valid refresh token whose account still may log in. */
  async redeemRefresh(token: string): Promise<Subject | null> {
    const claims = verifyJwt(token, this.opts.keys, this.opts.service, Math.floor(this.now() / 1000));
    if (typeof claims === 'string' || claims.use !== 'refresh' || claims.kind === 'anonymous') return null;
    if (!(await this.subjectActive(claims.sub, claims.kind))) return null;
    if (claims.kind === 'user') {
      const user = await this.opts.store.getUser(claims.sub);
      // A password change (e.g. after a leak) must also end the sessions opened with the old one.
      if (!user || claims.pwf !== fingerprint(user.passwordHash)) return null;
      return { name: user.name, kind: 'user', isAdmin: user.isAdmin };
    }
    return { name: claims.sub, kind: 'robot', isAdmin: false };
  }

  /**
   * Verifies an access token (never a refresh token). Verified tokens are remembered until they
   * expire: an ES256 signature check costs ~75 µs (~13k/s on one core here), far more than
   * serving a cached manifest, and a pulling node repeats one token for minutes.
   */
  verifyAccess(token: string): TokenClaims | string {
    const nowSeconds = Math.floor(this.now() / 1000);
    const hit = this.verified.get(token);
    if (hit) {
      if (nowSeconds < hit.exp) return hit;
      this.verified.delete(token);
      return 'expired';
    }
    const claims = verifyJwt(token, this.opts.keys, this.opts.service, nowSeconds);
    if (typeof claims === 'string') return claims;
    if (claims.use === 'refresh') return 'refresh_token_used_as_access_token';
    if (this.verified.size >= VERIFIED_CACHE_SIZE) this.verified.delete(this.verified.keys().next().value!);
    this.verified.set(token, claims);
    return claims;
  }

  /**
   * Whether the account behind a token still may act: deleted users, and revoked or expired
   * robots, lose access at once instead of when their token expires. Cached for 2 s.
   */
  async subjectActive(name: string, kind: TokenClaims['kind']): Promise<boolean> {
    if (kind === 'anonymous') return true;
    const key = `${kind}\0${name}`;
    const hit = this.activeSubjects.get(key);
    if (hit && hit.until > this.now()) return hit.active;
    let active: boolean;
    if (kind === 'robot') {
      const robot = await this.opts.store.getRobot(name);
      active = !!robot && this.robotActive(robot);
    } else {
      active = (await this.opts.store.getUser(name)) !== null;
    }
    if (this.activeSubjects.size > 10_000) this.activeSubjects.clear();
    this.activeSubjects.set(key, { active, until: this.now() + SUBJECT_CACHE_MS });
    return active;
  }

  /** Forget cached decisions (after an admin change in this process). */
  invalidate(): void {
    this.activeSubjects.clear();
    this.passwordOk.clear();
  }

  private async passwordFingerprint(name: string): Promise<string | undefined> {
    const user = await this.opts.store.getUser(name);
    return user ? fingerprint(user.passwordHash) : undefined;
  }

  private dummy: Promise<string> | undefined;
  private dummyHash(): Promise<string> {
    return (this.dummy ??= hashPassword(randomUUID()));
  }

  private robotActive(robot: { revokedAt: number | null; expiresAt: number | null }): boolean {
    return robot.revokedAt === null && (robot.expiresAt === null || robot.expiresAt > this.now());
  }
}

/**
 * Binds a user's refresh tokens to the password they were issued under: a new password means a
 * new (salted) hash, so every older refresh token stops matching. One-way and short: the token
 * reveals nothing usable about the hash.
 */
function fingerprint(passwordHash: string): string {
  return createHash('sha256').update(`refresh\0${passwordHash}`).digest('base64url').slice(0, 22);
}
