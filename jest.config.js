// Two layers: unit tests of pure logic (seconds, no cluster) and e2e tests against the
// real cluster from e2e/cluster (KUBECONFIG from `e2e/cluster/env`).
const esm = {
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: { '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json' }] },
  testEnvironment: 'node',
};
export default {
  projects: [
    { ...esm, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'] },
    { ...esm, displayName: 'e2e', testMatch: ['<rootDir>/e2e/**/*.test.ts'], testTimeout: 300000 },
  ],
};
