package deploytest

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func parseString(t *testing.T, text string) (*Dockerfile, error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "Dockerfile")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return ParseDockerfile(p)
}

func TestParseDockerfile(t *testing.T) {
	t.Parallel()
	df, err := parseString(t, `# syntax=docker/dockerfile:1
# a comment
FROM golang:1.26 AS Build
WORKDIR /src
COPY go.mod go.sum ./
COPY . .
ENV CGO_ENABLED=0 NAME="two words"
RUN go build -trimpath \
    # a comment inside a continued line is dropped
    -ldflags="-s -w" -o /out/ ./cmd/a ./cmd/b && mkdir -p /data
FROM scratch
COPY --from=build /out/a /
copy --from=0 --chown=1:1 /data /data
ENV OLD style value
ENTRYPOINT ["/a"]
HEALTHCHECK --timeout=5s CMD ["/a", "check"]
EXPOSE 1 2/tcp
VOLUME ["/data"]
USER 1:1
`)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(df.Stages); got != 2 {
		t.Fatalf("stages: got %d, want 2", got)
	}
	build, final := df.Stages[0], df.Final()
	if build.Name != "build" || df.Stage("build", 1) != build || df.Stage("0", 1) != build || df.Stage("build", 0) != nil {
		t.Errorf("stage lookup: got name %q", build.Name)
	}
	wantBuild := []GoBuild{{
		Line: 8, WorkDir: "/src",
		Env:      map[string]string{"CGO_ENABLED": "0", "NAME": "two words"},
		Packages: []string{"./cmd/a", "./cmd/b"},
		Outputs:  []string{"/out/a", "/out/b"},
	}}
	if !reflect.DeepEqual(build.GoBuilds, wantBuild) {
		t.Errorf("go builds: got %+v, want %+v", build.GoBuilds, wantBuild)
	}
	if want := []string{"/out/a", "/out/b", "/data"}; !reflect.DeepEqual(build.Made, want) {
		t.Errorf("made: got %v, want %v", build.Made, want)
	}
	if want := map[string]string{"/src/go.mod": "context:go.mod", "/src/go.sum": "context:go.sum", "/src": "context:."}; !reflect.DeepEqual(build.Image.Files, want) {
		t.Errorf("build files: got %v, want %v", build.Image.Files, want)
	}
	img := final.Image
	checks := []struct {
		name      string
		got, want any
	}{
		{"files", img.Files, map[string]string{"/a": "stage 0:/out/a", "/data": "stage 0:/data"}},
		{"env", img.Env, map[string]string{"OLD": "style value"}},
		{"entrypoint", img.Entrypoint, []string{"/a"}},
		{"healthcheck", img.Healthcheck.Test, []string{"CMD", "/a", "check"}},
		{"healthcheck flags", img.Healthcheck.Flags, map[string]string{"timeout": "5s"}},
		{"expose", img.Expose, []string{"1", "2/tcp"}},
		{"volumes", img.Volumes, []string{"/data"}},
		{"user", img.User, "1:1"},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestParseDockerfileForms(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, text string
		check      func(img Image) bool
	}{
		{"shell entrypoint", "FROM x\nENTRYPOINT /a -v\n", func(img Image) bool {
			return img.EntrypointShell && reflect.DeepEqual(img.Entrypoint, []string{"/bin/sh", "-c", "/a -v"})
		}},
		{"shell healthcheck", "FROM x\nHEALTHCHECK CMD curl -f http://x/\n", func(img Image) bool {
			return reflect.DeepEqual(img.Healthcheck.Test, []string{"CMD-SHELL", "curl -f http://x/"})
		}},
		{"healthcheck none", "FROM x\nHEALTHCHECK NONE\n", func(img Image) bool {
			return reflect.DeepEqual(img.Healthcheck.Test, []string{"NONE"})
		}},
		{"entrypoint clears an earlier stage's cmd only", "FROM x\nCMD [\"-h\"]\nENTRYPOINT [\"/a\"]\n", func(img Image) bool {
			return reflect.DeepEqual(img.Cmd, []string{"-h"})
		}},
		{"relative paths follow WORKDIR", "FROM x\nWORKDIR /w\nCOPY a b\nCOPY c d/\n", func(img Image) bool {
			return reflect.DeepEqual(img.Files, map[string]string{"/w/b": "context:a", "/w/d/c": "context:c"})
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			df, err := parseString(t, tc.text)
			if err != nil {
				t.Fatal(err)
			}
			if img := df.Final().Image; !tc.check(img) {
				t.Errorf("got %+v", img)
			}
		})
	}
}

func TestParseDockerfileRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, text, wantErr string }{
		{"no FROM", "# nothing\n", "no FROM"},
		{"instruction before FROM", "RUN true\nFROM x\n", "before the first FROM"},
		{"escape directive", "# escape=`\nFROM x\n", "only \\ is supported"},
		{"unknown directive", "# sintax=docker/dockerfile:1\nFROM x\n", "unknown parser directive"},
		{"heredoc", "FROM x\nRUN <<EOF\necho\nEOF\n", "heredocs"},
		{"variable in COPY", "FROM x\nCOPY $SRC /\n", "variables"},
		{"ARG", "FROM x\nARG V=1\n", "ARG"},
		{"continued to the end", "FROM x\nRUN a \\\n", "ends inside a continued line"},
		{"unterminated quote", "FROM x\nRUN echo \"a\n", "unterminated"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseString(t, tc.text)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestIgnore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ".dockerignore"), []byte("# c\ndocs\n**/*.test\n*.md\n!KEEP.md\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ig, err := LoadIgnore(dir)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]bool{
		".": false, "docs": true, "docs/a/b.go": true, "a/b/c.test": true,
		"README.md": true, "KEEP.md": false, "cmd/x/main.go": false, "sub/README.md": false,
	} {
		if got := ig.Excludes(path); got != want {
			t.Errorf("Excludes(%q): got %v, want %v", path, got, want)
		}
	}
}
