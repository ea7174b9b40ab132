// The audit receiver's own thread: parsing a flood of audit batches, and fsyncing them, never shares
// the event loop with the reconciles that contain a pod. Started by AuditService with its options in
// workerData; posts one message per stored batch, and `listening` once the port is bound.
import { readFileSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { logger } from '../log.js';
import { createAuditReceiver } from './receiver.js';
import { AuditStoreWriter } from './store.js';
import type { AuditThreadData, AuditThreadMessage } from './service.js';

const data = workerData as AuditThreadData;
const log = logger.child({ component: 'audit-receiver' });
const post = (message: AuditThreadMessage) => parentPort?.postMessage(message);

const store = await AuditStoreWriter.open(data.evidenceDir, data.limits);
const server = createAuditReceiver({
  tlsCert: readFileSync(data.tlsCert),
  tlsKey: readFileSync(data.tlsKey),
  clientCA: readFileSync(data.clientCA),
  allowedNames: data.allowedNames,
  maxBodyBytes: data.maxBodyBytes,
  append: (records) => store.append(records),
  onBatch: (batch) => post({ kind: 'batch', ...batch, storeBytes: store.bytes() }),
  onPodAccess: (record) => post({ kind: 'pod-access', record }),
  log,
});
server.listen(data.port, () => post({ kind: 'listening', port: (server.address() as { port: number }).port, storeBytes: store.bytes() }));
parentPort?.on('message', (message: unknown) => {
  if (message === 'stop') server.close(() => process.exit(0));
});
