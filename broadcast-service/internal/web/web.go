// Package web serves the live auction page: plain HTML, CSS and JavaScript
// embedded in the binary, with no build step.
package web

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"

	"github.com/bidding-platform/shared/models"
)

//go:embed static
var files embed.FS

// Config is what the page needs to know about its surroundings.
type Config struct {
	// GatewayURL is where the bid form posts, e.g. http://localhost:8080.
	GatewayURL string
	// DevSignIn shows the page's development sign-in, which asks the
	// gateway's POST /api/v1/dev/token (AUTH_DEV_TOKENS) for a token.
	DevSignIn bool
	// EmbedOrigins are the sites whose frames may hand the page a token
	// with postMessage, besides the page's own origin; "*" is any.
	EmbedOrigins []string
}

// Register adds the page's routes to mux: / (active auctions), /items/{id},
// /me (the signed-in user's bids), /config.js and /static/.
func Register(mux *http.ServeMux, cfg Config) {
	static, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /config.js", configJS(cfg))
	index := page(static, "index.html")
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		// Opening an item by id works without JavaScript too: /?item=X.
		if id := r.URL.Query().Get("item"); id != "" && models.ValidateID(id) == nil {
			http.Redirect(w, r, "/items/"+id, http.StatusSeeOther)
			return
		}
		index(w, r)
	})
	mux.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, r *http.Request) {
		if models.ValidateID(r.PathValue("id")) != nil {
			http.Error(w, "item id must be 1-64 letters, digits, '_' or '-'", http.StatusNotFound)
			return
		}
		page(static, "item.html")(w, r)
	})
	mux.HandleFunc("GET /me", page(static, "me.html"))
}

func page(static fs.FS, name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, static, name)
	}
}

// configJS injects the settings as a script, so the static files stay
// static and the gateway address is set by the environment.
func configJS(cfg Config) http.HandlerFunc {
	origins := cfg.EmbedOrigins
	if origins == nil {
		origins = []string{}
	}
	body, err := json.Marshal(struct {
		GatewayURL   string   `json:"gatewayURL"`
		DevSignIn    bool     `json:"devSignIn"`
		EmbedOrigins []string `json:"embedOrigins"`
	}{cfg.GatewayURL, cfg.DevSignIn, origins})
	if err != nil {
		panic(err) // strings and a bool always encode
	}
	script := []byte("window.AUCTION_CONFIG = " + string(body) + ";\n")
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(script)
	}
}
