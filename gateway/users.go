package gateway

import (
	"github.com/lampgw/lampgw/auth"
)

// readUsers reads and parses the users file. Every error is an
// *auth.FileError naming the file.
func (g *Gateway) readUsers() (*auth.Users, error) {
	data, err := readLimited(g.opts.UsersFile, auth.MaxFileSize)
	if err != nil {
		return nil, &auth.FileError{File: g.opts.UsersFile, Err: err}
	}
	return auth.ParseUsers(g.opts.UsersFile, data)
}

// reloadUsers reads the users file again and puts it in force: clients
// whose rights narrowed are disconnected (broker.SetUsers), each with a
// log line. A file that does not load is refused with one log line and
// the users in force stay.
func (g *Gateway) reloadUsers() error {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	users, err := g.readUsers()
	if err != nil {
		g.log.Error().Str("reason", err.Error()).Msg("users file refused; the users in force stay")
		return err
	}
	g.mu.Lock()
	b := g.broker
	if b == nil {
		g.users = users // Start gives it to the broker
	}
	g.mu.Unlock()
	var cut []string
	if b != nil {
		clients, err := b.SetUsers(users)
		if err != nil {
			return err
		}
		for _, c := range clients {
			g.log.Info().Str("client", c.ClientID).Str("user", c.User).Str("remote", c.Remote).
				Msg("MQTT client disconnected: its user was removed or its password, role or lamps narrowed")
			cut = append(cut, c.ClientID)
		}
		g.setAPIUsers(users)
	}
	g.log.Info().Str("file", g.opts.UsersFile).Int("users", users.Len()).Strs("disconnected", cut).
		Msg("users file loaded")
	return nil
}
