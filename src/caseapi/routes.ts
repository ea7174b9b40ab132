// The case-file API's paths, as the API server's aggregator forwards them. A pure parse: the server
// acts only on what this returns, so nothing from the URL reaches the file system unchecked.

export const CASE_API_GROUP = 'cases.casefile.dev';
export const CASE_API_VERSION = 'v1alpha1';
export const CASE_API_RESOURCE = 'casefiles';
/** What a case-file request is: the object (a summary), its bundle (tar.gz), or its report. */
export const CASE_API_SUBRESOURCES = ['bundle', 'report'] as const;
export type CaseSubresource = (typeof CASE_API_SUBRESOURCES)[number];

export type CaseApiRoute =
  | { kind: 'discovery' }
  | { kind: 'case'; namespace: string; name: string; subresource?: CaseSubresource }
  | { kind: 'not-found' };

/** Kubernetes object names (DNS-1123 subdomain): nothing else can name an Investigation. */
const NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export function parseCaseApiPath(pathname: string): CaseApiRoute {
  const prefix = `/apis/${CASE_API_GROUP}/${CASE_API_VERSION}`;
  if (pathname === prefix || pathname === `${prefix}/`) return { kind: 'discovery' };
  if (!pathname.startsWith(`${prefix}/`)) return { kind: 'not-found' };
  const parts = pathname.slice(prefix.length + 1).split('/');
  const [nsKeyword, namespace, resource, name, sub, ...rest] = parts;
  if (nsKeyword !== 'namespaces' || resource !== CASE_API_RESOURCE || rest.length > 0) return { kind: 'not-found' };
  if (!namespace || !NAMESPACE.test(namespace) || !name || !NAME.test(name)) return { kind: 'not-found' };
  if (sub === undefined) return { kind: 'case', namespace, name };
  if (!(CASE_API_SUBRESOURCES as readonly string[]).includes(sub)) return { kind: 'not-found' };
  return { kind: 'case', namespace, name, subresource: sub as CaseSubresource };
}

/** The APIResourceList the aggregator and kubectl discover. */
export function discoveryDocument(): Record<string, unknown> {
  const resource = (name: string) => ({ name, singularName: name === CASE_API_RESOURCE ? 'casefile' : '', namespaced: true, kind: 'CaseFile', verbs: ['get'] });
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion: `${CASE_API_GROUP}/${CASE_API_VERSION}`,
    resources: [resource(CASE_API_RESOURCE), ...CASE_API_SUBRESOURCES.map((s) => resource(`${CASE_API_RESOURCE}/${s}`))],
  };
}

/** A Kubernetes Status body: kubectl prints its message ("Error from server (Forbidden): ..."). */
export function statusBody(code: number, reason: string, message: string): Record<string, unknown> {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}
