// The operator's signing key against an in-memory API server: created once (another replica's create
// wins a race), published in the ConfigMap, and rotation adds a public key without removing one.
import { describe, expect, test } from '@jest/globals';
import type { V1ConfigMap, V1Secret } from '@kubernetes/client-node';
import { ensureSigningKey, publicKeyName, SigningKeys } from '../../../src/engine/signing-keys.js';
import { generateSigningKeyPem, signingKeyFromPem } from '../../../src/evidence/signing.js';
import type { Kube } from '../../../src/kube/client.js';
import { logger } from '../../../src/log.js';
import { KEY_A_FINGERPRINT, KEY_A_PEM, KEY_A_PUBLIC_PEM } from '../evidence/sealed-case.js';

const NS = 'casefile-system';
const log = logger.child({}, { level: 'silent' });
const apiError = (code: number) => Object.assign(new Error(`HTTP ${code}`), { code, body: {} });
const secretOf = (pem: string): V1Secret => ({ metadata: { name: 'casefile-signing-key' }, data: { 'ed25519.pem': Buffer.from(pem).toString('base64') } });

/** Secrets and ConfigMaps of one namespace; `beforeCreate` lets a test play another replica. */
class FakeCore {
  secret: V1Secret | undefined;
  configMap: V1ConfigMap | undefined;
  writes: string[] = [];
  beforeCreate: () => void = () => undefined;

  kube(): Kube {
    const core = {
      readNamespacedSecret: async () => {
        if (!this.secret) throw apiError(404);
        return structuredClone(this.secret);
      },
      createNamespacedSecret: async ({ body }: { body: V1Secret }) => {
        this.beforeCreate();
        if (this.secret) throw apiError(409);
        this.writes.push('create secret');
        // The API server turns stringData into base64 data.
        this.secret = { metadata: body.metadata, data: Object.fromEntries(Object.entries(body.stringData ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')])) };
        return structuredClone(this.secret);
      },
      readNamespacedConfigMap: async () => {
        if (!this.configMap) throw apiError(404);
        return structuredClone(this.configMap);
      },
      createNamespacedConfigMap: async ({ body }: { body: V1ConfigMap }) => {
        this.beforeCreate();
        if (this.configMap) throw apiError(409);
        this.writes.push('create configmap');
        this.configMap = structuredClone(body);
      },
      patchNamespacedConfigMap: async ({ body }: { body: { data: Record<string, string> } }) => {
        this.writes.push('patch configmap');
        this.configMap = { ...this.configMap, data: { ...this.configMap?.data, ...body.data } };
      },
    };
    return { core, mergePatch: {} } as unknown as Kube;
  }
}

describe('ensureSigningKey', () => {
  test('creates the Secret with a fresh Ed25519 key when absent, and publishes its public key', async () => {
    const api = new FakeCore();
    const key = await ensureSigningKey(api.kube(), NS, log);
    expect(signingKeyFromPem(Buffer.from(api.secret!.data!['ed25519.pem']!, 'base64').toString()).fingerprint).toBe(key.fingerprint);
    expect(api.configMap?.data).toEqual({ [publicKeyName(key.fingerprint)]: key.publicKeyPem });
    expect(publicKeyName(key.fingerprint)).toMatch(/^sha256-[0-9a-f]{64}\.pub$/);
    expect(api.writes).toEqual(['create secret', 'create configmap']);
  });

  test('uses an existing Secret as it is, and writes nothing when its key is already published', async () => {
    const api = new FakeCore();
    api.secret = secretOf(KEY_A_PEM);
    api.configMap = { data: { [publicKeyName(KEY_A_FINGERPRINT)]: KEY_A_PUBLIC_PEM } };
    expect((await ensureSigningKey(api.kube(), NS, log)).fingerprint).toBe(KEY_A_FINGERPRINT);
    expect(api.writes).toEqual([]);
  });

  test("loses the create race to another replica and uses that replica's key", async () => {
    const api = new FakeCore();
    api.beforeCreate = () => {
      api.secret ??= secretOf(KEY_A_PEM);
      api.configMap ??= { data: {} };
    };
    expect((await ensureSigningKey(api.kube(), NS, log)).fingerprint).toBe(KEY_A_FINGERPRINT);
    expect(api.configMap?.data).toEqual({ [publicKeyName(KEY_A_FINGERPRINT)]: KEY_A_PUBLIC_PEM });
    expect(api.writes).toEqual(['patch configmap']);
  });

  test('adds to a ConfigMap another replica created between its read and its create', async () => {
    const api = new FakeCore();
    api.secret = secretOf(KEY_A_PEM);
    api.beforeCreate = () => {
      api.configMap ??= { data: { 'sha256-old.pub': 'old' } };
    };
    await ensureSigningKey(api.kube(), NS, log);
    expect(api.configMap?.data).toEqual({ 'sha256-old.pub': 'old', [publicKeyName(KEY_A_FINGERPRINT)]: KEY_A_PUBLIC_PEM });
    expect(api.writes).toEqual(['patch configmap']);
  });

  test('rotation: a replaced Secret adds its public key and keeps the old one', async () => {
    const api = new FakeCore();
    api.secret = secretOf(KEY_A_PEM);
    await ensureSigningKey(api.kube(), NS, log);
    api.secret = secretOf(generateSigningKeyPem());
    const rotated = await ensureSigningKey(api.kube(), NS, log);
    expect(api.configMap?.data).toEqual({
      [publicKeyName(KEY_A_FINGERPRINT)]: KEY_A_PUBLIC_PEM,
      [publicKeyName(rotated.fingerprint)]: rotated.publicKeyPem,
    });
  });

  test('says what is wrong with a Secret it cannot use', async () => {
    const api = new FakeCore();
    api.secret = { metadata: { name: 'casefile-signing-key' }, data: {} };
    await expect(ensureSigningKey(api.kube(), NS, log)).rejects.toThrow(`Secret ${NS}/casefile-signing-key has no ed25519.pem`);
    api.secret = secretOf('not a key');
    await expect(ensureSigningKey(api.kube(), NS, log)).rejects.toThrow(`Secret ${NS}/casefile-signing-key ed25519.pem: `);
  });

  test('passes on an API error other than NotFound/AlreadyExists', async () => {
    const api = new FakeCore();
    const kube = api.kube();
    (kube.core as unknown as { readNamespacedSecret: () => Promise<never> }).readNamespacedSecret = async () => {
      throw apiError(403);
    };
    await expect(ensureSigningKey(kube, NS, log)).rejects.toThrow('HTTP 403');
    expect(api.writes).toEqual([]);
  });
});

describe('SigningKeys', () => {
  test('loads once, but does not keep a failure', async () => {
    let calls = 0;
    const keys = new SigningKeys(async () => {
      calls++;
      if (calls === 1) throw new Error('API down');
      return signingKeyFromPem(KEY_A_PEM);
    });
    await expect(keys.current()).rejects.toThrow('API down');
    expect((await keys.current()).fingerprint).toBe(KEY_A_FINGERPRINT);
    await keys.current();
    expect(calls).toBe(2);
  });
});
