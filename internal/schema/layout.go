package schema

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/usage-rollup/usage-rollup/internal/aggregate"
)

// ErrLayoutChanged is matched (errors.Is) by the *LayoutError that
// EnsureLayout returns.
var ErrLayoutChanged = errors.New("row layout changed")

// Layout is what decides which key a rollup row of a topic gets: the chunk
// size, and where the group cap cuts chunks into segments. Build it with
// NewLayout.
type Layout struct {
	ChunkSize int64 // CHUNK_SIZE
	MaxGroups int64 // MAX_GROUPS_PER_PARTITION
	// SegmentInputs is "" when no chunk can be cut into segments: a record
	// adds at most one group per window, so a chunk holds at most ChunkSize *
	// windows groups, and cuts need more than MaxGroups. Otherwise it lists
	// every setting the cut points depend on, canonically, e.g.
	// "max_groups=200000;windows=1m,1h;max_future_skew=24h0m0s;max_message_bytes=1048576":
	// the group cap, the windows, and the decoder limits that decide which
	// events are accepted.
	SegmentInputs string
	// inputs is that list whether or not cuts are possible, for the error
	// messages; NewLayout sets it, and EnsureLayout requires it.
	inputs string
}

// Keys of SegmentInputs and the settings they come from.
var segmentSettings = []struct{ key, env string }{
	{"max_groups", "MAX_GROUPS_PER_PARTITION"},
	{"windows", "ROLLUP_WINDOWS"},
	{"max_future_skew", "MAX_FUTURE_SKEW"},
	{"max_message_bytes", "MAX_MESSAGE_BYTES"},
}

// NewLayout returns the layout of a topic rolled up with these settings:
// CHUNK_SIZE, MAX_GROUPS_PER_PARTITION, the canonical names of
// ROLLUP_WINDOWS (aggregate.Window.Name, any order), MAX_FUTURE_SKEW and
// MAX_MESSAGE_BYTES.
func NewLayout(chunkSize int64, maxGroups int, windows []string, maxFutureSkew time.Duration, maxMessageBytes int) Layout {
	// The groups of a chunk are summed over windows: their order does not
	// matter, so they are listed by size.
	sorted := slices.Clone(windows)
	slices.SortFunc(sorted, func(a, b string) int {
		wa, errA := aggregate.ParseWindow(a)
		wb, errB := aggregate.ParseWindow(b)
		if errA != nil || errB != nil {
			return strings.Compare(a, b)
		}
		return cmp.Or(cmp.Compare(wa.Size, wb.Size), strings.Compare(a, b))
	})
	l := Layout{
		ChunkSize: chunkSize,
		MaxGroups: int64(maxGroups),
		inputs: fmt.Sprintf("max_groups=%d;windows=%s;max_future_skew=%s;max_message_bytes=%d",
			maxGroups, strings.Join(sorted, ","), maxFutureSkew, maxMessageBytes),
	}
	if l.cutsPossible(len(windows)) {
		l.SegmentInputs = l.inputs
	}
	return l
}

func (l Layout) cutsPossible(windows int) bool { return l.ChunkSize*int64(windows) > l.MaxGroups }

// layoutVersion marks usage_settings rows that record SegmentInputs; rows
// written before migration 0012 read as 1.
const layoutVersion = 2

// LayoutError reports that a topic was rolled up with another layout.
type LayoutError struct {
	Topic    string
	Want     Layout // configured
	Recorded Layout // recorded in usage_settings
	// Legacy is set when the recorded row predates SegmentInputs: only its
	// ChunkSize and MaxGroups are known.
	Legacy bool
}

// Error names the setting that changed, why that would double count and
// what to do.
func (e *LayoutError) Error() string {
	const (
		rekeyed = "so offsets already written would be keyed under other %s when re-read, and counted twice"
		remedy  = "; %s, or roll the topic up into a new, empty database (CLICKHOUSE_DATABASE)"
	)
	w, r := e.Want, e.Recorded
	switch {
	case w.ChunkSize != r.ChunkSize:
		return fmt.Sprintf("CHUNK_SIZE changed from %d to %d for topic %q: rows are keyed by chunk, "+rekeyed+remedy,
			r.ChunkSize, w.ChunkSize, e.Topic, "chunks", fmt.Sprintf("restore CHUNK_SIZE=%d", r.ChunkSize))
	case e.Legacy:
		return fmt.Sprintf("MAX_GROUPS_PER_PARTITION changed from %d to %d for topic %q: it decides where chunks "+
			"are cut into segments and rows are keyed by segment, "+rekeyed+remedy,
			r.MaxGroups, w.MaxGroups, e.Topic, "segments", fmt.Sprintf("restore MAX_GROUPS_PER_PARTITION=%d", r.MaxGroups))
	case r.SegmentInputs == "":
		windows := settingsOf(w.inputs)["windows"]
		n := int64(len(strings.Split(windows, ",")))
		return fmt.Sprintf("segment cuts became possible for topic %q: it was rolled up with CHUNK_SIZE x windows <= "+
			"MAX_GROUPS_PER_PARTITION, so no chunk was cut into segments, and now CHUNK_SIZE=%d x %d windows "+
			"(ROLLUP_WINDOWS=%s) > MAX_GROUPS_PER_PARTITION=%d; rows are keyed by segment, "+rekeyed+remedy,
			e.Topic, w.ChunkSize, n, windows, w.MaxGroups, "segments",
			fmt.Sprintf("set MAX_GROUPS_PER_PARTITION >= %d or list fewer ROLLUP_WINDOWS", w.ChunkSize*n))
	}
	was, cur := settingsOf(r.SegmentInputs), settingsOf(w.inputs)
	var changed, restore []string
	for _, s := range segmentSettings {
		if was[s.key] != cur[s.key] {
			changed = append(changed, fmt.Sprintf("%s changed from %s to %s", s.env, was[s.key], cur[s.key]))
			restore = append(restore, s.env+"="+was[s.key])
		}
	}
	if len(changed) == 0 { // a recorded value this version cannot parse
		changed = []string{fmt.Sprintf("segment settings changed from %q to %q", r.SegmentInputs, w.inputs)}
		restore = []string{"the settings recorded"}
	}
	why := "chunks of this topic can be cut into segments (CHUNK_SIZE x windows > MAX_GROUPS_PER_PARTITION), " +
		"and where depends on these settings (they decide which events are accepted and how many groups a chunk has)"
	if w.SegmentInputs == "" {
		why = "chunks of this topic could be cut into segments, and now CHUNK_SIZE x windows <= " +
			"MAX_GROUPS_PER_PARTITION would cut none"
	}
	return fmt.Sprintf("%s for topic %q: %s; rows are keyed by segment, "+rekeyed+remedy,
		strings.Join(changed, " and "), e.Topic, why, "segments", "restore "+strings.Join(restore, " and "))
}

