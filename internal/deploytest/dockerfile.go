package deploytest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// Dockerfile is a parsed Dockerfile.
type Dockerfile struct {
	Path   string
	Stages []*Stage
}

// Stage is one FROM and the instructions after it.
type Stage struct {
	Index int
	Name  string // after AS, lower case; "" if none
	Base  string // the image it starts FROM
	Line  int
	// Instructions in order, FROM not included.
	Instructions []Instruction
	// Image is the configuration this stage gives its image, as far as
	// the Dockerfile says: the base image's own settings are unknown.
	Image Image
	// GoBuilds are the `go build` commands of its RUN instructions.
	GoBuilds []GoBuild
	// Made are the absolute paths its RUN instructions create that this
	// parser understands: `go build` outputs and `mkdir` directories.
	Made []string
}

// Instruction is one logical line: continuation lines joined, comments
// inside it dropped.
type Instruction struct {
	Line  int    // where it starts
	Cmd   string // upper case: "COPY"
	Flags map[string]string
	// Args is the exec (JSON) form's array when JSON, else the rest of
	// the line after the flags split at white space.
	Args []string
	JSON bool
	Raw  string // the rest of the line after the flags
}

// Image is the configuration a stage gives its image.
type Image struct {
	Entrypoint      []string
	EntrypointShell bool // written in shell form: needs /bin/sh
	Cmd             []string
	CmdShell        bool
	Env             map[string]string
	User            string
	WorkDir         string
	Volumes         []string
	Expose          []string // as written: "1883", "1883/tcp"
	Healthcheck     *Healthcheck
	// Files maps each path COPY or ADD put in the image to where it came
	// from: "context:go.mod", "stage 0:/out/lampgw" (by stage index) or
	// "image alpine:/bin/sh".
	Files map[string]string
}

// Healthcheck is a HEALTHCHECK instruction.
type Healthcheck struct {
	Line int
	// Test is Docker's form: ["NONE"], ["CMD", argv...] (exec form) or
	// ["CMD-SHELL", command] (shell form, which needs /bin/sh).
	Test  []string
	Flags map[string]string // "interval": "30s", ...
}

// GoBuild is one `go build` inside a RUN.
type GoBuild struct {
	Line     int
	WorkDir  string            // where it runs
	Env      map[string]string // the stage's ENV, then the command's own VAR=value
	Packages []string          // as written: "./cmd/lampgw"
	Outputs  []string          // absolute paths of the binaries it writes
}

// ParseDockerfile reads the Dockerfile at path. It refuses, with an
// error, what it does not model rather than guess: a parser directive
// other than syntax or check, an escape character other than \, heredocs
// and variables ($) outside RUN.
func ParseDockerfile(path string) (*Dockerfile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	lines, err := logicalLines(data)
	if err != nil {
		return nil, fmt.Errorf("%s:%w", path, err)
	}
	df := &Dockerfile{Path: path}
	for _, l := range lines {
		in, err := parseInstruction(l.line, l.text)
		if err == nil {
			err = df.add(in)
		}
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, l.line, err)
		}
	}
	if len(df.Stages) == 0 {
		return nil, fmt.Errorf("%s: no FROM", path)
	}
	return df, nil
}

// Final is the last stage, whose image docker build produces.
func (df *Dockerfile) Final() *Stage { return df.Stages[len(df.Stages)-1] }

// Stage returns the stage that --from=ref names: a stage name or index
// before stage before; nil if ref names none (it is then an image).
func (df *Dockerfile) Stage(ref string, before int) *Stage {
	if i, err := strconv.Atoi(ref); err == nil {
		if i >= 0 && i < before {
			return df.Stages[i]
		}
		return nil
	}
	for _, s := range df.Stages[:before] {
		if s.Name != "" && s.Name == strings.ToLower(ref) {
			return s
		}
	}
	return nil
}

type logicalLine struct {
	line int
	text string
}

var directiveRE = regexp.MustCompile(`^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`)

