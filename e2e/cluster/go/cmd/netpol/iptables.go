package main

// Rendering a Ruleset as iptables-restore input for the filter table, and
// applying it.
//
// Layout (filter table):
//
//	INPUT   -> CASEFILE-NP-INPUT    (jump at position 1, exactly once)
//	FORWARD -> CASEFILE-NP-FORWARD  (jump at position 1, exactly once)
//	OUTPUT  -> CASEFILE-NP-OUTPUT   (jump at position 1, exactly once)
//
//	CASEFILE-NP-FORWARD  pod-to-pod (bridged, br_netfilter) and pod-to-outside traffic
//	  ctstate RELATED,ESTABLISHED -> RETURN
//	  -s <ip of each egress-isolated pod>/32  -> CASEFILE-NP-E-<hash>
//	  -d <ip of each ingress-isolated pod>/32 -> CASEFILE-NP-I-<hash>
//	CASEFILE-NP-INPUT    pod-to-node traffic (e.g. the API server behind the kubernetes Service)
//	  ctstate RELATED,ESTABLISHED -> RETURN
//	  -s <ip of each egress-isolated pod>/32  -> CASEFILE-NP-E-<hash>
//	CASEFILE-NP-OUTPUT   node-to-pod traffic: always allowed (RETURN)
//	CASEFILE-NP-E-<hash> one allowed destination/port per rule -> RETURN; then REJECT
//	CASEFILE-NP-I-<hash> one allowed source/port per rule      -> RETURN; then REJECT
//
// netpol's chains never ACCEPT: an allowed packet RETURNs and continues
// through the rest of the host's filter rules (kube-proxy's, the CNI's), so
// the enforcer can only ever narrow what the node would otherwise allow. A
// packet allowed by the source pod's egress chain RETURNs to
// CASEFILE-NP-FORWARD and then meets the destination pod's ingress chain, so
// pod A -> pod B must pass both A's egress and B's ingress.

import (
	"bytes"
	"fmt"
	"os/exec"
	"sort"
	"strings"
)

// builtins maps each built-in chain netpol hooks to its top chain.
var builtins = []struct{ chain, top string }{
	{"INPUT", ChainInput},
	{"FORWARD", ChainForward},
	{"OUTPUT", ChainOutput},
}

const jumpComment = "casefile netpol"

func jumpSpec(top string) string {
	return fmt.Sprintf(`-m comment --comment "%s" -j %s`, jumpComment, top)
}

// Render returns the iptables-restore input (for `iptables-restore
// --noflush`) that (re)defines every netpol chain for rs. Declaring a chain
// in --noflush mode creates it or flushes it, so the whole ruleset is
// replaced atomically while other chains are left untouched. The jumps from
// the built-in chains are not part of it (see planJumps).
func Render(rs Ruleset) string {
	return assemble(rs, nil, nil)
}

// chainNames returns every chain rs defines.
func chainNames(rs Ruleset) []string {
	names := []string{ChainInput, ChainForward, ChainOutput}
	for _, t := range rs.Targets {
		if t.Egress != nil {
			names = append(names, t.Egress.Chain)
		}
		if t.Ingress != nil {
			names = append(names, t.Ingress.Chain)
		}
	}
	return names
}

