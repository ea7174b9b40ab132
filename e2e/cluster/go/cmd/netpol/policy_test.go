package main

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

const node = "node1"

var podCIDR = netip.MustParsePrefix("10.88.0.0/16")

// ---- fixtures ---------------------------------------------------------------

func pod(ns, name, ip string, lbls map[string]string, ports ...v1.ContainerPort) *v1.Pod {
	p := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + ns + "-" + name), Labels: lbls},
		Spec:       v1.PodSpec{NodeName: node, Containers: []v1.Container{{Name: "c", Ports: ports}}},
		Status:     v1.PodStatus{Phase: v1.PodRunning},
	}
	if ip != "" {
		p.Status.PodIP = ip
		p.Status.PodIPs = []v1.PodIP{{IP: ip}}
	}
	return p
}

func namespace(name string, lbls map[string]string) *v1.Namespace {
	l := map[string]string{v1.LabelMetadataName: name}
	for k, v := range lbls {
		l[k] = v
	}
	return &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l}}
}

func policy(ns, name string, sel metav1.LabelSelector, types []networkingv1.PolicyType, ingress []networkingv1.NetworkPolicyIngressRule, egress []networkingv1.NetworkPolicyEgressRule) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       networkingv1.NetworkPolicySpec{PodSelector: sel, PolicyTypes: types, Ingress: ingress, Egress: egress},
	}
}

var both = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}

func sel(kv ...string) metav1.LabelSelector {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return metav1.LabelSelector{MatchLabels: m}
}

func selp(kv ...string) *metav1.LabelSelector { s := sel(kv...); return &s }

func proto(p v1.Protocol) *v1.Protocol { return &p }

