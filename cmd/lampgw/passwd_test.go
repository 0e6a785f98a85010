package main

import (
	"bytes"
	"context"
	"io"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/lampgw/lampgw/auth"
)

// TestPasswd runs `lampgw passwd` with the password piped in.
func TestPasswd(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		args     []string
		stdin    string
		password string // the password the printed hash must check, on success
		want     string // the entry without its hash, on success
		code     int
		stderr   string
	}{
		{"piped line", []string{"--cost", "4", "alice"}, "s3cret\n", "s3cret", `- {name: "alice", role: app}`, 0, ""},
		{"no newline", []string{"--cost", "4", "alice"}, "s3cret", "s3cret", `- {name: "alice", role: app}`, 0, ""},
		{"CRLF", []string{"--cost", "4", "alice"}, "s3cret\r\n", "s3cret", `- {name: "alice", role: app}`, 0, ""},
		{"spaces are the password's", []string{"--cost", "4", "alice"}, " s3 cret \n", " s3 cret ", `- {name: "alice", role: app}`, 0, ""},
		{"flags after the name", []string{"wall", "--role", "viewer", "--lamps", "kitchen-*,hall", "--cost=4"}, "pw\n", "pw",
			`- {name: "wall", role: viewer, lamps: ["kitchen-*", "hall"]}`, 0, ""},
		{"admin", []string{"--role=admin", "--cost", "4", "root@example.com"}, "pw\n", "pw", `- {name: "root@example.com", role: admin}`, 0, ""},
		{"empty", []string{"alice"}, "\n", "", "", 1, "lampgw passwd: empty password\n"},
		{"nothing", []string{"alice"}, "", "", "", 1, "lampgw passwd: empty password\n"},
		{"two lines", []string{"alice"}, "a\nb\n", "", "", 1, "lampgw passwd: want the password alone on one line, got more lines\n"},
		{"longer than bcrypt reads", []string{"alice"}, strings.Repeat("x", 73) + "\n", "", "", 1,
			"lampgw passwd: password longer than 72 bytes, which bcrypt would cut short\n"},
		{"no user", nil, "pw\n", "", "", 2, "lampgw passwd: want one user name, got 0 (usage: lampgw passwd [--role admin|app|viewer] <user>)\n"},
		{"two users", []string{"a", "b"}, "pw\n", "", "", 2, "lampgw passwd: want one user name, got 2 (usage: lampgw passwd [--role admin|app|viewer] <user>)\n"},
		{"bad role", []string{"--role", "root", "a"}, "pw\n", "", "", 2, `lampgw passwd: role: want admin, app or viewer, got "root"` + "\n"},
		{"bad name", []string{"a b"}, "pw\n", "", "", 2, `lampgw passwd: name: want 1 to 64 bytes without spaces or control characters, got "a b"` + "\n"},
		{"bad lamps", []string{"--lamps", "kitchen/1", "a"}, "pw\n", "", "", 2,
			`lampgw passwd: lamps: want lamp id characters (A-Z a-z 0-9 _ -) and the wildcards * and ?, got "kitchen/1"` + "\n"},
		{"bad cost", []string{"--cost", "3", "a"}, "pw\n", "", "", 2, "lampgw passwd: cost: must be between 4 and 31, got 3\n"},
		{"unknown flag", []string{"--password", "x", "a"}, "pw\n", "", "", 2, "lampgw passwd: flag provided but not defined: -password\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := runPasswd(tc.args, strings.NewReader(tc.stdin), &stdout, &stderr)
			if code != tc.code || stderr.String() != tc.stderr {
				t.Fatalf("got code %d stderr %q, want %d %q", code, stderr.String(), tc.code, tc.stderr)
			}
			if tc.code != 0 {
				if stdout.Len() != 0 {
					t.Errorf("stdout: got %q, want nothing", stdout.String())
				}
				return
			}
			checkEntry(t, stdout.String(), tc.want, tc.password)
		})
	}
}

// checkEntry checks that out is one users file entry that loads, that
// it reads want with its hash left out, and that the hash is password's.
func checkEntry(t *testing.T, out, want, password string) {
	t.Helper()
	line, ok := strings.CutSuffix(out, "\n")
	if !ok || strings.Contains(line, "\n") {
		t.Fatalf("stdout: got %q, want one line", out)
	}
	us, err := auth.ParseUsers("users.yaml", []byte("users:\n"+line+"\n"))
	if err != nil {
		t.Fatalf("the printed entry does not load: %v\n%s", err, line)
	}
	u := us.List[0]
	if got := strings.Replace(line, `, hash: "`+u.Hash+`"`, "", 1); got != want {
		t.Errorf("entry: got %s, want %s with a hash", got, want)
	}
	if err := bcrypt.CompareHashAndPassword([]byte(u.Hash), []byte(password)); err != nil {
		t.Errorf("hash %s does not check against %q: %v", u.Hash, password, err)
	}
}

func TestPasswdDefaults(t *testing.T) {
	t.Parallel()
	u, cost, err := parsePasswdArgs([]string{"alice"})
	if err != nil || u.Role != auth.RoleApp || cost != bcrypt.DefaultCost || u.Lamps != nil {
		t.Errorf("got %+v cost %d %v, want role app, cost %d, every lamp", u, cost, err, bcrypt.DefaultCost)
	}
	// run dispatches to it (with -h, so that nothing reads os.Stdin).
	var stdout bytes.Buffer
	if code := run(t.Context(), []string{cmdPasswd, "-h"}, func(string) string { return "" }, &stdout, io.Discard); code != 0 || !strings.HasPrefix(stdout.String(), "Usage: lampgw passwd") {
		t.Errorf("lampgw passwd -h: got %d %q, want 0 and the usage", code, stdout.String())
	}
}

// TestProcessPasswdPiped runs the built binary with the password on a
// pipe, as `echo s3cret | lampgw passwd alice` does.
func TestProcessPasswdPiped(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), startTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, lampgwBinary(t), "passwd", "--role", "admin", "--cost", "4", "alice")
	cmd.Env = cleanEnv()
	cmd.Stdin = strings.NewReader("s3cret\n")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("lampgw passwd: %v\n%s", err, stderr.String())
	}
	if stderr.Len() != 0 {
		t.Errorf("stderr: got %q, want nothing (no prompt without a terminal)", stderr.String())
	}
	checkEntry(t, stdout.String(), `- {name: "alice", role: admin}`, "s3cret")
}
