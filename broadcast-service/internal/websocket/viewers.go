package websocket

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"time"
)

// viewersHeartbeat is how often an instance republishes an unchanged viewer
// count; a count not refreshed for three heartbeats belongs to an instance
// that died and is dropped from the total.
const viewersHeartbeat = 5 * time.Second

// viewerCount is what each instance publishes about one item.
type viewerCount struct {
	Instance string `json:"instance"`
	Count    int    `json:"count"`
}

type remoteCount struct {
	count int
	at    time.Time
}

func newInstanceID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read does not fail on Linux
	return hex.EncodeToString(b[:])
}

// total is the item's viewers on every instance. Caller holds f.mu.
func (f *feed) total() int {
	n := len(f.clients)
	for _, r := range f.remote {
		n += r.count
	}
	return n
}

// onViewers records another instance's count of the item's viewers.
func (h *Hub) onViewers(f *feed, data []byte) {
	var vc viewerCount
	if err := json.Unmarshal(data, &vc); err != nil || vc.Instance == "" || vc.Instance == h.instance {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, known := f.remote[vc.Instance]; !known && vc.Count > 0 {
		// A newcomer has not heard our count yet: tell it at the next tick
		// rather than at the next heartbeat.
		f.announce = true
	}
	if vc.Count <= 0 {
		delete(f.remote, vc.Instance)
		return
	}
	f.remote[vc.Instance] = remoteCount{count: vc.Count, at: time.Now()}
}

// tickViewers publishes this instance's count when it changed (or as a
// heartbeat) and pushes the item's total to its viewers when that changed.
// Counts are throttled to one message per tick however busy the item.
func (h *Hub) tickViewers(f *feed, now time.Time) {
	f.mu.Lock()
	if f.initializing { // also true for good when initialisation failed
		f.mu.Unlock()
		return
	}
	local := len(f.clients)
	publish := local != f.published || f.announce || now.Sub(f.publishedAt) >= viewersHeartbeat
	for id, r := range f.remote {
		if now.Sub(r.at) > 3*viewersHeartbeat {
			delete(f.remote, id)
		}
	}
	if total := f.total(); total != f.shown {
		f.shown = total
		m, err := prepare(viewersMessage{Type: TypeViewers, ItemID: f.id, Count: total, ServerTime: now.UTC()}, 0, time.Time{})
		if err != nil {
			h.log.Error("encode viewers", "err", err)
		} else {
			h.queue(f, m)
		}
	}
	h.flush(f) // also sends events held back for the ones behind them
	if publish {
		f.published, f.publishedAt, f.announce = local, now, false
	}
	f.mu.Unlock()
	if publish {
		h.publishViewers(f.id, local)
	}
}

func (h *Hub) publishViewers(itemID string, count int) {
	data, _ := json.Marshal(viewerCount{Instance: h.instance, Count: count}) // plain struct
	if err := h.src.PublishViewers(itemID, data); err != nil {
		h.log.Debug("publish viewer count", "item_id", itemID, "err", err)
	}
}
