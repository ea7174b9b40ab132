// Which audit records belong to a case, and what they say. Pure: the phase gathers records from the
// store, these decide. Two questions, as a responder asks them:
//  - who touched the pod: every request whose object is the suspect pod (exec, attach, port-forward,
//    ephemeral containers, patches, deletes);
//  - what its token did: every request made with the suspect pod's own ServiceAccount token. Bound
//    tokens name their pod in user.extra, which tells this pod from its siblings; a token that names
//    no pod (a legacy Secret token of the same ServiceAccount) is counted apart, never attributed.
import type { Finding } from '../api/investigation.js';
import { POD_NAME_EXTRA, POD_UID_EXTRA, serviceAccountUsername, type AuditRecord } from './record.js';

export interface SuspectIdentity {
  namespace: string;
  pod: string;
  podUID: string;
  serviceAccount?: string;
  /** The window, ISO 8601: from the pod's start (or the lookback) to the moment the case closes it. */
  from: string;
  until: string;
  /** Who casefile itself is: its own debug container is named as casefile's, not as a stranger's. */
  operatorUsername?: string;
}

export type TokenMatch = 'pod' | 'unattributed';

export function inWindow(record: AuditRecord, id: SuspectIdentity): boolean {
  return record.time >= id.from && record.time <= id.until;
}

export function isPodRequest(record: AuditRecord, id: SuspectIdentity): boolean {
  return record.resource === 'pods' && (record.apiGroup ?? '') === '' && record.namespace === id.namespace && record.name === id.pod;
}

/** `pod`: made with a token bound to this very pod; `unattributed`: the ServiceAccount's token names no pod. */
export function tokenMatch(record: AuditRecord, id: SuspectIdentity): TokenMatch | undefined {
  if (!id.serviceAccount || record.user.username !== serviceAccountUsername(id.namespace, id.serviceAccount)) return undefined;
  const uids = record.user.extra?.[POD_UID_EXTRA];
  if (uids?.length) return uids.includes(id.podUID) ? 'pod' : undefined;
  const names = record.user.extra?.[POD_NAME_EXTRA];
  if (names?.length) return undefined; // bound to a pod by name only, and not known to be this one
  return 'unattributed';
}

/** Substrings one of which any record of this case contains: the store's cheap pre-filter. */
export function prefilterTerms(id: SuspectIdentity): string[] {
  const terms = [`"name":${JSON.stringify(id.pod)}`];
  if (id.serviceAccount) terms.push(JSON.stringify(serviceAccountUsername(id.namespace, id.serviceAccount)));
  return terms;
}

const INTERACTIVE = new Set(['exec', 'attach', 'portforward']);
const MAX_LISTED = 10;

/** The query of a request URI; empty for one that does not parse (the record is kept as it came). */
function queryOf(requestURI: string): URLSearchParams {
  try {
    return new URL(requestURI, 'https://apiserver.invalid').searchParams;
  } catch {
    return new URLSearchParams();
  }
}

/** The command of a pods/exec request, from its query (`command=sh&command=-c&...`). */
export function execCommand(requestURI: string): string[] {
  return queryOf(requestURI).getAll('command').slice(0, 32);
}

const succeeded = (r: AuditRecord) => r.code === undefined || r.code < 400;
const who = (r: AuditRecord) => (r.impersonatedUser ? `${r.user.username} (as ${r.impersonatedUser.username})` : r.user.username);

/** A finding for each request on the pod that a responder must know of. */
export function podRequestFindings(record: AuditRecord, id: SuspectIdentity, artifact: string): Finding | undefined {
  const sub = record.subresource;
  const byCasefile = id.operatorUsername !== undefined && record.user.username === id.operatorUsername;
  const outcome = succeeded(record) ? '' : ` (refused: ${record.code})`;
  if (sub && INTERACTIVE.has(sub) && byCasefile) {
    const container = queryOf(record.requestURI).get('container');
    return { severity: 'info', kind: `audit-${sub}`, summary: `casefile ran its collector in its own container${container ? ` ${container}` : ''} at ${record.time}`, artifact };
  }
  if (sub && INTERACTIVE.has(sub)) {
    const verbText = sub === 'exec' ? "exec'd into" : sub === 'attach' ? 'attached to' : 'port-forwarded to';
    const command = sub === 'exec' ? execCommand(record.requestURI) : [];
    const what = `${who(record)} ${verbText} the pod at ${record.time}${command.length ? `: ${command.join(' ').slice(0, 200)}` : ''}${outcome}`;
    return { severity: succeeded(record) ? 'high' : 'medium', kind: `audit-${sub}`, summary: what, artifact };
  }
  if (sub === 'ephemeralcontainers' && ['patch', 'update'].includes(record.verb)) {
    if (byCasefile) return { severity: 'info', kind: 'audit-ephemeral-container', summary: `casefile added its debug container at ${record.time}`, artifact };
    return { severity: succeeded(record) ? 'high' : 'medium', kind: 'audit-ephemeral-container', summary: `${who(record)} added an ephemeral container to the pod at ${record.time}${outcome}`, artifact };
  }
  if (!sub && ['patch', 'update', 'delete'].includes(record.verb) && !byCasefile && succeeded(record)) {
    return { severity: 'low', kind: 'audit-pod-change', summary: `${who(record)} ran ${record.verb} on the pod at ${record.time}`, artifact };
  }
  return undefined;
}

