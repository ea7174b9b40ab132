import { PassThrough } from 'node:stream';
import { main, parseArgs, UsageError } from '../../../src/live/collector-cli.js';
import { DEFAULT_RUNTIME_STATE } from '../../../src/live/node-collector.js';

const ID = '0123456789abcdef';

describe('parseArgs', () => {
  it('parses the live contract', () => {
    expect(parseArgs(['live', '--container-id', ID, '--paths', '/tmp,/var/tmp/,/dev/shm', '--max-file-bytes', '10485760', '--redact-environment', '--declared-ports', 'tcp/8080,udp/53', '--cluster-cidrs=10.88.0.0/16,10.96.0.0/16'])).toEqual({
      mode: 'live',
      options: {
        containerId: ID,
        paths: ['/tmp', '/var/tmp', '/dev/shm'],
        maxFileBytes: 10485760,
        redactEnvironment: true,
        declaredPorts: [{ proto: 'tcp', port: 8080 }, { proto: 'udp', port: 53 }],
        clusterCidrs: ['10.88.0.0/16', '10.96.0.0/16'],
        proc: '/proc',
        maxHashBytes: 256 * 1024 * 1024,
        walkSeconds: 60,
        memoryScope: 'Suspicious',
        memoryMaxBytes: 268435456,
      },
    });
  });

  it('takes the memory scope and budget, and refuses a scope it does not know', () => {
    const base = ['live', '--container-id', ID, '--paths', '/tmp', '--max-file-bytes', '1'];
    expect(parseArgs([...base, '--memory-scope', 'None', '--memory-max-bytes', '0']).options).toMatchObject({ memoryScope: 'None', memoryMaxBytes: 0 });
    expect(() => parseArgs([...base, '--memory-scope', 'all'])).toThrow(/--memory-scope: "all" is not one of Suspicious, Anonymous, None/);
    expect(() => parseArgs([...base, '--memory-max-bytes', '-1'])).toThrow(/--memory-max-bytes/);
  });

  it('parses the node contract', () => {
    expect(parseArgs(['node', '--container-id', ID, '--host-proc', '/host/proc', '--host-prefix', '/host', '--max-file-bytes', '5'])).toEqual({
      mode: 'node',
      options: { containerId: ID, hostProc: '/host/proc', hostPrefix: '/host', maxFileBytes: 5, runtimeState: DEFAULT_RUNTIME_STATE, maxHashBytes: 256 * 1024 * 1024, walkSeconds: 60 },
    });
  });

  it.each([
    [[], /mode is required/],
    [['probe'], /unknown mode/],
    [['live', '--paths', '/tmp', '--max-file-bytes', '1'], /--container-id is required/],
    [['live', '--container-id', 'ABC', '--paths', '/tmp', '--max-file-bytes', '1'], /not a lowercase hex/],
    [['live', '--container-id', '../../etc/passwd', '--paths', '/tmp', '--max-file-bytes', '1'], /not a lowercase hex/],
    [['live', '--container-id', ID, '--max-file-bytes', '1'], /--paths is required/],
    [['live', '--container-id', ID, '--paths', 'tmp', '--max-file-bytes', '1'], /not an absolute path/],
    [['live', '--container-id', ID, '--paths', '/tmp/../etc', '--max-file-bytes', '1'], /without '\.\.'/],
    [['live', '--container-id', ID, '--paths', '/tmp', '--max-file-bytes', '-1'], /not a whole number/],
    [['live', '--container-id', ID, '--paths', '/tmp', '--max-file-bytes', '1', '--walk-seconds', '0'], /at least 1/],
    [['live', '--container-id', ID, '--paths', '/tmp', '--max-file-bytes', '1', '--max-hash-bytes', '1e9'], /not a whole number/],
    [['live', '--container-id', ID, '--paths', '/tmp'], /--max-file-bytes is required/],
    [['live', '--container-id', ID, '--paths', '/tmp', '--max-file-bytes', '1', '--declared-ports', 'sctp/1'], /declared-ports/],
    [['live', '--container-id', ID, '--paths', '/tmp', '--max-file-bytes', '1', '--declared-ports', 'tcp/70000'], /declared-ports/],
    [['live', '--container-id', ID, '--paths', '/tmp', '--max-file-bytes', '1', '--cluster-cidrs', '10.0.0.0/40'], /cluster-cidrs/],
    [['live', '--container-id', ID, '--paths', '/tmp', '--max-file-bytes', '1', '--bogus'], /unknown argument/],
    [['live', '--container-id', ID, '--container-id', ID], /given twice/],
    [['live', '--container-id'], /needs a value/],
    [['live', '--redact-environment=yes'], /takes no value/],
    [['node', '--container-id', ID, '--host-proc', '/host/proc', '--max-file-bytes', '1'], /--host-prefix is required/],
    [['node', '--container-id', ID, '--redact-environment'], /unknown argument/],
  ])('%j is a usage error', (argv, message) => {
    expect(() => parseArgs(argv as string[])).toThrow(UsageError);
    expect(() => parseArgs(argv as string[])).toThrow(message as RegExp);
  });
});

describe('main', () => {
  it('exits 2 with the message and usage on stderr, nothing on stdout', async () => {
    const out = new PassThrough();
    const err = new PassThrough();
    const outParts: Buffer[] = [];
    const errParts: Buffer[] = [];
    out.on('data', (c: Buffer) => outParts.push(c));
    err.on('data', (c: Buffer) => errParts.push(c));
    expect(await main(['live', '--paths', '/tmp'], out, err)).toBe(2);
    expect(Buffer.concat(outParts).length).toBe(0);
    expect(Buffer.concat(errParts).toString()).toMatch(/^collector-cli: --container-id is required\nusage:/);
  });
});

describe('the debug image entry', () => {
  it('imports only node built-ins, src/live and the dependency-free path and error helpers', async () => {
    const { readdir, readFile } = await import('node:fs/promises');
    const dir = new URL('../../../src/live/', import.meta.url);
    const files = [...(await readdir(dir)).map((f) => new URL(f, dir)), new URL('../../../src/evidence/paths.ts', import.meta.url), new URL('../../../src/errors.ts', import.meta.url)];
    for (const file of files) {
      const text = await readFile(file, 'utf8');
      for (const [, spec] of text.matchAll(/^import [^;]*? from '([^']+)';/gms)) {
        expect([file.pathname, spec]).toEqual([file.pathname, expect.stringMatching(/^(node:|\.\/[a-z-]+\.js$|\.\.\/evidence\/paths\.js$|\.\.\/errors\.js$)/)]);
      }
    }
  });
});