// assemble renders rs plus extra lines (jump fixes) and the deletion of stale
// chains, as one transaction.
func assemble(rs Ruleset, jumpFixes []string, stale []string) string {
	var b strings.Builder
	b.WriteString("*filter\n")
	for _, c := range chainNames(rs) {
		fmt.Fprintf(&b, ":%s - [0:0]\n", c)
	}
	for _, c := range stale {
		fmt.Fprintf(&b, ":%s - [0:0]\n", c) // flushes it so that -X below can delete it
	}

	// Established/related first. Caveat (shared with kube-router and most
	// iptables-based CNIs): a connection established before a policy starts
	// denying it survives until conntrack forgets it; only new connections
	// are policed.
	established := `-m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "established/related: not re-policed" -j RETURN`
	fmt.Fprintf(&b, "-A %s %s\n", ChainForward, established)
	for _, t := range rs.Targets {
		if t.Egress != nil {
			for _, ip := range t.IPs {
				fmt.Fprintf(&b, "-A %s -s %s/32 -m comment --comment %s -j %s\n", ChainForward, ip, quote(t.Namespace+"/"+t.Name+" egress"), t.Egress.Chain)
			}
		}
	}
	for _, t := range rs.Targets {
		if t.Ingress != nil {
			for _, ip := range t.IPs {
				fmt.Fprintf(&b, "-A %s -d %s/32 -m comment --comment %s -j %s\n", ChainForward, ip, quote(t.Namespace+"/"+t.Name+" ingress"), t.Ingress.Chain)
			}
		}
	}

	// Pod -> node (e.g. kube-apiserver on the node IP after kube-proxy's DNAT
	// of the kubernetes Service) is policed by the source pod's egress chain
	// too, so an egress-deny-all pod cannot reach the API server.
	fmt.Fprintf(&b, "-A %s %s\n", ChainInput, established)
	for _, t := range rs.Targets {
		if t.Egress != nil {
			for _, ip := range t.IPs {
				fmt.Fprintf(&b, "-A %s -s %s/32 -m comment --comment %s -j %s\n", ChainInput, ip, quote(t.Namespace+"/"+t.Name+" egress to node"), t.Egress.Chain)
			}
		}
	}

	// Traffic from the node itself (any local source address: the node IP,
	// the cni0 gateway, hostNetwork pods, kubelet probes) to pods is always
	// allowed, as with most CNIs and as the NetworkPolicy documentation
	// describes ("pods cannot block access from their resident node").
	// Locally generated packets traverse OUTPUT, never FORWARD, so no
	// ingress chain is consulted for them.
	fmt.Fprintf(&b, "-A %s -m comment --comment \"node-to-pod traffic is always allowed\" -j RETURN\n", ChainOutput)

	for _, t := range rs.Targets {
		who := t.Namespace + "/" + t.Name
		if t.Egress != nil {
			renderDirection(&b, t.Egress, "-d", who+" egress")
		}
		if t.Ingress != nil {
			renderDirection(&b, t.Ingress, "-s", who+" ingress")
		}
	}

	for _, l := range jumpFixes {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	for _, c := range stale {
		fmt.Fprintf(&b, "-X %s\n", c)
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// renderDirection writes one per-pod chain: each allow RETURNs, anything else
// is rejected. REJECT (icmp-port-unreachable) rather than DROP so that denied
// connection attempts fail at once (TCP gets ECONNREFUSED) instead of hanging
// until a timeout, which keeps probes and tests fast and unambiguous.
func renderDirection(b *strings.Builder, d *Direction, peerFlag, who string) {
	for _, a := range d.Allows {
		fmt.Fprintf(b, "-A %s", d.Chain)
		if !a.AnyPeer() {
			fmt.Fprintf(b, " %s %s", peerFlag, a.Peer)
		}
		if a.Protocol != "" {
			p := strings.ToLower(string(a.Protocol))
			fmt.Fprintf(b, " -p %s", p)
			if a.Port != 0 {
				fmt.Fprintf(b, " -m %s --dport %d", p, a.Port)
				if a.EndPort != 0 {
					fmt.Fprintf(b, ":%d", a.EndPort)
				}
			}
		}
		fmt.Fprintf(b, " -m comment --comment %s -j RETURN\n", quote(a.Policy))
	}
	fmt.Fprintf(b, "-A %s -m comment --comment %s -j REJECT --reject-with icmp-port-unreachable\n",
		d.Chain, quote(who+" default deny ("+strings.Join(d.Policies, ",")+")"))
}

// quote makes a comment safe for iptables-restore: double-quoted, without
// quotes or backslashes inside, at most 256 bytes (the xt_comment limit).
func quote(s string) string {
	s = strings.NewReplacer(`"`, "'", `\`, "/", "\n", " ").Replace(s)
	if len(s) > 250 {
		s = s[:250]
	}
	return `"` + s + `"`
}

// liveState is what matters to netpol of the current filter table.
type liveState struct {
	chains []string            // every chain in the filter table
	rules  map[string][]string // built-in chain -> its rules, in order, as the text after "-A CHAIN "
}

// parseSave parses `iptables-save -t filter` output.
func parseSave(out string) liveState {
	st := liveState{rules: map[string][]string{}}
	inFilter := false
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "*"):
			inFilter = line == "*filter"
		case !inFilter:
		case strings.HasPrefix(line, ":"):
			if f := strings.Fields(line[1:]); len(f) > 0 {
				st.chains = append(st.chains, f[0])
			}
		case strings.HasPrefix(line, "-A "):
			rest := line[3:]
			chain, spec, _ := strings.Cut(rest, " ")
			for _, bi := range builtins {
				if chain == bi.chain {
					st.rules[chain] = append(st.rules[chain], spec)
				}
			}
		}
	}
	return st
}

// ownedChains returns the live chains netpol owns, sorted.
func (st liveState) ownedChains() []string {
	var out []string
	for _, c := range st.chains {
		if strings.HasPrefix(c, ChainPrefix) {
			out = append(out, c)
		}
	}
	sort.Strings(out)
	return out
}

// jumpTarget returns the -j/--jump target of a rule spec, honouring quotes.
func jumpTarget(spec string) string {
	toks := tokenize(spec)
	for i := 0; i+1 < len(toks); i++ {
		if toks[i] == "-j" || toks[i] == "--jump" || toks[i] == "-g" || toks[i] == "--goto" {
			return toks[i+1]
		}
	}
	return ""
}

func tokenize(s string) []string {
	var toks []string
	var cur strings.Builder
	inQuote, have := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			have = true
		case c == '"':
			inQuote = !inQuote
			have = true
		case (c == ' ' || c == '\t') && !inQuote:
			if have {
				toks = append(toks, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteByte(c)
			have = true
		}
	}
	if have {
		toks = append(toks, cur.String())
	}
	return toks
}

// planJumps returns the restore lines that make each built-in chain's first
// rule the jump to its netpol top chain, and that jump its only reference to
// any netpol chain. Nothing when that already holds.
//
// Position 1 matters: kube-proxy prepends KUBE-FORWARD to FORWARD, which
// ACCEPTs masquerade-marked traffic; above our jump it would bypass policy.
// The fix is part of one iptables-restore transaction (delete stale jumps,
// insert at 1), so there is no moment without a jump.
func planJumps(st liveState) []string {
	var lines []string
	for _, bi := range builtins {
		var ours []string
		firstOK := false
		for i, spec := range st.rules[bi.chain] {
			t := jumpTarget(spec)
			if !strings.HasPrefix(t, ChainPrefix) {
				continue
			}
			ours = append(ours, spec)
			if i == 0 && t == bi.top {
				firstOK = true
			}
		}
		if firstOK && len(ours) == 1 {
			continue
		}
		for _, spec := range ours {
			lines = append(lines, fmt.Sprintf("-D %s %s", bi.chain, spec))
		}
		lines = append(lines, fmt.Sprintf("-I %s 1 %s", bi.chain, jumpSpec(bi.top)))
	}
	return lines
}

// restoreText is the full transaction for one sync: rs, the jump fixes, and
// deletion of netpol chains that rs no longer defines (pods gone or no longer
// isolated).
func restoreText(rs Ruleset, st liveState) (text string, jumpFixes []string, stale []string) {
	want := map[string]bool{}
	for _, c := range chainNames(rs) {
		want[c] = true
	}
	for _, c := range st.ownedChains() {
		if !want[c] {
			stale = append(stale, c)
		}
	}
	jumpFixes = planJumps(st)
	return assemble(rs, jumpFixes, stale), jumpFixes, stale
}

// cleanupText removes every jump into a netpol chain from the built-in
// chains and deletes every netpol chain, atomically. "" when nothing is left.
func cleanupText(st liveState) string {
	var jumps []string
	for _, bi := range builtins {
		for _, spec := range st.rules[bi.chain] {
			if strings.HasPrefix(jumpTarget(spec), ChainPrefix) {
				jumps = append(jumps, fmt.Sprintf("-D %s %s", bi.chain, spec))
			}
		}
	}
	owned := st.ownedChains()
	if len(jumps) == 0 && len(owned) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("*filter\n")
	for _, c := range owned {
		fmt.Fprintf(&b, ":%s - [0:0]\n", c) // flush
	}
	for _, l := range jumps {
		b.WriteString(l + "\n")
	}
	for _, c := range owned {
		fmt.Fprintf(&b, "-X %s\n", c)
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// Iptables runs the iptables-save / iptables-restore found on PATH.
type Iptables struct {
	Save, Restore string
}

func (ipt Iptables) read() (liveState, error) {
	var stderr bytes.Buffer
	cmd := exec.Command(ipt.Save, "-t", "filter")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return liveState{}, fmt.Errorf("%s -t filter: %v: %s", ipt.Save, err, strings.TrimSpace(stderr.String()))
	}
	return parseSave(string(out)), nil
}

func (ipt Iptables) restore(text string) error {
	cmd := exec.Command(ipt.Restore, "-w", "--noflush")
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s --noflush: %v: %s\n--- input ---\n%s", ipt.Restore, err, strings.TrimSpace(string(out)), numbered(text))
	}
	return nil
}

func numbered(text string) string {
	var b strings.Builder
	for i, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		fmt.Fprintf(&b, "%4d %s\n", i+1, l)
	}
	return b.String()
}

// ApplyResult describes one apply, for logging.
type ApplyResult struct {
	Rules       int // rules written into netpol chains
	Stale       int // netpol chains deleted
	JumpsFixed  bool
	Transaction int // bytes of iptables-restore input
}

// Apply replaces every netpol chain with rs in one iptables-restore
// transaction, then re-checks the jumps (another writer such as kube-proxy
// may have prepended a rule between our read and our write).
func (ipt Iptables) Apply(rs Ruleset) (ApplyResult, error) {
	var res ApplyResult
	st, err := ipt.read()
	if err != nil {
		return res, err
	}
	text, fixes, stale := restoreText(rs, st)
	res.Stale, res.JumpsFixed, res.Transaction = len(stale), len(fixes) > 0, len(text)
	res.Rules = strings.Count(text, "\n-A ")
	if err := ipt.restore(text); err != nil {
		return res, err
	}
	for attempt := 0; attempt < 3; attempt++ {
		st, err := ipt.read()
		if err != nil {
			return res, err
		}
		fixes := planJumps(st)
		if len(fixes) == 0 {
			return res, nil
		}
		res.JumpsFixed = true
		if err := ipt.restore("*filter\n" + strings.Join(fixes, "\n") + "\nCOMMIT\n"); err != nil {
			return res, err
		}
	}
	return res, fmt.Errorf("jumps into %s* chains keep moving away from position 1", ChainPrefix)
}

// Cleanup removes the jumps and every netpol chain.
func (ipt Iptables) Cleanup() (int, error) {
	st, err := ipt.read()
	if err != nil {
		return 0, err
	}
	text := cleanupText(st)
	if text == "" {
		return 0, nil
	}
	return len(st.ownedChains()), ipt.restore(text)
}
