package api

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/lampgw/lampgw/auth"
)

// The dashboard: plain HTML, CSS and JavaScript, no build step and
// nothing from other origins.
//
//go:embed web
var webFS embed.FS

//go:embed openapi.json
var openAPI []byte

// indexFile is served at /; the other files of web/ at /assets/<name>.
const indexFile = "index.html"

// contentSecurityPolicy lets the dashboard load only its own files and
// talk only to its own origin, and no other site frame it.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// assets returns the names of the files served under /assets/, sorted.
func assets() []string {
	var names []string
	entries, _ := fs.ReadDir(webFS, "web")
	for _, e := range entries {
		if !e.IsDir() && e.Name() != indexFile {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names
}

func serveIndex(w http.ResponseWriter, r *http.Request, _ *auth.User) {
	w.Header().Set("Content-Security-Policy", contentSecurityPolicy)
	serveEmbedded(w, r, indexFile)
}

func serveAsset(w http.ResponseWriter, r *http.Request, _ *auth.User) {
	serveEmbedded(w, r, strings.TrimPrefix(r.URL.Path, "/assets/"))
}

func serveOpenAPI(w http.ResponseWriter, r *http.Request, _ *auth.User) {
	serveContent(w, r, "openapi.json", openAPI)
}

func serveEmbedded(w http.ResponseWriter, r *http.Request, name string) {
	data, err := webFS.ReadFile(path.Join("web", name))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	serveContent(w, r, name, data)
}

// serveContent serves an embedded file with an ETag of its content, so
// that a browser revalidates it cheaply (embedded files have no
// modification time).
func serveContent(w http.ResponseWriter, r *http.Request, name string, data []byte) {
	sum := sha256.Sum256(data)
	h := w.Header()
	h.Set("ETag", `"`+hex.EncodeToString(sum[:8])+`"`)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(data))
}
