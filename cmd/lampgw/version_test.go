package main

import (
	"bytes"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionLine(t *testing.T) {
	for _, tc := range []struct {
		name string
		bi   *debug.BuildInfo
		ok   bool
		want string
	}{
		{"none", nil, false, "lampgw (no build info)"},
		{"devel", &debug.BuildInfo{GoVersion: "go1.26.0"}, true, "lampgw (devel) go1.26.0"},
		{"tagged, from git", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.2.3"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef"}, {Key: "vcs.time", Value: "2026-11-22T04:00:00Z"}, {Key: "vcs.modified", Value: "true"}}},
			true, "lampgw v1.2.3 0123456789ab+dirty 2026-11-22T04:00:00Z go1.26.0"},
	} {
		if got := versionLine(tc.bi, tc.ok); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestRunVersion(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"version"}, func(string) string { return "" }, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "lampgw ") {
		t.Errorf("lampgw version: exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
	out.Reset()
	if code := run(t.Context(), []string{"version", "extra"}, func(string) string { return "" }, &out, &errOut); code != 2 {
		t.Errorf("lampgw version extra: exit %d, want 2", code)
	}
}
