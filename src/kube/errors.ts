// Reading an API error, whichever client raised it: client-node's ApiException and ./rest.ts's ApiError
// both carry the HTTP status as a numeric `code` and the server's Status as `body`.

export function errorCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown; statusCode?: unknown } | null)?.statusCode ?? (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

export const isNotFound = (err: unknown): boolean => errorCode(err) === 404;
export const isConflict = (err: unknown): boolean => errorCode(err) === 409;
export const isForbidden = (err: unknown): boolean => errorCode(err) === 403;

/** A 404 because the object's namespace does not exist (the Status names kind `namespaces`), not a missing object or resource type. */
export function isNamespaceNotFound(err: unknown): boolean {
  if (!isNotFound(err)) return false;
  let status = (err as { body?: unknown }).body;
  if (typeof status === 'string') {
    try {
      status = JSON.parse(status);
    } catch {
      return false;
    }
  }
  return (status as { details?: { kind?: unknown } } | undefined)?.details?.kind === 'namespaces';
}

