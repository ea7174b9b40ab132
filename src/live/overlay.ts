/** Parsing /proc/<pid>/mountinfo and overlayfs super options. */

export interface MountInfo {
  mountId: number;
  parentId: number;
  device: string;
  root: string;
  mountPoint: string;
  options: string;
  fsType: string;
  source: string;
  superOptions: string;
}

/** The kernel writes space, tab, newline and backslash (and ',' '=' in options) as \ooo. */
function unescapeOctal(text: string): string {
  return text.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue" → fields; null if malformed. */
export function parseMountinfoLine(line: string): MountInfo | null {
  const f = line.split(' ');
  const dash = f.indexOf('-', 6);
  if (f.length < 10 || dash === -1 || f.length < dash + 4) return null;
  return {
    mountId: Number(f[0]),
    parentId: Number(f[1]),
    device: f[2]!,
    root: unescapeOctal(f[3]!),
    mountPoint: unescapeOctal(f[4]!),
    options: f[5]!,
    fsType: f[dash + 1]!,
    source: unescapeOctal(f[dash + 2]!),
    superOptions: f.slice(dash + 3).join(' '),
  };
}

export interface OverlayOptions {
  upperdir: string | null;
  workdir: string | null;
  lowerdir: string[];
}

/**
 * Super options are split on ',' before unescaping (a ',' inside a value is printed as \054).
 * lowerdir is ':'-separated with '\:' for a literal colon; kernels since 6.7 may print
 * repeated "lowerdir+=" options instead.
 */
export function parseOverlayOptions(superOptions: string): OverlayOptions {
  const result: OverlayOptions = { upperdir: null, workdir: null, lowerdir: [] };
  for (const raw of superOptions.split(',')) {
    const eq = raw.indexOf('=');
    if (eq === -1) continue;
    const key = raw.slice(0, eq);
    const value = unescapeOctal(raw.slice(eq + 1));
    if (key === 'upperdir') result.upperdir = value;
    else if (key === 'workdir') result.workdir = value;
    else if (key === 'lowerdir') result.lowerdir.push(...value.split(/(?<!\\):/).map((d) => d.replace(/\\:/g, ':')));
    else if (key === 'lowerdir+') result.lowerdir.push(value);
  }
  return result;
}