func npPort(p v1.Protocol, port intstr.IntOrString) networkingv1.NetworkPolicyPort {
	return networkingv1.NetworkPolicyPort{Protocol: proto(p), Port: &port}
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// world bundles the inputs of Desired.
type world struct {
	pods     []*v1.Pod
	nss      []*v1.Namespace
	policies []*networkingv1.NetworkPolicy
}

func (w world) desired(t *testing.T) Ruleset {
	t.Helper()
	rs := Desired(w.pods, w.nss, w.policies, node, podCIDR)
	if len(rs.Warnings) > 0 {
		t.Fatalf("unexpected warnings: %v", rs.Warnings)
	}
	return rs
}

// ---- a model of the rendered chains, to assert on behaviour ----------------

func (rs Ruleset) target(ip netip.Addr) *Target {
	for i := range rs.Targets {
		for _, x := range rs.Targets[i].IPs {
			if x == ip {
				return &rs.Targets[i]
			}
		}
	}
	return nil
}

func (rs Ruleset) targetByName(ns, name string) *Target {
	for i := range rs.Targets {
		if rs.Targets[i].Namespace == ns && rs.Targets[i].Name == name {
			return &rs.Targets[i]
		}
	}
	return nil
}

// allows evaluates a direction's chain for a packet whose peer is `peer`:
// true if some rule RETURNs, false if it falls through to REJECT.
func (d *Direction) allows(peer netip.Addr, p v1.Protocol, port int32) bool {
	if d == nil {
		return true // not isolated
	}
	for _, a := range d.Allows {
		if !a.AnyPeer() && !a.Peer.Contains(peer) {
			continue
		}
		if a.Protocol != "" && a.Protocol != p {
			continue
		}
		if a.Port != 0 {
			end := a.Port
			if a.EndPort != 0 {
				end = a.EndPort
			}
			if port < a.Port || port > end {
				continue
			}
		}
		return true
	}
	return false
}

// permits models a NEW packet src -> dst through CASEFILE-NP-FORWARD: the
// source pod's egress chain (if any), then the destination pod's ingress
// chain (if any).
func (rs Ruleset) permits(src, dst string, p v1.Protocol, port int32) bool {
	s, d := addr(src), addr(dst)
	if t := rs.target(s); t != nil && !t.Egress.allows(d, p, port) {
		return false
	}
	if t := rs.target(d); t != nil && !t.Ingress.allows(s, p, port) {
		return false
	}
	return true
}

func isolation(rs Ruleset) map[string]string {
	out := map[string]string{}
	for _, t := range rs.Targets {
		v := ""
		if t.Ingress != nil {
			v += "I"
		}
		if t.Egress != nil {
			v += "E"
		}
		out[t.Namespace+"/"+t.Name] = v
	}
	return out
}

func expectIsolation(t *testing.T, rs Ruleset, want map[string]string) {
	t.Helper()
	if got := isolation(rs); !reflect.DeepEqual(got, want) {
		t.Fatalf("isolation = %v, want %v\n%s", got, want, rs)
	}
}

type flow struct {
	src, dst string
	proto    v1.Protocol
	port     int32
	want     bool
}

func expectFlows(t *testing.T, rs Ruleset, flows []flow) {
	t.Helper()
	for _, f := range flows {
		if got := rs.permits(f.src, f.dst, f.proto, f.port); got != f.want {
			t.Errorf("%s -> %s %s/%d: allowed=%v, want %v", f.src, f.dst, f.proto, f.port, got, f.want)
		}
	}
	if t.Failed() {
		t.Logf("ruleset:\n%s", rs)
	}
}

const (
	TCP  = v1.ProtocolTCP
	UDP  = v1.ProtocolUDP
	SCTP = v1.ProtocolSCTP
)

// ---- tests -------------------------------------------------------------------

func TestNoPolicyNoPerPodChains(t *testing.T) {
	w := world{
		pods: []*v1.Pod{pod("app", "a", "10.88.0.2", nil), pod("app", "b", "10.88.0.3", nil)},
		nss:  []*v1.Namespace{namespace("app", nil)},
	}
	rs := w.desired(t)
	if len(rs.Targets) != 0 {
		t.Fatalf("targets = %v, want none", rs)
	}
	text := Render(rs)
	if strings.Contains(text, ingressChainPrefix) || strings.Contains(text, egressChainPrefix) || strings.Contains(text, "REJECT") {
		t.Fatalf("per-pod chains rendered without any policy:\n%s", text)
	}
	for _, c := range []string{ChainInput, ChainForward, ChainOutput} {
		if !strings.Contains(text, ":"+c+" - [0:0]\n") {
			t.Errorf("top chain %s not declared:\n%s", c, text)
		}
	}
	expectFlows(t, rs, []flow{{"10.88.0.2", "10.88.0.3", TCP, 80, true}})
}

// The operator's containment: a deny-all policy selecting a quarantine label
// isolates only the labelled replica, never its sibling from the same
// Deployment.
func TestDenyAllByLabelIsolatesOnlyLabelledPod(t *testing.T) {
	w := world{
		pods: []*v1.Pod{
			pod("app", "web-1", "10.88.0.2", map[string]string{"app": "web", "casefile.dev/quarantine": "true"}),
			pod("app", "web-2", "10.88.0.3", map[string]string{"app": "web"}),
			pod("app", "client", "10.88.0.4", map[string]string{"app": "client"}),
		},
		nss:      []*v1.Namespace{namespace("app", nil)},
		policies: []*networkingv1.NetworkPolicy{policy("app", "quarantine", sel("casefile.dev/quarantine", "true"), both, nil, nil)},
	}
	rs := w.desired(t)
	expectIsolation(t, rs, map[string]string{"app/web-1": "IE"})
	tg := rs.targetByName("app", "web-1")
	if len(tg.Ingress.Allows) != 0 || len(tg.Egress.Allows) != 0 {
		t.Fatalf("deny-all has allows: %s", rs)
	}
	if !reflect.DeepEqual(tg.Ingress.Policies, []string{"app/quarantine"}) {
		t.Errorf("policies = %v", tg.Ingress.Policies)
	}
	expectFlows(t, rs, []flow{
		{"10.88.0.4", "10.88.0.2", TCP, 80, false},  // into the quarantined pod
		{"10.88.0.2", "10.88.0.4", TCP, 80, false},  // out of it
		{"10.88.0.2", "10.96.0.1", TCP, 443, false}, // to the API server / anywhere
		{"10.88.0.2", "10.88.0.3", UDP, 53, false},
		{"10.88.0.4", "10.88.0.3", TCP, 80, true}, // sibling unaffected
		{"10.88.0.3", "10.88.0.4", TCP, 80, true},
	})

	text := Render(rs)
	ic, ec := IngressChainName("uid-app-web-1"), EgressChainName("uid-app-web-1")
	for _, want := range []string{
		"-A CASEFILE-NP-FORWARD -s 10.88.0.2/32 -m comment --comment \"app/web-1 egress\" -j " + ec + "\n",
		"-A CASEFILE-NP-FORWARD -d 10.88.0.2/32 -m comment --comment \"app/web-1 ingress\" -j " + ic + "\n",
		"-A CASEFILE-NP-INPUT -s 10.88.0.2/32 -m comment --comment \"app/web-1 egress to node\" -j " + ec + "\n",
		"-A " + ec + " -m comment --comment \"app/web-1 egress default deny (app/quarantine)\" -j REJECT --reject-with icmp-port-unreachable\n",
		"-A " + ic + " -m comment --comment \"app/web-1 ingress default deny (app/quarantine)\" -j REJECT --reject-with icmp-port-unreachable\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("render lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "10.88.0.3") {
		t.Errorf("sibling 10.88.0.3 appears in the rules:\n%s", text)
	}
	// Established first in both policed top chains; node-to-pod always allowed.
	for _, c := range []string{ChainForward, ChainInput} {
		if !strings.Contains(text, "-A "+c+" -m conntrack --ctstate RELATED,ESTABLISHED") {
			t.Errorf("%s lacks the established rule", c)
		}
		if i, j := strings.Index(text, "-A "+c+" -m conntrack"), strings.Index(text, "-A "+c+" -s "); j >= 0 && i > j {
			t.Errorf("%s: established rule is not first", c)
		}
	}
	if !strings.Contains(text, "-A CASEFILE-NP-OUTPUT -m comment --comment \"node-to-pod traffic is always allowed\" -j RETURN\n") {
		t.Errorf("OUTPUT does not allow node-to-pod traffic:\n%s", text)
	}
}

func TestPoliciesAreAdditive(t *testing.T) {
	w := world{
		pods: []*v1.Pod{
			pod("app", "web-1", "10.88.0.2", map[string]string{"app": "web", "q": "true"}),
			pod("app", "client", "10.88.0.4", nil),
			pod("other", "x", "10.88.0.9", nil),
		},
		nss: []*v1.Namespace{namespace("app", nil), namespace("other", nil)},
		policies: []*networkingv1.NetworkPolicy{
			policy("app", "deny-all", sel("q", "true"), both, nil, nil),
			policy("app", "allow-ingress", sel("app", "web"), []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
				[]networkingv1.NetworkPolicyIngressRule{{}}, nil),
			policy("app", "narrow", sel("app", "web"), nil, []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}}},
				Ports: []networkingv1.NetworkPolicyPort{npPort(TCP, intstr.FromInt32(80))},
			}}, nil),
		},
	}
	rs := w.desired(t)
	expectIsolation(t, rs, map[string]string{"app/web-1": "IE"})
	tg := rs.targetByName("app", "web-1")
	if len(tg.Ingress.Allows) != 1 || !tg.Ingress.Allows[0].AnyPeer() || tg.Ingress.Allows[0].Protocol != "" {
		t.Fatalf("ingress allows = %+v, want a single allow-all", tg.Ingress.Allows)
	}
	if !reflect.DeepEqual(tg.Ingress.Policies, []string{"app/allow-ingress", "app/deny-all", "app/narrow"}) {
		t.Errorf("ingress policies = %v", tg.Ingress.Policies)
	}
	expectFlows(t, rs, []flow{
		{"10.88.0.4", "10.88.0.2", TCP, 80, true},
		{"10.88.0.9", "10.88.0.2", UDP, 9999, true},
		{"10.88.0.2", "10.88.0.4", TCP, 80, false}, // egress still denied
	})
	if text := Render(rs); !strings.Contains(text, "-A "+tg.Ingress.Chain+" -m comment --comment \"app/allow-ingress\" -j RETURN\n") {
		t.Errorf("allow-all ingress not rendered:\n%s", text)
	}
}

