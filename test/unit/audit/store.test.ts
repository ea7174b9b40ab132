// The rolling store stays within its byte budget whatever arrives, keeps the pods partition apart
// from a flood of other requests, prunes by age, and reads back what it kept.
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { toAuditRecord, type AuditRecord } from '../../../src/audit/record.js';
import { emptyScanStats, AuditStoreReader } from '../../../src/audit/store-reader.js';
import { auditStoreDir, AuditStoreWriter, partitionBudget, type AuditStoreLimits } from '../../../src/audit/store.js';
import { auditEvent } from './fixtures.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'casefile-audit-store-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

const record = (shape: Parameters<typeof auditEvent>[0]) => toAuditRecord(auditEvent(shape)) as AuditRecord;

async function partitionBytes(partition: string): Promise<number> {
  const root = path.join(auditStoreDir(dir), partition);
  let total = 0;
  for (const name of await readdir(root)) total += (await stat(path.join(root, name))).size;
  return total;
}

async function readAll(partitions: ('pods' | 'requests')[] = ['pods', 'requests']): Promise<AuditRecord[]> {
  const out: AuditRecord[] = [];
  for await (const r of new AuditStoreReader(dir).scan(partitions, undefined, emptyScanStats())) out.push(r);
  return out;
}

describe('AuditStoreWriter', () => {
  test('writes records to their partition and reads them back in order', async () => {
    const store = await AuditStoreWriter.open(dir, { maxBytes: 1 << 20, maxAgeMs: 3600_000 });
    const exec = record({ resource: 'pods', subresource: 'exec', name: 'web-1', time: '2026-12-03T10:00:00Z' });
    const list = record({ resource: 'secrets', verb: 'list', time: '2026-12-03T10:00:01Z' });
    expect(await store.append([exec, list])).toEqual({ kept: 2, oversized: 0, prunedSegments: 0 });
    expect(await readAll(['pods'])).toEqual([exec]);
    expect(await readAll(['requests'])).toEqual([list]);
    expect(await new AuditStoreReader(dir).newest()).toBe('2026-12-03T10:00:01.000Z');
  });

  test('a flood past the cap keeps each partition within its budget, and the pods partition untouched', async () => {
    const limits: AuditStoreLimits = { maxBytes: 256 * 1024, maxAgeMs: 3600_000 };
    const store = await AuditStoreWriter.open(dir, limits);
    const exec = record({ resource: 'pods', subresource: 'exec', name: 'web-1' });
    await store.append([exec]);
    let pruned = 0;
    for (let batch = 0; batch < 60; batch++) {
      const flood = Array.from({ length: 100 }, (_, i) => record({ user: 'system:serviceaccount:shop:web', resource: 'secrets', verb: 'list', namespace: `ns-${batch}-${i}` }));
      pruned += (await store.append(flood)).prunedSegments;
    }
    expect(pruned).toBeGreaterThan(0);
    expect(await partitionBytes('requests')).toBeLessThanOrEqual(partitionBudget(limits, 'requests'));
    expect(store.bytes()).toBeLessThanOrEqual(limits.maxBytes);
    expect(await readAll(['pods'])).toEqual([exec]);
    // What was kept is the newest: the flood's last batch is there, its first is gone.
    const kept = await readAll(['requests']);
    expect(kept.at(-1)?.namespace).toBe('ns-59-99');
    expect(kept.some((r) => r.namespace === 'ns-0-0')).toBe(false);
  });

  test('prunes segments older than the age limit', async () => {
    const store = await AuditStoreWriter.open(dir, { maxBytes: 64 * 1024, maxAgeMs: 60_000 });
    const old = Array.from({ length: 40 }, () => record({ resource: 'configmaps' }));
    await store.append(old, 1_000_000);
    const fresh = Array.from({ length: 40 }, () => record({ resource: 'configmaps', verb: 'watch' }));
    const result = await store.append(fresh, 1_000_000 + 120_000);
    expect(result.prunedSegments).toBeGreaterThan(0);
    expect((await readAll()).every((r) => r.verb === 'watch')).toBe(true);
  });

  test('a reopened store continues after the segments it finds', async () => {
    const limits = { maxBytes: 1 << 20, maxAgeMs: 3600_000 };
    await (await AuditStoreWriter.open(dir, limits)).append([record({ resource: 'configmaps', verb: 'get' })]);
    const again = await AuditStoreWriter.open(dir, limits);
    expect(again.bytes()).toBeGreaterThan(0);
    await again.append([record({ resource: 'configmaps', verb: 'delete' })]);
    expect((await readAll()).map((r) => r.verb)).toEqual(['get', 'delete']);
  });
});

