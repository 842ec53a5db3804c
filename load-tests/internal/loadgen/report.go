package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"

	"github.com/bidding-platform/shared/models"
)

// Report is what one run measured. Rates are per second of wall time from
// the first request to the last answer.
type Report struct {
	Label       string  `json:"label,omitempty"`
	Mode        string  `json:"bid_mode"`
	URL         string  `json:"url"`
	Item        string  `json:"item"`
	Users       int     `json:"users"`
	Concurrency int     `json:"concurrency"`
	Seconds     float64 `json:"duration_s"`

	// Requests counts answered requests, whatever their status.
	Requests       uint64            `json:"requests"`
	RequestsPerSec float64           `json:"requests_per_s"`
	Accepted       uint64            `json:"accepted"`
	AcceptedPerSec float64           `json:"accepted_per_s"`
	Rejected       uint64            `json:"rejected"`
	Status         map[string]uint64 `json:"status"`
	// Errors counts requests that got no HTTP answer (refused, reset, timed
	// out); ErrorSamples shows a few of them.
	Errors       uint64   `json:"errors"`
	ErrorSamples []string `json:"error_samples,omitempty"`

	Latency Latency `json:"latency_ms"`
	// HighestAccepted is the largest amount any worker saw accepted.
	HighestAccepted models.Money `json:"highest_accepted"`
	// DoubleWins counts accepted bids whose amount another accepted bid
	// already had: each is a second winner at one price. WinsChecked says
	// whether every acceptance was checked.
	DoubleWins  uint64 `json:"double_wins"`
	WinsChecked bool   `json:"wins_checked"`
}

// Latency summarises answered requests, in milliseconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

func buildReport(cfg Config, elapsed time.Duration, workers []*worker) Report {
	r := Report{
		Label:       cfg.Label,
		Mode:        cfg.Mode,
		URL:         cfg.URL,
		Item:        cfg.Item,
		Users:       cfg.Users,
		Concurrency: cfg.Concurrency,
		Seconds:     elapsed.Seconds(),
		Status:      map[string]uint64{},
	}
	var hist Histogram
	var status [600]uint64
	seen := map[models.Money]bool{}
	r.WinsChecked = cfg.CheckWins
	for _, w := range workers {
		for _, m := range w.wins {
			if seen[m] {
				r.DoubleWins++
			}
			seen[m] = true
		}
		if uint64(len(w.wins)) < uint64(w.status[200]) {
			r.WinsChecked = false
		}
		hist.Merge(&w.hist)
		for code, n := range w.status {
			status[code] += n
		}
		r.Errors += w.errors
		for _, s := range w.errSample {
			if len(r.ErrorSamples) < maxErrorSamples {
				r.ErrorSamples = append(r.ErrorSamples, s)
			}
		}
		if w.highest > r.HighestAccepted {
			r.HighestAccepted = w.highest
		}
	}
	for code, n := range status {
		if n > 0 {
			r.Status[strconv.Itoa(code)] = n
			r.Requests += n
		}
	}
	r.Accepted = status[200]
	r.Rejected = status[409]
	if s := elapsed.Seconds(); s > 0 {
		r.RequestsPerSec = float64(r.Requests) / s
		r.AcceptedPerSec = float64(r.Accepted) / s
	}
	r.Latency = Latency{
		P50:  ms(hist.Percentile(0.50)),
		P90:  ms(hist.Percentile(0.90)),
		P99:  ms(hist.Percentile(0.99)),
		Max:  ms(hist.Max()),
		Mean: ms(hist.Mean()),
	}
	return r
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// WriteJSON writes the report as one indented JSON object.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the report for people.
func (r Report) WriteText(w io.Writer) error {
	codes := make([]string, 0, len(r.Status))
	for c := range r.Status {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	statusText := ""
	for i, c := range codes {
		if i > 0 {
			statusText += " "
		}
		statusText += fmt.Sprintf("%s=%d", c, r.Status[c])
	}
	if statusText == "" {
		statusText = "none"
	}
	label := r.Label
	if label == "" {
		label = "-"
	}
	_, err := fmt.Fprintf(w, `label:        %s
target:       %s item=%s mode=%s users=%d concurrency=%d
duration:     %.2fs
requests:     %d (%.0f/s)
accepted:     %d (%.0f/s), rejected (409): %d, highest accepted: %s, double wins: %s
status:       %s
errors:       %d
latency ms:   p50=%.3f p90=%.3f p99=%.3f max=%.3f mean=%.3f
`, label, r.URL, r.Item, r.Mode, r.Users, r.Concurrency, r.Seconds,
		r.Requests, r.RequestsPerSec, r.Accepted, r.AcceptedPerSec, r.Rejected, r.HighestAccepted, r.doubleWinsText(),
		statusText, r.Errors,
		r.Latency.P50, r.Latency.P90, r.Latency.P99, r.Latency.Max, r.Latency.Mean)
	if err != nil {
		return err
	}
	for _, s := range r.ErrorSamples {
		if _, err := fmt.Fprintf(w, "  error: %s\n", s); err != nil {
			return err
		}
	}
	return nil
}

func (r Report) doubleWinsText() string {
	switch {
	case r.WinsChecked:
		return strconv.FormatUint(r.DoubleWins, 10)
	case r.DoubleWins > 0:
		return strconv.FormatUint(r.DoubleWins, 10) + " (partial check)"
	default:
		return "not checked"
	}
}