func TestMatchExpressionsExcludeLabel(t *testing.T) {
	pods := []*v1.Pod{
		pod("app", "web-1", "10.88.0.2", map[string]string{"app": "web", "quarantine": "true"}),
		pod("app", "web-2", "10.88.0.3", map[string]string{"app": "web"}),
	}
	nss := []*v1.Namespace{namespace("app", nil)}
	np := policy("app", "web", sel("app", "web"), []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
		[]networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{npPort(TCP, intstr.FromInt32(80))}}}, nil)

	rs := world{pods, nss, []*networkingv1.NetworkPolicy{np}}.desired(t)
	expectIsolation(t, rs, map[string]string{"app/web-1": "I", "app/web-2": "I"})

	for _, op := range []metav1.LabelSelectorOperator{metav1.LabelSelectorOpNotIn, metav1.LabelSelectorOpDoesNotExist} {
		t.Run(string(op), func(t *testing.T) {
			patched := np.DeepCopy()
			req := metav1.LabelSelectorRequirement{Key: "quarantine", Operator: op}
			if op == metav1.LabelSelectorOpNotIn {
				req.Values = []string{"true"}
			}
			patched.Spec.PodSelector.MatchExpressions = []metav1.LabelSelectorRequirement{req}
			rs := world{pods, nss, []*networkingv1.NetworkPolicy{patched}}.desired(t)
			expectIsolation(t, rs, map[string]string{"app/web-2": "I"})
			expectFlows(t, rs, []flow{
				{"10.88.0.3", "10.88.0.2", TCP, 22, true}, // web-1 no longer selected
				{"10.88.0.2", "10.88.0.3", TCP, 22, false},
				{"10.88.0.2", "10.88.0.3", TCP, 80, true},
			})
		})
	}
	// In and Exists select; Exists on an absent key does not.
	for _, tc := range []struct {
		req  metav1.LabelSelectorRequirement
		want map[string]string
	}{
		{metav1.LabelSelectorRequirement{Key: "quarantine", Operator: metav1.LabelSelectorOpIn, Values: []string{"true", "yes"}}, map[string]string{"app/web-1": "I"}},
		{metav1.LabelSelectorRequirement{Key: "quarantine", Operator: metav1.LabelSelectorOpExists}, map[string]string{"app/web-1": "I"}},
		{metav1.LabelSelectorRequirement{Key: "nope", Operator: metav1.LabelSelectorOpExists}, map[string]string{}},
	} {
		p := np.DeepCopy()
		p.Spec.PodSelector = metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{tc.req}}
		rs := world{pods, nss, []*networkingv1.NetworkPolicy{p}}.desired(t)
		expectIsolation(t, rs, tc.want)
	}
}

