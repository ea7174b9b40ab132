// Wires the operator together: leader election gates an informer (list+watch of Investigations) that
// feeds keys into a rate-limited work queue, whose workers run the reconciler. Alert intake and the
// audit receiver run in threads of their own; this thread tells them when it leads and when to stop.
import type { KubernetesObject } from '@kubernetes/client-node';
import { INVESTIGATION_PLURAL, type Investigation } from './api/investigation.js';
import { AuthenticationV1Api } from '@kubernetes/client-node';
import { podAccessAlert } from './audit/alert.js';
import type { AuditRecord } from './audit/record.js';
import { AuditService } from './audit/service.js';
import { AuditStoreReader } from './audit/store-reader.js';
import { CaseApiService } from './caseapi/service.js';
import type { OperatorConfig } from './config.js';
import { writeBundle } from './evidence/bundle.js';
import { errorMessage } from './errors.js';
import { importJournaledAlerts, mayHoldJournaledAlerts } from './intake/case-file-import.js';
import { JournalIndex } from './intake/journal-index.js';
import { journalDir } from './intake/journal-format.js';
import { metricsObserver } from './intake/metrics-batch.js';
import { IntakeThread } from './intake/thread.js';
import { logger, type Logger } from './log.js';
import type { AuditReceiverConfig } from './audit/service.js';
import type { AuditTrailSource } from './phases/phase.js';
import { EventRecorder } from './engine/events.js';
import { startHealthServer } from './engine/http.js';
import { customObjectSource, Informer } from './engine/informer.js';
import { Kube, restCredentials } from './kube/client.js';
import { LeaderElector } from './engine/leader.js';
import { Metrics } from './engine/metrics.js';
import { WorkQueue } from './engine/queue.js';
import { changedForReconcile, settledAsDelivered, wantsContainmentLane } from './engine/case-status.js';
import { phases } from './phases/index.js';
import { ContainmentLane } from './engine/containment-lane.js';
import { InvestigationReconciler } from './engine/reconciler.js';
import { ensureSigningKey, SigningKeys } from './engine/signing-keys.js';

/** Workers of the containment lane: each run is two concurrent writes (and a finalizer patch), never a capture. */
const CONTAINMENT_WORKERS = 2;

