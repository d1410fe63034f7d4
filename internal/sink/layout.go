package sink

import (
	"context"
	"errors"
	"fmt"
)

// ErrLayoutChanged is matched (errors.Is) by the *LayoutError that
// EnsureLayout returns.
var ErrLayoutChanged = errors.New("row layout changed")

// Layout is what decides which key a rollup row of a topic gets: the chunk
// size and the group cap that cuts chunks into segments.
type Layout struct {
	ChunkSize int64 // CHUNK_SIZE
	MaxGroups int64 // MAX_GROUPS_PER_PARTITION
}

// LayoutError reports that a topic was rolled up with another layout.
type LayoutError struct {
	Topic    string
	Want     Layout // configured
	Recorded Layout // recorded in usage_settings
}

func (e *LayoutError) Error() string {
	if e.Want.ChunkSize != e.Recorded.ChunkSize {
		return fmt.Sprintf("CHUNK_SIZE=%d but topic %q was rolled up with chunk size %d; changing it would double count",
			e.Want.ChunkSize, e.Topic, e.Recorded.ChunkSize)
	}
	return fmt.Sprintf("MAX_GROUPS_PER_PARTITION=%d but topic %q was rolled up with %d; changing it would double count",
		e.Want.MaxGroups, e.Topic, e.Recorded.MaxGroups)
}

// Is makes errors.Is(err, ErrLayoutChanged) true.
func (e *LayoutError) Is(target error) bool { return target == ErrLayoutChanged }

// EnsureLayout records l for topic on first use and otherwise checks it
// against the recorded layout. Rollup rows are keyed by chunk and segment,
// so the same offsets under another layout would get other keys and be
// counted twice; the consumer must refuse to start instead. To change the
// layout, roll the topic up into a new database.
//
// Replicas starting at once may each record a layout. The earliest row wins
// (ties broken by the smaller chunk size), and every replica reads the winner
// back after writing, so all agree and any replica configured differently fails.
func (s *Sink) EnsureLayout(ctx context.Context, topic string, l Layout) error {
	if l.ChunkSize <= 0 || l.MaxGroups <= 0 {
		return fmt.Errorf("CHUNK_SIZE and MAX_GROUPS_PER_PARTITION must be > 0, got %d and %d", l.ChunkSize, l.MaxGroups)
	}
	recorded, ok, err := s.recordedLayout(ctx, topic)
	if err != nil {
		return err
	}
	if !ok {
		query := "INSERT INTO " + s.database + ".usage_settings (topic, chunk_size, max_groups, created_at)"
		err := s.insert(ctx, query, func(b batch) error { return b.Append(topic, l.ChunkSize, l.MaxGroups, now()) })
		if err != nil {
			return fmt.Errorf("record layout of topic %q: %w", topic, err)
		}
		if recorded, ok, err = s.recordedLayout(ctx, topic); err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("record layout of topic %q: row not visible after insert", topic)
		}
	}
	if recorded != l {
		return &LayoutError{Topic: topic, Want: l, Recorded: recorded}
	}
	return nil
}

func (s *Sink) recordedLayout(ctx context.Context, topic string) (l Layout, ok bool, err error) {
	ctx, cancel := s.statementContext(ctx)
	defer cancel()
	rows, err := s.conn.Query(ctx, "SELECT chunk_size, max_groups FROM "+s.database+".usage_settings"+
		" WHERE topic = ? ORDER BY created_at, chunk_size LIMIT 1", topic)
	if err != nil {
		return Layout{}, false, fmt.Errorf("read layout of topic %q: %w", topic, err)
	}
	defer rows.Close()
	if rows.Next() {
		if err := rows.Scan(&l.ChunkSize, &l.MaxGroups); err != nil {
			return Layout{}, false, fmt.Errorf("read layout of topic %q: %w", topic, err)
		}
		ok = true
	}
	if err := rows.Err(); err != nil {
		return Layout{}, false, fmt.Errorf("read layout of topic %q: %w", topic, err)
	}
	return l, ok, nil
}
