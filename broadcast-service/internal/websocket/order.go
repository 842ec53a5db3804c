package websocket

import (
	"errors"

	"github.com/bidding-platform/shared/models"
)

// maxHeld bounds how many out-of-order events an orderer keeps while it
// waits for the one that comes next.
const maxHeld = 4096

var errHeldFull = errors.New("too many events held out of order")

// orderer releases events in seq order from a source that stores them in
// publish order, which two racing gateways can make slightly different.
type orderer struct {
	next uint64
	held map[uint64]models.Event
	emit func(models.Event) error
}

func newOrderer(next uint64, emit func(models.Event) error) *orderer {
	return &orderer{next: next, held: make(map[uint64]models.Event), emit: emit}
}

// add emits ev if it is next (then any held successors), holds it if it is
// early, and ignores it if it was already emitted.
func (o *orderer) add(ev models.Event) error {
	switch {
	case ev.Seq < o.next:
		return nil
	case ev.Seq > o.next:
		if _, ok := o.held[ev.Seq]; !ok && len(o.held) >= maxHeld {
			return errHeldFull
		}
		o.held[ev.Seq] = ev
		return nil
	}
	if err := o.emit(ev); err != nil {
		return err
	}
	o.next++
	return o.drain()
}

func (o *orderer) drain() error {
	for {
		ev, ok := o.held[o.next]
		if !ok {
			return nil
		}
		delete(o.held, o.next)
		if err := o.emit(ev); err != nil {
			return err
		}
		o.next++
	}
}

// hole is the range of missing seqs before the lowest held event; ok is
// false when nothing is held.
func (o *orderer) hole() (from, to uint64, ok bool) {
	for seq := range o.held {
		if !ok || seq-1 < to {
			to, ok = seq-1, true
		}
	}
	return o.next, to, ok
}

// skip gives up on seqs up to to and emits what follows them.
func (o *orderer) skip(to uint64) error {
	o.next = to + 1
	for seq := range o.held {
		if seq < o.next {
			delete(o.held, seq)
		}
	}
	return o.drain()
}
