// The one way status reaches the API server: written only when it changed, guarded by the
// resourceVersion it was computed from, and always carrying kstatus's pair derived from Ready.
import { statusChanged, withKstatusConditions } from '../api/conditions.js';
import { API_VERSION, GROUP, INVESTIGATION_PLURAL, VERSION, type Investigation, type InvestigationStatus } from '../api/investigation.js';
import { type Kube } from '../kube/client.js';
import { isConflict } from '../kube/errors.js';

/** Status was changed by someone else since we read it: re-read and try again (not a failure to report). */
export class StaleObjectError extends Error {}

/** Writes status through the status subresource, only when it changed, guarded by resourceVersion. */
export class StatusWriter {
  private written: InvestigationStatus | undefined;
  private version: string | undefined;

  constructor(
    private readonly kube: Kube,
    private readonly inv: Investigation,
  ) {
    this.written = inv.status;
    this.version = inv.metadata.resourceVersion;
  }

  /** The object's resourceVersion after the last write (the one read, before any). */
  get resourceVersion(): string | undefined {
    return this.version;
  }

  async write(status: InvestigationStatus): Promise<boolean> {
    // Every status write carries kstatus's Reconciling/Stalled, so they always agree with Ready.
    status.conditions = withKstatusConditions(status.conditions, this.inv.metadata.generation ?? 1);
    if (!statusChanged(this.written ?? {}, status)) return false;
    try {
      const updated = (await this.kube.custom.patchNamespacedCustomObjectStatus(
        {
          group: GROUP, version: VERSION, namespace: this.inv.metadata.namespace, plural: INVESTIGATION_PLURAL, name: this.inv.metadata.name,
          body: { apiVersion: API_VERSION, kind: 'Investigation', metadata: { resourceVersion: this.version }, status },
        },
        this.kube.mergePatch,
      )) as Investigation;
      this.version = updated.metadata.resourceVersion;
      this.written = structuredClone(status);
      return true;
    } catch (err) {
      if (isConflict(err)) throw new StaleObjectError(`status of ${this.inv.metadata.name} changed meanwhile`);
      throw err;
    }
  }
}

