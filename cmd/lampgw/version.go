package main

import (
	"fmt"
	"io"
	"runtime/debug"
)

// cmdVersion is `lampgw version`.
const cmdVersion = "version"

// runVersion prints lampgw's version: the module version (a tag, or
// "(devel)" in a working tree), the VCS revision and time the binary was
// built from, and the Go version, from the build info Go embeds.
func runVersion(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "lampgw version: unexpected argument %q\n", args[0])
		return 2
	}
	fmt.Fprintln(stdout, versionLine(debug.ReadBuildInfo()))
	return 0
}

func versionLine(bi *debug.BuildInfo, ok bool) string {
	if !ok {
		return "lampgw (no build info)"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, at, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
			if len(rev) > 12 {
				rev = rev[:12]
			}
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	line := "lampgw " + v
	if rev != "" {
		line += " " + rev + dirty
	}
	if at != "" {
		line += " " + at
	}
	return line + " " + bi.GoVersion
}
