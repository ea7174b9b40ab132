// Command netpol is the test cluster's NetworkPolicy enforcer: it watches
// Pods, Namespaces and networking.k8s.io/v1 NetworkPolicies and programs the
// node's iptables filter table so that the policies are enforced for the pods
// on this node (bridge CNI on cni0 with br_netfilter, kube-proxy in iptables
// mode). See policy.go for the semantics and iptables.go for the chain layout.
//
//	netpol --kubeconfig=/path --node-name=node1 --pod-cidr=10.88.0.0/16
//	netpol --cleanup   # remove every CASEFILE-NP chain and the jumps into them
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	networkinglisters "k8s.io/client-go/listers/networking/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
)

func main() {
	klog.InitFlags(nil)
	var (
		kubeconfig  = flag.String("kubeconfig", "", "path to a kubeconfig (empty: in-cluster config)")
		nodeName    = flag.String("node-name", "", "program only pods with spec.nodeName equal to this (default: the lower-cased hostname)")
		podCIDR     = flag.String("pod-cidr", "", "the node's pod CIDR, e.g. 10.88.0.0/16; pods whose IP is outside it are never programmed (empty: no restriction)")
		debounce    = flag.Duration("sync-debounce", 100*time.Millisecond, "wait this long after a change before syncing, coalescing bursts of changes")
		resync      = flag.Duration("resync", 30*time.Second, "full sync at least this often even without changes")
		healthzPort = flag.Int("healthz-port", 0, "serve /healthz on this port (0: off)")
		cleanup     = flag.Bool("cleanup", false, "remove the jumps and every "+ChainPrefix+"* chain, then exit")
	)
	flag.Parse()
	defer klog.Flush()

	ipt, err := findIptables()
	if err != nil {
		klog.Fatal(err)
	}
	if *cleanup {
		n, err := ipt.Cleanup()
		if err != nil {
			klog.Errorf("cleanup: %v", err)
			klog.Flush()
			os.Exit(1)
		}
		klog.Infof("cleanup: removed %d %s* chains and their jumps", n, ChainPrefix)
		return
	}

	if *nodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			klog.Fatalf("--node-name not given and hostname unknown: %v", err)
		}
		*nodeName = strings.ToLower(h)
	}
	var cidr netip.Prefix
	if *podCIDR != "" {
		if cidr, err = netip.ParsePrefix(*podCIDR); err != nil || !cidr.Addr().Is4() {
			klog.Fatalf("--pod-cidr %q: want an IPv4 CIDR (%v)", *podCIDR, err)
		}
		cidr = cidr.Masked()
	}
	if *resync <= 0 {
		klog.Fatalf("--resync must be positive")
	}

	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		klog.Fatalf("kubeconfig: %v", err)
	}
	cfg.UserAgent = "casefile-netpol"
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		klog.Fatalf("client: %v", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	c, factory, err := newController(client, *nodeName, cidr, ipt)
	if err != nil {
		klog.Fatal(err)
	}

	if *healthzPort != 0 {
		go c.serveHealthz(ctx, *healthzPort)
	}

	klog.Infof("netpol starting: node %q, pod CIDR %q, debounce %s, resync %s, %s/%s",
		*nodeName, *podCIDR, *debounce, *resync, ipt.Save, ipt.Restore)
	if err := c.start(ctx, factory); err != nil {
		if ctx.Err() != nil {
			return
		}
		klog.Fatal(err)
	}
	c.run(ctx, *debounce, *resync)
	factory.Shutdown()
	// Rules are deliberately left in place on exit (fail closed across
	// restarts); `netpol --cleanup` removes them.
	klog.Infof("netpol stopping; rules left in place")
}

// newController wires informers on Pods, Namespaces and NetworkPolicies to a
// controller; every relevant change schedules a (debounced) full sync.
func newController(client kubernetes.Interface, nodeName string, cidr netip.Prefix, ipt Iptables) (*controller, informers.SharedInformerFactory, error) {
	// Resync period 0: the informers never replay their caches; the periodic
	// full sync in run re-applies the ruleset instead.
	factory := informers.NewSharedInformerFactory(client, 0)
	c := &controller{
		pods:     factory.Core().V1().Pods().Lister(),
		nss:      factory.Core().V1().Namespaces().Lister(),
		policies: factory.Networking().V1().NetworkPolicies().Lister(),
		nodeName: nodeName,
		podCIDR:  cidr,
		ipt:      ipt,
		kick:     make(chan struct{}, 1),
	}
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { c.enqueue() },
		UpdateFunc: func(o, n any) { c.updated(o, n) },
		DeleteFunc: func(any) { c.enqueue() },
	}
	for _, inf := range []cache.SharedIndexInformer{
		factory.Core().V1().Pods().Informer(),
		factory.Core().V1().Namespaces().Informer(),
		factory.Networking().V1().NetworkPolicies().Informer(),
	} {
		if _, err := inf.AddEventHandler(handler); err != nil {
			return nil, nil, fmt.Errorf("informer: %w", err)
		}
	}
	return c, factory, nil
}

