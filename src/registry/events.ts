// Registry events after a change is committed. Audit (issue 5) and delivery chains (issue 6)
// subscribe here instead of hooking handlers; listeners run after the response's data is durable
// and must not throw into the request (errors are the listener's to log).
import { EventEmitter } from 'node:events';
import type { Digest } from '../oci/digest.js';

export interface RegistryEventMap {
  'manifest.pushed': [{ repo: string; digest: Digest; mediaType: string; tags: string[]; subject?: Digest; artifactType?: string }];
  'manifest.deleted': [{ repo: string; digest: Digest }];
  'tag.deleted': [{ repo: string; tag: string }];
  'blob.deleted': [{ repo: string; digest: Digest }];
}

export class RegistryEvents extends EventEmitter<RegistryEventMap> {
  /** Calls every listener; one that throws neither breaks the caller nor starves the others. */
  publish<K extends keyof RegistryEventMap>(event: K, ...args: RegistryEventMap[K]): void {
    for (const listener of this.listeners(event) as ((...a: RegistryEventMap[K]) => unknown)[]) {
      try {
        listener(...args);
      } catch {
        // A throwing listener is the listener's bug; the change itself is committed.
      }
    }
  }
}
