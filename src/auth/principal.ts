// Who a request acts as. The authentication policy (issue 5) sets it on ctx.state; later policies
// (RBAC, quota, the delivery-chain gate) read it through principalOf() and never parse tokens again.
import type { RequestContext } from '../registry/context.js';

export interface Principal {
  /** User or robot name; "anonymous" when no credentials were presented. */
  name: string;
  kind: 'user' | 'robot' | 'anonymous';
  /** Instance administrators bypass RBAC and the vulnerability gate on pulls. */
  isAdmin: boolean;
  /** The client address after trusted-proxy resolution (X-Forwarded-For only from a trusted peer). */
  clientIp: string;
}

const KEY = 'principal';

export function setPrincipal(ctx: RequestContext, principal: Principal): void {
  ctx.state[KEY] = principal;
}

/** With auth off there is no principal: callers treat that as "everyone may", as the registry did before. */
export function principalOf(ctx: RequestContext): Principal | undefined {
  return ctx.state[KEY] as Principal | undefined;
}
