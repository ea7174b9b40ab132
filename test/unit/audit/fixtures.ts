// Audit events as the API server's webhook backend sends them (audit.k8s.io/v1), for the audit tests.
let counter = 0;

export interface EventShape {
  verb?: string;
  user?: string;
  groups?: string[];
  podUID?: string;
  podName?: string;
  resource?: string;
  subresource?: string;
  apiGroup?: string;
  namespace?: string;
  name?: string;
  code?: number;
  time?: string;
  stage?: string;
  requestURI?: string;
  auditID?: string;
}

export function auditEvent(e: EventShape = {}): Record<string, unknown> {
  const extra: Record<string, string[]> = {};
  if (e.podUID) extra['authentication.kubernetes.io/pod-uid'] = [e.podUID];
  if (e.podName) extra['authentication.kubernetes.io/pod-name'] = [e.podName];
  const objectRef: Record<string, string> = {};
  for (const k of ['resource', 'subresource', 'apiGroup', 'namespace', 'name'] as const) if (e[k] !== undefined) objectRef[k] = e[k]!;
  return {
    kind: 'Event',
    apiVersion: 'audit.k8s.io/v1',
    level: 'Metadata',
    auditID: e.auditID ?? `00000000-0000-0000-0000-${String(++counter).padStart(12, '0')}`,
    stage: e.stage ?? 'ResponseComplete',
    requestURI: e.requestURI ?? `/api/v1/namespaces/${e.namespace ?? 'shop'}/${e.resource ?? 'pods'}`,
    verb: e.verb ?? 'get',
    user: { username: e.user ?? 'mallory', groups: e.groups ?? ['system:authenticated'], ...(Object.keys(extra).length ? { extra } : {}) },
    sourceIPs: ['10.0.0.7'],
    userAgent: 'kubectl/v1.33.0',
    objectRef,
    responseStatus: { metadata: {}, code: e.code ?? 200 },
    requestReceivedTimestamp: e.time ?? '2026-12-03T10:00:00.000000Z',
    stageTimestamp: e.time ?? '2026-12-03T10:00:00.100000Z',
    annotations: { 'authorization.k8s.io/decision': 'allow', 'authorization.k8s.io/reason': 'RBAC: allowed by RoleBinding' },
  };
}

export function eventList(items: unknown[]): Record<string, unknown> {
  return { kind: 'EventList', apiVersion: 'audit.k8s.io/v1', metadata: {}, items };
}
