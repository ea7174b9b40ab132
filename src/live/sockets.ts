import { endianness } from 'node:os';

/** Decoding of /proc/<pid>/net/{tcp,tcp6,udp,udp6}. */

export type SocketProto = 'tcp' | 'tcp6' | 'udp' | 'udp6';
export const SOCKET_PROTOS: readonly SocketProto[] = ['tcp', 'tcp6', 'udp', 'udp6'];

export interface Endpoint {
  address: string;
  port: number;
}

export interface SocketOwner {
  pid: number;
  fd: number;
  name: string;
  role: string;
}

export interface SocketEntry {
  proto: SocketProto;
  state: string;
  local: Endpoint;
  remote: Endpoint;
  inode: number;
  uid: number;
  owners: SocketOwner[];
}

/** include/net/tcp_states.h; UDP reuses the numbers (07 = unconnected, 01 = connected). */
const TCP_STATES: Record<number, string> = {
  0x01: 'ESTABLISHED',
  0x02: 'SYN_SENT',
  0x03: 'SYN_RECV',
  0x04: 'FIN_WAIT1',
  0x05: 'FIN_WAIT2',
  0x06: 'TIME_WAIT',
  0x07: 'CLOSE',
  0x08: 'CLOSE_WAIT',
  0x09: 'LAST_ACK',
  0x0a: 'LISTEN',
  0x0b: 'CLOSING',
  0x0c: 'NEW_SYN_RECV',
};

export function decodeState(hex: string): string {
  return TCP_STATES[parseInt(hex, 16)] ?? `UNKNOWN(0x${hex})`;
}

/**
 * The kernel prints each 32-bit word of the address in host byte order (%08X of the raw u32),
 * so on a little-endian host "0100007F" is 127.0.0.1.
 */
function wordBytes(hex8: string, littleEndian: boolean): number[] {
  const bytes = [0, 2, 4, 6].map((i) => parseInt(hex8.slice(i, i + 2), 16));
  return littleEndian ? bytes.reverse() : bytes;
}

export function decodeAddress(hex: string, littleEndian = endianness() === 'LE'): string {
  if (!/^[0-9A-Fa-f]+$/.test(hex) || (hex.length !== 8 && hex.length !== 32)) throw new Error(`bad address ${JSON.stringify(hex)}`);
  const bytes: number[] = [];
  for (let i = 0; i < hex.length; i += 8) bytes.push(...wordBytes(hex.slice(i, i + 8), littleEndian));
  return bytes.length === 4 ? bytes.join('.') : formatIpv6(bytes);
}

/** RFC 5952 text form; IPv4-mapped addresses as ::ffff:a.b.c.d. */
export function formatIpv6(bytes: number[]): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) return `::ffff:${bytes.slice(12).join('.')}`;
  let bestStart = -1;
  let bestLen = 1; // a single zero group is not compressed
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [bestStart, bestLen] = [i, j - i];
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart === -1) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

function decodeEndpoint(text: string | undefined): Endpoint {
  const [addr, port] = (text ?? '').split(':');
  if (addr === undefined || port === undefined || !/^[0-9A-Fa-f]{4}$/.test(port)) throw new Error(`bad endpoint ${JSON.stringify(text)}`);
  return { address: decodeAddress(addr), port: parseInt(port, 16) };
}

/** One data line of a net table; null for the header and blank lines. Throws on a malformed line. */
export function parseSocketLine(proto: SocketProto, line: string): Omit<SocketEntry, 'owners'> | null {
  const f = line.trim().split(/\s+/);
  if (f.length < 10 || !/^\d+:$/.test(f[0]!)) return null;
  return {
    proto,
    state: decodeState(f[3]!),
    local: decodeEndpoint(f[1]),
    remote: decodeEndpoint(f[2]),
    uid: Number(f[7]),
    inode: Number(f[9]),
  };
}

/** 'socket:[12345]' → 12345. */
export function socketInode(fdTarget: string): number | null {
  const m = /^socket:\[(\d+)\]$/.exec(fdTarget);
  return m ? Number(m[1]) : null;
}
