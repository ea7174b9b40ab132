package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// TestControllerInNetns drives the informer-based controller with a fake
// clientset against real iptables in a private network namespace: creating a
// policy isolates the selected pod, relabelling the pod lifts it.
func TestControllerInNetns(t *testing.T) {
	if !inNetns(t) {
		return
	}
	ipt, err := findIptables()
	if err != nil {
		t.Fatal(err)
	}
	web1 := pod("app", "web-1", "10.88.0.2", map[string]string{"app": "web", "q": "true"})
	web2 := pod("app", "web-2", "10.88.0.3", map[string]string{"app": "web"})
	client := fake.NewClientset(namespace("app", nil), web1, web2)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, factory, err := newController(client, node, podCIDR, ipt)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.start(ctx, factory); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { c.run(ctx, 20*time.Millisecond, time.Hour); close(done) }()
	defer func() { cancel(); <-done; factory.Shutdown() }()

	save := func() string {
		out, err := exec.Command("iptables-save", "-t", "filter").Output()
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	waitFor := func(what string, cond func(string) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			s := save()
			if cond(s) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; iptables:\n%s", what, s)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	ic := IngressChainName(string(web1.UID))

	waitFor("initial sync", func(s string) bool {
		return strings.Contains(s, "-A FORWARD -m comment --comment \"casefile netpol\" -j "+ChainForward)
	})
	if s := save(); strings.Contains(s, ingressChainPrefix) || strings.Contains(s, egressChainPrefix) {
		t.Fatalf("per-pod chains without policies:\n%s", s)
	}

	np := policy("app", "quarantine", sel("q", "true"), both, nil, nil)
	if _, err := client.NetworkingV1().NetworkPolicies("app").Create(ctx, np, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("web-1 isolated", func(s string) bool {
		return strings.Contains(s, "-A "+ic+" -m comment --comment \"app/web-1 ingress default deny (app/quarantine)\" -j REJECT")
	})
	if s := save(); strings.Contains(s, "10.88.0.3") {
		t.Errorf("sibling web-2 programmed:\n%s", s)
	}

	// Lift the quarantine label: the pod is no longer selected.
	web1 = web1.DeepCopy()
	delete(web1.Labels, "q")
	if _, err := client.CoreV1().Pods("app").Update(ctx, web1, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("web-1 released", func(s string) bool { return !strings.Contains(s, ic) })

	// Status-only churn does not matter; a pod deletion does (the chain of a
	// deleted, isolated pod goes away).
	if _, err := client.NetworkingV1().NetworkPolicies("app").Update(ctx, policy("app", "quarantine", sel("app", "web"), []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}, nil, nil), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	ic2 := IngressChainName(string(web2.UID))
	waitFor("both isolated", func(s string) bool { return strings.Contains(s, ":"+ic+" ") && strings.Contains(s, ":"+ic2+" ") })
	if err := client.CoreV1().Pods("app").Delete(ctx, "web-2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("web-2's chain removed", func(s string) bool { return strings.Contains(s, ":"+ic+" ") && !strings.Contains(s, ic2) })

	if !podChanged(web1, withLabel(web1, "x", "y")) || podChanged(web1, withCondition(web1)) {
		t.Error("podChanged misclassifies updates")
	}
}

func withLabel(p *v1.Pod, k, v string) *v1.Pod {
	p = p.DeepCopy()
	p.Labels[k] = v
	return p
}

func withCondition(p *v1.Pod) *v1.Pod {
	p = p.DeepCopy()
	p.Status.Conditions = append(p.Status.Conditions, v1.PodCondition{Type: v1.PodReady, Status: v1.ConditionTrue})
	return p
}
