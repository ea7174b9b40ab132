// Shared pieces of the intake unit tests: the Falco fixtures (copied from the senders' documented
// shapes into test/fixtures/falco) and a silent logger.
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import type { NewJournalEntry } from '../../../src/intake/journal-format.js';

export const silent = pino({ level: 'silent' });
export const FIXTURES = fileURLToPath(new URL('../../fixtures/falco/', import.meta.url));

export function fixture(name: string): string {
  return readFileSync(path.join(FIXTURES, name), 'utf8');
}

export function fixtureNames(ext: string): string[] {
  return readdirSync(FIXTURES).filter((n) => n.endsWith(ext)).sort();
}

/** A journaled alert for Investigation production/<name>, received i ms after 10:00:00. */
export function alertEntry(name: string, i: number): NewJournalEntry {
  return {
    type: 'alert',
    receivedAt: new Date(Date.UTC(2026, 10, 20, 10, 0, 0, i)).toISOString(),
    source: 'falco',
    policy: { namespace: 'casefile-system', name: 'shells' },
    investigation: { namespace: 'production', name },
    pod: { name: 'web-0', uid: 'uid-web-0' },
    alert: { rule: 'Terminal shell in container', priority: 'Critical', time: '2026-11-20T10:00:00Z' },
    template: {},
    raw: JSON.stringify({ rule: 'Terminal shell in container', n: i }),
  };
}
