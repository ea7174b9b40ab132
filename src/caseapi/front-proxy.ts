// Who is asking. The API server's aggregator authenticates the user, then forwards the request over TLS
// with its front-proxy client certificate and the user's identity in request headers (X-Remote-User,
// X-Remote-Group, X-Remote-Extra-*). Those headers are believed only on a connection whose client
// certificate chains to the cluster's request-header CA and, when the cluster names them, carries one
// of the allowed common names: anyone else could write the same headers. The settings are the
// cluster's own, from ConfigMap kube-system/extension-apiserver-authentication (as every aggregated
// API server reads them).
import type { IncomingHttpHeaders } from 'node:http';
import type { PeerCertificate } from 'node:tls';

export interface RequestHeaderConfig {
  clientCA: string;
  allowedNames: string[];
  usernameHeaders: string[];
  groupHeaders: string[];
  extraHeaderPrefixes: string[];
}

export interface UserIdentity {
  user: string;
  groups: string[];
  extra: Record<string, string[]>;
}

export const AUTHENTICATION_CONFIGMAP = { namespace: 'kube-system', name: 'extension-apiserver-authentication' };

/** Reads the request-header settings from that ConfigMap's data; undefined when the cluster has none. */
export function requestHeaderConfig(data: Record<string, string> | undefined): RequestHeaderConfig | undefined {
  const clientCA = data?.['requestheader-client-ca-file'];
  if (!clientCA) return undefined;
  const list = (key: string) => {
    const raw = data?.[key];
    if (!raw) return [];
    const parsed: unknown = JSON.parse(raw);
    return Array.isArray(parsed) ? parsed.filter((v): v is string => typeof v === 'string') : [];
  };
  return {
    clientCA,
    allowedNames: list('requestheader-allowed-names'),
    usernameHeaders: list('requestheader-username-headers').map((h) => h.toLowerCase()),
    groupHeaders: list('requestheader-group-headers').map((h) => h.toLowerCase()),
    extraHeaderPrefixes: list('requestheader-extra-headers-prefix').map((h) => h.toLowerCase()),
  };
}

/**
 * The forwarding proxy's certificate is acceptable: TLS verified its chain against the request-header CA
 * (`authorized`), and its common name is allowed. An empty allowed list means any name that CA signed.
 */
export function proxyCertificateProblem(authorized: boolean, cert: PeerCertificate | undefined, config: RequestHeaderConfig): string | undefined {
  if (!cert || Object.keys(cert).length === 0) return 'no client certificate: requests come through the Kubernetes API server';
  if (!authorized) return 'the client certificate is not signed by the cluster request-header CA';
  const cn = cert.subject?.CN;
  const names = Array.isArray(cn) ? cn : cn ? [cn] : [];
  if (config.allowedNames.length > 0 && !names.some((n) => config.allowedNames.includes(n))) {
    return `the client certificate's common name ${JSON.stringify(names.join(','))} is not one of requestheader-allowed-names`;
  }
  return undefined;
}

/** The user the API server authenticated, from the identity headers; undefined when no user header is set. */
export function identityFromHeaders(headers: Record<string, string[] | undefined> | IncomingHttpHeaders, config: RequestHeaderConfig): UserIdentity | undefined {
  const values = (name: string): string[] => {
    const v = headers[name];
    return v === undefined ? [] : Array.isArray(v) ? v : [v];
  };
  const user = config.usernameHeaders.map((h) => values(h)[0]).find((u) => u !== undefined && u !== '');
  if (!user) return undefined;
  const groups = config.groupHeaders.flatMap(values);
  const extra: Record<string, string[]> = {};
  for (const [name, v] of Object.entries(headers)) {
    const prefix = config.extraHeaderPrefixes.find((p) => name.startsWith(p));
    if (!prefix || v === undefined) continue;
    // Extra keys are percent-encoded in the header name (k8s.io/apiserver's request-header authenticator).
    const key = decodeURIComponent(name.slice(prefix.length)).toLowerCase();
    (extra[key] ??= []).push(...(Array.isArray(v) ? v : [v]));
  }
  return { user, groups, extra };
}