describe('AuditStoreReader', () => {
  test('skips a line cut by a crash and counts it; a missing store reads as empty', async () => {
    expect(await readAll()).toEqual([]);
    expect(await new AuditStoreReader(dir).newest()).toBeUndefined();
    const store = await AuditStoreWriter.open(dir, { maxBytes: 1 << 20, maxAgeMs: 3600_000 });
    await store.append([record({ resource: 'configmaps' })]);
    const { appendFile } = await import('node:fs/promises');
    const seg = path.join(auditStoreDir(dir), 'requests', (await readdir(path.join(auditStoreDir(dir), 'requests')))[0]!);
    await appendFile(seg, '{"time":"2026-12-03T11:00:00.000Z","audit');
    const stats = emptyScanStats();
    const out: AuditRecord[] = [];
    for await (const r of new AuditStoreReader(dir).scan(['requests'], undefined, stats)) out.push(r);
    expect(out).toHaveLength(1);
    expect(stats).toMatchObject({ lines: 2, parsed: 1, malformed: 1, oldest: { requests: '2026-12-03T10:00:00.000Z' } });
  });

  test('the prefilter keeps other lines from being parsed', async () => {
    const store = await AuditStoreWriter.open(dir, { maxBytes: 1 << 20, maxAgeMs: 3600_000 });
    await store.append([record({ resource: 'pods', name: 'web-1' }), record({ resource: 'pods', name: 'db-0' })]);
    const stats = emptyScanStats();
    const out: AuditRecord[] = [];
    for await (const r of new AuditStoreReader(dir).scan(['pods'], ['"name":"db-0"'], stats)) out.push(r);
    expect(out.map((r) => r.name)).toEqual(['db-0']);
    expect(stats).toMatchObject({ lines: 2, parsed: 1 });
  });

  test('a scan from a time does not read segments last written well before it, and still reports the oldest record', async () => {
    const store = await AuditStoreWriter.open(dir, { maxBytes: 256 * 1024, maxAgeMs: 3600_000 });
    await store.append([record({ resource: 'pods', name: 'old' })]);
    await store.append(Array.from({ length: 40 }, () => record({ resource: 'pods', name: 'filler', requestURI: `/api/v1/${'f'.repeat(400)}` })));
    await store.append([record({ resource: 'pods', name: 'new' })]);
    const podsDir = path.join(auditStoreDir(dir), 'pods');
    const segments = (await readdir(podsDir)).sort();
    expect(segments.length).toBeGreaterThan(1);
    // The first segment was last written an hour ago; the scan is from ten minutes ago.
    const { utimes } = await import('node:fs/promises');
    const hourAgo = new Date(Date.now() - 3600_000);
    await utimes(path.join(podsDir, segments[0]!), hourAgo, hourAgo);
    const since = new Date(Date.now() - 600_000).toISOString();
    const stats = emptyScanStats();
    const out: AuditRecord[] = [];
    for await (const r of new AuditStoreReader(dir).scan(['pods'], ['"name":"old"', '"name":"new"'], stats, since)) out.push(r);
    expect(out.map((r) => r.name)).toEqual(['new']);
    expect(stats.skippedSegments).toBe(1);
    expect(stats.oldest.pods).toBe(record({}).time);
    // Within the clock slack it is read.
    const near = emptyScanStats();
    const all: AuditRecord[] = [];
    for await (const r of new AuditStoreReader(dir).scan(['pods'], ['"name":"old"', '"name":"new"'], near, new Date(hourAgo.getTime() + 60_000).toISOString())) all.push(r);
    expect(all.map((r) => r.name)).toEqual(['old', 'new']);
    expect(near.skippedSegments).toBe(0);
  });
});
