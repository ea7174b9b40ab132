/** `containerd://3f2a…` -> `3f2a…`: the ID as cgroups, Falco and the runtime spell it. */
export function bareContainerID(id: string | undefined): string {
  const s = id ?? '';
  const i = s.indexOf('://');
  return i === -1 ? s : s.slice(i + 3);
}
