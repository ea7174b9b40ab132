// Mutation testing of the modules casefile's claims rest on (tamper evidence, alert matching,
// RBAC and network planning). On demand only: `npm run mutate` (full) or `npm run mutate:quick`
// (incremental: reuses reports/stryker-incremental.json and re-tests only what changed).
// One module at a time: `npm run mutate -- --mutate src/intake/matcher.ts`.
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  packageManager: 'npm',
  testRunner: 'jest',
  testRunnerNodeArgs: ['--experimental-vm-modules'],
  jest: { projectType: 'custom', configFile: 'jest.stryker.config.js', enableFindRelatedTests: false },
  checkers: ['typescript'],
  tsconfigFile: 'tsconfig.json',
  coverageAnalysis: 'perTest',
  mutate: [
    'src/evidence/**/*.ts',
    'src/intake/auth.ts',
    'src/intake/matcher.ts',
    'src/intake/alert-schema.ts',
    'src/intake/journal.ts',
    'src/phases/collector-output.ts',
    'src/phases/rbac-narrowed/plan.ts',
    'src/phases/network-isolated/policy.ts',
  ],
  ignoreStatic: true,
  // The Helm chart links config/ and crds/ as directories, which Stryker's sandbox copy cannot take
  // (EISDIR); no unit test reads the chart.
  ignorePatterns: ['/charts'],
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  incrementalFile: 'reports/stryker-incremental.json',
  thresholds: { high: 90, low: 85, break: null },
  concurrency: 1,
  timeoutMS: 8000,
  tempDirName: '.stryker-tmp',
  cleanTempDir: true,
};
