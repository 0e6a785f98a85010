// Package flagenv gives every flag of a flag.FlagSet an environment
// variable, PREFIX_ and the flag in upper snake case (ff's rule, so ff's
// documentation stays true for lampgw), and prints the table of both.
// Commands use it instead of os.Getenv so that parsing stays a pure
// function of its arguments, which tests can call in parallel.
package flagenv

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Name is the environment variable of flagName under prefix ("LAMPGW_").
func Name(prefix, flagName string) string {
	return prefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Apply sets every flag of fs whose variable getenv returns non-empty (an
// empty variable counts as unset). Call it before parsing arguments, so
// that a flag beats its variable. The first bad value gives an error of
// one line naming the flag, the value and the variable.
func Apply(fs *flag.FlagSet, prefix string, getenv func(string) string) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		name := Name(prefix, f.Name)
		v := getenv(name)
		if v == "" || err != nil {
			return
		}
		if e := fs.Set(f.Name, v); e != nil {
			err = fmt.Errorf("%s: invalid value %q in %s: %v", f.Name, v, name, e)
		}
	})
	return err
}

// PrintTable writes one row per flag of fs: its spelling, its variable,
// its default and its usage.
func PrintTable(w io.Writer, fs *flag.FlagSet, prefix string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "Flag\tEnvironment\tDefault\tMeaning")
	fs.VisitAll(func(f *flag.Flag) {
		placeholder, usage := flag.UnquoteUsage(f)
		def := f.DefValue
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(tw, "--%s %s\t%s\t%s\t%s\n", f.Name, placeholder, Name(prefix, f.Name), def, usage)
	})
	tw.Flush()
}
