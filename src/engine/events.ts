// Kubernetes Events on the Investigation, one per phase outcome, so `kubectl describe inv` tells the
// story. Emitting is fire-and-forget: a lost Event must never fail or slow a reconcile.
import type { Investigation } from '../api/investigation.js';
import type { Logger } from '../log.js';
import { type Kube } from '../kube/client.js';
import { errorMessage } from '../errors.js';

export class EventRecorder {
  constructor(
    private readonly kube: Kube,
    private readonly identity: string,
    private readonly log: Logger,
  ) {}

  emit(inv: Investigation, type: 'Normal' | 'Warning', reason: string, message: string): void {
    const now = new Date();
    this.kube.core
      .createNamespacedEvent({
        namespace: inv.metadata.namespace,
        body: {
          metadata: { generateName: `${inv.metadata.name}.`, namespace: inv.metadata.namespace },
          involvedObject: {
            apiVersion: inv.apiVersion,
            kind: 'Investigation',
            name: inv.metadata.name,
            namespace: inv.metadata.namespace,
            uid: inv.metadata.uid,
          },
          type,
          reason,
          message: message.slice(0, 1024),
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
          source: { component: 'casefile' },
          reportingComponent: 'casefile.dev/operator',
          reportingInstance: this.identity.slice(0, 128),
        },
      })
      .catch((err) => this.log.debug({ err: errorMessage(err) }, 'event not recorded'));
  }
}
