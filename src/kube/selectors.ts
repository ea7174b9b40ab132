// Label selector matching as the API server defines it (matchLabels AND every matchExpression).
import type { V1LabelSelector } from '@kubernetes/client-node';

export function selectorMatches(selector: V1LabelSelector | undefined, labels: Record<string, string> | undefined): boolean {
  if (!selector) return false; // a missing selector selects nothing; an empty one ({}) selects everything
  const have = labels ?? {};
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    if (have[key] !== value) return false;
  }
  for (const expr of selector.matchExpressions ?? []) {
    const present = Object.prototype.hasOwnProperty.call(have, expr.key);
    const values = expr.values ?? [];
    switch (expr.operator) {
      case 'In':
        if (!present || !values.includes(have[expr.key]!)) return false;
        break;
      case 'NotIn':
        if (present && values.includes(have[expr.key]!)) return false;
        break;
      case 'Exists':
        if (!present) return false;
        break;
      case 'DoesNotExist':
        if (present) return false;
        break;
      default:
        return false; // unknown operators select nothing, as the API server would reject them
    }
  }
  return true;
}
