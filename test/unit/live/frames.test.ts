import { createHash } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { decodeFrames, FrameProtocolError, FrameWriter, type Frame } from '../../../src/live/frames.js';

async function* chunksOf(buf: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

async function collect(input: AsyncIterable<Buffer | string>): Promise<Frame[]> {
  const frames: Frame[] = [];
  for await (const f of decodeFrames(input)) frames.push(f);
  return frames;
}

/** Everything a FrameWriter writes, as one buffer. */
async function encode(write: (w: FrameWriter) => Promise<void>): Promise<Buffer> {
  const out = new PassThrough();
  const parts: Buffer[] = [];
  out.on('data', (c: Buffer) => parts.push(c));
  await write(new FrameWriter(out));
  out.end();
  return Buffer.concat(parts);
}

function sha(buf: Buffer | string): string {
  return createHash('sha256').update(buf).digest('hex');
}

/** Reassembles artifacts from frames: name -> content. */
function artifacts(frames: Frame[]): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let name: string | null = null;
  let parts: Buffer[] = [];
  for (const f of frames) {
    if (f.t === 'open') [name, parts] = [f.artifact, []];
    else if (f.t === 'data') parts.push(f.chunk);
    else if (f.t === 'close') {
      const content = Buffer.concat(parts);
      expect(f.sha256).toBe(sha(content));
      expect(f.bytes).toBe(content.length);
      out.set(name!, content);
      name = null;
    }
  }
  return out;
}

