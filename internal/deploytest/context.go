package deploytest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// Ignore is a build context's .dockerignore.
type Ignore struct {
	pm *patternmatcher.PatternMatcher
}

// LoadIgnore reads dir/.dockerignore; a missing file ignores nothing.
// It uses moby/patternmatcher, the matcher docker build uses, so that
// `**`, `!` exceptions and parent directories behave as they do there.
func LoadIgnore(dir string) (*Ignore, error) {
	f, err := os.Open(filepath.Join(dir, ".dockerignore"))
	if errors.Is(err, fs.ErrNotExist) {
		return &Ignore{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	return &Ignore{pm: pm}, nil
}

// Excludes reports whether the context path rel (slash separated,
// relative to the context) is left out of the build context.
func (ig *Ignore) Excludes(rel string) bool {
	if ig.pm == nil {
		return false
	}
	rel = path.Clean(rel)
	if rel == "." {
		return false
	}
	ok, err := ig.pm.MatchesOrParentMatches(rel)
	return err == nil && ok
}

// CheckBuild checks what `docker build dir` needs of the context dir,
// for the Dockerfile df, and returns every problem found:
//   - every COPY or ADD source from the context exists, stays inside the
//     context and is not left out by .dockerignore;
//   - .dockerignore leaves out no Go source of the module, nor go.mod or
//     go.sum;
//   - every package of a `go build` is a directory of Go sources that a
//     COPY brought from the context;
//   - every COPY --from=<stage> source is something that stage made (a
//     `go build` output or a `mkdir` directory).
func CheckBuild(dir string, df *Dockerfile) error {
	ig, err := LoadIgnore(dir)
	if err != nil {
		return err
	}
	var errs []error
	bad := func(line int, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s:%d: %s", filepath.Base(df.Path), line, fmt.Sprintf(format, args...)))
	}
	for _, s := range df.Stages {
		for _, in := range s.Instructions {
			if in.Cmd != "COPY" && in.Cmd != "ADD" {
				continue
			}
			srcs := in.Args[:len(in.Args)-1]
			ref, fromStage := in.Flags["from"]
			for _, src := range srcs {
				if !fromStage {
					if msg := checkContextSource(dir, ig, src); msg != "" {
						bad(in.Line, "%s %s: %s", in.Cmd, src, msg)
					}
					continue
				}
				st := df.Stage(ref, s.Index)
				if st == nil {
					continue // an image, not a stage: nothing to check here
				}
				if !madeBy(st, path.Clean(src)) {
					bad(in.Line, "%s --from=%s %s: stage %q makes no such path (it makes %v)", in.Cmd, ref, src, ref, st.Made)
				}
			}
		}
		for _, b := range s.GoBuilds {
			if len(b.Packages) == 0 {
				bad(b.Line, "go build: no package named")
			}
			for _, p := range b.Packages {
				if msg := checkGoPackage(dir, ig, s, path.Join(b.WorkDir, p)); msg != "" {
					bad(b.Line, "go build %s: %s", p, msg)
				}
			}
		}
	}
	for _, f := range []string{"go.mod", "go.sum"} {
		if ig.Excludes(f) {
			errs = append(errs, fmt.Errorf(".dockerignore leaves out %s, which go build needs", f))
		}
	}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			// The go tool ignores these too.
			if n := d.Name(); rel != "." && (n == "testdata" || strings.HasPrefix(n, ".") || strings.HasPrefix(n, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(rel, ".go") && !strings.HasSuffix(rel, "_test.go") && ig.Excludes(rel) {
			errs = append(errs, fmt.Errorf(".dockerignore leaves out %s, a Go source of the module", rel))
		}
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// checkContextSource says what is wrong with a COPY source from the
// context, or "".
func checkContextSource(dir string, ig *Ignore, src string) string {
	if strings.Contains(src, "://") {
		return "a URL; only context paths are checked here"
	}
	rel := path.Clean(strings.TrimPrefix(src, "/"))
	if rel == ".." || strings.HasPrefix(rel, "../") {
		return "outside the build context"
	}
	matches, err := filepath.Glob(filepath.Join(dir, filepath.FromSlash(rel)))
	if err != nil {
		return err.Error()
	}
	if len(matches) == 0 {
		return "no such file in the build context"
	}
	for _, m := range matches {
		r, _ := filepath.Rel(dir, m)
		if ig.Excludes(filepath.ToSlash(r)) {
			return ".dockerignore leaves it out"
		}
	}
	return ""
}

// checkGoPackage says what is wrong with the package at the absolute
// container path pkg of stage s, or "".
func checkGoPackage(dir string, ig *Ignore, s *Stage, pkg string) string {
	// The longest destination of a context copy that holds pkg.
	best := ""
	for dest, from := range s.Image.Files {
		if !strings.HasPrefix(from, "context:") {
			continue
		}
		if (pkg == dest || strings.HasPrefix(pkg, strings.TrimSuffix(dest, "/")+"/")) && len(dest) > len(best) {
			best = dest
		}
	}
	if best == "" {
		return "no COPY from the build context puts it in the stage"
	}
	src := strings.TrimPrefix(s.Image.Files[best], "context:")
	rel := path.Join(strings.TrimPrefix(src, "/"), strings.TrimPrefix(pkg[len(best):], "/"))
	if ig.Excludes(rel) {
		return ".dockerignore leaves it out"
	}
	entries, err := os.ReadDir(filepath.Join(dir, filepath.FromSlash(rel)))
	if err != nil {
		return fmt.Sprintf("not a directory of the build context (%s)", rel)
	}
	if !slices.ContainsFunc(entries, func(e fs.DirEntry) bool {
		n := e.Name()
		return strings.HasSuffix(n, ".go") && !strings.HasSuffix(n, "_test.go")
	}) {
		return fmt.Sprintf("%s has no Go source", rel)
	}
	return ""
}

// madeBy reports whether p is a path stage s made, or lies inside one.
func madeBy(s *Stage, p string) bool {
	for _, m := range s.Made {
		if p == m || strings.HasPrefix(p, m+"/") {
			return true
		}
	}
	return false
}
