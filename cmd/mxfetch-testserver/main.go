// Command mxfetch-testserver runs the mxfetch test server on its own: a fake Matrix homeserver with CDN
// origins that redirects media downloads the way the chosen profile's real servers do.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/mxfetch/mxfetch/testserver"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	} else if err != nil {
		fmt.Fprintln(os.Stderr, "mxfetch-testserver:", err)
		os.Exit(2)
	}
}

type options struct {
	addr       string
	profile    string
	tls        bool
	preload    string
	token      string
	serverName string
	certOut    string
	quiet      bool
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("mxfetch-testserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	names := make([]string, len(testserver.Profiles))
	for i, p := range testserver.Profiles {
		names[i] = string(p)
	}
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8008", "`host:port` the homeserver listens on (CDN origins take free ports on the same host)")
	fs.StringVar(&o.profile, "profile", string(testserver.ProfileMediaRepo), "server behaviour: "+strings.Join(names, ", "))
	fs.BoolVar(&o.tls, "tls", false, "serve the homeserver over https with a self-signed certificate")
	fs.StringVar(&o.preload, "preload", "", "`directory` whose regular files are added as media at start")
	fs.StringVar(&o.token, "token", testserver.DefaultAccessToken, "the access `token` the server accepts")
	fs.StringVar(&o.serverName, "server-name", testserver.DefaultServerName, "server `name` of the content URIs")
	fs.StringVar(&o.certOut, "cert-out", "", "write the TLS certificate (PEM) to this `file`, for SSL_CERT_FILE")
	fs.BoolVar(&o.quiet, "q", false, "do not log requests")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if _, ok := testserver.ProfileBehavior(testserver.Profile(o.profile)); !ok {
		return fmt.Errorf("unknown profile %q (want one of %s)", o.profile, strings.Join(names, ", "))
	}
	cfg := testserver.Config{
		Profile:     testserver.Profile(o.profile),
		TLS:         o.tls,
		Addr:        o.addr,
		AccessToken: o.token,
		ServerName:  o.serverName,
	}
	if !o.quiet {
		cfg.Logf = func(format string, args ...any) {
			fmt.Fprintf(stderr, time.Now().Format("15:04:05.000 ")+format+"\n", args...)
		}
	}
	srv, err := testserver.Start(cfg)
	if err != nil {
		return err
	}
	defer srv.Close()

	fmt.Fprintf(stdout, "profile      %s\n", o.profile)
	fmt.Fprintf(stdout, "homeserver   %s\n", srv.URL)
	for _, n := range []testserver.OriginName{testserver.OriginCDNHost, testserver.OriginCDN, testserver.OriginCDNTLS} {
		fmt.Fprintf(stdout, "%-12s %s\n", n, srv.Origin(n))
	}
	fmt.Fprintf(stdout, "token        %s\n", srv.AccessToken)
	if o.certOut != "" {
		if err := os.WriteFile(o.certOut, srv.CertPEM(), 0o644); err != nil {
			return fmt.Errorf("writing certificate: %w", err)
		}
		fmt.Fprintf(stdout, "certificate  %s\n", o.certOut)
	}
	if o.preload != "" {
		if err := preload(srv, o.preload, stdout); err != nil {
			return err
		}
	}
	fmt.Fprintln(stdout, "ready")
	<-ctx.Done()
	fmt.Fprintln(stdout, "stopping")
	return nil
}

// preload adds every regular file of dir as media and prints its content URI.
func preload(srv *testserver.Server, dir string, stdout io.Writer) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("preload: %w", err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return fmt.Errorf("preload: %w", err)
		}
		uri := srv.AddMedia(data, testserver.MediaOptions{ContentType: contentType(e.Name(), data), FileName: e.Name()})
		fmt.Fprintf(stdout, "media        %s %s\n", uri, e.Name())
	}
	return nil
}
