// gather reads the case's artifacts for the timeline: every one may be absent, malformed or huge (a
// suspect fills the files walk and names its processes), and none of that may stop the seal.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { CaseFile } from '../../../src/evidence/store.js';
import { MAX_FACTS_PER_SOURCE } from '../../../src/report/facts.js';
import { gatherCaseFacts } from '../../../src/report/gather.js';
import { file, filesJson, HOSTILE_NAME, writeCaseArtifacts } from './fixtures/case-artifacts.js';

let root: string;
let caseFile: CaseFile;
beforeEach(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'casefile-gather-'));
  caseFile = await CaseFile.open({ root, namespace: 'shop', name: 'case-1', uid: '0a1b2c3d-0000', actor: 'test' });
});
afterEach(async () => {
  await caseFile.close();
  await rm(root, { recursive: true, force: true });
});

describe('gatherCaseFacts', () => {
  test('reads pod and container starts, events, process starts, file times, audit records and indicators', async () => {
    await writeCaseArtifacts(caseFile);
    const facts = await gatherCaseFacts(caseFile, ['live']);
    expect(facts.problems).toEqual([]);
    expect(facts.pod).toMatchObject({ name: 'web-1', createdAt: '2026-11-20T09:00:00Z', startTime: '2026-11-20T09:00:01Z' });
    expect(facts.pod!.runs).toEqual([
      { container: 'app', kind: 'container', instance: 'current', startedAt: '2026-11-20T10:00:00Z', finishedAt: undefined, reason: undefined, exitCode: undefined, restartCount: 1 },
      { container: 'app', kind: 'container', instance: 'previous', startedAt: '2026-11-20T09:00:02Z', finishedAt: '2026-11-20T09:59:58Z', reason: 'Error', exitCode: 137, restartCount: undefined },
      { container: 'init', kind: 'init container', instance: 'current', startedAt: '2026-11-20T09:00:01Z', finishedAt: '2026-11-20T09:00:02Z', reason: 'Completed', exitCode: 0, restartCount: undefined },
      { container: 'casefile-debug-0a1b2c3d', kind: 'ephemeral container', instance: 'current', startedAt: '2026-11-20T10:17:30Z', finishedAt: undefined, reason: undefined, exitCode: undefined, restartCount: undefined },
    ]);
    // The event without any time is not a dated fact; eventTime counts when lastTimestamp is absent.
    expect(facts.events.map((e) => [e.time, e.reason, e.count])).toEqual([['2026-11-20T10:00:00Z', 'Started', 2], ['2026-11-20T09:59:59.123456Z', 'BackOff', undefined]]);
    expect(facts.processes.map((p) => [p.pid, p.time, p.role])).toEqual([[1, '2026-11-20T10:00:00.5Z', 'target'], [42, '2026-11-20T10:05:00Z', 'target'], [77, '2026-11-20T10:17:35Z', 'observer']]);
    expect(facts.processes[1]).toMatchObject({ command: `${HOSTILE_NAME} line\none`, exeDeleted: true, inEntrypointTree: false, artifact: 'live/processes.json' });
    // ctime is listed only when it says more than the mtime.
    expect(facts.files.map((f) => [f.path, f.stamp, f.time])).toEqual([
      ['/tmp/kworkerd', 'mtime', '2026-11-20T10:04:59Z'],
      ['/tmp/kworkerd', 'ctime', '2026-11-20T10:05:01Z'],
      [`/dev/shm/${HOSTILE_NAME}`, 'mtime', '2026-11-20T10:05:30Z'],
    ]);
    expect(facts.audit?.pod).toMatchObject({ artifact: 'audit/pod-requests.jsonl', total: 3 });
    expect(facts.audit?.pod?.records.map((r) => r.verb)).toEqual(['create', 'get', 'delete']);
    expect(facts.audit?.token?.byRequest).toEqual([
      { verb: 'list', resource: 'secrets', namespace: 'shop', count: 2 },
      { verb: 'get', resource: 'configmaps', namespace: 'kube-system', count: 1 },
    ]);
    // The entry without a value is dropped; the cap the collector hit is carried.
    expect(facts.indicators).toMatchObject({ truncated: true, omitted: 0 });
    expect(facts.indicators!.list.map((i) => i.value)).toEqual(['http://evil.example/payload.sh', '203.0.113.7', HOSTILE_NAME]);
    expect(facts.indicators!.list[0]!.seen).toEqual([{ artifact: 'live/memory/42/region-3.bin', offset: 4096 }, { artifact: 'live/processes.json' }]);
  });

  test('an empty case gives no facts and no problems; without audit/ there is no audit at all', async () => {
    const facts = await gatherCaseFacts(caseFile, []);
    expect(facts).toEqual({ events: [], processes: [], files: [], omitted: { process: 0, file: 0 }, problems: [] });
    await writeCaseArtifacts(caseFile, { audit: false });
    expect((await gatherCaseFacts(caseFile, ['live'])).audit).toBeUndefined();
  });

  test('keeps the most recent file times of a huge walk and counts the rest', async () => {
    const many = Array.from({ length: 5000 }, (_, i) => file(`/tmp/f${i}`, new Date(Date.UTC(2026, 10, 20, 10, 0, 0) + i * 1000).toISOString()));
    await writeCaseArtifacts(caseFile, { files: many });
    const facts = await gatherCaseFacts(caseFile, ['live']);
    expect(facts.files).toHaveLength(MAX_FACTS_PER_SOURCE);
    expect(facts.omitted.file).toBe(5000 - MAX_FACTS_PER_SOURCE);
    expect(facts.files[0]!.path).toBe(`/tmp/f${5000 - MAX_FACTS_PER_SOURCE}`);
    expect(facts.files.at(-1)!.path).toBe('/tmp/f4999');
  });

  test('malformed artifacts become problems, never exceptions: broken JSON, a line too long, wrong types', async () => {
    await caseFile.writeText('k8s/pod.yaml', 'status: [unclosed');
    await caseFile.writeText('k8s/events.json', '{"events": not json');
    const huge = JSON.stringify(file(`/tmp/${'A'.repeat(2 * 1024 * 1024)}`, '2026-11-20T10:00:00Z'));
    const lines = [filesJson([file('/tmp/ok', '2026-11-20T10:00:01Z')]).replace('\n]\n', ''), `,${huge}`, ',{"path": "/tmp/broken", "mtime": ', ',{"path": 7, "mtime": "2026-11-20T10:00:02Z"}', ',{"path": "/tmp/bad-time", "mtime": "yesterday"}', ']'];
    await caseFile.writeText('live/files.json', `${lines.join('\n')}\n`);
    await caseFile.writeText('live/processes.json', '[1, "two", null, {"pid": "3", "startTime": "2026-11-20T10:00:00Z"}]');
    await caseFile.writeText('live/indicators.json', '{"indicators": "none"}');
    await caseFile.writeText('audit/pod-requests.jsonl', 'not json\n{"time": 5}\n{"time":"2026-11-20T10:00:00Z","verb":"get","user":"not an object"}\n');
    const facts = await gatherCaseFacts(caseFile, ['live']);
    expect(facts.files.map((f) => f.path)).toEqual(['/tmp/ok']);
    expect(facts.processes).toEqual([]);
    expect(facts.events).toEqual([]);
    expect(facts.pod).toBeUndefined();
    expect(facts.indicators).toEqual({ list: [], truncated: false, omitted: 0 });
    expect(facts.audit?.pod).toMatchObject({ total: 1, records: [{ verb: 'get', user: { username: undefined, groups: [] } }] });
    expect(facts.problems).toEqual([
      expect.stringMatching(/^k8s\/pod\.yaml could not be read for the timeline: /),
      expect.stringMatching(/^k8s\/events\.json could not be read for the timeline: /),
      'live/files.json: 2 line(s) unreadable or longer than 1048576 bytes, skipped',
      'audit/pod-requests.jsonl: 1 line(s) unreadable or longer than 1048576 bytes, skipped',
    ]);
  });

  test('reads every live collector run: an interrupted run and its retry', async () => {
    await caseFile.writeText('live/files.json', filesJson([file('/tmp/first', '2026-11-20T10:00:00Z')]));
    await caseFile.writeText('live/retry-2/files.json', filesJson([file('/tmp/second', '2026-11-20T10:01:00Z')]));
    const facts = await gatherCaseFacts(caseFile, ['live', 'live/retry-2']);
    expect(facts.files.map((f) => [f.path, f.artifact])).toEqual([['/tmp/first', 'live/files.json'], ['/tmp/second', 'live/retry-2/files.json']]);
  });
});