func TestNamespaceSelector(t *testing.T) {
	w := world{
		pods: []*v1.Pod{
			pod("app", "db", "10.88.0.2", map[string]string{"app": "db"}),
			pod("app", "web", "10.88.0.3", map[string]string{"app": "web"}),
			pod("monitoring", "prom", "10.88.1.2", map[string]string{"app": "prom"}),
			pod("monitoring", "graf", "10.88.1.3", map[string]string{"app": "graf"}),
			pod("other", "prom", "10.88.2.2", map[string]string{"app": "prom"}),
		},
		nss: []*v1.Namespace{namespace("app", nil), namespace("monitoring", map[string]string{"team": "obs"}), namespace("other", nil)},
		policies: []*networkingv1.NetworkPolicy{policy("app", "db", sel("app", "db"), nil,
			[]networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{
				{NamespaceSelector: selp(v1.LabelMetadataName, "monitoring")}, // any pod in monitoring
				{PodSelector: selp("app", "web")},                             // web in app
				{PodSelector: selp("app", "prom"), NamespaceSelector: selp()}, // prom in any namespace
			}}}, nil)},
	}
	rs := w.desired(t)
	expectIsolation(t, rs, map[string]string{"app/db": "I"})
	expectFlows(t, rs, []flow{
		{"10.88.1.2", "10.88.0.2", TCP, 5432, true},
		{"10.88.1.3", "10.88.0.2", TCP, 5432, true},
		{"10.88.0.3", "10.88.0.2", TCP, 5432, true},
		{"10.88.2.2", "10.88.0.2", TCP, 5432, true}, // prom in other via empty namespaceSelector
		{"10.88.0.9", "10.88.0.2", TCP, 5432, false},
	})
	var peers []string
	for _, a := range rs.targetByName("app", "db").Ingress.Allows {
		peers = append(peers, a.Peer.String())
	}
	if want := []string{"10.88.0.3/32", "10.88.1.2/32", "10.88.1.3/32", "10.88.2.2/32"}; !reflect.DeepEqual(peers, want) {
		t.Errorf("peers = %v, want %v", peers, want)
	}

	// podSelector AND namespaceSelector in one peer; podSelector alone stays in
	// the policy's namespace.
	w.policies = []*networkingv1.NetworkPolicy{policy("app", "db", sel("app", "db"), nil,
		[]networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{
			{PodSelector: selp("app", "prom"), NamespaceSelector: selp("team", "obs")},
			{PodSelector: selp("app", "graf")},
		}}}, nil)}
	rs = w.desired(t)
	expectFlows(t, rs, []flow{
		{"10.88.1.2", "10.88.0.2", TCP, 5432, true},  // prom in monitoring (team=obs)
		{"10.88.2.2", "10.88.0.2", TCP, 5432, false}, // prom in other: namespace not selected
		{"10.88.1.3", "10.88.0.2", TCP, 5432, false}, // graf is in monitoring, not in app
		{"10.88.0.3", "10.88.0.2", TCP, 5432, false},
	})

	// A namespace missing from the cache still matches its metadata.name.
	w.nss = nil
	w.policies = []*networkingv1.NetworkPolicy{policy("app", "db", sel("app", "db"), nil,
		[]networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: selp(v1.LabelMetadataName, "monitoring")}}}}, nil)}
	expectFlows(t, w.desired(t), []flow{{"10.88.1.2", "10.88.0.2", TCP, 1, true}, {"10.88.2.2", "10.88.0.2", TCP, 1, false}})
}

