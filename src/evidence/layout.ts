// The names the store itself writes in a case directory, shared by the store, signing and bundles.

export const CUSTODY_FILE = 'custody.jsonl';
export const MANIFEST_FILE = 'MANIFEST.sha256';
/**
 * The one file added after the seal (the sealed manifest cannot list its own signature). The name is
 * the product contract's (docs: investigation-api "The case file"); the content is JSON (signing.ts).
 */
export const SIGNATURE_FILE = 'MANIFEST.sha256.sig';
/** Where temp files wait to be linked into place; never part of the case. */
export const PARTIAL_DIR = '.partial';
export const SEALED_ACTION = 'sealed';
export const SIGNED_ACTION = 'signed';
/** Custody actions whose artifact/sha256/bytes describe a file in the case. */
export const ARTIFACT_ACTIONS = new Set(['artifact', 'artifact-recovered', 'artifact-interrupted', 'artifact-failed']);
/** The custody action that names a side file holding a torn custody tail (custody.ts). */
export const TORN_TAIL_ACTION = 'custody-torn-tail-preserved';
