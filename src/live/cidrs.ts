import { BlockList, isIP } from 'node:net';

/** Address classes the findings need: loopback, unspecified, inside the cluster's CIDRs. */

/** '::ffff:10.0.0.1' → '10.0.0.1'; anything else unchanged. */
function unmapIpv4(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? m[1]! : address;
}

export function isLoopback(address: string): boolean {
  const a = unmapIpv4(address);
  return a === '::1' || (isIP(a) === 4 && a.startsWith('127.'));
}

export function isUnspecified(address: string): boolean {
  const a = unmapIpv4(address);
  return a === '0.0.0.0' || a === '::';
}

/** Parses "10.88.0.0/16" (or an IPv6 prefix); throws with a message fit for a usage error. */
export function parseCidr(text: string): { network: string; prefix: number; family: 'ipv4' | 'ipv6' } {
  const slash = text.indexOf('/');
  const network = slash === -1 ? text : text.slice(0, slash);
  const family = isIP(network);
  if (family === 0) throw new Error(`not a CIDR: ${JSON.stringify(text)}`);
  const max = family === 4 ? 32 : 128;
  const prefix = slash === -1 ? max : Number(text.slice(slash + 1));
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max || (slash !== -1 && !/^\d+$/.test(text.slice(slash + 1)))) {
    throw new Error(`bad prefix length in ${JSON.stringify(text)}`);
  }
  return { network, prefix, family: family === 4 ? 'ipv4' : 'ipv6' };
}

export class CidrSet {
  private readonly list = new BlockList();

  constructor(readonly cidrs: string[]) {
    for (const c of cidrs) {
      const { network, prefix, family } = parseCidr(c);
      this.list.addSubnet(network, prefix, family);
    }
  }

  has(address: string): boolean {
    const a = unmapIpv4(address);
    const family = isIP(a);
    return family !== 0 && this.list.check(a, family === 4 ? 'ipv4' : 'ipv6');
  }
}