// settingsOf parses a SegmentInputs list into its key=value pairs.
func settingsOf(inputs string) map[string]string {
	out := map[string]string{}
	for kv := range strings.SplitSeq(inputs, ";") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			out[k] = v
		}
	}
	return out
}

// Is makes errors.Is(err, ErrLayoutChanged) true.
func (e *LayoutError) Is(target error) bool { return target == ErrLayoutChanged }

// EnsureLayout records l for topic on first use and otherwise checks it
// against the recorded layout. Rollup rows are keyed by chunk and segment,
// so the same offsets under another layout would get other keys and be
// counted twice; the consumer must refuse to start instead. The chunk size
// must always match. SegmentInputs must match too, which lets the group cap,
// the windows and the decoder limits change freely as long as no chunk can
// be cut (SegmentInputs stays ""). For a topic recorded before
// SegmentInputs existed, MaxGroups must match instead. To change the layout,
// roll the topic up into a new database.
//
// Replicas starting at once may each record a layout. The earliest row wins
// (ties broken by the values, smallest first), and every replica reads the
// winner back after writing, so all agree and any replica configured
// differently fails.
func (s *Schema) EnsureLayout(ctx context.Context, topic string, l Layout) error {
	if l.inputs == "" {
		return fmt.Errorf("layout of topic %q: build it with schema.NewLayout", topic)
	}
	if l.ChunkSize <= 0 || l.MaxGroups <= 0 {
		return fmt.Errorf("CHUNK_SIZE and MAX_GROUPS_PER_PARTITION must be > 0, got %d and %d", l.ChunkSize, l.MaxGroups)
	}
	recorded, version, ok, err := s.recordedLayout(ctx, topic)
	if err != nil {
		return err
	}
	if !ok {
		query := "INSERT INTO " + s.database + ".usage_settings" +
			" (topic, chunk_size, max_groups, segment_inputs, layout_version, created_at)"
		err := s.conn.Insert(ctx, query, func(b driver.Batch) error {
			return b.Append(topic, l.ChunkSize, l.MaxGroups, l.SegmentInputs, uint8(layoutVersion), s.cfg.Now())
		})
		if err != nil {
			return fmt.Errorf("record layout of topic %q: %w", topic, err)
		}
		if recorded, version, ok, err = s.recordedLayout(ctx, topic); err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("record layout of topic %q: row not visible after insert", topic)
		}
	}
	legacy := version < layoutVersion
	if recorded.ChunkSize != l.ChunkSize ||
		legacy && recorded.MaxGroups != l.MaxGroups ||
		!legacy && recorded.SegmentInputs != l.SegmentInputs {
		return &LayoutError{Topic: topic, Want: l, Recorded: recorded, Legacy: legacy}
	}
	return nil
}

func (s *Schema) recordedLayout(ctx context.Context, topic string) (l Layout, version uint8, ok bool, err error) {
	ctx, cancel := s.conn.StatementContext(ctx)
	defer cancel()
	rows, err := s.conn.Query(ctx, "SELECT chunk_size, max_groups, segment_inputs, layout_version FROM "+
		s.database+".usage_settings WHERE topic = ?"+
		" ORDER BY created_at, chunk_size, max_groups, layout_version, segment_inputs LIMIT 1", topic)
	if err != nil {
		return Layout{}, 0, false, fmt.Errorf("read layout of topic %q: %w", topic, err)
	}
	defer rows.Close()
	if rows.Next() {
		if err := rows.Scan(&l.ChunkSize, &l.MaxGroups, &l.SegmentInputs, &version); err != nil {
			return Layout{}, 0, false, fmt.Errorf("read layout of topic %q: %w", topic, err)
		}
		ok = true
	}
	if err := rows.Err(); err != nil {
		return Layout{}, 0, false, fmt.Errorf("read layout of topic %q: %w", topic, err)
	}
	return l, version, ok, nil
}
