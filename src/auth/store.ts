// The tenancy seam: users, robots, namespaces, role bindings, visibility, push policies, network
// rules and audit. SQLite (auth.db beside meta.db) is the default; every implementation passes the
// shared suite in test/unit/auth/auth-store.suite.ts.

export type Role = 'owner' | 'maintainer' | 'developer' | 'puller';
export const ROLES: readonly Role[] = ['owner', 'maintainer', 'developer', 'puller'];

/** Docker token actions. `delete` is Distribution's action for manifest/blob DELETE. */
export type Action = 'pull' | 'push' | 'delete';

/** What each role may do inside its namespace. */
export const ROLE_ACTIONS: Record<Role, readonly Action[]> = {
  owner: ['pull', 'push', 'delete'],
  maintainer: ['pull', 'push', 'delete'],
  developer: ['pull', 'push'],
  puller: ['pull'],
};

export interface User {
  name: string;
  /** scrypt hash in the form produced by password.ts. */
  passwordHash: string;
  isAdmin: boolean;
  createdAt: number;
}

/** One grant of a robot: a repository (`ns/app`) or a whole namespace (`ns/*`), and actions. */
export interface RobotPermission {
  repository: string;
  actions: Action[];
}

export interface Robot {
  /** Always starts with "robot$" so it can never collide with a user name. */
  name: string;
  /** sha256 of the secret (the secret itself is random, 32 bytes; shown once at creation). */
  secretHash: string;
  permissions: RobotPermission[];
  description: string;
  createdAt: number;
  /** Epoch ms; null for no expiry. */
  expiresAt: number | null;
  revokedAt: number | null;
}

export interface Namespace {
  name: string;
  createdAt: number;
  /** Bytes; null for no quota. */
  quotaBytes: number | null;
  /** Glob patterns (`*` and `?`) of tags that can be pushed once and never overwritten or deleted. */
  immutableTags: string[];
}

export interface RoleBinding {
  namespace: string;
  /** User name or robot name. */
  principal: string;
  role: Role;
}

export type Visibility = 'public' | 'private';

/**
 * Network access per scope (the instance, or one namespace), separately for internal addresses
 * (loopback, RFC 1918, link-local, ULA) and the internet:
 * open = everyone, allowlist = only addresses in `cidrs`, closed = nobody.
 */
export type NetworkMode = 'open' | 'allowlist' | 'closed';
export interface NetworkPolicy {
  /** '' for the instance, otherwise a namespace name. */
  scope: string;
  internal: NetworkMode;
  internet: NetworkMode;
  cidrs: string[];
}

export interface AuditRecord {
  at: number;
  /** Principal name ("anonymous" for unauthenticated). */
  actor: string;
  action: string;
  /** Repository, user, namespace... what the action was on. */
  target: string;
  clientIp: string;
  /** 'ok' or an error code. */
  outcome: string;
  detail?: Record<string, unknown>;
}

export interface AuditQuery {
  actor?: string;
  action?: string;
  /** Prefix match on target (a namespace finds all its repositories). */
  target?: string;
  since?: number;
  until?: number;
  limit: number;
}

export interface AuthStore {
  // Users.
  putUser(user: User): Promise<void>;
  getUser(name: string): Promise<User | null>;
  listUsers(): Promise<User[]>;
  /** Also removes the user's role bindings. */
  deleteUser(name: string): Promise<boolean>;

  // Robots.
  putRobot(robot: Robot): Promise<void>;
  getRobot(name: string): Promise<Robot | null>;
  listRobots(): Promise<Robot[]>;
  revokeRobot(name: string, at: number): Promise<boolean>;
  deleteRobot(name: string): Promise<boolean>;

  // Namespaces and roles.
  createNamespace(name: string, now: number): Promise<boolean>;
  getNamespace(name: string): Promise<Namespace | null>;
  listNamespaces(): Promise<Namespace[]>;
  /** Also removes its bindings, network policy and visibility rows. */
  deleteNamespace(name: string): Promise<boolean>;
  setQuota(namespace: string, bytes: number | null): Promise<boolean>;
  setImmutableTags(namespace: string, patterns: string[]): Promise<boolean>;
  bindRole(binding: RoleBinding): Promise<void>;
  unbindRole(namespace: string, principal: string): Promise<boolean>;
  listBindings(filter: { namespace?: string; principal?: string }): Promise<RoleBinding[]>;

  // Visibility (private unless a row says public).
  setVisibility(repository: string, visibility: Visibility): Promise<void>;
  getVisibility(repository: string): Promise<Visibility>;
  listPublicRepositories(): Promise<string[]>;

  // Network policies.
  putNetworkPolicy(policy: NetworkPolicy): Promise<void>;
  getNetworkPolicy(scope: string): Promise<NetworkPolicy | null>;
  listNetworkPolicies(): Promise<NetworkPolicy[]>;
  deleteNetworkPolicy(scope: string): Promise<boolean>;

  // Audit.
  appendAudit(records: AuditRecord[]): Promise<void>;
  queryAudit(query: AuditQuery): Promise<AuditRecord[]>;

  close(): Promise<void>;
}

/** The namespace of a repository: its first path component. */
export function namespaceOf(repository: string): string {
  const slash = repository.indexOf('/');
  return slash === -1 ? repository : repository.slice(0, slash);
}

export const ROBOT_PREFIX = 'robot$';