func TestIPBlockExcept(t *testing.T) {
	w := world{
		pods: []*v1.Pod{pod("app", "a", "10.88.0.2", map[string]string{"app": "a"})},
		nss:  []*v1.Namespace{namespace("app", nil)},
		policies: []*networkingv1.NetworkPolicy{policy("app", "out", sel("app", "a"), nil, nil,
			[]networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{
				CIDR: "10.0.0.0/8", Except: []string{"10.1.0.0/16", "10.88.0.0/16"},
			}}}}})},
	}
	rs := w.desired(t)
	// policyTypes unset: Egress because of the egress rule, Ingress always
	// (with no ingress rules: ingress deny-all).
	expectIsolation(t, rs, map[string]string{"app/a": "IE"})
	tg := rs.targetByName("app", "a")
	if len(tg.Ingress.Allows) != 0 {
		t.Errorf("ingress allows = %+v, want none", tg.Ingress.Allows)
	}
	expectFlows(t, rs, []flow{
		{"10.88.0.2", "10.2.3.4", TCP, 80, true},
		{"10.88.0.2", "10.255.255.255", UDP, 1, true},
		{"10.88.0.2", "10.1.2.3", TCP, 80, false},
		{"10.88.0.2", "10.88.0.5", TCP, 80, false},
		{"10.88.0.2", "11.0.0.1", TCP, 80, false},
	})
	// The excepts are subtracted exactly: no allowed prefix overlaps them and
	// together they cover the rest of 10/8.
	var total uint64
	for _, a := range tg.Egress.Allows {
		for _, ex := range []string{"10.1.0.0/16", "10.88.0.0/16"} {
			if a.Peer.Overlaps(netip.MustParsePrefix(ex)) {
				t.Errorf("allowed %s overlaps except %s", a.Peer, ex)
			}
		}
		if !netip.MustParsePrefix("10.0.0.0/8").Contains(a.Peer.Addr()) {
			t.Errorf("allowed %s outside 10/8", a.Peer)
		}
		total += 1 << (32 - a.Peer.Bits())
	}
	if want := uint64(1<<24 - 2*(1<<16)); total != want {
		t.Errorf("allowed address count = %d, want %d", total, want)
	}
	if text := Render(rs); !strings.Contains(text, "-A "+tg.Egress.Chain+" -d 10.0.0.0/16 -m comment --comment \"app/out\" -j RETURN\n") {
		t.Errorf("render lacks 10.0.0.0/16:\n%s", text)
	}
}

func TestSubtractCIDRs(t *testing.T) {
	pp := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	for _, tc := range []struct {
		base   string
		except []netip.Prefix
		want   []netip.Prefix
	}{
		{"10.0.0.0/8", nil, pp("10.0.0.0/8")},
		{"10.0.0.0/8", pp("192.168.0.0/16"), pp("10.0.0.0/8")},
		{"10.0.0.0/8", pp("0.0.0.0/0"), nil},
		{"10.0.0.0/8", pp("10.0.0.0/8"), nil},
		{"10.0.0.0/30", pp("10.0.0.1/32"), pp("10.0.0.0/32", "10.0.0.2/31")},
		{"0.0.0.0/0", pp("128.0.0.0/1"), pp("0.0.0.0/1")},
		{"10.0.0.0/8", pp("10.128.0.0/9"), pp("10.0.0.0/9")},
	} {
		if got := SubtractCIDRs(netip.MustParsePrefix(tc.base), tc.except); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s - %v = %v, want %v", tc.base, tc.except, got, tc.want)
		}
	}
}

