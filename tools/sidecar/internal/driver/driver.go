// Package driver holds what both sidecars do the same way: their common
// flags and the connection to the CSI driver's socket.
package driver

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	csi "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Parse registers --v and --version, then parses the command line. With
// --version it prints the program's name and version and exits with status 0.
func Parse(version string) {
	flag.Int("v", 0, "log verbosity (accepted for compatibility; logs are always short)")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Println(filepath.Base(os.Args[0]), version)
		os.Exit(0)
	}
}

// Identity returns a client of the Identity service on the unix socket at
// address. It connects lazily: an absent driver shows as an error of each call.
func Identity(address string) (csi.IdentityClient, *grpc.ClientConn, error) {
	conn, err := grpc.NewClient("unix://"+address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, fmt.Errorf("bad CSI address %q: %w", address, err)
	}
	return csi.NewIdentityClient(conn), conn, nil
}
