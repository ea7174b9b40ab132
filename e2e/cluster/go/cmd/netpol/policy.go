package main

// The pure core of netpol: from the informers' pods, namespaces and
// NetworkPolicies, compute which pods on this node are isolated in which
// direction and exactly which peers/ports each isolated direction allows
// (networking.k8s.io/v1 semantics). Nothing here touches the system; see
// iptables.go for rendering and applying.

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Chain names. Every chain netpol owns starts with ChainPrefix; nothing else
// in the filter table is ever flushed or deleted.
const (
	ChainPrefix  = "CASEFILE-NP-"
	ChainInput   = ChainPrefix + "INPUT"
	ChainForward = ChainPrefix + "FORWARD"
	ChainOutput  = ChainPrefix + "OUTPUT"

	ingressChainPrefix = ChainPrefix + "I-"
	egressChainPrefix  = ChainPrefix + "E-"
	chainHashLen       = 10 // CASEFILE-NP-I- (14) + 10 = 24 <= 28 (iptables' limit)
)

// Ruleset is the complete desired state for this node.
type Ruleset struct {
	// Targets are the pods on this node that are isolated in at least one
	// direction, sorted by namespace/name. A pod that no policy isolates has
	// no entry (and therefore no chains): all its traffic is allowed.
	Targets []Target
	// Warnings about input that could not be honoured (e.g. an unparsable
	// selector); logged by the caller.
	Warnings []string
}

// Target is one local, programmed pod.
type Target struct {
	Namespace, Name, UID string
	IPs                  []netip.Addr // IPv4 only; iptables (not ip6tables) is programmed
	Ingress              *Direction   // nil: not isolated for ingress (everything allowed)
	Egress               *Direction   // nil: not isolated for egress (everything allowed)
}

// Direction is the allow-list of one isolated direction of one pod. Its
// allows are the union over every rule of every selecting policy; an empty
// Allows list means deny everything (in that direction).
type Direction struct {
	Chain    string
	Policies []string // namespace/name of the policies isolating the pod in this direction
	Allows   []Allow  // deduplicated and sorted
}

// Allow is one allowed (peer, protocol, port range) combination, which
// renders as exactly one iptables rule. The peer is the source for ingress,
// the destination for egress.
type Allow struct {
	Peer     netip.Prefix // !IsValid(): any address
	Protocol v1.Protocol  // "": any protocol (then Port is 0)
	Port     int32        // 0: every port of Protocol
	EndPort  int32        // 0: only Port; else the inclusive range Port..EndPort
	Policy   string       // namespace/name of a policy granting it (for the iptables comment)
}

// AnyPeer reports whether the allow applies to every address.
func (a Allow) AnyPeer() bool { return !a.Peer.IsValid() }

func (a Allow) key() string {
	return fmt.Sprintf("%s|%s|%d|%d", a.Peer, a.Protocol, a.Port, a.EndPort)
}

// IngressChainName and EgressChainName are deterministic per pod UID.
func IngressChainName(uid string) string { return ingressChainPrefix + shortHash(uid) }
func EgressChainName(uid string) string  { return egressChainPrefix + shortHash(uid) }

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:chainHashLen]
}

// podInfo is a pod that can take part in policy: it has an IPv4 address, is
// not hostNetwork and has not terminated.
type podInfo struct {
	pod    *v1.Pod
	ips    []netip.Addr
	labels labels.Set
}

func (p *podInfo) key() string { return p.pod.Namespace + "/" + p.pod.Name }

// usablePod returns the pod's IPv4 addresses if it participates in policy at
// all (as a programmed target or as a selected peer), or nil.
//
// hostNetwork pods share the node's address and are never programmed nor
// selected as peers. Pods that have finished (Succeeded/Failed) or have no
// IP yet are skipped; a pod that has an IP counts whether it is Pending or
// Running.
func usablePod(p *v1.Pod) []netip.Addr {
	if p.Spec.HostNetwork || p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed {
		return nil
	}
	var raw []string
	for _, ip := range p.Status.PodIPs {
		raw = append(raw, ip.IP)
	}
	if len(raw) == 0 && p.Status.PodIP != "" {
		raw = []string{p.Status.PodIP}
	}
	var ips []netip.Addr
	for _, s := range raw {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Unmap().Is4() {
			continue
		}
		ips = append(ips, a.Unmap())
	}
	return ips
}

