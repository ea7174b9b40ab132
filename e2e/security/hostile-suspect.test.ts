// A suspect that fights back: a 1 TiB sparse file, file names with a newline and bytes that are not
// UTF-8, a command line and environment far over 64 KiB, executables that turn the collector's
// stream into a flood, and a log flood. The case must still seal within its timeout with the
// findings written, every cap hit noted, and the operator must stay up (no restart, no OOM kill) and
// keep serving another Investigation meanwhile.
import { beforeAll, describe, expect, test } from '@jest/globals';
import { createTestNamespace, podExec, useCleanup, waitForPodReady } from '../support/cluster.js';
import {
  busyboxPod,
  caseDirOf,
  conditionOf,
  core,
  createInvestigation,
  deployOperator,
  ensureEvidenceReader,
  operatorPod,
  readEvidence,
  waitForCondition,
} from '../operator/support.js';
import { expectCaseVerifies, kc, token } from '../containment/helpers.js';

useCleanup();

const TIB = 1024 ** 4;
const LIVE = { enabled: true, timeoutSeconds: 90, redactEnvironment: true };

/** The suspect's setup, as its own shell script (busybox). */
const HOSTILE = [
  'set -e',
  // An ELF header, then a hole up to 1 TiB (dd extends the file to its seek offset).
  "printf '\\177ELF' > /tmp/huge.bin",
  'dd if=/dev/null of=/tmp/huge.bin bs=1048576 seek=1048576 count=0 2>/dev/null',
  'chmod +x /tmp/huge.bin',
  "printf '#!/bin/sh\\n' > \"/tmp/two\nlines\"",
  'chmod +x "/tmp/two\nlines"',
  "printf '#!/bin/sh\\n' > \"/tmp/bad-$(printf '\\303\\050')\"",
  'for i in $(seq 1 40); do head -c 1048576 /dev/urandom > /tmp/blob$i; chmod +x /tmp/blob$i; done',
  'A=$(head -c 100000 /dev/zero | tr "\\0" A)',
  // "; exit 0": a lone command would be exec'd in place of sh, and the long arguments with it.
  'env BIG1=$A BIG2=$A sh -c "sleep 3600; exit 0" $A $A &',
  'B=$(head -c 1000 /dev/zero | tr "\\0" B)',
  '(i=0; while [ $i -lt 20000 ]; do echo "flood $i $B"; i=$((i+1)); done) &',
  // A process run from a writable path: a finding made before the walk (live/findings.json).
  // (named busybox: busybox picks its applet from argv[0] unless that is busybox itself)
  'cp /bin/busybox /tmp/busybox',
  '/tmp/busybox sleep 3600 &',
  'touch /tmp/ready',
  'exec sleep 3600',
].join('\n');

interface FileEntry {
  path: string;
  pathHex?: string;
  size: number;
  sha256: string | null;
  allocatedBytes?: number;
  note: string | null;
}

beforeAll(async () => {
  await deployOperator();
  await ensureEvidenceReader();
}, 300_000);

describe('a hostile suspect', () => {
  test(
    'a 1 TiB sparse file, hostile names, 64 KiB+ cmdline and environment, and floods: the case seals, findings written, the operator stays up',
    async () => {
      const before = await operatorPod();
      const restarts = before.status?.containerStatuses?.[0]?.restartCount ?? 0;
      const ns = await createTestNamespace('hostile');
      const name = `hostile-${token()}`;
      await core.createNamespacedPod({ namespace: ns, body: busyboxPod(name, HOSTILE) });
      await waitForPodReady(kc, ns, name, 90_000);
      for (let i = 0; i < 60; i++) {
        const { stdout } = await podExec(kc, ns, name, 'app', ['sh', '-c', 'test -e /tmp/ready && echo yes || true']);
        if (stdout.includes('yes')) break;
        await new Promise((r) => setTimeout(r, 1000));
      }

      // A plain case next to it, opened while the hostile one runs: the operator keeps serving.
      const bystander = `by-${token()}`;
      await core.createNamespacedPod({ namespace: ns, body: busyboxPod(bystander, 'exec sleep 3600') });
      const inv = `hostile-${token()}`;
      const started = Date.now();
      await createInvestigation(ns, inv, { target: { pod: name, container: 'app' }, evidence: { live: LIVE } });
      await waitForPodReady(kc, ns, bystander, 90_000);
      const plain = `plain-${token()}`;
      await createInvestigation(ns, plain, { target: { pod: bystander } });

      const done = await waitForCondition(ns, inv, 'EvidenceSealed', 'True', 240_000);
      // Within its timeout: launch + one collector run, each bounded by timeoutSeconds, plus the seal.
      expect(Date.now() - started).toBeLessThan((2 * LIVE.timeoutSeconds + 60) * 1000);
      await waitForCondition(ns, plain, 'EvidenceSealed', 'True', 120_000);
      const live = conditionOf(done, 'LiveStateCaptured');
      expect(live?.reason).toMatch(/^(Captured|CollectorOutputOverflow)$/);

      const caseDir = caseDirOf(done);
      const files = JSON.parse(await readEvidence(`${caseDir}/live/files.json`)) as FileEntry[];
      const huge = files.find((f) => f.path === '/tmp/huge.bin');
      expect(huge).toMatchObject({ size: TIB, sha256: null });
      expect(huge!.allocatedBytes).toBeLessThan(1024 * 1024);
      expect(huge!.note).toMatch(/sparse.*--max-hash-bytes/);
      expect(files.some((f) => f.path === '/tmp/two\nlines' && typeof f.sha256 === 'string')).toBe(true);
      expect(files.some((f) => f.pathHex !== undefined && f.pathHex.endsWith('c328'))).toBe(true);

      // Findings from before the walk and from it, both written; the report carries them.
      const findings = JSON.parse(await readEvidence(`${caseDir}/live/findings.json`)) as { kind: string }[];
      const fileFindings = JSON.parse(await readEvidence(`${caseDir}/live/file-findings.json`)) as { kind: string; summary: string }[];
      expect(findings.map((f) => f.kind)).toContain('executable-in-writable-path');
      expect(fileFindings.some((f) => f.summary.includes('/tmp/huge.bin'))).toBe(true);

      // Every cap hit is written down.
      const notes = JSON.parse(await readEvidence(`${caseDir}/live/collector-notes.json`)) as { notes: { level: string; message: string }[] };
      const warn = notes.notes.filter((n) => n.level === 'warn').map((n) => n.message).join('\n');
      expect(warn).toMatch(/huge\.bin.*--max-hash-bytes/);
      expect(warn).toMatch(/cmdline is longer than 65536 bytes/);
      expect(warn).toMatch(/environ is longer than 65536 bytes/);
      await expectCaseVerifies(caseDir);

      // The operator never restarted (an OOM kill would show here).
      const after = await operatorPod();
      expect(after.metadata?.uid).toBe(before.metadata?.uid);
      expect(after.status?.containerStatuses?.[0]?.restartCount ?? 0).toBe(restarts);
      expect(after.status?.containerStatuses?.[0]?.lastState?.terminated?.reason).not.toBe('OOMKilled');
    },
    400_000,
  );
});
