// Command livenessprobe turns a CSI driver's Probe into an HTTP health check,
// standing in for the Kubernetes CSI sidecar of that name where its module is
// not served (see tools/sidecar/README.md).
//
// Contract: GET /healthz on --http-endpoint (default :--health-port) calls
// Identity.Probe on --csi-address within --probe-timeout. It answers 200 "ok"
// when the driver answers and does not report ready=false, and 500 with the
// reason otherwise. Any other path is 404. SIGTERM ends it with status 0.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	csi "github.com/container-storage-interface/spec/lib/go/csi"

	"openfiles.local/tools/sidecar/internal/driver"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "unknown"

// probe returns nil when the driver answers Probe and does not say it is not ready.
func probe(ctx context.Context, identity csi.IdentityClient) error {
	answer, err := identity.Probe(ctx, &csi.ProbeRequest{})
	if err != nil {
		return err
	}
	if ready := answer.GetReady(); ready != nil && !ready.Value {
		return errors.New("the driver reports it is not ready")
	}
	return nil
}

func main() {
	csiAddress := flag.String("csi-address", "/run/csi/socket", "the CSI driver's socket")
	port := flag.Int("health-port", 9808, "TCP port of /healthz on all addresses (when --http-endpoint is empty)")
	httpEndpoint := flag.String("http-endpoint", "", "address of /healthz, for example 127.0.0.1:9808")
	timeout := flag.Duration("probe-timeout", time.Second, "how long one Probe may take")
	driver.Parse(version)
	address := *httpEndpoint
	if address == "" {
		address = fmt.Sprintf(":%d", *port)
	}
	identity, conn, err := driver.Identity(*csiAddress)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), *timeout)
		defer cancel()
		if err := probe(ctx, identity); err != nil {
			log.Printf("health check failed: %v", err)
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	server := &http.Server{Addr: address, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		_ = server.Close()
	}()
	log.Printf("serving /healthz on %s for the CSI driver at %s", address, *csiAddress)
	if err := server.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}
