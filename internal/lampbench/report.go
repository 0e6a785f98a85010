package lampbench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the outcome of Run: every scenario's figures, or why it
// failed.
type Report struct {
	Started   time.Time `json:"started"`
	Seconds   float64   `json:"seconds"`
	Rounds    int       `json:"rounds"`
	CPUs      int       `json:"cpus"`
	GoVersion string    `json:"go_version"`
	Revision  string    `json:"revision,omitempty"`
	Target    string    `json:"target"`
	// Command is the command line that produced the report, if the
	// caller sets it.
	Command   string     `json:"command,omitempty"`
	Scenarios []*Section `json:"scenarios"`
}

// Section is one scenario's figures in the order they were first taken.
type Section struct {
	Name    string    `json:"name"`
	Figures []*Figure `json:"figures"`
	// Err is why the scenario stopped; the figures taken before stay.
	Err string `json:"error,omitempty"`
}

// Figure is one measured quantity with a value per round.
type Figure struct {
	Name   string    `json:"name"`
	Unit   string    `json:"unit"`
	Rounds []float64 `json:"rounds"`
	Median float64   `json:"median"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	// Target is issue 7's goal for this figure ("<= 1.1"), "" if none;
	// Met says whether the median meets it.
	Target string `json:"target,omitempty"`
	Met    *bool  `json:"met,omitempty"`
}

// Failed returns the sections that failed.
func (r *Report) Failed() []*Section {
	var out []*Section
	for _, s := range r.Scenarios {
		if s.Err != "" {
			out = append(out, s)
		}
	}
	return out
}

// Figure returns the figure of scenario and name, or nil.
func (r *Report) Figure(scenario, name string) *Figure {
	for _, s := range r.Scenarios {
		if s.Name != scenario {
			continue
		}
		for _, f := range s.Figures {
			if f.Name == name {
				return f
			}
		}
	}
	return nil
}

// add records value for round of figure name, creating it.
func (s *Section) add(name, unit string, value float64) *Figure {
	for _, f := range s.Figures {
		if f.Name == name {
			f.Rounds = append(f.Rounds, value)
			return f
		}
	}
	f := &Figure{Name: name, Unit: unit, Rounds: []float64{value}}
	s.Figures = append(s.Figures, f)
	return f
}

// addDur records a duration in microseconds, the unit every latency
// figure uses.
func (s *Section) addDur(name string, d time.Duration) {
	s.add(name, "us", float64(d)/float64(time.Microsecond))
}

// ratio records a/b, or NaN when b is 0: a ratio is always of two
// figures of the same round.
func (s *Section) ratio(name string, a, b float64) {
	r := math.NaN()
	if b != 0 {
		r = a / b
	}
	s.add(name, "x", r)
}

// targets are issue 7's goals, by scenario and figure name.
var targets = map[[2]string]string{
	{Latency, "ratio p50 gateway/direct"}:    "<= 1.1",
	{Latency, "ratio p50 gateway/mosquitto"}: "<= 1.0",
	{Latency, "gateway p99"}:                 "< 2000",
	{Throughput, "ratio gateway/mosquitto"}:  ">= 1.0",
	{Idle, "gateway RSS per lamp"}:           "<= 8",
	{Idle, "RSS growth after cycles"}:        "<= 10",
	{Idle, "reconnect: all online after"}:    "<= 3000",
}

// finish computes every figure's median, min, max and target.
func (r *Report) finish() {
	for _, s := range r.Scenarios {
		for _, f := range s.Figures {
			v := slices.Clone(f.Rounds)
			slices.Sort(v)
			f.Min, f.Max = v[0], v[len(v)-1]
			if n := len(v); n%2 == 1 {
				f.Median = v[n/2]
			} else {
				f.Median = (v[n/2-1] + v[n/2]) / 2
			}
			if t, ok := targets[[2]string{s.Name, f.Name}]; ok {
				f.Target = t
				met := meets(f.Median, t)
				f.Met = &met
			}
		}
	}
}

// meets reports whether v satisfies target, an operator and a number.
func meets(v float64, target string) bool {
	op, num, _ := strings.Cut(target, " ")
	var t float64
	fmt.Sscan(num, &t)
	switch op {
	case "<=":
		return v <= t
	case "<":
		return v < t
	case ">=":
		return v >= t
	}
	return false
}

// WriteJSON writes r as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	// NaN (a ratio with no denominator) is not JSON; null says the same.
	return enc.Encode(jsonSafe(r))
}

func jsonSafe(r *Report) *Report {
	c := *r
	c.Scenarios = nil
	for _, s := range r.Scenarios {
		sc := *s
		sc.Figures = nil
		for _, f := range s.Figures {
			fc := *f
			fc.Rounds = slices.Clone(f.Rounds)
			for i, v := range fc.Rounds {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					fc.Rounds[i] = -1
				}
			}
			for _, p := range []*float64{&fc.Median, &fc.Min, &fc.Max} {
				if math.IsNaN(*p) || math.IsInf(*p, 0) {
					*p = -1
				}
			}
			sc.Figures = append(sc.Figures, &fc)
		}
		c.Scenarios = append(c.Scenarios, &sc)
	}
	return &c
}

// WriteTable writes r as a Markdown table, readable as it is in a
// terminal and pasted into docs/performance.md.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	fmt.Fprintf(tw, "| scenario\t| figure\t| median\t| min\t| max\t| unit\t| target\t|\n")
	fmt.Fprintf(tw, "|---\t|---\t|--:\t|--:\t|--:\t|---\t|---\t|\n")
	for _, s := range r.Scenarios {
		for _, f := range s.Figures {
			target := ""
			if f.Met != nil {
				target = f.Target + map[bool]string{true: " met", false: " MISSED"}[*f.Met]
			}
			fmt.Fprintf(tw, "| %s\t| %s\t| %s\t| %s\t| %s\t| %s\t| %s\t|\n",
				s.Name, f.Name, num(f.Median), num(f.Min), num(f.Max), f.Unit, target)
		}
		if s.Err != "" {
			fmt.Fprintf(tw, "| %s\t| FAILED: %s\t|\t|\t|\t|\t|\t|\n", s.Name, strings.ReplaceAll(s.Err, "|", "/"))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	rev := r.Revision
	if rev == "" {
		rev = "revision unknown"
	}
	_, err := fmt.Fprintf(w, "\n%d rounds, %d CPUs, %s, %s, %s, %.0f s, started %s\n",
		r.Rounds, r.CPUs, r.GoVersion, rev, r.Target, r.Seconds, r.Started.Format(time.RFC3339))
	if err == nil && r.Command != "" {
		_, err = fmt.Fprintf(w, "%s\n", r.Command)
	}
	return err
}

// num prints v with three significant digits or so, as a table wants.
func num(v float64) string {
	switch a := math.Abs(v); {
	case math.IsNaN(v):
		return "n/a"
	case a == 0:
		return "0"
	case a >= 1000:
		return fmt.Sprintf("%.0f", v)
	case a >= 100:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}
