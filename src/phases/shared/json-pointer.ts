/** One JSON-pointer segment (RFC 6901): `~` and `/` escaped, e.g. a label key in `/metadata/labels/<key>`. */
export const jsonPointer = (key: string): string => key.replace(/~/g, '~0').replace(/\//g, '~1');
