package app_test

import (
	"strings"
	"testing"
	"time"

	"github.com/bidding-platform/archival-worker/internal/app"
	"github.com/bidding-platform/shared/config"
)

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	t.Run("defaults", func(t *testing.T) {
		t.Parallel()
		c, err := app.LoadConfig(config.FromMap(nil))
		if err != nil {
			t.Fatal(err)
		}
		if c.HTTPAddr != ":8082" || c.BatchSize != 4000 || c.BatchWait != 100*time.Millisecond ||
			c.NATSURL != config.DefaultNATSURL || c.PostgresURL.Reveal() != config.DefaultPostgresURL || c.AckWait != 30*time.Second || c.Writers != 2 ||
			c.PurgeAfter != 24*time.Hour {
			t.Errorf("defaults = %+v, want the README's", c)
		}
	})
	t.Run("environment", func(t *testing.T) {
		t.Parallel()
		c, err := app.LoadConfig(config.FromMap(map[string]string{
			"POSTGRES_URL": "postgres://u:secret@db/x", "NATS_URL": "nats://n1:4222, nats://n2:4222", "HTTP_ADDR": ":9",
			"BATCH_SIZE": "50", "BATCH_WAIT": "20ms", "ACK_WAIT": "5s", "LOG_FORMAT": "text", "WRITERS": "3",
			"ARCHIVE_PURGE_AFTER": "0", "NATS_USER": "archiver", "NATS_PASSWORD": "pw",
		}))
		if err != nil {
			t.Fatal(err)
		}
		if c.PostgresURL.Reveal() != "postgres://u:secret@db/x" || c.NATSURL != "nats://n1:4222,nats://n2:4222" || c.HTTPAddr != ":9" ||
			c.BatchSize != 50 || c.BatchWait != 20*time.Millisecond || c.AckWait != 5*time.Second || c.Log.Format != "text" || c.Writers != 3 ||
			c.PurgeAfter != 0 || c.NATSAuth.User != "archiver" || c.NATSAuth.Password.Reveal() != "pw" {
			t.Errorf("config = %+v", c)
		}
	})
	t.Run("every bad value reported", func(t *testing.T) {
		t.Parallel()
		_, err := app.LoadConfig(config.FromMap(map[string]string{"BATCH_SIZE": "0", "BATCH_WAIT": "soon", "LOG_LEVEL": "loud", "WRITERS": "0", "NATS_URL": "n1:4222", "NATS_USER": "archiver",
			"ARCHIVE_PURGE_AFTER": "-1h"}))
		if err == nil {
			t.Fatal("no error for bad values")
		}
		for _, want := range []string{"BATCH_SIZE", "BATCH_WAIT", "LOG_LEVEL", "WRITERS", "NATS_URL", "ARCHIVE_PURGE_AFTER", "NATS_PASSWORD"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %s", err, want)
			}
		}
	})
}
