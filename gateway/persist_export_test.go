package gateway

// Crash leaves the data dir as a killed lampgw does: it stops the broker
// and closes the store without Shutdown's last words (no lamp goes
// offline, lampgw/status stays online). Lamp connections stay open until
// the test closes them; Shutdown still releases the rest afterwards.
func (g *Gateway) Crash() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closeLocked()
}
