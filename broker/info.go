package broker

// Info is the broker's counters, read for metrics.
type Info struct {
	ClientsConnected int64
	// MessagesReceived and MessagesSent count PUBLISH packets from and to
	// network clients; MessagesDropped those dropped for a client whose
	// queue was full (see Options.MaxClientWritesPending).
	MessagesReceived, MessagesSent, MessagesDropped int64
	Retained, Subscriptions                         int64
	BytesReceived, BytesSent                        int64
}

// Info returns the broker's counters now.
func (b *Broker) Info() Info {
	i := b.srv.Info.Clone()
	return Info{
		ClientsConnected: i.ClientsConnected,
		MessagesReceived: i.MessagesReceived,
		MessagesSent:     i.MessagesSent,
		MessagesDropped:  b.Dropped(),
		Retained:         i.Retained,
		Subscriptions:    i.Subscriptions,
		BytesReceived:    i.BytesReceived,
		BytesSent:        i.BytesSent,
	}
}
