// NetworkIsolated: the suspect pod alone behind a deny-all NetworkPolicy (apply.ts), lifted from the
// record of what was applied (restore.ts); what isolation looks like is in policy.ts.
import type { Phase } from '../phase.js';
import { isolate } from './apply.js';
import { releaseIsolation } from './restore.js';

export const networkIsolated: Phase = {
  condition: 'NetworkIsolated',
  containment: true,
  needsTarget: true,
  enabled: (spec) => spec.containment.network.isolate,
  run: isolate,
  release: releaseIsolation,
};
