import { describe, expect, it } from '@jest/globals';
import { intakeConfigSchema } from '../../../src/config.js';

const problems = (input: Record<string, unknown>) => {
  const r = intakeConfigSchema.safeParse(input);
  return r.success ? [] : r.error.issues.map((i) => i.message);
};

describe('intake configuration', () => {
  it('is off by default, with the documented limits', () => {
    expect(intakeConfigSchema.parse({}).port).toBeUndefined();
    expect(intakeConfigSchema.parse({})).toMatchObject({ maxBodyBytes: 1048576, namespaceRate: 1, namespaceBurst: 20, policyRate: 2, policyBurst: 50 });
  });

  it('refuses a port without authentication, naming the flags', () => {
    expect(problems({ port: 8443 }).join()).toMatch(/--intake-port .*--intake-token-file.*--intake-client-ca/);
    expect(problems({ port: 8443, tokenFile: '/t' })).toEqual([]);
  });

  it('refuses mutual TLS without a server certificate, and a certificate without its key', () => {
    expect(problems({ port: 8443, clientCA: '/ca' }).join()).toContain('--intake-client-ca');
    expect(problems({ port: 8443, tokenFile: '/t', tlsCert: '/c' }).join()).toContain('--intake-tls-key');
    expect(problems({ port: 8443, clientCA: '/ca', tlsCert: '/c', tlsKey: '/k' })).toEqual([]);
  });
});