// preferred reports whether pod a should own an IP over pod b when both
// claim it (an IP freed by a terminating pod and reused by a new one).
func preferred(a, b *v1.Pod) bool {
	if (a.DeletionTimestamp == nil) != (b.DeletionTimestamp == nil) {
		return a.DeletionTimestamp == nil
	}
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return b.CreationTimestamp.Before(&a.CreationTimestamp)
	}
	return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
}

// Desired computes the ruleset for the pods scheduled on nodeName. podCIDR,
// when valid, further restricts programmed pods to addresses inside it (a
// safety net: never key rules on an address outside the pod network, such as
// the node's own). All pods, on any node, are candidates for peer selection.
func Desired(pods []*v1.Pod, namespaces []*v1.Namespace, policies []*networkingv1.NetworkPolicy, nodeName string, podCIDR netip.Prefix) Ruleset {
	var rs Ruleset

	// Every usable pod, each IP owned by exactly one pod.
	owner := map[netip.Addr]*v1.Pod{}
	for _, p := range pods {
		for _, ip := range usablePod(p) {
			if cur, ok := owner[ip]; !ok || preferred(p, cur) {
				owner[ip] = p
			}
		}
	}
	var all []*podInfo
	for _, p := range pods {
		var ips []netip.Addr
		for _, ip := range usablePod(p) {
			if owner[ip] == p {
				ips = append(ips, ip)
			}
		}
		if len(ips) > 0 {
			all = append(all, &podInfo{pod: p, ips: ips, labels: labels.Set(p.Labels)})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].key() < all[j].key() })

	nsLabels := map[string]labels.Set{}
	for _, ns := range namespaces {
		nsLabels[ns.Name] = labels.Set(ns.Labels)
	}
	r := &resolver{all: all, nsLabels: nsLabels, warn: func(f string, a ...any) {
		rs.Warnings = append(rs.Warnings, fmt.Sprintf(f, a...))
	}}

	byNS := map[string][]*networkingv1.NetworkPolicy{}
	for _, np := range policies {
		byNS[np.Namespace] = append(byNS[np.Namespace], np)
	}
	for _, l := range byNS {
		sort.Slice(l, func(i, j int) bool { return l[i].Name < l[j].Name })
	}

	for _, pi := range all {
		p := pi.pod
		if p.Spec.NodeName != nodeName {
			continue
		}
		ips := pi.ips
		if podCIDR.IsValid() {
			ips = nil
			for _, ip := range pi.ips {
				if podCIDR.Contains(ip) {
					ips = append(ips, ip)
				} else {
					r.warn("pod %s: IP %s is outside --pod-cidr %s; not programmed", pi.key(), ip, podCIDR)
				}
			}
			if len(ips) == 0 {
				continue
			}
		}
		uid := string(p.UID)
		if uid == "" {
			uid = pi.key()
		}
		t := Target{Namespace: p.Namespace, Name: p.Name, UID: string(p.UID), IPs: ips}
		for _, np := range byNS[p.Namespace] {
			sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
			if err != nil {
				r.warn("policy %s/%s: podSelector: %v; policy ignored", np.Namespace, np.Name, err)
				continue
			}
			if !sel.Matches(pi.labels) {
				continue
			}
			name := np.Namespace + "/" + np.Name
			ing, eg := PolicyTypes(np)
			if ing {
				if t.Ingress == nil {
					t.Ingress = &Direction{Chain: IngressChainName(uid)}
				}
				t.Ingress.Policies = append(t.Ingress.Policies, name)
				for _, rule := range np.Spec.Ingress {
					t.Ingress.Allows = append(t.Ingress.Allows, r.ingressRule(np, rule, pi)...)
				}
			}
			if eg {
				if t.Egress == nil {
					t.Egress = &Direction{Chain: EgressChainName(uid)}
				}
				t.Egress.Policies = append(t.Egress.Policies, name)
				for _, rule := range np.Spec.Egress {
					t.Egress.Allows = append(t.Egress.Allows, r.egressRule(np, rule)...)
				}
			}
		}
		if t.Ingress == nil && t.Egress == nil {
			continue
		}
		for _, d := range []*Direction{t.Ingress, t.Egress} {
			if d != nil {
				d.Allows = normalize(d.Allows)
			}
		}
		rs.Targets = append(rs.Targets, t)
	}
	return rs
}

