// `shoal user|robot|ns|policy|audit`: administration over the admin REST API (/api/v1), and the
// tenancy options of `shoal serve`.
import { Command, Option } from 'commander';
import { request } from 'undici';
import { parseDuration, parseSize, serveDefaults } from '../server/config.js';

/** Tenancy flags of `shoal serve` (kept here so main.ts only calls this). */
export function addTenancyServeOptions(cmd: Command): Command {
  return cmd
    .option('--auth', 'turn on Docker token auth and RBAC (off: anyone may push and pull). With SHOAL_ADMIN_PASSWORD set, creates the user "admin" when missing; with no user at all and no SHOAL_ADMIN_PASSWORD, creates "admin" with a random password printed once to stderr and left in DATA/auth/initial-admin-password', false)
    .option('--auth-service <name>', 'the token "service" (audience) named in challenges (env SHOAL_AUTH_SERVICE)', serveDefaults.authService)
    .option('--auth-realm <url>', 'token endpoint URL given to clients; default http://<Host header>/auth/token')
    .option('--token-ttl <duration>', 'lifetime of access tokens (env SHOAL_TOKEN_TTL)', serveDefaults.tokenTtl)
    .option('--refresh-ttl <duration>', 'lifetime of refresh tokens (env SHOAL_REFRESH_TTL)', serveDefaults.refreshTtl)
    .option('--key-rotation <duration>', 'replace the token signing key this often; old public keys stay until their tokens expire (env SHOAL_KEY_ROTATION)', serveDefaults.keyRotation)
    .option('--trusted-proxy <cidr...>', 'peers whose X-Forwarded-For is believed (repeatable); others\' is ignored', [])
    .option('--network-default-deny', 'with no instance network policy stored, refuse every address (set one with `shoal policy network`)', false)
    .option('--rate-limit-ip <pulls,other>', 'requests/s per client IP for pulls (manifest+blob GET/HEAD, tokens) and for other work; 0 = unlimited (env SHOAL_RATE_LIMIT_IP)', serveDefaults.rateLimitIp)
    .option('--rate-limit-token <pulls,other>', 'requests/s per account, as --rate-limit-ip (env SHOAL_RATE_LIMIT_TOKEN)', serveDefaults.rateLimitToken)
    .option('--max-concurrent <n>', 'requests in flight at once; other work gets at most half, so pulls keep flowing under a storm; 0 = unlimited (env SHOAL_MAX_CONCURRENT)', serveDefaults.maxConcurrent);
}

interface Conn {
  url: string;
  user?: string;
  password?: string;
}

function connOf(cmd: Command): Conn {
  const o = cmd.optsWithGlobals() as { url?: string; user?: string; password?: string };
  return {
    url: (o.url ?? process.env.SHOAL_URL ?? 'http://127.0.0.1:5000').replace(/\/+$/, ''),
    user: o.user ?? process.env.SHOAL_USER,
    password: o.password ?? process.env.SHOAL_PASSWORD,
  };
}

