// The operator's signing key: an Ed25519 key in Secret casefile-signing-key (created with a fresh key
// if absent), and every public key it ever used in ConfigMap casefile-signing-keys, added to and never
// pruned, so a case signed before a rotation still verifies against the published old key.
import type { V1ConfigMap, V1Secret } from '@kubernetes/client-node';
import { errorMessage } from '../errors.js';
import { generateSigningKeyPem, signingKeyFromPem, type SigningKey } from '../evidence/signing.js';
import { type Kube } from '../kube/client.js';
import { isConflict, isNotFound } from '../kube/errors.js';
import type { Logger } from '../log.js';

export const SIGNING_KEY_SECRET = 'casefile-signing-key';
export const SIGNING_KEY_FIELD = 'ed25519.pem';
export const PUBLIC_KEYS_CONFIGMAP = 'casefile-signing-keys';
const LABELS = { 'app.kubernetes.io/name': 'casefile', 'app.kubernetes.io/component': 'signing' };

/** ConfigMap data key of a public key: its fingerprint with ':' (not allowed in a key) as '-', then '.pub'. */
export const publicKeyName = (fingerprint: string): string => `${fingerprint.replace(':', '-')}.pub`;

/** Reads the Secret, creating it with a fresh key if absent; a replica that lost the create race reads the winner's. */
async function readOrCreateSecret(kube: Kube, namespace: string, log: Logger): Promise<V1Secret> {
  try {
    return await kube.core.readNamespacedSecret({ name: SIGNING_KEY_SECRET, namespace });
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  const body: V1Secret = {
    metadata: { name: SIGNING_KEY_SECRET, namespace, labels: LABELS },
    type: 'Opaque',
    stringData: { [SIGNING_KEY_FIELD]: generateSigningKeyPem() },
  };
  try {
    const created = await kube.core.createNamespacedSecret({ namespace, body });
    log.info({ secret: `${namespace}/${SIGNING_KEY_SECRET}` }, 'created a new case signing key');
    return created;
  } catch (err) {
    if (!isConflict(err)) throw err; // 409 AlreadyExists: another replica created it first
    return kube.core.readNamespacedSecret({ name: SIGNING_KEY_SECRET, namespace });
  }
}

/** Adds the public key to the ConfigMap (created if absent). A merge patch of one data key: others are never removed. */
async function publish(kube: Kube, namespace: string, key: SigningKey): Promise<void> {
  const name = publicKeyName(key.fingerprint);
  let existing: V1ConfigMap | undefined;
  try {
    existing = await kube.core.readNamespacedConfigMap({ name: PUBLIC_KEYS_CONFIGMAP, namespace });
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  if (existing?.data?.[name] === key.publicKeyPem) return;
  if (!existing) {
    try {
      await kube.core.createNamespacedConfigMap({ namespace, body: { metadata: { name: PUBLIC_KEYS_CONFIGMAP, namespace, labels: LABELS }, data: { [name]: key.publicKeyPem } } });
      return;
    } catch (err) {
      if (!isConflict(err)) throw err;
    }
  }
  await kube.core.patchNamespacedConfigMap({ name: PUBLIC_KEYS_CONFIGMAP, namespace, body: { data: { [name]: key.publicKeyPem } } }, kube.mergePatch);
}

/** Loads (or creates) the key and publishes its public half; throws with what to fix. */
export async function ensureSigningKey(kube: Kube, namespace: string, log: Logger): Promise<SigningKey> {
  const secret = await readOrCreateSecret(kube, namespace, log);
  const encoded = secret.data?.[SIGNING_KEY_FIELD];
  if (!encoded) throw new Error(`Secret ${namespace}/${SIGNING_KEY_SECRET} has no ${SIGNING_KEY_FIELD}`);
  let key: SigningKey;
  try {
    key = signingKeyFromPem(Buffer.from(encoded, 'base64').toString('utf8'));
  } catch (err) {
    throw new Error(`Secret ${namespace}/${SIGNING_KEY_SECRET} ${SIGNING_KEY_FIELD}: ${errorMessage(err)}`);
  }
  await publish(kube, namespace, key);
  return key;
}

/**
 * The key for signing, loaded once per process (a rotation takes effect on restart). A failed load
 * is not cached: the next case tries again.
 */
export class SigningKeys {
  private loaded: Promise<SigningKey> | undefined;

  constructor(private readonly load: () => Promise<SigningKey>) {}

  current(): Promise<SigningKey> {
    this.loaded ??= this.load().catch((err: unknown) => {
      this.loaded = undefined;
      throw err;
    });
    return this.loaded;
  }
}
