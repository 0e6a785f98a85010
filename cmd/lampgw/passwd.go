package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"

	"github.com/lampgw/lampgw/auth"
)

// cmdPasswd is the subcommand that makes a users file entry.
const cmdPasswd = "passwd"

// maxPasswordLine bounds what is read from a pipe: far above the
// auth.MaxPasswordLen bytes bcrypt reads, so a longer password gets its
// own message, and far below anything that could hurt.
const maxPasswordLine = 4096

// placeholderHash is a valid bcrypt hash (of "x", cost 4) that stands in
// for the real one while the rest of an entry is checked, before the
// password is asked for.
const placeholderHash = "$2a$04$n2iB.BEz5NbZK4CxkyHSHO5k92UmZpKDPIWYGyMxREKw/st0nQPS."

// runPasswd is `lampgw passwd [--role r] [--lamps p,...] [--cost n]
// <user>`: it reads a password from stdin, without echo and twice when
// stdin is a terminal, as one line when it is not, and prints the user's
// entry for the --users file on stdout, ready to append:
//
//	$ lampgw passwd alice >> users.yaml
//	- {name: "alice", role: app, hash: "$2a$10$..."}
//
// Prompts and errors go to stderr, so `lampgw passwd alice >> users.yaml`
// works at a terminal too. It returns 0, 2 for a usage error (a bad flag,
// name, role or pattern) and 1 when no password could be had; every error
// is one line starting "lampgw passwd: ".
func runPasswd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fail := func(code int, err error) int {
		fmt.Fprintf(stderr, "lampgw %s: %s\n", cmdPasswd, strings.ReplaceAll(err.Error(), "\n", " "))
		return code
	}
	u, cost, err := parsePasswdArgs(args)
	if errors.Is(err, flag.ErrHelp) {
		printPasswdUsage(stdout)
		return 0
	}
	if err != nil {
		return fail(2, err)
	}
	password, err := readPassword(stdin, stderr)
	if err != nil {
		return fail(1, err)
	}
	if u.Hash, err = auth.HashPassword(password, cost); err != nil {
		return fail(1, err)
	}
	fmt.Fprintln(stdout, auth.FormatUser(u))
	return 0
}

// parsePasswdArgs reads the flags, before or after the user name, and
// checks the entry they make as the users file loader will.
func parsePasswdArgs(args []string) (auth.User, int, error) {
	flags := flag.NewFlagSet("lampgw passwd", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	role := flags.String("role", auth.RoleApp.String(), "")
	lamps := flags.String("lamps", "", "")
	cost := flags.Int("cost", bcrypt.DefaultCost, "")
	var names []string
	for {
		if err := flags.Parse(args); err != nil {
			return auth.User{}, 0, err
		}
		if flags.NArg() == 0 {
			break
		}
		names = append(names, flags.Arg(0))
		args = flags.Args()[1:]
	}
	if len(names) != 1 {
		return auth.User{}, 0, fmt.Errorf("want one user name, got %d (usage: lampgw passwd [--role admin|app|viewer] <user>)", len(names))
	}
	if *cost < bcrypt.MinCost || *cost > bcrypt.MaxCost {
		return auth.User{}, 0, fmt.Errorf("cost: must be between %d and %d, got %d", bcrypt.MinCost, bcrypt.MaxCost, *cost)
	}
	u := auth.User{Name: names[0], Hash: placeholderHash}
	var err error
	if u.Role, err = auth.ParseRole(*role); err != nil {
		return u, 0, fmt.Errorf("role: %v", err)
	}
	if *lamps != "" {
		u.Lamps = strings.Split(*lamps, ",")
	}
	// The entry must load: check it with the loader itself, so that its
	// rules live in one place.
	if _, err := auth.ParseUsers("", []byte("users:\n"+auth.FormatUser(u)+"\n")); err != nil {
		var fe *auth.FileError
		if errors.As(err, &fe) && fe.Key != "" {
			return u, 0, fmt.Errorf("%s: %v", fe.Key, fe.Err)
		}
		return u, 0, err
	}
	return u, *cost, nil
}

// readPassword reads the password: twice without echo from a terminal,
// prompting on prompt; else the first line of in, which must be all.
func readPassword(in io.Reader, prompt io.Writer) ([]byte, error) {
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		ask := func(what string) ([]byte, error) {
			fmt.Fprint(prompt, what)
			p, err := term.ReadPassword(int(f.Fd()))
			fmt.Fprintln(prompt)
			return p, err
		}
		p, err := ask("Password: ")
		if err != nil {
			return nil, fmt.Errorf("read password: %v", err)
		}
		again, err := ask("Password again: ")
		if err != nil {
			return nil, fmt.Errorf("read password: %v", err)
		}
		if !bytes.Equal(p, again) {
			return nil, errors.New("the passwords differ; nothing printed")
		}
		return p, nil
	}
	r := bufio.NewReader(io.LimitReader(in, maxPasswordLine+1))
	line, err := r.ReadBytes('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read password: %v", err)
	}
	if len(line) > maxPasswordLine {
		return nil, fmt.Errorf("password longer than %d bytes", auth.MaxPasswordLen)
	}
	if rest, _ := io.ReadAll(r); len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("want the password alone on one line, got more lines")
	}
	line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
	return line, nil
}

func printPasswdUsage(w io.Writer) {
	fmt.Fprintf(w, `Usage: lampgw passwd [--role admin|app|viewer] [--lamps pattern,...] [--cost n] <user>

Reads a password (twice, without echo, on a terminal; one line from a pipe)
and prints the user's entry for the --users file, for example:

    $ lampgw passwd --role viewer wall >> users.yaml
    - {name: "wall", role: viewer, hash: "$2a$10$..."}

  --role   admin, app or viewer (default app)
  --lamps  lamp id patterns the user is limited to, like kitchen-*,hall (default every lamp)
  --cost   bcrypt cost, %d..%d (default %d: about 50-100 ms a login; each step doubles it)
`, bcrypt.MinCost, bcrypt.MaxCost, bcrypt.DefaultCost)
}
