// Command csi-node-driver-registrar registers a CSI driver with the kubelet,
// standing in for the Kubernetes CSI sidecar of that name where its module is
// not served (see tools/sidecar/README.md).
//
// Contract: it asks the driver on --csi-address for its name
// (GetPluginInfo), then serves the kubelet's plugin registration API on
// <--plugin-registration-path>/<name>-reg.sock, announcing a CSIPlugin whose
// endpoint, as the kubelet reaches it, is --kubelet-registration-path. A
// failed registration reported by the kubelet ends it with status 1, so the
// container restarts. With --http-endpoint, GET /healthz answers 200 while
// the registration socket exists and 503 otherwise. SIGTERM removes the
// socket and ends it with status 0.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	csi "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	registration "k8s.io/kubelet/pkg/apis/pluginregistration/v1"

	"openfiles.local/tools/sidecar/internal/driver"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "unknown"

type registrar struct {
	registration.UnimplementedRegistrationServer
	driver   string
	endpoint string
}

func (r *registrar) GetInfo(context.Context, *registration.InfoRequest) (*registration.PluginInfo, error) {
	return &registration.PluginInfo{
		Type:              registration.CSIPlugin,
		Name:              r.driver,
		Endpoint:          r.endpoint,
		SupportedVersions: []string{"1.0.0"},
	}, nil
}

func (r *registrar) NotifyRegistrationStatus(
	_ context.Context, status *registration.RegistrationStatus,
) (*registration.RegistrationStatusResponse, error) {
	if !status.PluginRegistered {
		log.Printf("the kubelet refused driver %s: %s", r.driver, status.Error)
		os.Exit(1)
	}
	log.Printf("the kubelet registered driver %s at %s", r.driver, r.endpoint)
	return &registration.RegistrationStatusResponse{}, nil
}

// driverName asks the CSI driver its name, retrying until it answers or ctx ends.
func driverName(ctx context.Context, address string) (string, error) {
	identity, conn, err := driver.Identity(address)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	for {
		call, cancel := context.WithTimeout(ctx, 5*time.Second)
		info, err := identity.GetPluginInfo(call, &csi.GetPluginInfoRequest{})
		cancel()
		if err == nil && info.Name != "" {
			return info.Name, nil
		}
		if err == nil {
			err = errors.New("the driver reports an empty name")
		}
		log.Printf("waiting for the CSI driver at %s: %v", address, err)
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("no CSI driver answered at %s: %w", address, err)
		case <-time.After(time.Second):
		}
	}
}

func serveHealth(endpoint, socket string) {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if _, err := os.Stat(socket); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	log.Fatal(http.ListenAndServe(endpoint, mux))
}

func main() {
	csiAddress := flag.String("csi-address", "/run/csi/socket", "the CSI driver's socket, as this container sees it")
	kubeletPath := flag.String("kubelet-registration-path", "", "the CSI driver's socket, as the kubelet sees it (required)")
	pluginDir := flag.String("plugin-registration-path", "/registration", "the kubelet's plugin registration directory, as this container sees it")
	httpEndpoint := flag.String("http-endpoint", "", "address of the /healthz endpoint (none when empty)")
	timeout := flag.Duration("timeout", 10*time.Minute, "how long to wait for the CSI driver to answer")
	driver.Parse(version)
	if *kubeletPath == "" {
		log.Fatal("--kubelet-registration-path is required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	wait, cancel := context.WithTimeout(ctx, *timeout)
	name, err := driverName(wait, *csiAddress)
	cancel()
	if err != nil {
		log.Fatal(err)
	}
	socket := filepath.Join(*pluginDir, name+"-reg.sock")
	if err := os.Remove(socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		log.Fatalf("cannot remove the stale socket %s: %v", socket, err)
	}
	listener, err := net.Listen("unix", socket)
	if err != nil {
		log.Fatalf("cannot listen on %s: %v", socket, err)
	}
	server := grpc.NewServer()
	registration.RegisterRegistrationServer(server, &registrar{driver: name, endpoint: *kubeletPath})
	if *httpEndpoint != "" {
		go serveHealth(*httpEndpoint, socket)
	}
	go func() {
		<-ctx.Done()
		server.Stop()
	}()
	log.Printf("serving registration of driver %s on %s", name, socket)
	if err := server.Serve(listener); err != nil && ctx.Err() == nil {
		log.Fatal(err)
	}
	_ = os.Remove(socket)
}
