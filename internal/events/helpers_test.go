package events_test

import (
	"os"
	"testing"
	"time"

	"github.com/usage-rollup/usage-rollup/internal/events"
)

// recordTime is the Kafka record time every test decodes against, so that
// future_timestamp cases do not depend on the wall clock.
var recordTime = time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)

// view is an Event with strings instead of byte slices and a readable time,
// so that goldens and table wants are plain JSON.
type view struct {
	ID           string    `json:"id"`
	Time         string    `json:"time"`
	TimeMs       int64     `json:"time_ms"`
	WorkspaceID  string    `json:"workspace_id"`
	ProjectID    string    `json:"project_id"`
	APIKeyID     string    `json:"api_key_id"`
	Provider     string    `json:"provider"`
	Model        string    `json:"model"`
	Endpoint     string    `json:"endpoint"`
	StatusCode   int32     `json:"status_code"`
	LatencyMs    uint64    `json:"latency_ms"`
	Usage        usageView `json:"usage"`
	Inconsistent bool      `json:"inconsistent"`
}

type usageView struct {
	InputTokens       uint64 `json:"input_tokens"`
	InputTextTokens   uint64 `json:"input_text_tokens"`
	InputImageTokens  uint64 `json:"input_image_tokens"`
	InputCachedTokens uint64 `json:"input_cached_tokens"`
	OutputTokens      uint64 `json:"output_tokens"`
	TotalTokens       uint64 `json:"total_tokens"`
}

func viewOf(ev *events.Event) view {
	return view{
		ID:           string(ev.ID),
		Time:         time.UnixMilli(ev.TimeMs).UTC().Format("2006-01-02T15:04:05.000Z07:00"),
		TimeMs:       ev.TimeMs,
		WorkspaceID:  string(ev.WorkspaceID),
		ProjectID:    string(ev.ProjectID),
		APIKeyID:     string(ev.APIKeyID),
		Provider:     string(ev.Provider),
		Model:        string(ev.Model),
		Endpoint:     string(ev.Endpoint),
		StatusCode:   ev.StatusCode,
		LatencyMs:    ev.LatencyMs,
		Usage:        usageView(ev.Usage),
		Inconsistent: ev.Inconsistent,
	}
}

// rejection is the contract part of a RejectError: Detail is prose and may change.
type rejection struct {
	Reason events.Reason `json:"reason"`
	Field  string        `json:"field"`
}

// rejectionOf returns the contract part of err, zero if err is not a *RejectError.
func rejectionOf(err error) rejection {
	re, ok := events.AsReject(err)
	if !ok {
		return rejection{}
	}
	return rejection{Reason: re.Reason, Field: re.Field}
}

// decode runs a fresh Decoder with the default config at recordTime.
func decode(payload []byte) (view, rejection, error) {
	var ev events.Event
	err := events.NewDecoder(events.DefaultConfig()).Decode(payload, recordTime, &ev)
	return viewOf(&ev), rejectionOf(err), err
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