// PolicyTypes returns whether the policy applies to ingress and egress. An
// explicit spec.policyTypes is authoritative; otherwise Ingress always
// applies and Egress applies if the policy has any egress rule (this is the
// API server's defaulting, repeated in case an object arrives undefaulted).
func PolicyTypes(np *networkingv1.NetworkPolicy) (ingress, egress bool) {
	if len(np.Spec.PolicyTypes) == 0 {
		return true, len(np.Spec.Egress) > 0
	}
	for _, t := range np.Spec.PolicyTypes {
		switch t {
		case networkingv1.PolicyTypeIngress:
			ingress = true
		case networkingv1.PolicyTypeEgress:
			egress = true
		}
	}
	return ingress, egress
}

// normalize deduplicates, sorts, and collapses to a single rule when one of
// the allows already permits everything.
func normalize(in []Allow) []Allow {
	seen := map[string]bool{}
	var out []Allow
	for _, a := range in {
		if a.AnyPeer() && a.Protocol == "" {
			return []Allow{a}
		}
		if k := a.key(); !seen[k] {
			seen[k] = true
			out = append(out, a)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Peer != b.Peer {
			if a.Peer.IsValid() != b.Peer.IsValid() {
				return !a.Peer.IsValid()
			}
			if c := a.Peer.Addr().Compare(b.Peer.Addr()); c != 0 {
				return c < 0
			}
			return a.Peer.Bits() < b.Peer.Bits()
		}
		if a.Protocol != b.Protocol {
			return a.Protocol < b.Protocol
		}
		if a.Port != b.Port {
			return a.Port < b.Port
		}
		return a.EndPort < b.EndPort
	})
	return out
}

type resolver struct {
	all      []*podInfo
	nsLabels map[string]labels.Set
	warn     func(string, ...any)
}

// namespaceLabels returns a namespace's labels. A namespace missing from the
// cache (a race at creation) is given the label the API server sets on every
// namespace, so kubernetes.io/metadata.name selectors still work.
func (r *resolver) namespaceLabels(ns string) labels.Set {
	if l, ok := r.nsLabels[ns]; ok {
		return l
	}
	return labels.Set{v1.LabelMetadataName: ns}
}

// peers is the resolved set of addresses of a rule's from/to list.
type peers struct {
	any   bool           // every address (empty from/to list)
	pods  []*podInfo     // selected pods
	cidrs []netip.Prefix // ipBlocks, with their excepts already subtracted
}

func (r *resolver) resolvePeers(np *networkingv1.NetworkPolicy, list []networkingv1.NetworkPolicyPeer) peers {
	var out peers
	if len(list) == 0 {
		out.any = true
		return out
	}
	seen := map[*podInfo]bool{}
	for _, peer := range list {
		if peer.IPBlock != nil {
			out.cidrs = append(out.cidrs, r.ipBlock(np, peer.IPBlock)...)
			continue
		}
		if peer.PodSelector == nil && peer.NamespaceSelector == nil {
			continue // invalid (rejected by API validation): matches nothing
		}
		var podSel, nsSel labels.Selector
		var err error
		if peer.PodSelector != nil {
			if podSel, err = metav1.LabelSelectorAsSelector(peer.PodSelector); err != nil {
				r.warn("policy %s/%s: peer podSelector: %v; peer ignored", np.Namespace, np.Name, err)
				continue
			}
		}
		if peer.NamespaceSelector != nil {
			if nsSel, err = metav1.LabelSelectorAsSelector(peer.NamespaceSelector); err != nil {
				r.warn("policy %s/%s: peer namespaceSelector: %v; peer ignored", np.Namespace, np.Name, err)
				continue
			}
		}
		for _, pi := range r.all {
			if nsSel == nil {
				// podSelector alone: pods in the policy's own namespace.
				if pi.pod.Namespace != np.Namespace {
					continue
				}
			} else if !nsSel.Matches(r.namespaceLabels(pi.pod.Namespace)) {
				continue
			}
			if podSel != nil && !podSel.Matches(pi.labels) {
				continue
			}
			if !seen[pi] {
				seen[pi] = true
				out.pods = append(out.pods, pi)
			}
		}
	}
	return out
}

