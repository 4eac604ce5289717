// cert-manager's controller, out of the cluster, for the e2e control plane. Upstream's main
// (cmd/controller) is a module of its own that the Go module proxy does not serve; this main
// does what its app.Run does with the importable pieces of github.com/cert-manager/cert-manager:
// one controller.ContextFactory, every controller registered by the packages imported below,
// then the shared informers. Only the controllers behind aimesh's self-signed root -> CA issuer
// chain are compiled in (no ACME, Vault or Venafi): the issuers, the Certificate pipeline, the
// CertificateRequest approver and the self-signed and CA signers. No leader election, metrics
// or health servers: one instance, on 127.0.0.1's API server only.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/cert-manager/cert-manager/pkg/controller"
	logf "github.com/cert-manager/cert-manager/pkg/logs"
	"k8s.io/klog/v2"

	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	_ "github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	_ "github.com/cert-manager/cert-manager/pkg/controller/issuers"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the API server")
	clusterResourceNamespace := flag.String("cluster-resource-namespace", "cert-manager",
		"where ClusterIssuers' secrets live (the chart passes its own namespace)")
	workers := flag.Int("workers", 5, "workers per controller (upstream's default)")
	klogFlags := flag.NewFlagSet("klog", flag.ExitOnError)
	klog.InitFlags(klogFlags)
	flag.Var(&verbosity{klogFlags}, "v", "log verbosity (klog -v)")
	flag.Parse()
	logf.InitLogs()
	defer logf.FlushLogs()

	root, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root = logf.NewContext(root, logf.Log, "cert-manager-controller")
	log := logf.FromContext(root)

	// Upstream's defaults (internal/apis/config/controller/v1alpha1) of what they read.
	factory, err := controller.NewContextFactory(root, controller.ContextOptions{
		Kubeconfig:         *kubeconfig,
		KubernetesAPIQPS:   20,
		KubernetesAPIBurst: 50,
		IssuerOptions: controller.IssuerOptions{
			ClusterResourceNamespace: *clusterResourceNamespace,
		},
		CertificateOptions: controller.CertificateOptions{
			CopiedAnnotationPrefixes: []string{
				"*", "-kubectl.kubernetes.io/", "-fluxcd.io/", "-argocd.argoproj.io/",
			},
			CertificateRequestMinimumBackoffDuration: time.Hour,
			CertificateRequestMaximumBackoffDuration: 32 * time.Hour,
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "cert-manager controller:", err)
		os.Exit(1)
	}
	base, err := factory.Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, "cert-manager controller:", err)
		os.Exit(1)
	}

	names := make([]string, 0, len(controller.Known()))
	for name := range controller.Known() {
		names = append(names, name)
	}
	sort.Strings(names)
	log.Info("starting controllers", "controllers", names)
	var wg sync.WaitGroup
	errs := make(chan error, len(names))
	for _, name := range names {
		iface, err := controller.Known()[name](factory)
		if err != nil {
			fmt.Fprintf(os.Stderr, "cert-manager controller %s: %v\n", name, err)
			os.Exit(1)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := iface.Run(*workers, root); err != nil {
				errs <- fmt.Errorf("%s: %w", name, err)
				stop()
			}
		}()
	}
	base.SharedInformerFactory.Start(root.Done())
	base.KubeSharedInformerFactory.Start(root.Done())
	base.HTTP01ResourceMetadataInformersFactory.Start(root.Done())
	wg.Wait()
	close(errs)
	for err := range errs {
		fmt.Fprintln(os.Stderr, "cert-manager controller:", err)
		os.Exit(1)
	}
}

// verbosity forwards -v to klog, which cert-manager's logr logger writes through.
type verbosity struct{ fs *flag.FlagSet }

func (v *verbosity) String() string     { return "" }
func (v *verbosity) Set(s string) error { return v.fs.Set("v", s) }
