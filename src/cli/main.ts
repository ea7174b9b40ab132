#!/usr/bin/env node
// casefile's command line: `operator` runs the controller; `verify` checks a case directory
// independently (custody chain, manifest, signature); `show` prints a case's report from the evidence volume.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { conditionTypes } from '../api/investigation.js';
import { defaultIdentity, operatorConfigSchema } from '../config.js';
import { runOperator } from '../operator.js';
import { errorMessage } from '../evidence/io.js';
import { sanitizeSegment } from '../evidence/paths.js';
import { verifyAndReport } from './verify.js';

const int = (name: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`${name} must be an integer`);
  return n;
};

const num = (name: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number`);
  return n;
};

/** An environment fallback that is a number, or undefined when unset (the schema default applies). */
const envNumber = (name: string): number | undefined => (process.env[name] ? Number(process.env[name]) : undefined);

const program = new Command('casefile').description('Kubernetes incident response: Investigations that capture, contain and seal evidence.');

program
  .command('operator')
  .description('run the Investigation controller')
  .option('--evidence-dir <dir>', 'where case files are written (the evidence PVC in-cluster)', process.env.CASEFILE_EVIDENCE_DIR ?? '/evidence')
  .option('--kubeconfig <file>', 'kubeconfig to use outside the cluster (default: in-cluster or $KUBECONFIG)')
  .option('--workers <n>', 'concurrent reconciles', int('--workers'), Number(process.env.CASEFILE_WORKERS ?? 4))
  .option('--http-port <port>', 'port for /healthz, /readyz and /metrics (0: any free port)', int('--http-port'), 8080)
  .option('--no-leader-election', 'run without a Lease (a single replica outside the cluster)')
  .option('--lease-namespace <ns>', 'namespace of the leader-election Lease', process.env.POD_NAMESPACE ?? 'casefile-system')
  .option('--lease-name <name>', 'name of the leader-election Lease', 'casefile-operator')
  .option('--signing-namespace <ns>', 'namespace of the signing key Secret casefile-signing-key and the public keys ConfigMap casefile-signing-keys', process.env.POD_NAMESPACE ?? 'casefile-system')
  .option('--debug-image <image>', "the only image of casefile's own containers: debug containers, node collectors, isolation probes (ConfigMap casefile-containers)", process.env.CASEFILE_DEBUG_IMAGE)
  .option(
    '--no-require-node-actions-admission',
    'run node-level actions (node collector, cordon, RBAC narrowing) even where the admission policy casefile-node-actions is not installed (clusters without ValidatingAdmissionPolicy)',
  )
  .option('--cluster-cidrs <cidrs>', "comma-separated pod/service ranges; connections outside them are reported as external (ServiceCIDRs and nodes' podCIDRs are added when the API has them)", process.env.CASEFILE_CLUSTER_CIDRS || '')
  .option('--collector-namespace <ns>', 'namespace of node collector pods (must admit hostPID and read-only hostPath)', process.env.CASEFILE_COLLECTOR_NAMESPACE ?? 'casefile-collectors')
  .option('--runtime-root <dir>', "containerd's root directory on the nodes (its `root`)", process.env.CASEFILE_RUNTIME_ROOT || '/var/lib/containerd')
  .option('--runtime-state <dir>', "containerd's state directory on the nodes (its `state`)", process.env.CASEFILE_RUNTIME_STATE || '/run/containerd')
  .option(
    '--selector <labels>',
    'serve only Investigations matching this label selector; the default leaves those labelled casefile.dev/shard to the instance serving that shard',
    process.env.CASEFILE_SELECTOR ?? '!casefile.dev/shard',
  )
  .option('--intake-port <port>', 'serve the alert intake endpoint on this port (needs --intake-token-file and/or --intake-client-ca)', int('--intake-port'), envNumber('CASEFILE_INTAKE_PORT'))
  .option('--intake-token-file <file>', 'bearer token clients must send (a mounted Secret; re-read when it changes)', process.env.CASEFILE_INTAKE_TOKEN_FILE)
  .option('--intake-tls-cert <file>', 'serve intake over TLS with this certificate (PEM)', process.env.CASEFILE_INTAKE_TLS_CERT)
  .option('--intake-tls-key <file>', 'private key of --intake-tls-cert (PEM)', process.env.CASEFILE_INTAKE_TLS_KEY)
  .option('--intake-client-ca <file>', 'accept client certificates signed by this CA (mutual TLS)', process.env.CASEFILE_INTAKE_CLIENT_CA)
  .option('--intake-max-body-bytes <n>', 'largest alert accepted (413 above)', int('--intake-max-body-bytes'), envNumber('CASEFILE_INTAKE_MAX_BODY_BYTES'))
  .option('--intake-journal-max-bytes <n>', 'bound of the alert journal on the evidence volume (alerts get 503 journal_full past it)', int('--intake-journal-max-bytes'), envNumber('CASEFILE_INTAKE_JOURNAL_MAX_BYTES'))
  .option('--intake-max-connections <n>', 'open intake connections at most (more are closed on arrival)', int('--intake-max-connections'), envNumber('CASEFILE_INTAKE_MAX_CONNECTIONS'))
  .option('--intake-namespace-rate <per-second>', 'Investigations an alert may open per second in one namespace', num('--intake-namespace-rate'), envNumber('CASEFILE_INTAKE_NAMESPACE_RATE'))
  .option('--intake-namespace-burst <n>', 'Investigations alerts may open at once in one namespace', int('--intake-namespace-burst'), envNumber('CASEFILE_INTAKE_NAMESPACE_BURST'))
  .option('--intake-policy-rate <per-second>', 'Investigations one ResponsePolicy may open per second', num('--intake-policy-rate'), envNumber('CASEFILE_INTAKE_POLICY_RATE'))
  .option('--intake-policy-burst <n>', 'Investigations one ResponsePolicy may open at once', int('--intake-policy-burst'), envNumber('CASEFILE_INTAKE_POLICY_BURST'))
  .option('--case-api-port <port>', 'serve the case-file API (APIService v1alpha1.cases.casefile.dev) on this port over TLS', int('--case-api-port'), envNumber('CASEFILE_CASE_API_PORT'))
  .option('--case-api-tls-cert <file>', "the case-file API's serving certificate (PEM; the APIService's caBundle must sign it)", process.env.CASEFILE_CASE_API_TLS_CERT)
  .option('--case-api-tls-key <file>', 'private key of --case-api-tls-cert (PEM)', process.env.CASEFILE_CASE_API_TLS_KEY)
  .option('--audit-port <port>', "receive the API server's audit events (webhook backend) on this port over mutual TLS", int('--audit-port'), envNumber('CASEFILE_AUDIT_PORT'))
  .option('--audit-tls-cert <file>', "the audit receiver's serving certificate (PEM)", process.env.CASEFILE_AUDIT_TLS_CERT)
  .option('--audit-tls-key <file>', 'private key of --audit-tls-cert (PEM)', process.env.CASEFILE_AUDIT_TLS_KEY)
  .option('--audit-client-ca <file>', "CA of the API server's audit client certificate (PEM)", process.env.CASEFILE_AUDIT_CLIENT_CA)
  .option('--audit-allowed-names <cns>', 'comma-separated subject CNs that may post audit events (default kube-apiserver-audit)', process.env.CASEFILE_AUDIT_ALLOWED_NAMES)
  .option('--audit-max-body-bytes <n>', 'largest audit batch accepted (413 above)', int('--audit-max-body-bytes'), envNumber('CASEFILE_AUDIT_MAX_BODY_BYTES'))
  .option('--audit-store-max-bytes <n>', 'bound of the rolling audit store on the evidence volume', int('--audit-store-max-bytes'), envNumber('CASEFILE_AUDIT_STORE_MAX_BYTES'))
  .option('--audit-store-max-age <seconds>', 'audit records older than this are pruned', int('--audit-store-max-age'), envNumber('CASEFILE_AUDIT_STORE_MAX_AGE'))
  .option('--audit-flush-seconds <n>', "how long a case waits for the API server to deliver audit events up to its window's end (its batch wait and a margin)", int('--audit-flush-seconds'), envNumber('CASEFILE_AUDIT_FLUSH_SECONDS'))
  .action(async (opts) => {
    const exitAfter = process.env.CASEFILE_EXIT_AFTER_PHASE;
    const parsed = operatorConfigSchema.safeParse({
      evidenceDir: opts.evidenceDir,
      kubeconfig: opts.kubeconfig,
      workers: opts.workers,
      httpPort: opts.httpPort,
      leaderElection: opts.leaderElection,
      leaseNamespace: opts.leaseNamespace,
      leaseName: opts.leaseName,
      signingNamespace: opts.signingNamespace,
      identity: defaultIdentity(),
      debugImage: opts.debugImage,
      requireNodeActionsAdmission: opts.requireNodeActionsAdmission && process.env.CASEFILE_REQUIRE_NODE_ACTIONS_ADMISSION !== 'false',
      clusterCIDRs: String(opts.clusterCidrs).split(',').map((c: string) => c.trim()).filter(Boolean),
      collectorNamespace: opts.collectorNamespace,
      runtimeRoot: opts.runtimeRoot,
      runtimeState: opts.runtimeState,
      selector: opts.selector,
      exitAfterPhase: exitAfter || undefined,
      intake: {
        port: opts.intakePort,
        tokenFile: opts.intakeTokenFile || undefined,
        tlsCert: opts.intakeTlsCert || undefined,
        tlsKey: opts.intakeTlsKey || undefined,
        clientCA: opts.intakeClientCa || undefined,
        maxBodyBytes: opts.intakeMaxBodyBytes,
        journalMaxBytes: opts.intakeJournalMaxBytes,
        maxConnections: opts.intakeMaxConnections,
        namespaceRate: opts.intakeNamespaceRate,
        namespaceBurst: opts.intakeNamespaceBurst,
        policyRate: opts.intakePolicyRate,
        policyBurst: opts.intakePolicyBurst,
      },
      caseApi: { port: opts.caseApiPort, tlsCert: opts.caseApiTlsCert || undefined, tlsKey: opts.caseApiTlsKey || undefined },
      audit: {
        port: opts.auditPort,
        tlsCert: opts.auditTlsCert || undefined,
        tlsKey: opts.auditTlsKey || undefined,
        clientCA: opts.auditClientCa || undefined,
        allowedNames: opts.auditAllowedNames ? String(opts.auditAllowedNames).split(',').map((n: string) => n.trim()).filter(Boolean) : undefined,
        maxBodyBytes: opts.auditMaxBodyBytes,
        storeMaxBytes: opts.auditStoreMaxBytes,
        storeMaxAgeSeconds: opts.auditStoreMaxAge,
        flushWaitSeconds: opts.auditFlushSeconds,
      },
    });
    if (!parsed.success) {
      const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
      return program.error(`invalid configuration: ${problems}${exitAfter && exitAfter !== 'ContainNow' && !conditionTypes.includes(exitAfter as never) ? ` (CASEFILE_EXIT_AFTER_PHASE must be one of ${conditionTypes.join(', ')}, ContainNow)` : ''}`);
    }
    try {
      await runOperator(parsed.data);
    } catch (err) {
      return program.error(`cannot start the operator: ${errorMessage(err)}`);
    }
  });

program
  .command('verify')
  .description('verify a case directory or bundle (.tar.gz): custody chain, MANIFEST.sha256 against the files, and the signature')
  .argument('<case-dir|bundle.tar.gz>')
  .option('--key <pem-file>', 'a public key the case must be signed by (repeatable: any one of them; ConfigMap casefile-signing-keys has every key casefile used)', (v: string, all: string[] = []) => [...all, v])
  .option('--require-signature', 'fail an unsigned case (without it, and without --key, an unsigned case passes with a warning)', false)
  .action(async (target: string, opts: { key?: string[]; requireSignature: boolean }) => {
    process.exitCode = await verifyAndReport(target, { keys: opts.key, requireSignature: opts.requireSignature });
  });

program
  .command('show')
  .description("print a case's report.md from the evidence directory")
  .argument('<namespace/name>')
  .option('--evidence-dir <dir>', 'evidence root', process.env.CASEFILE_EVIDENCE_DIR ?? '/evidence')
  .option('--file <artifact>', 'artifact to print instead of report.md', 'report.md')
  .action(async (ref: string, opts: { evidenceDir: string; file: string }) => {
    const [namespace, name] = ref.split('/');
    if (!namespace || !name) return program.error('expected <namespace/name>');
    const nsDir = path.join(opts.evidenceDir, sanitizeSegment(namespace!));
    const prefix = `${sanitizeSegment(name!)}-`;
    const matches = (await readdir(nsDir).catch(() => [] as string[])).filter((d) => d.startsWith(prefix) && d.length === prefix.length + 8);
    if (matches.length === 0) return program.error(`no case file for ${ref} under ${opts.evidenceDir}`);
    for (const dir of matches) {
      if (matches.length > 1) console.log(`==> ${dir}`);
      process.stdout.write(await readFile(path.join(nsDir, dir, opts.file), 'utf8'));
    }
  });

await program.parseAsync(process.argv);
