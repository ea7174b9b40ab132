// The unit project alone, as one flat Jest config: Stryker's Jest runner does not take `projects`.
import base from './jest.config.js';

const { displayName: _name, ...unit } = base.projects.find((p) => p.displayName === 'unit');
export default unit;
