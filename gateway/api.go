package gateway

import (
	"net/http"

	"github.com/lampgw/lampgw/api"
	"github.com/lampgw/lampgw/auth"
)

// mountAPILocked makes the HTTP API and dashboard (package api) and adds
// their routes to mux. routes() calls it from Start, with g.mu held and
// the broker and bridge running.
func (g *Gateway) mountAPILocked(mux *http.ServeMux) {
	a, err := api.New(api.Options{
		Registry:       g.bridge.Registry(),
		Bus:            g.bus,
		Prefix:         g.opts.TopicPrefix,
		Devices:        g.devs.Load,
		Users:          g.users,
		AllowAnonymous: g.opts.AllowAnonymous,
		ConfirmTimeout: g.opts.ConfirmTimeout,
		MaxCommand:     g.opts.MaxFrame,
		Logger:         g.log.With().Str("component", "api").Logger(),
	})
	if err != nil {
		// Only a closed bus refuses, and Start has just opened it.
		g.log.Error().Err(err).Msg("HTTP API not started")
		return
	}
	g.api = a
	a.Register(mux)
}

// closeAPI ends the API's event streams and command waits: the HTTP
// server's Shutdown waits for handlers, and those would otherwise run
// until their clients leave.
func (g *Gateway) closeAPI() {
	g.mu.Lock()
	a := g.api
	g.mu.Unlock()
	if a != nil {
		a.Close()
	}
}

// setAPIUsers puts a reloaded users file in force for the API.
func (g *Gateway) setAPIUsers(users *auth.Users) {
	g.mu.Lock()
	a := g.api
	g.mu.Unlock()
	if a != nil {
		a.SetUsers(users)
	}
}