func TestDNSEgress(t *testing.T) {
	w := world{
		pods: []*v1.Pod{
			pod("app", "a", "10.88.0.2", map[string]string{"app": "a"}),
			pod("app", "b", "10.88.0.3", map[string]string{"app": "b"}),
			pod("kube-system", "coredns", "10.88.0.10", map[string]string{"k8s-app": "kube-dns"}),
		},
		nss: []*v1.Namespace{namespace("app", nil), namespace("kube-system", nil)},
		policies: []*networkingv1.NetworkPolicy{policy("app", "dns-only", sel("app", "a"), []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}, nil,
			[]networkingv1.NetworkPolicyEgressRule{{
				To: []networkingv1.NetworkPolicyPeer{{
					NamespaceSelector: selp(v1.LabelMetadataName, "kube-system"),
					PodSelector:       selp("k8s-app", "kube-dns"),
				}},
				Ports: []networkingv1.NetworkPolicyPort{npPort(UDP, intstr.FromInt32(53)), npPort(TCP, intstr.FromInt32(53))},
			}})},
	}
	rs := w.desired(t)
	expectIsolation(t, rs, map[string]string{"app/a": "E"})
	want := []Allow{
		{Peer: netip.MustParsePrefix("10.88.0.10/32"), Protocol: TCP, Port: 53, Policy: "app/dns-only"},
		{Peer: netip.MustParsePrefix("10.88.0.10/32"), Protocol: UDP, Port: 53, Policy: "app/dns-only"},
	}
	if got := rs.targetByName("app", "a").Egress.Allows; !reflect.DeepEqual(got, want) {
		t.Fatalf("egress allows = %+v, want %+v", got, want)
	}
	expectFlows(t, rs, []flow{
		{"10.88.0.2", "10.88.0.10", UDP, 53, true},
		{"10.88.0.2", "10.88.0.10", TCP, 53, true},
		{"10.88.0.2", "10.88.0.10", TCP, 80, false},
		{"10.88.0.2", "10.88.0.10", UDP, 54, false},
		{"10.88.0.2", "10.88.0.3", UDP, 53, false},
		{"10.88.0.2", "8.8.8.8", UDP, 53, false},
		{"10.88.0.3", "10.88.0.2", TCP, 80, true}, // ingress not isolated (policyTypes: [Egress])
	})
	text := Render(rs)
	ec := rs.targetByName("app", "a").Egress.Chain
	for _, l := range []string{
		"-A " + ec + " -d 10.88.0.10/32 -p udp -m udp --dport 53 -m comment --comment \"app/dns-only\" -j RETURN\n",
		"-A " + ec + " -d 10.88.0.10/32 -p tcp -m tcp --dport 53 -m comment --comment \"app/dns-only\" -j RETURN\n",
	} {
		if !strings.Contains(text, l) {
			t.Errorf("render lacks %q:\n%s", l, text)
		}
	}
}

func TestNamedPort(t *testing.T) {
	http8080 := v1.ContainerPort{Name: "http", ContainerPort: 8080}
	http9090 := v1.ContainerPort{Name: "http", ContainerPort: 9090}
	dnsUDP := v1.ContainerPort{Name: "dns", ContainerPort: 5353, Protocol: UDP}
	pods := []*v1.Pod{
		pod("app", "web", "10.88.0.2", map[string]string{"app": "web"}, http8080, dnsUDP),
		pod("app", "api", "10.88.0.3", map[string]string{"app": "api"}, http9090),
		pod("app", "client", "10.88.0.4", map[string]string{"app": "client"}),
	}
	nss := []*v1.Namespace{namespace("app", nil)}

	t.Run("ingress resolves against the destination pod", func(t *testing.T) {
		rs := world{pods, nss, []*networkingv1.NetworkPolicy{policy("app", "in", metav1.LabelSelector{}, nil,
			[]networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{
				npPort(TCP, intstr.FromString("http")), npPort(UDP, intstr.FromString("dns")),
				npPort(TCP, intstr.FromString("dns")), // web's "dns" is UDP: resolves to nothing
			}}}, nil)}}.desired(t)
		expectIsolation(t, rs, map[string]string{"app/web": "I", "app/api": "I", "app/client": "I"})
		expectFlows(t, rs, []flow{
			{"10.88.0.4", "10.88.0.2", TCP, 8080, true},
			{"10.88.0.4", "10.88.0.2", TCP, 9090, false},
			{"10.88.0.4", "10.88.0.2", UDP, 5353, true},
			{"10.88.0.4", "10.88.0.2", TCP, 5353, false}, // name matches, protocol does not
			{"10.88.0.4", "10.88.0.3", TCP, 9090, true},
			{"10.88.0.4", "10.88.0.3", TCP, 8080, false},
		})
		// client has no such ports: the rule allows nothing (not "all ports").
		if c := rs.targetByName("app", "client"); len(c.Ingress.Allows) != 0 {
			t.Errorf("unresolvable named ports allowed %+v", c.Ingress.Allows)
		}
	})

	t.Run("egress resolves against each peer pod", func(t *testing.T) {
		rs := world{pods, nss, []*networkingv1.NetworkPolicy{policy("app", "out", sel("app", "client"), []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}, nil,
			[]networkingv1.NetworkPolicyEgressRule{{
				To:    []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"web", "api"}}}}}},
				Ports: []networkingv1.NetworkPolicyPort{npPort(TCP, intstr.FromString("http")), npPort(TCP, intstr.FromInt32(22))},
			}})}}.desired(t)
		want := []Allow{
			{Peer: netip.MustParsePrefix("10.88.0.2/32"), Protocol: TCP, Port: 22, Policy: "app/out"},
			{Peer: netip.MustParsePrefix("10.88.0.2/32"), Protocol: TCP, Port: 8080, Policy: "app/out"},
			{Peer: netip.MustParsePrefix("10.88.0.3/32"), Protocol: TCP, Port: 22, Policy: "app/out"},
			{Peer: netip.MustParsePrefix("10.88.0.3/32"), Protocol: TCP, Port: 9090, Policy: "app/out"},
		}
		if got := rs.targetByName("app", "client").Egress.Allows; !reflect.DeepEqual(got, want) {
			t.Fatalf("egress allows = %+v\nwant %+v", got, want)
		}
		expectFlows(t, rs, []flow{
			{"10.88.0.4", "10.88.0.2", TCP, 9090, false},
			{"10.88.0.4", "10.88.0.3", TCP, 8080, false},
		})
	})

	t.Run("egress to ipBlock resolves against pods inside it", func(t *testing.T) {
		rs := world{pods, nss, []*networkingv1.NetworkPolicy{policy("app", "out", sel("app", "client"), []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}, nil,
			[]networkingv1.NetworkPolicyEgressRule{{
				To:    []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.88.0.2/31"}}},
				Ports: []networkingv1.NetworkPolicyPort{npPort(TCP, intstr.FromString("http"))},
			}})}}.desired(t)
		expectFlows(t, rs, []flow{
			{"10.88.0.4", "10.88.0.2", TCP, 8080, true},
			{"10.88.0.4", "10.88.0.3", TCP, 9090, true},
			{"10.88.0.4", "10.88.0.3", TCP, 8080, false},
		})
	})
}

