// An audit record: the part of an audit.k8s.io/v1 Event that the rolling store keeps and that a case
// file holds under audit/. Events come from the API server, but what they describe comes from anyone
// (a suspect's token picks the names, user agents and URIs it requests), so every field is checked for
// type and cut to a bound before it is kept.

/** `user.extra` keys worth keeping: bound ServiceAccount tokens name the pod they were issued for. */
export const POD_NAME_EXTRA = 'authentication.kubernetes.io/pod-name';
export const POD_UID_EXTRA = 'authentication.kubernetes.io/pod-uid';
const KEPT_EXTRA = [POD_NAME_EXTRA, POD_UID_EXTRA, 'authentication.kubernetes.io/node-name', 'authentication.kubernetes.io/credential-id'];

const MAX_TEXT = 512;
const MAX_URI = 2048;
const MAX_LIST = 16;

export interface AuditUser {
  username: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

export interface AuditRecord {
  /** When the API server received the request (requestReceivedTimestamp), ISO 8601. */
  time: string;
  auditID: string;
  user: AuditUser;
  impersonatedUser?: AuditUser;
  verb: string;
  apiGroup?: string;
  resource?: string;
  subresource?: string;
  namespace?: string;
  name?: string;
  sourceIPs: string[];
  userAgent?: string;
  code?: number;
  requestURI: string;
  /** The authorizer's decision and reason (annotations), when the API server recorded them. */
  decision?: string;
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const text = (v: unknown, max = MAX_TEXT): string | undefined => (typeof v === 'string' ? v.slice(0, max) : undefined);
const texts = (v: unknown): string[] => (Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string').slice(0, MAX_LIST).map((s) => s.slice(0, MAX_TEXT)) : []);

function user(v: unknown): AuditUser | undefined {
  if (!isObject(v)) return undefined;
  const username = text(v.username);
  if (username === undefined) return undefined;
  const out: AuditUser = { username };
  const groups = texts(v.groups);
  if (groups.length) out.groups = groups;
  if (isObject(v.extra)) {
    const extra: Record<string, string[]> = {};
    for (const key of KEPT_EXTRA) {
      const values = texts(v.extra[key]);
      if (values.length) extra[key] = values;
    }
    if (Object.keys(extra).length) out.extra = extra;
  }
  return out;
}

/**
 * The record of one audit event, or why it is not kept: only the final stage (ResponseComplete, or
 * Panic) says how the request ended; earlier stages of the same request would count it twice.
 */
export function toAuditRecord(event: unknown): AuditRecord | { skip: string } {
  if (!isObject(event)) return { skip: 'not an object' };
  const stage = text(event.stage);
  if (stage !== 'ResponseComplete' && stage !== 'Panic') return { skip: `stage ${stage ?? 'missing'}` };
  const auditID = text(event.auditID, 64);
  const verb = text(event.verb, 32);
  const time = text(event.requestReceivedTimestamp, 40);
  const who = user(event.user);
  if (!auditID || !verb || !time || Number.isNaN(Date.parse(time)) || !who) return { skip: 'missing auditID, verb, user or requestReceivedTimestamp' };
  const record: AuditRecord = { time: new Date(time).toISOString(), auditID, user: who, verb, sourceIPs: texts(event.sourceIPs), requestURI: text(event.requestURI, MAX_URI) ?? '' };
  const impersonated = user(event.impersonatedUser);
  if (impersonated) record.impersonatedUser = impersonated;
  if (isObject(event.objectRef)) {
    const ref = event.objectRef;
    for (const key of ['apiGroup', 'resource', 'subresource', 'namespace', 'name'] as const) {
      const value = text(ref[key], 253);
      if (value) record[key] = value;
    }
  }
  const userAgent = text(event.userAgent);
  if (userAgent) record.userAgent = userAgent;
  if (isObject(event.responseStatus) && Number.isInteger(event.responseStatus.code)) record.code = event.responseStatus.code as number;
  if (isObject(event.annotations)) {
    const decision = text(event.annotations['authorization.k8s.io/decision'], 16);
    const reason = text(event.annotations['authorization.k8s.io/reason']);
    if (decision) record.decision = reason ? `${decision}: ${reason}` : decision;
  }
  return record;
}

/** The items of an audit.k8s.io/v1 EventList (what the webhook backend POSTs), or why it is not one. */
export function eventListItems(body: unknown): unknown[] | { error: string } {
  if (!isObject(body)) return { error: 'the body is not a JSON object' };
  if (body.kind !== 'EventList' || typeof body.apiVersion !== 'string' || !body.apiVersion.startsWith('audit.k8s.io/')) {
    return { error: 'the body is not an audit.k8s.io EventList' };
  }
  return Array.isArray(body.items) ? body.items : [];
}

/** `system:serviceaccount:<namespace>:<name>`: the username of a ServiceAccount's tokens. */
export function serviceAccountUsername(namespace: string, name: string): string {
  return `system:serviceaccount:${namespace}:${name}`;
}