// ipBlock returns the IPv4 prefixes of cidr minus its excepts. IPv6 blocks
// are ignored (only iptables, not ip6tables, is programmed).
func (r *resolver) ipBlock(np *networkingv1.NetworkPolicy, b *networkingv1.IPBlock) []netip.Prefix {
	base, err := netip.ParsePrefix(b.CIDR)
	if err != nil {
		r.warn("policy %s/%s: ipBlock cidr %q: %v; ignored", np.Namespace, np.Name, b.CIDR, err)
		return nil
	}
	if !base.Addr().Is4() {
		return nil
	}
	var except []netip.Prefix
	for _, e := range b.Except {
		p, err := netip.ParsePrefix(e)
		if err != nil {
			r.warn("policy %s/%s: ipBlock except %q: %v; ipBlock ignored", np.Namespace, np.Name, e, err)
			return nil // fail closed: never allow more than the policy says
		}
		if p.Addr().Is4() {
			except = append(except, p.Masked())
		}
	}
	return SubtractCIDRs(base.Masked(), except)
}

// SubtractCIDRs returns a minimal-ish list of prefixes covering exactly base
// minus the union of except (at most 32 prefixes per except entry).
func SubtractCIDRs(base netip.Prefix, except []netip.Prefix) []netip.Prefix {
	overlaps := false
	for _, e := range except {
		if e.Bits() <= base.Bits() && e.Contains(base.Addr()) {
			return nil // base entirely excluded
		}
		if e.Overlaps(base) {
			overlaps = true
		}
	}
	if !overlaps {
		return []netip.Prefix{base}
	}
	// Split base into its two halves and recurse.
	bits := base.Bits() + 1
	lo := netip.PrefixFrom(base.Addr(), bits)
	hiAddr := base.Addr().As4()
	bit := base.Bits() // index of the bit that distinguishes the halves
	hiAddr[bit/8] |= 0x80 >> (bit % 8)
	hi := netip.PrefixFrom(netip.AddrFrom4(hiAddr), bits)
	return append(SubtractCIDRs(lo, except), SubtractCIDRs(hi, except)...)
}

// portSpec is a NetworkPolicyPort with defaults applied.
type portSpec struct {
	proto   v1.Protocol
	port    int32 // 0: all ports (when name == "")
	endPort int32
	name    string // named port, to be resolved
}

func portSpecs(ports []networkingv1.NetworkPolicyPort) []portSpec {
	var out []portSpec
	for _, p := range ports {
		s := portSpec{proto: v1.ProtocolTCP}
		if p.Protocol != nil && *p.Protocol != "" {
			s.proto = *p.Protocol
		}
		if p.Port != nil {
			if p.Port.Type == intstr.String {
				s.name = p.Port.StrVal
			} else {
				s.port = p.Port.IntVal
				if p.EndPort != nil && *p.EndPort > s.port {
					s.endPort = *p.EndPort
				}
			}
		}
		out = append(out, s)
	}
	return out
}

// namedPort resolves a named port against a pod's container ports (regular
// and init/sidecar containers), matching both name and protocol.
func namedPort(p *v1.Pod, name string, proto v1.Protocol) []int32 {
	var out []int32
	check := func(cs []v1.Container) {
		for _, c := range cs {
			for _, cp := range c.Ports {
				cpProto := cp.Protocol
				if cpProto == "" {
					cpProto = v1.ProtocolTCP
				}
				if cp.Name == name && cpProto == proto && cp.ContainerPort > 0 {
					out = append(out, cp.ContainerPort)
				}
			}
		}
	}
	check(p.Spec.Containers)
	check(p.Spec.InitContainers)
	return out
}

// addresses returns the peer prefixes for a resolved peer set; a single
// invalid prefix stands for "any address".
func (ps peers) addresses() []netip.Prefix {
	if ps.any {
		return []netip.Prefix{{}}
	}
	var out []netip.Prefix
	for _, pi := range ps.pods {
		for _, ip := range pi.ips {
			out = append(out, netip.PrefixFrom(ip, 32))
		}
	}
	return append(out, ps.cidrs...)
}

