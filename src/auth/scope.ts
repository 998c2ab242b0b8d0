// Docker token scopes: "repository:ns/app:pull,push", "registry:catalog:*".
import { isValidRepository } from '../oci/reference.js';
import type { AccessEntry } from './jwt.js';

export interface Scope {
  type: string;
  name: string;
  actions: string[];
}

/** Parses one scope; null when malformed (an invalid scope grants nothing, it is not an error). */
export function parseScope(raw: string): Scope | null {
  const first = raw.indexOf(':');
  const last = raw.lastIndexOf(':');
  if (first <= 0 || last === first) return null;
  const type = raw.slice(0, first);
  const name = raw.slice(first + 1, last);
  const actions = raw
    .slice(last + 1)
    .split(',')
    .map((a) => a.trim())
    .filter(Boolean);
  if (actions.length === 0) return null;
  if (type === 'repository' && !isValidRepository(name)) return null;
  if (type === 'registry' && name !== 'catalog') return null;
  if (type !== 'repository' && type !== 'registry') return null;
  return { type, name, actions };
}

/** Every `scope` parameter, each possibly holding several space-separated scopes (OAuth2 form). */
export function parseScopes(values: string[]): Scope[] {
  const out: Scope[] = [];
  for (const v of values) for (const part of v.split(' ')) if (part) {
    const s = parseScope(part);
    if (s) out.push(s);
  }
  return out;
}

export function formatScope(s: Scope): string {
  return `${s.type}:${s.name}:${s.actions.join(',')}`;
}

/** True when the token's access list grants `action` on the resource (`*` grants everything). */
export function grants(access: readonly AccessEntry[], type: string, name: string, action: string): boolean {
  for (const a of access) {
    if (a.type === type && a.name === name && (a.actions.includes(action) || a.actions.includes('*'))) return true;
  }
  return false;
}