func TestEndPortRange(t *testing.T) {
	end := int32(32768)
	port := intstr.FromInt32(32000)
	w := world{
		pods: []*v1.Pod{pod("app", "a", "10.88.0.2", map[string]string{"app": "a"}), pod("app", "b", "10.88.0.3", nil)},
		nss:  []*v1.Namespace{namespace("app", nil)},
		policies: []*networkingv1.NetworkPolicy{policy("app", "range", sel("app", "a"), nil,
			[]networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{
				{Port: &port, EndPort: &end}, // protocol defaults to TCP
				{Protocol: proto(SCTP)},      // every SCTP port
			}}}, nil)},
	}
	rs := w.desired(t)
	expectFlows(t, rs, []flow{
		{"10.88.0.3", "10.88.0.2", TCP, 32000, true},
		{"10.88.0.3", "10.88.0.2", TCP, 32500, true},
		{"10.88.0.3", "10.88.0.2", TCP, 32768, true},
		{"10.88.0.3", "10.88.0.2", TCP, 31999, false},
		{"10.88.0.3", "10.88.0.2", TCP, 32769, false},
		{"10.88.0.3", "10.88.0.2", UDP, 32500, false},
		{"10.88.0.3", "10.88.0.2", SCTP, 7, true},
	})
	text := Render(rs)
	ic := rs.targetByName("app", "a").Ingress.Chain
	for _, l := range []string{
		"-A " + ic + " -p tcp -m tcp --dport 32000:32768 -m comment --comment \"app/range\" -j RETURN\n",
		"-A " + ic + " -p sctp -m comment --comment \"app/range\" -j RETURN\n",
	} {
		if !strings.Contains(text, l) {
			t.Errorf("render lacks %q:\n%s", l, text)
		}
	}
}

func TestPolicyTypes(t *testing.T) {
	egressRule := []networkingv1.NetworkPolicyEgressRule{{}}
	ingressRule := []networkingv1.NetworkPolicyIngressRule{{}}
	for _, tc := range []struct {
		name     string
		types    []networkingv1.PolicyType
		in       []networkingv1.NetworkPolicyIngressRule
		eg       []networkingv1.NetworkPolicyEgressRule
		isolated string
	}{
		{"no types, no rules", nil, nil, nil, "I"},
		{"no types, ingress rules", nil, ingressRule, nil, "I"},
		{"no types, egress rules", nil, nil, egressRule, "IE"},
		{"explicit Egress ignores ingress rules", []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}, ingressRule, nil, "E"},
		{"explicit both", both, nil, nil, "IE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := world{
				pods:     []*v1.Pod{pod("app", "a", "10.88.0.2", nil)},
				nss:      []*v1.Namespace{namespace("app", nil)},
				policies: []*networkingv1.NetworkPolicy{policy("app", "p", metav1.LabelSelector{}, tc.types, tc.in, tc.eg)},
			}.desired(t)
			expectIsolation(t, rs, map[string]string{"app/a": tc.isolated})
			if tc.name == "explicit Egress ignores ingress rules" {
				// An ingress allow-all rule in an Egress-only policy must not
				// leak into the egress chain: egress is deny-all.
				if a := rs.Targets[0].Egress.Allows; len(a) != 0 {
					t.Errorf("egress allows = %+v", a)
				}
			}
		})
	}
}