describe('frames round trip', () => {
  const binary = Buffer.from([0, 10, 13, 0x7b, 0x22, 0xff, 10, 10, 0x7d]);

  async function sample(): Promise<Buffer> {
    return encode(async (w) => {
      await w.note('info', 'no files under /var/tmp');
      expect(await w.artifact('live/a.bin', binary)).toEqual({ sha256: sha(binary), bytes: binary.length });
      await w.artifact('live/empty', '');
      await w.artifact('live/text.json', (async function* () {
        yield '{"x":';
        yield Buffer.from('1}\n');
      })());
      await w.note('warn', 'cannot read /proc/42/environ: EACCES');
      await w.done({ processes: 3, notes: 2 });
    });
  }

  it('decodes the same frames when the stream is split at every byte boundary', async () => {
    const wire = await sample();
    const whole = await collect(chunksOf(wire, wire.length));
    expect(whole.map((f) => f.t)).toEqual(['note', 'open', 'data', 'close', 'open', 'close', 'open', 'data', 'close', 'note', 'done']);
    const files = artifacts(whole);
    expect(files.get('live/a.bin')).toEqual(binary);
    expect(files.get('live/empty')).toEqual(Buffer.alloc(0));
    expect(files.get('live/text.json')!.toString()).toBe('{"x":1}\n');
    expect(whole[whole.length - 1]).toEqual({ t: 'done', summary: { processes: 3, notes: 2 } });
    for (let cut = 1; cut < wire.length; cut++) {
      const two = (async function* () {
        yield wire.subarray(0, cut);
        yield wire.subarray(cut);
      })();
      const frames = await collect(two);
      expect(artifacts(frames)).toEqual(files);
      expect(frames.filter((f) => f.t !== 'data')).toEqual(whole.filter((f) => f.t !== 'data'));
    }
    const byByte = await collect(chunksOf(wire, 1));
    expect(artifacts(byByte)).toEqual(files);
  });

  it('accepts strings as input chunks', async () => {
    const frames = await collect((async function* () {
      yield '{"t":"open","artifact":"a"}\n{"t":"data","bytes":2}\nhi';
      yield `{"t":"close","sha256":"${sha('hi')}","bytes":2}\n`;
    })());
    expect(artifacts(frames).get('a')!.toString()).toBe('hi');
  });

  it('splits large content into data frames of at most 64 KiB', async () => {
    const big = Buffer.alloc(200_000, 7);
    const wire = await encode(async (w) => {
      await w.artifact('big', (async function* () {
        for (let i = 0; i < big.length; i += 10_000) yield big.subarray(i, i + 10_000);
      })());
    });
    const frames = await collect(chunksOf(wire, 4096));
    const data = frames.filter((f): f is Extract<Frame, { t: 'data' }> => f.t === 'data');
    expect(data.every((d) => d.chunk.length <= 65536)).toBe(true);
    expect(artifacts(frames).get('big')).toEqual(big);
  });

  it('waits for drain when the writable pushes back', async () => {
    const out = new PassThrough({ highWaterMark: 16 });
    const writer = new FrameWriter(out);
    const pending = writer.artifact('x', Buffer.alloc(100_000, 1));
    let settled = false;
    void pending.then(() => (settled = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(settled).toBe(false);
    const frames = collect(out);
    await pending;
    out.end();
    expect(artifacts(await frames).get('x')!.length).toBe(100_000);
  });

  it('refuses a second artifact while one is open, and notes inside an artifact', async () => {
    const out = new PassThrough();
    out.resume();
    const w = new FrameWriter(out);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const first = w.artifact('a', (async function* () {
      yield 'x';
      await gate;
    })());
    await new Promise((r) => setImmediate(r));
    await expect(w.artifact('b', 'y')).rejects.toThrow(/still open/);
    await expect(w.note('info', 'n')).rejects.toThrow(/open/);
    release();
    await first;
  });

  it('closes an artifact whose source fails and reports what was sent', async () => {
    const wire = await encode(async (w) => {
      await expect(
        w.artifact('partial', (async function* () {
          yield 'abc';
          throw new Error('EIO');
        })()),
      ).rejects.toMatchObject({ name: 'ArtifactContentError', sent: { bytes: 3, sha256: sha('abc') } });
      await w.done({});
    });
    const frames = await collect(chunksOf(wire, 5));
    expect(artifacts(frames).get('partial')!.toString()).toBe('abc');
  });
});

describe('malformed streams', () => {
  const closeAbc = `{"t":"close","sha256":"${sha('abc')}","bytes":3}\n`;
  it.each([
    ['a header over 64 KiB', `{"t":"note","level":"info","message":"${'x'.repeat(70_000)}"}\n`],
    ['a header over 64 KiB with no newline yet', 'x'.repeat(70_000)],
    ['bad JSON', '{"t":"open",\n'],
    ['a header that is not an object', '[1,2]\n'],
    ['an unknown t', '{"t":"bogus"}\n'],
    ['data bytes over 64 KiB', '{"t":"open","artifact":"a"}\n{"t":"data","bytes":65537}\n'],
    ['negative data bytes', '{"t":"open","artifact":"a"}\n{"t":"data","bytes":-1}\n'],
    ['fractional data bytes', '{"t":"open","artifact":"a"}\n{"t":"data","bytes":1.5}\n'],
    ['data with no open artifact', '{"t":"data","bytes":3}\nabc'],
    ['open while open', '{"t":"open","artifact":"a"}\n{"t":"open","artifact":"b"}\n'],
    ['open without a name', '{"t":"open"}\n'],
    ['close with no open artifact', closeAbc],
    ['close without a sha256', '{"t":"open","artifact":"a"}\n{"t":"close","bytes":0}\n'],
    ['a note with an unknown level', '{"t":"note","level":"debug","message":"m"}\n'],
    ['a note inside an artifact', '{"t":"open","artifact":"a"}\n{"t":"note","level":"info","message":"m"}\n'],
    ['done with a non-numeric summary', '{"t":"done","summary":{"a":"1"}}\n'],
    ['a frame after done', '{"t":"done","summary":{}}\n{"t":"note","level":"info","message":"m"}\n'],
    ['a stream cut inside a data frame', '{"t":"open","artifact":"a"}\n{"t":"data","bytes":3}\nab'],
    ['a stream cut inside a header', '{"t":"open","arti'],
  ])('rejects %s', async (_name, wire) => {
    await expect(collect(chunksOf(Buffer.from(wire), 7))).rejects.toThrow(FrameProtocolError);
  });
});

describe('header bounds', () => {
  it('cuts a long note so its header stays decodable', async () => {
    const wire = await encode(async (w) => {
      await w.note('warn', `cannot stat /tmp/${'\u0001'.repeat(50_000)}: EACCES`);
    });
    const [frame] = await collect(chunksOf(wire, 1000));
    expect(frame).toMatchObject({ t: 'note', level: 'warn', message: expect.stringMatching(/note cut at 4096 characters\)$/) });
  });

  it('refuses an artifact name whose header would exceed 64 KiB', async () => {
    const w = new FrameWriter(new PassThrough());
    await expect(w.artifact('a'.repeat(70_000), 'x')).rejects.toThrow(/too long/);
    await expect(w.artifact('', 'x')).rejects.toThrow(/empty/);
  });
});
