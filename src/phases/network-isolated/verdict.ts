// The decision of the isolation verification from what the probes saw (pure: unit-tested). Four
// observations, each a series of attempts made for a bounded window after the policy was in place:
//   egress   from the suspect's own network namespace to the API server (must fail);
//   ingress  from the operator to a listener in the suspect's namespace (must fail), that listener
//            having answered on 127.0.0.1 first (so "nothing listening" is ruled out);
//   and two controls, the same kinds of connection where no policy of this case applies (must succeed):
//   egress control   the operator to the same API server address;
//   ingress control  the operator to the warm prober's listener on the suspect's node.
// Enforced = both directions blocked at some attempt while both controls connected. A control that
// never connected, a listener that did not answer on loopback, or a probe that could not run: the
// answer is inconclusive, never a pass. Leaking = a direction still open when its window ended.
import type { Attempt } from '../../live/netprobe.js';

export type { Attempt };

export interface Observations {
  /** The listener in the suspect's namespace answered on 127.0.0.1 (undefined: it never reported). */
  loopback?: boolean;
  egress: Attempt[];
  ingress: Attempt[];
  egressControl: Attempt[];
  ingressControl: Attempt[];
}

export interface Decision {
  outcome: 'blocked' | 'leaking' | 'inconclusive';
  summary: string;
  details: string[];
}

type Series = 'blocked' | 'open' | 'error' | 'none';

/** Blocked at any attempt means enforced from then on; open only if no attempt was blocked and one connected. */
function seriesOf(attempts: Attempt[]): Series {
  if (attempts.length === 0) return 'none';
  if (attempts.some((a) => a.result === 'blocked')) return 'blocked';
  if (attempts.some((a) => a.result === 'open')) return 'open';
  return 'error';
}

/** A control passes when any attempt connected. */
function controlOf(attempts: Attempt[]): Series {
  if (attempts.length === 0) return 'none';
  if (attempts.some((a) => a.result === 'open')) return 'open';
  return attempts.some((a) => a.result === 'blocked') ? 'blocked' : 'error';
}

function describe(attempts: Attempt[]): string {
  if (attempts.length === 0) return 'not tried';
  const last = attempts.find((a) => a.result === 'blocked') ?? attempts[attempts.length - 1]!;
  return `${last.result} (${last.detail}) after ${attempts.length} attempt${attempts.length === 1 ? '' : 's'}`;
}

export function decide(o: Observations, where: { egressTarget: string; suspect: string; control: string }): Decision {
  const egress = seriesOf(o.egress);
  const ingress = seriesOf(o.ingress);
  const egressControl = controlOf(o.egressControl);
  const ingressControl = controlOf(o.ingressControl);
  const details = [
    `egress from the suspect's network namespace to the API server ${where.egressTarget}: ${describe(o.egress)}; control (the operator to the same address): ${describe(o.egressControl)}`,
    `ingress to a listener in the suspect's network namespace (${where.suspect}), which ${o.loopback === true ? 'answered' : o.loopback === false ? 'did NOT answer' : 'never reported'} on 127.0.0.1: ${describe(o.ingress)}; control (the operator to ${where.control}, not isolated): ${describe(o.ingressControl)}`,
    'connections established before isolation are not tested: some CNIs let them live on',
  ];
  const both = details.slice(0, 2).join('; ');
  // Open is open, whatever the controls say: the suspect connected, or was reached.
  if (egress === 'open' || ingress === 'open') {
    return { outcome: 'leaking', summary: `still open at the end of the window: ${both}`, details };
  }
  const why: string[] = [];
  if (o.loopback !== true) why.push('the listener in the suspect\'s namespace did not answer on loopback, so a refused ingress proves nothing');
  if (egress !== 'blocked') why.push(`the egress probe did not run (${describe(o.egress)})`);
  if (ingress !== 'blocked') why.push(`the ingress probe did not run (${describe(o.ingress)})`);
  if (egressControl !== 'open') why.push(`the egress control did not connect (${describe(o.egressControl)}), so a blocked egress is not attributable to the policy`);
  if (ingressControl !== 'open') why.push(`the ingress control did not connect (${describe(o.ingressControl)}), so a blocked ingress is not attributable to the policy`);
  if (why.length > 0) return { outcome: 'inconclusive', summary: `${why.join('; ')} (${both})`, details };
  return { outcome: 'blocked', summary: 'the suspect\'s own network namespace was refused in both directions while the controls connected', details };
}
