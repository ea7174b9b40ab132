// EventsCaptured: the events of the pod and of its owners, sorted by time. Events are short-lived
// (an hour by default), so this runs even when the pod is gone: they may be all that survives.
import type { CoreV1Event } from '@kubernetes/client-node';
import type { Phase, PhaseOutcome } from './phase.js';

export const eventsCaptured: Phase = {
  condition: 'EventsCaptured',
  async run(ctx): Promise<PhaseOutcome> {
    const { namespace } = ctx.investigation.metadata;
    const target = ctx.status.target;
    const selectors = target?.podUID
      ? [`involvedObject.uid=${target.podUID}`, ...(target.owners ?? []).map((o) => `involvedObject.uid=${o.uid}`)]
      : ctx.spec.target.uid
        ? [`involvedObject.uid=${ctx.spec.target.uid}`] // the pod the spec names, not a replacement with the same name
        : [`involvedObject.kind=Pod,involvedObject.name=${ctx.spec.target.pod}`];
    let count = 0;
    const record = await ctx.caseFile.captureOnce('k8s/events.json', async () => {
      const events: CoreV1Event[] = [];
      for (const fieldSelector of selectors) {
        const list = (await ctx.kube.getJSON(`/api/v1/namespaces/${namespace}/events`, { fieldSelector })) as { items: CoreV1Event[] };
        events.push(...list.items);
      }
      events.sort((a, b) => eventTime(a).localeCompare(eventTime(b)));
      count = events.length;
      return JSON.stringify({ collectedAt: new Date().toISOString(), selectors, events }, null, 2) + '\n';
    }, { phase: 'EventsCaptured' });
    const reused = record.reused;
    if (count === 0 && !reused) {
      await ctx.caseFile.record('negative-finding', {
        finding: 'no events found for the pod or its owners: the API server keeps events about an hour, so older ones are gone',
      }, 'EventsCaptured');
    }
    return { status: 'True', reason: 'Captured', message: reused ? 'events captured earlier' : `${count} event(s) captured` };
  },
};

function eventTime(e: CoreV1Event): string {
  const t = e.lastTimestamp ?? e.eventTime ?? e.firstTimestamp ?? e.metadata?.creationTimestamp;
  return t ? new Date(t as unknown as string).toISOString() : '';
}