/** Calls the admin API; prints the typed error and exits 1 when it answers one. */
export async function api(conn: Conn, method: string, path: string, body?: unknown): Promise<unknown> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (conn.user !== undefined) headers.authorization = `Basic ${Buffer.from(`${conn.user}:${conn.password ?? ''}`).toString('base64')}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res;
  try {
    res = await request(`${conn.url}/api/v1/${path}`, { method: method as 'GET', headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    fail(`cannot reach ${conn.url}: ${(err as Error).message}`);
  }
  const text = await res.body.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = text;
  }
  if (res.statusCode >= 400) {
    const e = (json as { errors?: Array<{ code: string; message: string }> })?.errors?.[0];
    fail(e ? `${e.code}: ${e.message}` : `HTTP ${res.statusCode}: ${text.slice(0, 300)}`);
  }
  return json;
}

function fail(message: string): never {
  console.error(`shoal: ${message}`);
  process.exit(1);
}

const print = (v: unknown, json: boolean, lines: () => string[]) => console.log(json ? JSON.stringify(v, null, 2) : lines().join('\n'));
const when = (ms: number | null) => (ms === null ? 'never' : new Date(ms).toISOString());

async function readPassword(opts: { password?: string; passwordStdin?: boolean }): Promise<string> {
  if (opts.password !== undefined) return opts.password;
  if (opts.passwordStdin) {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
  }
  fail('give the new password with --password-stdin (preferred) or --new-password');
}

function connectionOptions(cmd: Command): Command {
  return cmd
    .option('--url <url>', 'registry base URL (env SHOAL_URL)', undefined)
    .option('--user <name>', 'administrator name (env SHOAL_USER)')
    .option('--password <password>', 'administrator password (env SHOAL_PASSWORD; prefer the variable: flags show in ps)')
    .option('--json', 'print JSON', false);
}

/** A command group; its subcommands each get the connection options (commander reads options after the subcommand name only on the subcommand). */
const groups: Command[] = [];
function group(cmd: Command): Command {
  groups.push(cmd);
  return cmd;
}

export function registerTenancyCommands(program: Command): void {
  const user = group(program.command('user').description('Manage users (administrators only). Users log in with `docker/podman login`; their rights come from namespace roles (`shoal ns grant`).'));
  user
    .command('list')
    .description('List users and whether they are administrators.')
    .action(async (_o, cmd: Command) => {
      const rows = (await api(connOf(cmd), 'GET', 'users')) as Array<{ name: string; admin: boolean }>;
      print(rows, cmd.optsWithGlobals().json, () => rows.map((u) => `${u.name}${u.admin ? ' (admin)' : ''}`));
    });
  user
    .command('add <name>')
    .description('Create a user. The password comes from stdin (--password-stdin) or --new-password; at least 8 characters.')
    .option('--new-password <password>', 'the new user\'s password')
    .option('--password-stdin', 'read the new user\'s password from stdin', false)
    .option('--admin', 'make the user an instance administrator', false)
    .action(async (name: string, o, cmd: Command) => {
      const password = await readPassword({ password: o.newPassword, passwordStdin: o.passwordStdin });
      const r = await api(connOf(cmd), 'POST', 'users', { name, password, admin: o.admin });
      print(r, cmd.optsWithGlobals().json, () => [`created user ${name}${o.admin ? ' (admin)' : ''}`]);
    });
  user
    .command('passwd <name>')
    .description('Set a user\'s password (--password-stdin or --new-password).')
    .option('--new-password <password>', 'the new password')
    .option('--password-stdin', 'read the new password from stdin', false)
    .action(async (name: string, o, cmd: Command) => {
      const password = await readPassword({ password: o.newPassword, passwordStdin: o.passwordStdin });
      await api(connOf(cmd), 'PUT', `users/${encodeURIComponent(name)}`, { password });
      console.log(`password of ${name} changed`);
    });
  user
    .command('rm <name>')
    .description('Delete a user and their namespace roles. Tokens they hold stop working within seconds.')
    .action(async (name: string, _o, cmd: Command) => {
      await api(connOf(cmd), 'DELETE', `users/${encodeURIComponent(name)}`);
      console.log(`deleted user ${name}`);
    });

  const robot = group(program.command('robot').description('Robot accounts for CI systems and clusters: scoped, expiring, revocable credentials. Log in as "robot$NAME" with the secret printed at creation.'));
  robot
    .command('create <name>')
    .description('Create a robot. --access REPO:ACTIONS is repeatable, e.g. --access team/app:pull,push --access team/*:pull. Prints the secret once.')
    .requiredOption('--access <repo:actions...>', 'repository (or namespace/*) and actions among pull, push, delete')
    .option('--expires <duration>', 'lifetime, e.g. 30d or 12h (default: no expiry)')
    .option('--description <text>', 'what the robot is for', '')
    .action(async (name: string, o, cmd: Command) => {
      const permissions = (o.access as string[]).map((a) => {
        const i = a.lastIndexOf(':');
        if (i <= 0) fail(`--access "${a}": expected REPOSITORY:ACTIONS, e.g. team/app:pull`);
        return { repository: a.slice(0, i), actions: a.slice(i + 1).split(',') };
      });
      const expiresInSeconds = o.expires ? Math.round(parseDuration(o.expires) / 1000) : null;
      const r = (await api(connOf(cmd), 'POST', 'robots', { name, permissions, expiresInSeconds, description: o.description })) as { name: string; secret: string; expiresAt: number | null };
      print(r, cmd.optsWithGlobals().json, () => [`robot: ${r.name}`, `secret: ${r.secret}`, `expires: ${when(r.expiresAt)}`, '(the secret is not shown again)']);
    });
  robot
    .command('list')
    .description('List robots with their grants, expiry and revocation.')
    .action(async (_o, cmd: Command) => {
      const rows = (await api(connOf(cmd), 'GET', 'robots')) as Array<{ name: string; permissions: Array<{ repository: string; actions: string[] }>; expiresAt: number | null; revokedAt: number | null }>;
      print(rows, cmd.optsWithGlobals().json, () =>
        rows.map((r) => `${r.name}  ${r.permissions.map((p) => `${p.repository}:${p.actions.join(',')}`).join(' ')}  expires ${when(r.expiresAt)}${r.revokedAt ? `  REVOKED ${when(r.revokedAt)}` : ''}`),
      );
    });
  robot
    .command('revoke <name>')
    .description('Revoke a robot: its secret and any token it holds stop working within seconds.')
    .action(async (name: string, _o, cmd: Command) => {
      await api(connOf(cmd), 'POST', `robots/${encodeURIComponent(name)}/revoke`);
      console.log(`revoked ${name}`);
    });
  robot
    .command('rm <name>')
    .description('Delete a robot.')
    .action(async (name: string, _o, cmd: Command) => {
      await api(connOf(cmd), 'DELETE', `robots/${encodeURIComponent(name)}`);
      console.log(`deleted ${name}`);
    });

  const ns = group(program.command('ns').description('Namespaces: the first path component of repository names (team/app is in "team"). Roles: owner, maintainer (pull, push, delete), developer (pull, push), puller (pull).'));
  ns.command('list').description('List namespaces.').action(async (_o, cmd: Command) => {
    const rows = (await api(connOf(cmd), 'GET', 'namespaces')) as Array<{ name: string; quotaBytes: number | null; immutableTags: string[] }>;
    print(rows, cmd.optsWithGlobals().json, () => rows.map((n) => `${n.name}  quota ${n.quotaBytes ?? 'none'}  immutable ${n.immutableTags.join(',') || '-'}`));
  });
  ns.command('create <name>').description('Create a namespace.').action(async (name: string, _o, cmd: Command) => {
    await api(connOf(cmd), 'POST', 'namespaces', { name });
    console.log(`created namespace ${name}`);
  });
  ns.command('show <name>').description('Show a namespace: members, quota and usage, immutable tags, network policy.').action(async (name: string, _o, cmd: Command) => {
    const r = await api(connOf(cmd), 'GET', `namespaces/${encodeURIComponent(name)}`);
    console.log(JSON.stringify(r, null, 2));
  });
  ns.command('rm <name>').description('Delete a namespace\'s policies and roles (its images stay; delete them first if they should go).').action(async (name: string, _o, cmd: Command) => {
    await api(connOf(cmd), 'DELETE', `namespaces/${encodeURIComponent(name)}`);
    console.log(`deleted namespace ${name}`);
  });
  ns.command('grant <namespace> <principal> <role>')
    .description('Give a user or robot ("robot$name") a role in a namespace: owner, maintainer, developer or puller.')
    .action(async (namespace: string, principal: string, role: string, _o, cmd: Command) => {
      await api(connOf(cmd), 'PUT', `namespaces/${encodeURIComponent(namespace)}/members/${encodeURIComponent(principal)}`, { role });
      console.log(`${principal} is ${role} of ${namespace}`);
    });
  ns.command('revoke <namespace> <principal>').description('Remove a user\'s or robot\'s role in a namespace.').action(async (namespace: string, principal: string, _o, cmd: Command) => {
    await api(connOf(cmd), 'DELETE', `namespaces/${encodeURIComponent(namespace)}/members/${encodeURIComponent(principal)}`);
    console.log(`${principal} has no role in ${namespace} any more`);
  });

  const policy = group(program.command('policy').description('Repository visibility, quotas, tag immutability and network access policies.'));
  policy
    .command('visibility <repository> <public|private>')
    .description('Make a repository public (anonymous pulls) or private (the default).')
    .action(async (repository: string, visibility: string, _o, cmd: Command) => {
      await api(connOf(cmd), 'PUT', 'visibility', { repository, visibility });
      console.log(`${repository} is ${visibility}`);
    });
  policy
    .command('quota <namespace> <size|none>')
    .description('Limit a namespace\'s storage (e.g. 10GiB), enforced when an upload finishes and when a manifest is pushed; "none" removes it.')
    .action(async (namespace: string, size: string, _o, cmd: Command) => {
      const bytes = size === 'none' ? null : parseSize(size);
      await api(connOf(cmd), 'PUT', `namespaces/${encodeURIComponent(namespace)}/quota`, { bytes });
      console.log(`quota of ${namespace}: ${size}`);
    });
  policy
    .command('immutable <namespace> [patterns...]')
    .description('Tags matching these globs (e.g. "v*") can be pushed once, never overwritten or deleted. No patterns clears the rule.')
    .action(async (namespace: string, patterns: string[], _o, cmd: Command) => {
      await api(connOf(cmd), 'PUT', `namespaces/${encodeURIComponent(namespace)}/immutable`, { patterns });
      console.log(`immutable tags in ${namespace}: ${patterns.join(' ') || '(none)'}`);
    });
  policy
    .command('network [namespace]')
    .description(
      'Set who may connect, for the whole instance (no namespace) or one namespace. Internal addresses (loopback, RFC 1918, link-local, ULA) and the internet ' +
        'each get a mode: open, allowlist (only --allow CIDRs) or closed. --clear removes the policy.',
    )
    .addOption(new Option('--internal <mode>', 'mode for internal addresses').choices(['open', 'allowlist', 'closed']).default('open'))
    .addOption(new Option('--internet <mode>', 'mode for internet addresses').choices(['open', 'allowlist', 'closed']).default('closed'))
    .option('--allow <cidr...>', 'allowed source networks for "allowlist" modes', [])
    .option('--clear', 'remove the policy', false)
    .action(async (namespace: string | undefined, o, cmd: Command) => {
      const scope = namespace ? encodeURIComponent(namespace) : '_instance';
      if (o.clear) {
        await api(connOf(cmd), 'DELETE', `network/${scope}`);
        console.log(`network policy of ${namespace ?? 'the instance'} removed`);
        return;
      }
      await api(connOf(cmd), 'PUT', `network/${scope}`, { internal: o.internal, internet: o.internet, cidrs: o.allow });
      console.log(`network policy of ${namespace ?? 'the instance'}: internal ${o.internal}, internet ${o.internet}, allow ${o.allow.join(' ') || '-'}`);
    });
  policy.command('list').description('Show public repositories and network policies.').action(async (_o, cmd: Command) => {
    const c = connOf(cmd);
    console.log(JSON.stringify({ visibility: await api(c, 'GET', 'visibility'), network: await api(c, 'GET', 'network') }, null, 2));
  });

  connectionOptions(program.command('audit'))
    .description('Query the audit trail: pushes, pulls, deletes, logins and permission changes, newest first, with who, what, from where and when.')
    .option('--actor <name>', 'only this user or robot')
    .option('--action <action>', 'only this action (push, pull, delete, login, user.create, ns.member.set, ...)')
    .option('--target <prefix>', 'only targets starting with this (a namespace or repository)')
    .option('--since <duration>', 'only the last DURATION (e.g. 1h)')
    .option('--limit <n>', 'at most this many records', '100')
    .action(async (o, cmd: Command) => {
      const q = new URLSearchParams();
      if (o.actor) q.set('actor', o.actor);
      if (o.action) q.set('action', o.action);
      if (o.target) q.set('target', o.target);
      if (o.since) q.set('since', String(Date.now() - parseDuration(o.since)));
      q.set('limit', o.limit);
      const rows = (await api(connOf(cmd), 'GET', `audit?${q}`)) as Array<{ at: number; actor: string; action: string; target: string; clientIp: string; outcome: string }>;
      print(rows, o.json, () => rows.map((r) => `${new Date(r.at).toISOString()}  ${r.actor}  ${r.action}  ${r.target}  from ${r.clientIp || '-'}  ${r.outcome}`));
    });

  for (const g of groups) for (const sub of g.commands) connectionOptions(sub);
}
