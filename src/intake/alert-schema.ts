// What an alert sender may POST: Falco's http_output JSON (json_output: true) or Falcosidekick's webhook
// payload, which is the same object plus a `uuid`. Falco always sends time, rule, priority, source and
// hostname; output_fields holds only what the rule's output template references, so only rule,
// priority and time are required here (the three an Investigation's spec.alert is built from).
import { z } from 'zod';
import { falcoPriorities, type alertSources } from '../api/investigation.js';
import { errorMessage } from '../errors.js';

type FalcoPriority = (typeof falcoPriorities)[number];

const PRIORITY_ALIASES: Record<string, FalcoPriority> = { info: 'Informational' };
for (const p of falcoPriorities) PRIORITY_ALIASES[p.toLowerCase()] = p;

/** Falco's name for a priority written in any case ("CRITICAL", "critical"), "Info" included; else undefined. */
export function normalizePriority(value: string): FalcoPriority | undefined {
  return PRIORITY_ALIASES[value.trim().toLowerCase()];
}

/** Higher is more severe: Emergency 7 ... Debug 0. */
export function priorityRank(priority: FalcoPriority): number {
  return falcoPriorities.length - 1 - falcoPriorities.indexOf(priority);
}

const outputFieldValue = z.union([z.string(), z.number(), z.boolean(), z.null()]);

const falcoAlertSchema = z.looseObject({
  rule: z.string().min(1).max(1024),
  priority: z.string().transform((value, ctx) => {
    const p = normalizePriority(value);
    if (p) return p;
    ctx.addIssue({ code: 'custom', message: `must be one of ${falcoPriorities.join(', ')} (any case, or Info)` });
    return z.NEVER;
  }),
  time: z
    .string()
    .min(1)
    .max(64)
    .refine((t) => !Number.isNaN(Date.parse(t)), 'must be an RFC 3339 time such as 2026-11-20T10:17:03.112233445Z'),
  output: z.string().optional(),
  source: z.string().max(64).optional(),
  hostname: z.string().max(253).optional(),
  tags: z.array(z.string()).max(256).default([]),
  output_fields: z.record(z.string(), outputFieldValue).default({}),
  uuid: z.string().max(64).optional(),
});

export type FalcoAlert = z.infer<typeof falcoAlertSchema>;

export interface ParsedAlert {
  alert: FalcoAlert;
  /** Falcosidekick adds a uuid and says so in its User-Agent; Falco itself does neither. `audit`: an audit event from the API server (src/audit/alert.ts). */
  sender: Extract<(typeof alertSources)[number], 'falco' | 'falcosidekick' | 'audit'>; // each one of spec.alert.source's values
}

/** Parses a JSON body; on failure the message names the first bad field (e.g. `output_fields.user.uid`). */
export function parseAlert(body: string, userAgent?: string): { ok: true; value: ParsedAlert } | { ok: false; field: string; message: string } {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch (err) {
    return { ok: false, field: '(body)', message: `not valid JSON: ${errorMessage(err)}` };
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    return { ok: false, field: '(body)', message: 'expected a JSON object (one Falco alert)' };
  }
  const result = falcoAlertSchema.safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    // output_fields keys contain dots ("k8s.pod.name"): joining the path with dots would hide where they are.
    const [head, ...rest] = issue.path.map(String);
    const field = head === 'output_fields' && rest.length ? `output_fields["${rest.join('.')}"]` : issue.path.join('.') || '(body)';
    return { ok: false, field, message: `${field}: ${issue.message}` };
  }
  const sender = result.data.uuid !== undefined || /^falcosidekick/i.test(userAgent ?? '') ? 'falcosidekick' : 'falco';
  return { ok: true, value: { alert: result.data, sender } };
}

/** An output field as a string, or undefined when missing or null (Falco writes null for "not applicable"). */
export function outputField(alert: FalcoAlert, key: string): string | undefined {
  const v = alert.output_fields[key];
  return v === undefined || v === null ? undefined : String(v);
}
