// The unit project alone, as one flat Jest config: Stryker's Jest runner does not take `projects`.
// STRYKER_TESTS (comma-separated test paths) narrows the tests for a quick run of one module; the
// score is then a lower bound, as a mutant only other tests would kill counts as surviving.
import base from './jest.config.js';

const { displayName: _name, ...unit } = base.projects.find((p) => p.displayName === 'unit');
const only = process.env.STRYKER_TESTS?.split(',').filter(Boolean);
export default only ? { ...unit, testMatch: only.map((t) => `<rootDir>/${t}`) } : unit;
