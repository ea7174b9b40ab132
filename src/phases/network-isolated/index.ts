// NetworkIsolated: the suspect pod alone behind a deny-all NetworkPolicy (apply.ts; in ContainFirst its
// first writes go ahead of any bookkeeping: contain-now.ts), lifted from the record of what was applied
// and what the cluster shows of this case (restore.ts); what isolation looks like is in policy.ts.
import type { Phase } from '../phase.js';
import { isolate } from './apply.js';
import { isolateNow } from './contain-now.js';
import { releaseIsolation } from './restore.js';

export const networkIsolated: Phase = {
  condition: 'NetworkIsolated',
  containment: true,
  needsTarget: true,
  enabled: (spec) => spec.containment.network.isolate,
  run: isolate,
  containNow: isolateNow,
  release: releaseIsolation,
};
