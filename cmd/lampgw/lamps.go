package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lampgw/lampgw/api"
)

// cmdLamps is the subcommand that lists a running lampgw's lamps.
const cmdLamps = "lamps"

// lampsTimeout bounds the whole request.
const lampsTimeout = 10 * time.Second

// Where lamps finds its login when -u and -p are not given.
const (
	envUser     = envPrefix + "USER"
	envPassword = envPrefix + "PASSWORD"
)

// runLamps is `lampgw lamps [-u user] [-p password] [flags]`: it reads
// the settings the gateway reads (flags, LAMPGW_* environment, --config
// file), GETs /api/lamps on the gateway's --http-addr, as healthcheck
// GETs /healthz, and prints a table of the lamps, one a line:
//
//	ID       NAME     AVAILABILITY  BRIGHTNESS  AMBIENT  MODE    POWER  LAST SEEN
//	hall     -        online        800/1023    20       manual  on     3s ago
//
// With a users file, it logs in with -u and -p, or LAMPGW_USER and
// LAMPGW_PASSWORD (better: a password on the command line is visible in
// the process list). It returns 0, 2 for a usage error and 1 when the
// lamps could not be had, with one line on stderr starting "lampgw
// lamps: ".
func runLamps(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fail := func(code int, err error) int {
		fmt.Fprintf(stderr, "lampgw %s: %s\n", cmdLamps, strings.ReplaceAll(err.Error(), "\n", " "))
		return code
	}
	user, password, rest, err := splitLogin(args)
	if err != nil {
		return fail(2, err)
	}
	cfg, err := parseConfig(rest, getenv)
	if errors.Is(err, flag.ErrHelp) {
		printLampsUsage(stdout)
		return 0
	}
	if err != nil {
		return fail(2, err)
	}
	if user == "" {
		user = getenv(envUser)
	}
	if password == "" {
		password = getenv(envPassword)
	}
	lamps, err := fetchLamps(ctx, cfg.HTTPAddr, user, password)
	if err != nil {
		return fail(1, err)
	}
	printLamps(stdout, lamps, time.Now())
	return 0
}

func printLampsUsage(w io.Writer) {
	fmt.Fprintf(w, `Usage: lampgw lamps [-u user] [-p password] [flags]

Prints the lamps of the lampgw whose settings the flags, LAMPGW_*
environment and --config file give (as "lampgw -h" lists them), from
GET /api/lamps on its --http-addr. With a users file, log in with -u and
-p, or with %s and %s; prefer the environment for the password, which
the process list shows otherwise.
`, envUser, envPassword)
}

// splitLogin takes -u/--user and -p/--password (as "-u name" or
// "-u=name") out of args and returns the rest for parseConfig. It knows
// the gateway's flags, so that a value of one of them is never taken for
// a login flag.
func splitLogin(args []string) (user, password string, rest []string, err error) {
	var cfg config
	flags := newFlagSet(&cfg)
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || !strings.HasPrefix(a, "-") {
			rest = append(rest, args[i:]...)
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		var dst *string
		switch name {
		case "u", "user":
			dst = &user
		case "p", "password":
			dst = &password
		}
		if dst == nil {
			rest = append(rest, a)
			// A gateway flag's value is the next argument unless it was
			// given with "=" or the flag is boolean.
			f := flags.Lookup(name)
			if f != nil && !hasValue && !isBoolFlag(f) && i+1 < len(args) {
				i++
				rest = append(rest, args[i])
			}
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				return "", "", nil, fmt.Errorf("flag needs an argument: %s", a)
			}
			i++
			value = args[i]
		}
		*dst = value
	}
	return user, password, rest, nil
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// fetchLamps GETs /api/lamps from the HTTP listener configured as
// httpAddr.
func fetchLamps(ctx context.Context, httpAddr, user, password string) ([]api.Lamp, error) {
	if httpAddr == "" {
		return nil, fmt.Errorf("%s is off, so there is no API to ask; set --%s (or %s)", flagHTTPAddr, flagHTTPAddr, envName(flagHTTPAddr))
	}
	// The same host rule as healthcheck: a listener on every interface is
	// asked on 127.0.0.1.
	u, err := url.Parse(healthzURL(httpAddr))
	if err != nil {
		return nil, err
	}
	u.Path = "/api/lamps"
	ctx, cancel := context.WithTimeout(ctx, lampsTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	if user != "" || password != "" {
		req.SetBasicAuth(user, password)
	}
	// Straight to the gateway, as healthcheck does: HTTP_PROXY is for
	// traffic out.
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	resp, err := client.Do(req)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("GET %s: timed out waiting for an answer", u)
		}
		return nil, fmt.Errorf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %v", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		reason := resp.Status
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			reason += ": " + e.Error
		}
		if resp.StatusCode == http.StatusUnauthorized && user == "" {
			reason += fmt.Sprintf(" (log in with -u and -p, or %s and %s)", envUser, envPassword)
		}
		return nil, fmt.Errorf("GET %s: %s", u, reason)
	}
	var list struct {
		Lamps []api.Lamp `json:"lamps"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, fmt.Errorf("GET %s: not a list of lamps: %v", u, err)
	}
	return list.Lamps, nil
}

// printLamps writes lamps as a table, sorted by id, with last seen
// relative to now.
func printLamps(w io.Writer, lamps []api.Lamp, now time.Time) {
	sort.Slice(lamps, func(i, j int) bool { return lamps[i].ID < lamps[j].ID })
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tAVAILABILITY\tBRIGHTNESS\tAMBIENT\tMODE\tPOWER\tLAST SEEN")
	for _, l := range lamps {
		avail := "offline"
		if l.Online {
			avail = "online"
		}
		brightness := reported(l, "brightness")
		if brightness != "-" {
			brightness += "/" + strconv.Itoa(l.BrightnessMax)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.ID, orDash(l.Name), avail, brightness,
			reported(l, "ambient"), reported(l, "mode"), reported(l, "power"), ago(l.LastSeen, now))
	}
	tw.Flush()
}

// reported is l's reported value of key as text: strings unquoted, "-"
// if none.
func reported(l api.Lamp, key string) string {
	raw, ok := l.Reported[key]
	if !ok {
		return "-"
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return orDash(s)
	}
	return string(raw)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ago says how long before now t was: "3s ago", "5m ago", or the time
// itself after a day; "never" for nil.
func ago(t *time.Time, now time.Time) string {
	if t == nil {
		return "never"
	}
	d := now.Sub(*t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", max(0, int(d.Seconds())))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return t.Local().Format(time.DateTime)
}
