// Who may do what: roles per namespace, robot grants, public visibility, admins. The token
// service asks this at issuance (granted = requested ∩ allowed); requests then carry the answer.
import { ROLE_ACTIONS, namespaceOf, type Action, type AuthStore } from './store.js';

export interface Subject {
  name: string;
  kind: 'user' | 'robot' | 'anonymous';
  isAdmin: boolean;
}

export class Authorizer {
  constructor(private readonly store: AuthStore) {}

  /** Actions `subject` may perform on `repository`. */
  async allowedActions(subject: Subject, repository: string): Promise<Set<Action>> {
    if (subject.isAdmin) return new Set<Action>(['pull', 'push', 'delete']);
    const allowed = new Set<Action>();
    const ns = namespaceOf(repository);
    if (subject.kind !== 'anonymous') {
      const nsRow = await this.store.getNamespace(ns);
      if (nsRow) {
        for (const b of await this.store.listBindings({ namespace: ns, principal: subject.name })) {
          for (const a of ROLE_ACTIONS[b.role]) allowed.add(a);
        }
      }
    }
    if (subject.kind === 'robot') {
      const robot = await this.store.getRobot(subject.name);
      for (const p of robot?.permissions ?? []) {
        if (p.repository === repository || (p.repository.endsWith('/*') && repository.startsWith(p.repository.slice(0, -1))) || p.repository === `${ns}/*`) {
          for (const a of p.actions) allowed.add(a);
        }
      }
    }
    if (!allowed.has('pull') && (await this.store.getVisibility(repository)) === 'public') allowed.add('pull');
    return allowed;
  }

  /** Catalog listing covers every repository: administrators only. */
  mayListCatalog(subject: Subject): boolean {
    return subject.isAdmin;
  }
}