func TestWhichPodsAreProgrammed(t *testing.T) {
	hostNet := pod("app", "hostnet", "10.88.0.5", nil)
	hostNet.Spec.HostNetwork = true
	elsewhere := pod("app", "elsewhere", "10.88.0.6", nil)
	elsewhere.Spec.NodeName = "node2"
	done := pod("app", "done", "10.88.0.7", nil)
	done.Status.Phase = v1.PodSucceeded
	pending := pod("app", "pending", "10.88.0.8", nil)
	pending.Status.Phase = v1.PodPending
	outside := pod("app", "outside", "192.168.1.1", nil)
	v6 := pod("app", "v6", "fd00::1", nil)
	rs := world{
		pods: []*v1.Pod{
			pod("app", "ok", "10.88.0.2", nil), pod("app", "noip", "", nil),
			hostNet, elsewhere, done, pending, outside, v6,
		},
		nss:      []*v1.Namespace{namespace("app", nil)},
		policies: []*networkingv1.NetworkPolicy{policy("app", "deny", metav1.LabelSelector{}, both, nil, nil)},
	}
	got := Desired(rs.pods, rs.nss, rs.policies, node, podCIDR)
	expectIsolation(t, got, map[string]string{"app/ok": "IE", "app/pending": "IE"})
	if len(got.Warnings) != 1 || !strings.Contains(got.Warnings[0], "192.168.1.1") {
		t.Errorf("warnings = %v, want one about the pod outside --pod-cidr", got.Warnings)
	}
	// The other node's pod is still a peer (selected by an allow rule).
	rs.policies = append(rs.policies, policy("app", "from-all-app", metav1.LabelSelector{}, nil,
		[]networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}}}}}, nil))
	got = Desired(rs.pods, rs.nss, rs.policies, node, podCIDR)
	var peers []string
	for _, a := range got.targetByName("app", "ok").Ingress.Allows {
		peers = append(peers, a.Peer.String())
	}
	// hostNetwork, finished and IP-less pods are never peers.
	if want := []string{"10.88.0.2/32", "10.88.0.6/32", "10.88.0.8/32", "192.168.1.1/32"}; !reflect.DeepEqual(peers, want) {
		t.Errorf("peers = %v, want %v", peers, want)
	}
}

func TestReusedIPBelongsToLivePod(t *testing.T) {
	old := pod("app", "old", "10.88.0.2", map[string]string{"q": "true"})
	now := metav1.Now()
	old.DeletionTimestamp = &now
	young := pod("app", "young", "10.88.0.2", nil)
	rs := world{
		pods:     []*v1.Pod{old, young},
		nss:      []*v1.Namespace{namespace("app", nil)},
		policies: []*networkingv1.NetworkPolicy{policy("app", "q", sel("q", "true"), both, nil, nil)},
	}.desired(t)
	expectIsolation(t, rs, map[string]string{}) // the IP is young's now; young is not selected
}

func TestChainNames(t *testing.T) {
	a, b := IngressChainName("8d3f0a6e-0d37-4a4b-9d6c-3c5a8f1e2b11"), EgressChainName("8d3f0a6e-0d37-4a4b-9d6c-3c5a8f1e2b11")
	if a != IngressChainName("8d3f0a6e-0d37-4a4b-9d6c-3c5a8f1e2b11") {
		t.Error("chain name not deterministic")
	}
	for _, n := range []string{a, b, ChainInput, ChainForward, ChainOutput} {
		if len(n) > 28 || !strings.HasPrefix(n, ChainPrefix) {
			t.Errorf("bad chain name %q (%d chars)", n, len(n))
		}
	}
	if a == b || a == IngressChainName("other") {
		t.Error("chain names collide")
	}
}

func TestRenderIsDeterministic(t *testing.T) {
	pods := []*v1.Pod{
		pod("app", "a", "10.88.0.2", map[string]string{"x": "1"}), pod("app", "b", "10.88.0.3", map[string]string{"x": "1"}),
		pod("app", "c", "10.88.0.4", nil),
	}
	nss := []*v1.Namespace{namespace("app", nil)}
	nps := []*networkingv1.NetworkPolicy{
		policy("app", "z", sel("x", "1"), nil, []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}}}}}, nil),
		policy("app", "y", sel("x", "1"), nil, []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{npPort(TCP, intstr.FromInt32(1))}}}, nil),
	}
	first := Render(Desired(pods, nss, nps, node, podCIDR))
	rev := func(p []*v1.Pod) []*v1.Pod {
		out := append([]*v1.Pod(nil), p...)
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
		return out
	}
	second := Render(Desired(rev(pods), nss, []*networkingv1.NetworkPolicy{nps[1], nps[0]}, node, podCIDR))
	if first != second {
		t.Errorf("render depends on input order:\n%s\n---\n%s", first, second)
	}
}