/** What a pod's token did, summed while the records stream by (bounded whatever their number). */
export class TokenActivity {
  requests = 0;
  refused = 0;
  unattributed = 0;
  first?: string;
  last?: string;
  private readonly secretNamespaces = new Set<string>();
  private secretReads = 0;
  private readonly reviews: { kind: string; time: string }[] = [];
  private readonly tokenRequests: { target: string; time: string }[] = [];
  private readonly execs: { pod: string; time: string }[] = [];
  private readonly verbs = new Map<string, number>();

  add(record: AuditRecord): void {
    this.requests++;
    this.first ??= record.time;
    this.last = record.time;
    if (!succeeded(record)) this.refused++;
    const key = `${record.verb} ${record.resource ?? record.requestURI.slice(0, 64)}${record.subresource ? `/${record.subresource}` : ''}`;
    if (this.verbs.size < 200 || this.verbs.has(key)) this.verbs.set(key, (this.verbs.get(key) ?? 0) + 1);
    if (!succeeded(record)) return;
    if (record.resource === 'secrets' && ['get', 'list', 'watch'].includes(record.verb)) {
      this.secretReads++;
      if (this.secretNamespaces.size < 1000) this.secretNamespaces.add(record.namespace ?? '(all namespaces)');
    }
    if (record.apiGroup === 'authorization.k8s.io' && (record.resource === 'selfsubjectrulesreviews' || record.resource === 'selfsubjectaccessreviews')) {
      if (this.reviews.length < MAX_LISTED) this.reviews.push({ kind: record.resource === 'selfsubjectrulesreviews' ? 'SelfSubjectRulesReview' : 'SelfSubjectAccessReview', time: record.time });
    }
    if (record.resource === 'serviceaccounts' && record.subresource === 'token' && record.verb === 'create') {
      if (this.tokenRequests.length < MAX_LISTED) this.tokenRequests.push({ target: `${record.namespace}/${record.name}`, time: record.time });
    }
    if (record.resource === 'pods' && record.subresource === 'exec') {
      if (this.execs.length < MAX_LISTED) this.execs.push({ pod: `${record.namespace}/${record.name}`, time: record.time });
    }
  }

  /** Requests by verb and resource, most frequent first. */
  byVerb(): { request: string; count: number }[] {
    return [...this.verbs].map(([request, count]) => ({ request, count })).sort((a, b) => b.count - a.count || a.request.localeCompare(b.request));
  }

  findings(artifact: string): Finding[] {
    const out: Finding[] = [];
    if (this.secretReads) {
      const namespaces = [...this.secretNamespaces].sort();
      out.push({
        severity: 'high',
        kind: 'audit-token-secrets',
        summary: `the pod's token read or listed secrets ${this.secretReads} time(s) in ${namespaces.length} namespace(s): ${namespaces.slice(0, MAX_LISTED).join(', ')}${namespaces.length > MAX_LISTED ? ', ...' : ''}`,
        artifact,
      });
    }
    for (const r of this.reviews) out.push({ severity: 'medium', kind: 'audit-token-self-review', summary: `the pod's token asked what it may do (${r.kind}) at ${r.time}`, artifact });
    for (const t of this.tokenRequests) out.push({ severity: 'high', kind: 'audit-token-request', summary: `the pod's token requested a token for ServiceAccount ${t.target} at ${t.time}`, artifact });
    for (const e of this.execs) out.push({ severity: 'high', kind: 'audit-token-exec', summary: `the pod's token exec'd into pod ${e.pod} at ${e.time}`, artifact });
    if (this.refused) out.push({ severity: 'medium', kind: 'audit-token-refused', summary: `the API server refused ${this.refused} request(s) made with the pod's token: probing beyond its rights`, artifact });
    return out;
  }
}
