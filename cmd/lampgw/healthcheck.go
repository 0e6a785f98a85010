package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// cmdHealthcheck is the subcommand that probes a running lampgw.
const cmdHealthcheck = "healthcheck"

// healthcheckTimeout bounds the whole probe. It is below the 5 s timeout
// of the image's HEALTHCHECK, so that Docker records our reason rather
// than killing the probe.
const healthcheckTimeout = 3 * time.Second

// runHealthcheck is `lampgw healthcheck [flags]`: it reads the settings
// the gateway reads (flags, LAMPGW_* environment, --config file) and GETs
// /healthz on the gateway's --http-addr, so that in a container the
// image's HEALTHCHECK probes whatever address the gateway was configured
// with. It needs no shell or curl, which the distroless image lacks.
//
// It exits 0 when /healthz answers 200 and 1 otherwise, with one line on
// stderr starting "lampgw healthcheck: ". Never 2, not even for a bad
// flag: Docker reserves exit code 2 of a health check.
func runHealthcheck(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := parseConfig(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(stdout)
		return 0
	}
	if err == nil {
		err = probeHealthz(ctx, cfg.HTTPAddr)
	}
	if err != nil {
		msg := strings.ReplaceAll(err.Error(), "\n", " ")
		fmt.Fprintf(stderr, "lampgw %s: %s\n", cmdHealthcheck, msg)
		return 1
	}
	return 0
}

// probeHealthz GETs /healthz on the HTTP listener configured as httpAddr
// ("" when it is off) and returns why it is not healthy, or nil.
func probeHealthz(ctx context.Context, httpAddr string) error {
	if httpAddr == "" {
		return fmt.Errorf("%s is off, so there is no /healthz to probe; set --%s (or %s)", flagHTTPAddr, flagHTTPAddr, envName(flagHTTPAddr))
	}
	u := healthzURL(httpAddr)
	ctx, cancel := context.WithTimeout(ctx, healthcheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	client := &http.Client{
		// Straight to the gateway: an HTTP_PROXY in the container's
		// environment is meant for its traffic out, not for this.
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
		// /healthz answers itself; a redirect means something else
		// holds the port.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		// url.Error quotes the URL as `Get "http://..."`; say it once,
		// our way, with the cause.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("GET %s: timed out waiting for an answer", u)
		}
		return fmt.Errorf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: got %s, want 200 OK", u, resp.Status)
	}
	return nil
}

// healthzURL is the /healthz URL of a listener on httpAddr. A listener on
// every interface (":8080", "0.0.0.0:8080", "[::]:8080") is probed on
// 127.0.0.1, which it includes; a named host is probed as named.
func healthzURL(httpAddr string) string {
	host, port, err := net.SplitHostPort(httpAddr)
	if err != nil {
		// parseConfig has checked the shape; keep the address as given
		// so that the error names it.
		host, port = httpAddr, ""
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	hostport := host
	if port != "" {
		hostport = net.JoinHostPort(host, port)
	}
	return (&url.URL{Scheme: "http", Host: hostport, Path: "/healthz"}).String()
}