export async function runOperator(config: OperatorConfig): Promise<void> {
  const log = logger.child({ component: 'operator' });
  const kube = Kube.fromEnvironment(config.kubeconfig);
  // A kubeconfig casefile's own API client cannot use (a proxy) is a start-up error that says so.
  await restCredentials(kube.kc);
  const metrics = new Metrics();
  const events = new EventRecorder(kube, config.identity, log);
  const signingKeys = new SigningKeys(() => ensureSigningKey(kube, config.signingNamespace, log.child({ component: 'signing' })));
  const audit = auditTrail(config, kube, log);
  // The journal stays on the evidence volume whether intake runs now or ran before.
  const journalIndex = new JournalIndex(journalDir(config.evidenceDir));
  const reconciler = new InvestigationReconciler({
    kube,
    config,
    log,
    metrics,
    events,
    importAlerts: async (caseFile, inv) =>
      mayHoldJournaledAlerts(inv) ? importJournaledAlerts(caseFile, journalIndex, inv.metadata.namespace, inv.metadata.name) : undefined,
    signingKey: () => signingKeys.current(),
    audit: audit?.trail,
  });
  // ContainFirst's first writes (the deny-all policy and the label) on a lane of their own: a new case
  // is isolated while every investigations worker is busy capturing others. Its reconcile waits for them.
  const lane = new ContainmentLane({ kube, config, log, cached: (key) => informer.get(key) as Investigation | undefined });
  const queue = new WorkQueue(async (key) => {
    await lane.settled(key);
    return reconciler.reconcile(key);
  }, {
    name: 'investigations',
    workers: config.workers,
    log: log.child({ component: 'queue' }),
    onMetrics: metrics.queueHooks('investigations'),
  });
  const containment = new WorkQueue((key) => lane.run(key), {
    name: 'containment',
    workers: CONTAINMENT_WORKERS,
    log: log.child({ component: 'containment-queue' }),
    onMetrics: metrics.queueHooks('containment'),
  });
  const informer = new Informer<KubernetesObject>({
    name: 'investigations',
    ...customObjectSource<KubernetesObject>(kube, INVESTIGATION_PLURAL, config.selector || undefined),
    onChange: (key, obj, type, previous) => {
      if (type === 'DELETED') metrics.observeInvestigationPhase(key, undefined);
      // A settled case's resync would only read it and stop: hundreds of them would hold the queue's
      // rate limit for the cases that have work. So would every status-only update (changedForReconcile).
      else if (type === 'RESYNC' && settledAsDelivered(obj as never, phases)) return;
      else if (wantsContainmentLane(obj as never)) containment.add(key);
      if (type === 'MODIFIED' && !changedForReconcile(previous, obj as never)) return;
      queue.add(key);
    },
    resyncMs: 60_000,
    log: log.child({ component: 'informer' }),
  });
  const server = startHealthServer(config.httpPort, metrics, () => informer.hasSynced());
  // Alert intake only with a port (config validation has made sure authentication is configured too).
  const intakePort = config.intake?.port;
  const intake =
    intakePort !== undefined
      ? new IntakeThread({ ...config.intake, port: intakePort }, {
          credentials: () => restCredentials(kube.kc),
          evidenceDir: config.evidenceDir,
          observe: metricsObserver(metrics),
          log,
          onOpened: (inv) => wantsContainmentLane(inv) && containment.add(lane.handOver(inv)),
        })
      : undefined;
  await intake?.start();
  // The case-file API serves sealed files on every replica, leader or not (it only reads).
  const { port: caseApiPort, tlsCert, tlsKey } = config.caseApi;
  const caseApi =
    caseApiPort !== undefined && tlsCert && tlsKey
      ? new CaseApiService({ port: caseApiPort, tlsCert, tlsKey }, { kube, evidenceDir: config.evidenceDir, events, writeBundle, log: log.child({ component: 'case-api' }) })
      : undefined;
  await caseApi?.start();
  // The audit receiver runs whether or not this replica leads (the store is on the evidence volume);
  // its own thread keeps a flood off the reconciles' event loop.
  // Someone getting into a pod is an alert of its own for intake (Falco's k8saudit rule names), except
  // casefile adding its own debug container, which would otherwise open a case about every case.
  const onPodAccess = async (record: AuditRecord) => {
    const alert = podAccessAlert(record);
    if (!alert || !intake || record.user.username === (await audit?.trail.operatorUsername())) return;
    intake.acceptAuditAlert(alert);
  };
  const auditService = audit
    ? new AuditService(audit.receiver, { evidenceDir: config.evidenceDir, log: log.child({ component: 'audit' }), observe: metrics.auditObserver(), onPodAccess: (r) => void onPodAccess(r) })
    : undefined;
  auditService?.start();

  const start = () => {
    log.info({ workers: config.workers, evidenceDir: config.evidenceDir, selector: config.selector }, 'leading: starting the Investigation controller');
    // The key exists and is published before the first case can be sealed; a failure here is retried
    // at each seal, and each case sealed meanwhile says it is unsigned and why.
    void signingKeys.current().then(
      (key) => log.info({ keyFingerprint: key.fingerprint }, 'sealed cases are signed with this key'),
      (err: unknown) => log.error({ err: errorMessage(err) }, 'no signing key: cases will be sealed unsigned until it can be loaded'),
    );
    queue.start();
    containment.start();
    void informer.start();
    intake?.startLeading();
  };
  const elector = config.leaderElection
    ? new LeaderElector({
        api: kube.coordination,
        namespace: config.leaseNamespace,
        name: config.leaseName,
        identity: config.identity,
        onStartedLeading: start,
        onStoppedLeading: () => {
          // Another replica may already be acting: stop at once rather than race it (as controller-runtime does).
          log.error('lost leadership; exiting so a fresh process can re-acquire');
          process.exit(1);
        },
        log: log.child({ component: 'leader' }),
      })
    : undefined;

  const shutdown = async (signal: string) => {
    log.info({ signal }, 'shutting down: draining in-flight reconciles');
    informer.stop();
    await intake?.stop();
    await caseApi?.stop();
    await auditService?.stop();
    await Promise.all([queue.stop(), containment.stop()]);
    await elector?.stop();
    server.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));

  if (elector) await elector.run();
  else start();
}

/** The audit receiver's settings and what AuditCorrelated reads, when --audit-port is set. */
function auditTrail(config: OperatorConfig, kube: Kube, log: Logger): { receiver: AuditReceiverConfig; trail: AuditTrailSource } | undefined {
  const c = config.audit;
  if (c.port === undefined || !c.tlsCert || !c.tlsKey || !c.clientCA) return undefined;
  const limits = { maxBytes: c.storeMaxBytes, maxAgeMs: c.storeMaxAgeSeconds * 1000 };
  let username: Promise<string | undefined> | undefined;
  const operatorUsername = () =>
    (username ??= kube.kc
      .makeApiClient(AuthenticationV1Api)
      .createSelfSubjectReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' } })
      .then((r) => r.status?.userInfo?.username)
      .catch((err: unknown) => {
        log.warn({ err: errorMessage(err) }, 'cannot tell my own username (SelfSubjectReview): casefile\'s debug containers will read as a stranger\'s in audit findings');
        username = undefined;
        return undefined;
      }));
  return {
    receiver: { port: c.port, tlsCert: c.tlsCert, tlsKey: c.tlsKey, clientCA: c.clientCA, allowedNames: c.allowedNames, maxBodyBytes: c.maxBodyBytes, limits },
    trail: { reader: new AuditStoreReader(config.evidenceDir), limits, flushWaitMs: c.flushWaitSeconds * 1000, operatorUsername },
  };
}
