package testenv

import (
	"os"
	"path/filepath"
)

// DeleteData removes a stopped or killed server's data files (its
// append-only files and any snapshot), as losing its disk would: Start then
// brings it back empty, on the same port. Clients see what a failover to a
// replica that missed every write looks like.
func (r *RedisServer) DeleteData() {
	r.tb.Helper()
	if r.p.running() {
		r.tb.Fatalf("testenv: redis on %d: DeleteData needs the server stopped or killed", r.Port)
	}
	// Redis 7 keeps its append-only files in appendonlydir; older ones
	// wrote appendonly.aof beside the snapshot.
	for _, name := range []string{"appendonlydir", "appendonly.aof", "dump.rdb"} {
		if err := os.RemoveAll(filepath.Join(r.p.dir, name)); err != nil {
			r.tb.Fatalf("testenv: redis on %d: %v", r.Port, err)
		}
	}
}