// logicalLines joins continuation lines and drops comments, as Docker
// does: a comment inside a continued instruction is dropped, not ended.
func logicalLines(data []byte) ([]logicalLine, error) {
	var (
		out        []logicalLine
		cur        strings.Builder
		start      int
		directives = true
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		raw := strings.TrimRight(sc.Text(), " \t\r")
		trimmed := strings.TrimLeft(raw, " \t")
		if directives {
			if m := directiveRE.FindStringSubmatch(trimmed); m != nil {
				switch strings.ToLower(m[1]) {
				case "syntax", "check":
				case "escape":
					if m[2] != `\` {
						return nil, fmt.Errorf("%d: escape=%s: only \\ is supported", n, m[2])
					}
				default:
					// Docker would take it as a comment; say so
					// rather than ignore a typo'd directive.
					return nil, fmt.Errorf("%d: unknown parser directive %q", n, m[1])
				}
				continue
			}
			directives = false
		}
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() > 0) {
			continue
		}
		if trimmed == "" {
			continue
		}
		if cur.Len() == 0 {
			start = n
		} else {
			cur.WriteByte(' ')
		}
		if body, ok := strings.CutSuffix(trimmed, `\`); ok {
			cur.WriteString(strings.TrimRight(body, " \t"))
			continue
		}
		cur.WriteString(trimmed)
		out = append(out, logicalLine{start, cur.String()})
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if cur.Len() > 0 {
		return nil, fmt.Errorf("%d: the file ends inside a continued line", start)
	}
	return out, nil
}

var heredocRE = regexp.MustCompile(`<<-?\s*["']?[A-Za-z_]`)

func parseInstruction(line int, text string) (Instruction, error) {
	cmd, rest, _ := strings.Cut(text, " ")
	in := Instruction{Line: line, Cmd: strings.ToUpper(cmd), Flags: map[string]string{}}
	rest = strings.TrimSpace(rest)
	if heredocRE.MatchString(rest) && (in.Cmd == "RUN" || in.Cmd == "COPY" || in.Cmd == "ADD") {
		return in, fmt.Errorf("%s: heredocs are not supported by this parser", in.Cmd)
	}
	// Only some instructions take flags; elsewhere a leading "--" is an
	// argument (CMD --help).
	switch in.Cmd {
	case "FROM", "RUN", "COPY", "ADD", "HEALTHCHECK":
		for strings.HasPrefix(rest, "--") {
			word, after, _ := strings.Cut(rest, " ")
			name, value, _ := strings.Cut(strings.TrimPrefix(word, "--"), "=")
			in.Flags[strings.ToLower(name)] = value
			rest = strings.TrimSpace(after)
		}
	}
	in.Raw = rest
	if strings.HasPrefix(rest, "[") {
		var args []string
		if err := json.Unmarshal([]byte(rest), &args); err == nil {
			in.Args, in.JSON = args, true
			return in, nil
		}
		// Docker, too, falls back to the shell form for a line that is
		// not a JSON array of strings.
	}
	in.Args = strings.Fields(rest)
	if in.Cmd != "RUN" && in.Cmd != "FROM" && strings.Contains(rest, "$") {
		return in, fmt.Errorf("%s: variables ($) are not supported by this parser", in.Cmd)
	}
	return in, nil
}

func (df *Dockerfile) add(in Instruction) error {
	if in.Cmd == "FROM" {
		s := &Stage{Index: len(df.Stages), Line: in.Line, Image: Image{Env: map[string]string{}, Files: map[string]string{}}}
		switch {
		case len(in.Args) == 1:
		case len(in.Args) == 3 && strings.EqualFold(in.Args[1], "AS"):
			s.Name = strings.ToLower(in.Args[2])
		default:
			return fmt.Errorf("FROM: want IMAGE [AS NAME], got %q", in.Raw)
		}
		s.Base = in.Args[0]
		df.Stages = append(df.Stages, s)
		return nil
	}
	if len(df.Stages) == 0 {
		if in.Cmd == "ARG" {
			return fmt.Errorf("ARG before FROM is not supported by this parser")
		}
		return fmt.Errorf("%s before the first FROM", in.Cmd)
	}
	s := df.Stages[len(df.Stages)-1]
	s.Instructions = append(s.Instructions, in)
	img := &s.Image
	abs := func(p string) string {
		if path.IsAbs(p) {
			return path.Clean(p)
		}
		return path.Join("/", img.WorkDir, p)
	}
	switch in.Cmd {
	case "ENTRYPOINT":
		img.Entrypoint, img.EntrypointShell = command(in)
		// Docker: ENTRYPOINT clears a CMD that this stage has not set.
		if !s.has("CMD") {
			img.Cmd, img.CmdShell = nil, false
		}
	case "CMD":
		img.Cmd, img.CmdShell = command(in)
	case "ENV":
		pairs, err := parseEnv(in.Raw)
		if err != nil {
			return err
		}
		for _, p := range pairs {
			img.Env[p[0]] = p[1]
		}
	case "USER":
		if len(in.Args) != 1 {
			return fmt.Errorf("USER: want one user[:group], got %q", in.Raw)
		}
		img.User = in.Args[0]
	case "WORKDIR":
		img.WorkDir = abs(in.Raw)
	case "VOLUME":
		for _, v := range in.Args {
			img.Volumes = append(img.Volumes, abs(v))
		}
	case "EXPOSE":
		img.Expose = append(img.Expose, in.Args...)
	case "HEALTHCHECK":
		h, err := parseHealthcheck(in)
		if err != nil {
			return err
		}
		img.Healthcheck = h
	case "COPY", "ADD":
		if len(in.Args) < 2 {
			return fmt.Errorf("%s: want SOURCE... DEST, got %q", in.Cmd, in.Raw)
		}
		srcs, dest := in.Args[:len(in.Args)-1], in.Args[len(in.Args)-1]
		dir := strings.HasSuffix(dest, "/") || len(srcs) > 1
		dest = abs(dest)
		from := "context:"
		if ref, ok := in.Flags["from"]; ok {
			from = "image " + ref + ":"
			if src := df.Stage(ref, s.Index); src != nil {
				from = fmt.Sprintf("stage %d:", src.Index)
			}
		}
		for _, src := range srcs {
			to := dest
			if dir {
				to = path.Join(dest, path.Base(src))
			}
			img.Files[to] = from + src
		}
	case "RUN":
		if in.JSON {
			return nil // exec form: no shell, and nothing this parser reads
		}
		return s.run(in, abs)
	case "ARG":
		return fmt.Errorf("ARG is not supported by this parser")
	}
	return nil
}

// has reports whether the stage has an instruction cmd before its last.
func (s *Stage) has(cmd string) bool {
	for _, in := range s.Instructions[:len(s.Instructions)-1] {
		if in.Cmd == cmd {
			return true
		}
	}
	return false
}

// command is an ENTRYPOINT or CMD as Docker runs it.
func command(in Instruction) (argv []string, shell bool) {
	if in.JSON {
		return in.Args, false
	}
	return []string{"/bin/sh", "-c", in.Raw}, true
}

func parseHealthcheck(in Instruction) (*Healthcheck, error) {
	h := &Healthcheck{Line: in.Line, Flags: in.Flags}
	kind, rest, _ := strings.Cut(in.Raw, " ")
	rest = strings.TrimSpace(rest)
	switch strings.ToUpper(kind) {
	case "NONE":
		h.Test = []string{"NONE"}
	case "CMD":
		var argv []string
		if err := json.Unmarshal([]byte(rest), &argv); strings.HasPrefix(rest, "[") && err == nil {
			h.Test = append([]string{"CMD"}, argv...)
		} else {
			h.Test = []string{"CMD-SHELL", rest}
		}
	default:
		return nil, fmt.Errorf("HEALTHCHECK: want NONE or CMD, got %q", in.Raw)
	}
	return h, nil
}

// run reads the shell commands of a RUN for what this parser models:
// `go build` and `mkdir`.
func (s *Stage) run(in Instruction, abs func(string) string) error {
	cmds, err := shellCommands(in.Raw)
	if err != nil {
		return fmt.Errorf("RUN: %w", err)
	}
	for _, words := range cmds {
		env := make(map[string]string, len(s.Image.Env))
		for k, v := range s.Image.Env {
			env[k] = v
		}
		for len(words) > 0 && isAssignment(words[0]) {
			k, v, _ := strings.Cut(words[0], "=")
			env[k] = v
			words = words[1:]
		}
		switch {
		case len(words) >= 2 && words[0] == "go" && words[1] == "build":
			b := parseGoBuild(words[2:], abs)
			b.Line, b.Env, b.WorkDir = in.Line, env, abs(".")
			s.GoBuilds = append(s.GoBuilds, b)
			s.Made = append(s.Made, b.Outputs...)
		case len(words) >= 1 && words[0] == "mkdir":
			for i := 1; i < len(words); i++ {
				switch w := words[i]; {
				case w == "-m" || w == "--mode":
					i++
				case strings.HasPrefix(w, "-"):
				default:
					s.Made = append(s.Made, abs(w))
				}
			}
		}
	}
	return nil
}

var assignmentRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

func isAssignment(w string) bool { return assignmentRE.MatchString(w) }

// goValueFlags are the `go build` flags that take a value.
var goValueFlags = map[string]bool{
	"o": true, "C": true, "p": true, "asmflags": true, "buildmode": true,
	"compiler": true, "gccgoflags": true, "gcflags": true, "installsuffix": true,
	"ldflags": true, "mod": true, "modfile": true, "overlay": true, "pgo": true,
	"pkgdir": true, "tags": true, "toolexec": true, "covermode": true, "coverpkg": true,
}

func parseGoBuild(args []string, abs func(string) string) GoBuild {
	var b GoBuild
	out := ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			b.Packages = append(b.Packages, args[i:]...)
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if goValueFlags[name] && !hasValue && i+1 < len(args) {
			i++
			value = args[i]
		}
		if name == "o" {
			out = value
		}
	}
	names := make([]string, 0, len(b.Packages))
	for _, p := range b.Packages {
		if base := path.Base(p); base != "." && base != "/" {
			names = append(names, base)
		}
	}
	switch {
	case out == "" && len(names) == 1:
		b.Outputs = []string{abs(names[0])}
	case out == "":
		// Several packages and no -o: go build discards the results.
	case strings.HasSuffix(out, "/") || len(names) > 1:
		for _, n := range names {
			b.Outputs = append(b.Outputs, path.Join(abs(out), n))
		}
	default:
		b.Outputs = []string{abs(out)}
	}
	return b
}

// shellCommands splits a shell command line into simple commands at
// unquoted ;, && and ||, and each into words with quotes removed. It
// knows quotes and backslashes, not expansions, pipes or redirections.
func shellCommands(s string) ([][]string, error) {
	var (
		cmds  [][]string
		words []string
		word  strings.Builder
		in    bool // inside a word
	)
	endWord := func() {
		if in {
			words = append(words, word.String())
			word.Reset()
			in = false
		}
	}
	endCmd := func() {
		endWord()
		if len(words) > 0 {
			cmds = append(cmds, words)
			words = nil
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			endWord()
		case c == ';':
			endCmd()
		case (c == '&' || c == '|') && i+1 < len(s) && s[i+1] == c:
			endCmd()
			i++
		case c == '\\' && i+1 < len(s):
			in = true
			i++
			word.WriteByte(s[i])
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated ' in %q", s)
			}
			in = true
			word.WriteString(s[i+1 : i+1+j])
			i += j + 1
		case c == '"':
			in = true
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\\\"$`", s[i+1]) >= 0 {
					i++
				}
				word.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, fmt.Errorf("unterminated \" in %q", s)
			}
		default:
			in = true
			word.WriteByte(c)
		}
	}
	endCmd()
	return cmds, nil
}

// parseEnv reads ENV's two forms: `KEY=value KEY2="v 2"` and the old
// `KEY value with spaces`.
func parseEnv(raw string) ([][2]string, error) {
	first, rest, _ := strings.Cut(raw, " ")
	if !strings.Contains(first, "=") {
		if rest = strings.TrimSpace(rest); first == "" || rest == "" {
			return nil, fmt.Errorf("ENV: want KEY=value, got %q", raw)
		}
		return [][2]string{{first, rest}}, nil
	}
	cmds, err := shellCommands(raw)
	if err != nil || len(cmds) != 1 {
		return nil, fmt.Errorf("ENV: want KEY=value pairs, got %q", raw)
	}
	var pairs [][2]string
	for _, w := range cmds[0] {
		k, v, ok := strings.Cut(w, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("ENV: want KEY=value, got %q", w)
		}
		pairs = append(pairs, [2]string{k, v})
	}
	return pairs, nil
}