// ingressRule: traffic from the rule's peers to the target pod, on the rule's
// ports. Named ports resolve against the target (destination) pod.
func (r *resolver) ingressRule(np *networkingv1.NetworkPolicy, rule networkingv1.NetworkPolicyIngressRule, target *podInfo) []Allow {
	name := np.Namespace + "/" + np.Name
	ps := r.resolvePeers(np, rule.From)
	specs := portSpecs(rule.Ports)
	var ranges []portSpec
	for _, s := range specs {
		if s.name == "" {
			ranges = append(ranges, s)
			continue
		}
		for _, port := range namedPort(target.pod, s.name, s.proto) {
			ranges = append(ranges, portSpec{proto: s.proto, port: port})
		}
	}
	if len(specs) > 0 && len(ranges) == 0 {
		return nil // the rule has ports, none of which exist: allows nothing
	}
	return expand(ps.addresses(), ranges, name)
}

// egressRule: traffic from the target pod to the rule's peers, on the rule's
// ports. Named ports resolve against each destination pod: for pod peers the
// selected pods, for ipBlock/any peers every known pod whose IP is inside
// (an address that is not a known pod has no named ports).
func (r *resolver) egressRule(np *networkingv1.NetworkPolicy, rule networkingv1.NetworkPolicyEgressRule) []Allow {
	name := np.Namespace + "/" + np.Name
	ps := r.resolvePeers(np, rule.To)
	specs := portSpecs(rule.Ports)
	var numeric, named []portSpec
	for _, s := range specs {
		if s.name == "" {
			numeric = append(numeric, s)
		} else {
			named = append(named, s)
		}
	}
	if len(specs) == 0 {
		return expand(ps.addresses(), nil, name)
	}
	var out []Allow
	if len(numeric) > 0 {
		out = expand(ps.addresses(), numeric, name)
	}
	if len(named) > 0 {
		var dests []*podInfo
		if ps.any {
			dests = r.all
		} else {
			dests = append(dests, ps.pods...)
			for _, pi := range r.all {
				for _, ip := range pi.ips {
					if containsAny(ps.cidrs, ip) {
						dests = append(dests, pi)
						break
					}
				}
			}
		}
		for _, pi := range dests {
			for _, s := range named {
				for _, port := range namedPort(pi.pod, s.name, s.proto) {
					for _, ip := range pi.ips {
						if ps.any || containsPod(ps.pods, pi) || containsAny(ps.cidrs, ip) {
							out = append(out, Allow{Peer: netip.PrefixFrom(ip, 32), Protocol: s.proto, Port: port, Policy: name})
						}
					}
				}
			}
		}
	}
	return out
}

func containsAny(ps []netip.Prefix, ip netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func containsPod(l []*podInfo, p *podInfo) bool {
	for _, x := range l {
		if x == p {
			return true
		}
	}
	return false
}

// expand is the cross product of peer addresses and port ranges (nil ranges:
// all protocols and ports).
func expand(addrs []netip.Prefix, ranges []portSpec, policy string) []Allow {
	var out []Allow
	for _, a := range addrs {
		if len(ranges) == 0 {
			out = append(out, Allow{Peer: a, Policy: policy})
			continue
		}
		for _, s := range ranges {
			out = append(out, Allow{Peer: a, Protocol: s.proto, Port: s.port, EndPort: s.endPort, Policy: policy})
		}
	}
	return out
}

// String renders a human-readable summary (used in debug logging and tests).
func (rs Ruleset) String() string {
	var b strings.Builder
	for _, t := range rs.Targets {
		fmt.Fprintf(&b, "%s/%s %v\n", t.Namespace, t.Name, t.IPs)
		for _, d := range []struct {
			n string
			d *Direction
		}{{"ingress", t.Ingress}, {"egress", t.Egress}} {
			if d.d == nil {
				continue
			}
			fmt.Fprintf(&b, "  %s %s by %v:\n", d.n, d.d.Chain, d.d.Policies)
			for _, a := range d.d.Allows {
				peer := "any"
				if !a.AnyPeer() {
					peer = a.Peer.String()
				}
				fmt.Fprintf(&b, "    %s %s %d-%d (%s)\n", peer, a.Protocol, a.Port, a.EndPort, a.Policy)
			}
		}
	}
	return b.String()
}
