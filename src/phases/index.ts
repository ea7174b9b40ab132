// The runbook, in the order of volatility (EvidenceFirst). Adding a phase is a module and a line here.
// ContainFirst moves the phases marked `containment` to right after TargetResolved.
// The manifest comes before the debug container: it records the pod as it was before casefile added
// anything to it; processes and sockets come next, the most volatile evidence. The audit trail is
// copied last before the seal: its window runs up to that moment.
import type { InvestigationSpec } from '../api/investigation.js';
import { auditCorrelated } from './audit-correlated/index.js';
import { debugContainerLaunched } from './debug-container-launched.js';
import { eventsCaptured } from './events-captured.js';
import { evidenceSealed } from './evidence-sealed.js';
import { liveStateCaptured } from './live-state-captured.js';
import { logsCaptured } from './logs-captured.js';
import { manifestCaptured } from './manifest-captured.js';
import { networkIsolated } from './network-isolated/index.js';
import { nodeCordoned } from './node-cordoned/index.js';
import { nodeStateCaptured } from './node-state-captured.js';
import { rbacNarrowed } from './rbac-narrowed/index.js';
import type { Phase } from './phase.js';
import { scopeMapped } from './scope-mapped.js';
import { targetResolved } from './target-resolved.js';

export const phases: readonly Phase[] = [
  targetResolved,
  manifestCaptured,
  debugContainerLaunched,
  liveStateCaptured,
  nodeStateCaptured,
  eventsCaptured,
  logsCaptured,
  scopeMapped,
  networkIsolated,
  rbacNarrowed,
  nodeCordoned,
  auditCorrelated,
  evidenceSealed,
];

export function phasesInOrder(spec: InvestigationSpec, all: readonly Phase[] = phases): Phase[] {
  if (spec.containment.order !== 'ContainFirst') return [...all];
  const [first, ...rest] = all;
  return [first!, ...rest.filter((p) => p.containment), ...rest.filter((p) => !p.containment)];
}