// start runs the informers and waits for their caches. Never sync from
// partial caches: that would briefly lift isolation from pods whose policies
// have not been listed yet.
func (c *controller) start(ctx context.Context, factory informers.SharedInformerFactory) error {
	factory.Start(ctx.Done())
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("cache for %v did not sync", typ)
		}
	}
	klog.Infof("caches synced")
	return nil
}

// findIptables locates iptables-save and iptables-restore on PATH.
func findIptables() (Iptables, error) {
	save, err := exec.LookPath("iptables-save")
	if err != nil {
		return Iptables{}, err
	}
	restore, err := exec.LookPath("iptables-restore")
	if err != nil {
		return Iptables{}, err
	}
	return Iptables{Save: save, Restore: restore}, nil
}

type controller struct {
	pods     corelisters.PodLister
	nss      corelisters.NamespaceLister
	policies networkinglisters.NetworkPolicyLister
	nodeName string
	podCIDR  netip.Prefix
	ipt      Iptables
	kick     chan struct{}

	mu       sync.Mutex
	lastErr  error
	lastSync time.Time // of the last successful sync
}

// enqueue schedules a sync; bursts coalesce (the channel holds one token).
func (c *controller) enqueue() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// updated enqueues unless the update cannot affect the ruleset (pods get
// many status updates, e.g. conditions and container states, that do not).
func (c *controller) updated(o, n any) {
	op, ok1 := o.(*v1.Pod)
	np, ok2 := n.(*v1.Pod)
	if ok1 && ok2 && !podChanged(op, np) {
		return
	}
	c.enqueue()
}

func podChanged(a, b *v1.Pod) bool {
	return a.Spec.NodeName != b.Spec.NodeName ||
		a.Spec.HostNetwork != b.Spec.HostNetwork ||
		a.Status.Phase != b.Status.Phase ||
		a.Status.PodIP != b.Status.PodIP ||
		(a.DeletionTimestamp == nil) != (b.DeletionTimestamp == nil) ||
		!reflect.DeepEqual(a.Status.PodIPs, b.Status.PodIPs) ||
		!reflect.DeepEqual(a.Labels, b.Labels) ||
		!reflect.DeepEqual(containerPorts(a), containerPorts(b))
}

func containerPorts(p *v1.Pod) [][]v1.ContainerPort {
	var out [][]v1.ContainerPort
	for _, c := range p.Spec.InitContainers {
		out = append(out, c.Ports)
	}
	for _, c := range p.Spec.Containers {
		out = append(out, c.Ports)
	}
	return out
}

// run syncs after every (debounced) change, at least every resync, and
// retries failed syncs after a second.
func (c *controller) run(ctx context.Context, debounce, resync time.Duration) {
	ticker := time.NewTicker(resync)
	defer ticker.Stop()
	c.enqueue() // initial sync
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
			if debounce > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(debounce):
				}
			}
			select { // changes during the debounce wait are covered by this sync
			case <-c.kick:
			default:
			}
		case <-ticker.C:
		}
		if err := c.sync(); err != nil {
			klog.Errorf("sync failed (retrying in 1s): %v", err)
			time.AfterFunc(time.Second, c.enqueue)
		}
	}
}

func (c *controller) sync() error {
	start := time.Now()
	pods, err := c.pods.List(labels.Everything())
	if err != nil {
		return c.record(err)
	}
	nss, err := c.nss.List(labels.Everything())
	if err != nil {
		return c.record(err)
	}
	nps, err := c.policies.List(labels.Everything())
	if err != nil {
		return c.record(err)
	}
	rs := Desired(pods, nss, nps, c.nodeName, c.podCIDR)
	for _, w := range rs.Warnings {
		klog.Warning(w)
	}
	res, err := c.ipt.Apply(rs)
	if err != nil {
		return c.record(err)
	}
	var in, eg int
	for _, t := range rs.Targets {
		if t.Ingress != nil {
			in++
		}
		if t.Egress != nil {
			eg++
		}
	}
	klog.Infof("sync: %d pods, %d namespaces, %d policies -> %d ingress-isolated, %d egress-isolated pods on %s; %d rules, %d stale chains removed, jumps fixed %v; took %s",
		len(pods), len(nss), len(nps), in, eg, c.nodeName, res.Rules, res.Stale, res.JumpsFixed, time.Since(start).Round(time.Microsecond))
	if klog.V(4).Enabled() {
		klog.Infof("ruleset:\n%s", rs)
	}
	return c.record(nil)
}

func (c *controller) record(err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastErr = err
	if err == nil {
		c.lastSync = time.Now()
	}
	return err
}

// serveHealthz answers 200 once a sync has succeeded and the latest sync did
// not fail, 503 otherwise.
func (c *controller) serveHealthz(ctx context.Context, port int) {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		c.mu.Lock()
		err, last := c.lastErr, c.lastSync
		c.mu.Unlock()
		switch {
		case err != nil:
			http.Error(w, "last sync failed: "+err.Error(), http.StatusServiceUnavailable)
		case last.IsZero():
			http.Error(w, "not synced yet", http.StatusServiceUnavailable)
		default:
			fmt.Fprintf(w, "ok (last sync %s ago)\n", time.Since(last).Round(time.Millisecond))
		}
	})
	srv := &http.Server{Addr: net.JoinHostPort("", strconv.Itoa(port)), Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		klog.Fatalf("healthz: %v", err)
	}
}
