// An audit record that is itself a signal: someone got into a pod (exec, attach, port-forward) or added
// an ephemeral container to it. It becomes an alert in the shape of Falco's k8saudit plugin (same rule
// names, same `ka.*` fields), so one ResponsePolicy matches it whether Falco or casefile saw the event,
// and it goes through intake's matching, journal and dedup like any alert.
import { execCommand } from './correlate.js';
import type { AuditRecord } from './record.js';

/** Falco's k8s_audit_rules names for the same requests. */
const RULES: Record<string, string> = {
  exec: 'Attach/Exec Pod',
  attach: 'Attach/Exec Pod',
  portforward: 'Port-forward to Pod',
  ephemeralcontainers: 'EphemeralContainers Created',
};

export interface AuditAlert {
  rule: string;
  priority: 'Notice';
  time: string;
  source: 'k8s_audit';
  output: string;
  tags: string[];
  output_fields: Record<string, string | null>;
}

/** The alert an audit record raises, or undefined: only successful requests into a pod are signals. */
export function podAccessAlert(record: AuditRecord): AuditAlert | undefined {
  const rule = record.resource === 'pods' && (record.apiGroup ?? '') === '' && record.subresource ? RULES[record.subresource] : undefined;
  if (!rule || !record.namespace || !record.name) return undefined;
  if (record.code !== undefined && record.code >= 400) return undefined;
  if (record.subresource === 'ephemeralcontainers' && !['patch', 'update'].includes(record.verb)) return undefined;
  const command = record.subresource === 'exec' ? execCommand(record.requestURI).join(' ').slice(0, 512) : '';
  const user = record.impersonatedUser?.username ?? record.user.username;
  return {
    rule,
    priority: 'Notice',
    time: record.time,
    source: 'k8s_audit',
    output: `${rule} (user=${user} pod=${record.name} ns=${record.namespace} action=${record.subresource}${command ? ` command=${command}` : ''})`,
    tags: ['k8s'],
    output_fields: {
      'ka.auditid': record.auditID,
      'ka.user.name': user,
      'ka.verb': record.verb,
      'ka.target.resource': 'pods',
      'ka.target.subresource': record.subresource!,
      'ka.target.namespace': record.namespace,
      'ka.target.name': record.name,
      'ka.uri.param[command]': command || null,
    },
  };
}
