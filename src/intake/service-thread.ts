// The intake thread: IntakeService with its own event loop, its own small API client (and so its
// own connections and watches; no client-node, whose load alone would be most of this thread's memory)
// and the shared logger. The client's credentials are asked of the main thread, which resolves them
// from the kubeconfig. Started by IntakeThread (./thread.ts) with its
// options in workerData; it binds the port when told `listen`, leads when told `lead`, and posts its
// metrics in batches about once a second.
import { parentPort, workerData } from 'node:worker_threads';
import { RestClient, type RestCredentials } from '../kube/rest.js';
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

// Credentials: one question to the main thread at a time; every caller waiting gets its answer.
let answer: { resolve: (c: RestCredentials) => void; reject: (err: Error) => void; waiting: Promise<RestCredentials> } | undefined;
const credentials = (): Promise<RestCredentials> => {
  if (!answer) {
    let resolve!: (c: RestCredentials) => void;
    let reject!: (err: Error) => void;
    const waiting = new Promise<RestCredentials>((res, rej) => ((resolve = res), (reject = rej)));
    answer = { resolve, reject, waiting };
    post({ kind: 'credentials-wanted' });
  }
  return answer.waiting;
};

// Each Investigation intake creates goes to the main thread at once (its containment lane takes a
// ContainFirst one), not a watch event later.
const service = new IntakeService(data.config, {
  api: new RestClient(credentials),
  observe: metrics,
  log: logger,
  evidenceDir: data.evidenceDir,
  onOpened: (investigation) => post({ kind: 'opened', investigation }),
});

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
    case 'credentials': {
      const waiting = answer;
      answer = undefined;
      if ('error' in message) waiting?.reject(new Error(`cannot resolve the API server credentials: ${message.error}`));
      else waiting?.resolve(message.credentials);
      return;
    }
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
