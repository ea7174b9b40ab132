// The intake thread: IntakeService with its own event loop, Kubernetes client (and so its own
// connections and watches) and the shared logger. Started by IntakeThread (./thread.ts) with its
// options in workerData; it binds the port when told `listen`, leads when told `lead`, and posts its
// metrics in batches about once a second.
import { parentPort, workerData } from 'node:worker_threads';
import type { Investigation } from '../api/investigation.js';
import { wantsContainmentLane } from '../engine/case-status.js';
import { Kube } from '../kube/client.js';
import { logger } from '../log.js';
import { MetricsBatch } from './metrics-batch.js';
import { IntakeService } from './service.js';
import type { FromIntakeThread, IntakeThreadData, ToIntakeThread } from './thread.js';

const METRICS_EVERY_MS = 1000;

const data = workerData as IntakeThreadData;
const port = parentPort!;
const post = (message: FromIntakeThread) => port.postMessage(message);
const log = logger.child({ component: 'intake' });
const metrics = new MetricsBatch();
const flush = () => {
  const batch = metrics.take();
  if (batch) post({ kind: 'metrics', batch });
};
const flushing = setInterval(flush, METRICS_EVERY_MS);

// A ContainFirst case goes to the main thread's containment lane at once, not a watch event later.
const onOpened = (inv: Investigation) => {
  if (wantsContainmentLane(inv)) post({ kind: 'opened', investigation: inv });
};
const service = new IntakeService(data.config, { kube: Kube.fromEnvironment(data.kubeconfig), observe: metrics, log: logger, evidenceDir: data.evidenceDir, onOpened });

port.on('message', (message: ToIntakeThread) => {
  switch (message.kind) {
    case 'listen':
      // A bind that fails (the port taken) is left unhandled on purpose: it ends this thread with that
      // error, which IntakeThread reports (at start, as the operator's start-up error).
      void service.listen().then((bound) => post({ kind: 'listening', port: bound }));
      return;
    case 'lead':
      void service.startLeading().catch((err: unknown) => log.error({ err }, 'alert intake failed to start'));
      return;
    case 'audit-alert':
      void service.acceptAuditAlert(message.alert);
      return;
    case 'stop':
      void service.stop().finally(() => {
        clearInterval(flushing);
        flush();
        post({ kind: 'stopped' });
      });
      return;
  }
});
post({ kind: 'loaded' });
