package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// pollInterval is how often catch-up is checked. Each check is two small
// requests to the broker; 200 ms keeps the error in the measured time far below
// the pipelines' own flush intervals (seconds).
const pollInterval = 200 * time.Millisecond

// Kafka administers the benchmark's topics and consumer groups.
type Kafka struct {
	cl  *kgo.Client
	adm *kadm.Client
}

// OpenKafka connects an admin client to the brokers.
func OpenKafka(brokers []string) (*Kafka, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ClientID("usage-rollup-bench"))
	if err != nil {
		return nil, fmt.Errorf("kafka client for %v: %w", brokers, err)
	}
	return &Kafka{cl: cl, adm: kadm.NewClient(cl)}, nil
}

// Close closes the client.
func (k *Kafka) Close() { k.cl.Close() }

// DeleteWithPrefix deletes the topics and the consumer groups whose names
// start with prefix: what earlier runs left for inspection.
func (k *Kafka) DeleteWithPrefix(ctx context.Context, prefix string) (topics, groups []string, err error) {
	listed, err := k.adm.ListTopics(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("list topics: %w", err)
	}
	topics = withPrefix(listed.Names(), prefix)
	if err := deleteAll(ctx, topics, k.adm.DeleteTopics); err != nil {
		return nil, nil, fmt.Errorf("delete topics %v: %w", topics, err)
	}
	gs, err := k.adm.ListGroups(ctx)
	if err != nil {
		return topics, nil, fmt.Errorf("list groups: %w", err)
	}
	groups = withPrefix(gs.Groups(), prefix)
	if err := deleteAll(ctx, groups, k.adm.DeleteGroups); err != nil {
		// A group whose member has not left yet (a killed run's Kafka
		// table that was just dropped) refuses deletion. Its name is
		// never reused, so it only clutters the group list: the next
		// run deletes it.
		return topics, groups, fmt.Errorf("%w: delete groups %v: %w", ErrGroupsLeft, groups, err)
	}
	return topics, groups, nil
}

// withPrefix returns the names that start with prefix.
func withPrefix(names []string, prefix string) []string {
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out
}

// deleteAll deletes names (topics or groups) with del, an admin call whose
// responses carry the first per-name error; no names, no call.
func deleteAll[R interface{ Error() error }](ctx context.Context, names []string, del func(context.Context, ...string) (R, error)) error {
	if len(names) == 0 {
		return nil
	}
	res, err := del(ctx, names...)
	if err == nil {
		err = res.Error()
	}
	return err
}

// ErrGroupsLeft reports that DeleteWithPrefix deleted the topics but not
// every group; runs can go on, since group names are never reused.
var ErrGroupsLeft = errors.New("consumer groups left over")

// Offsets are per-partition offsets of one topic.
type Offsets map[int32]int64

// Total is the sum over partitions: with start offsets 0, the record count.
func (o Offsets) Total() int64 {
	var n int64
	for _, v := range o {
		n += v
	}
	return n
}

// EndOffsets returns the log end offset of every partition of topic.
func (k *Kafka) EndOffsets(ctx context.Context, topic string) (Offsets, error) {
	return k.listed(ctx, topic, k.adm.ListEndOffsets)
}

// StartOffsets returns the log start offset of every partition of topic.
func (k *Kafka) StartOffsets(ctx context.Context, topic string) (Offsets, error) {
	return k.listed(ctx, topic, k.adm.ListStartOffsets)
}

func (k *Kafka) listed(ctx context.Context, topic string,
	list func(context.Context, ...string) (kadm.ListedOffsets, error),
) (Offsets, error) {
	res, err := list(ctx, topic)
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list offsets of %s: %w", topic, err)
	}
	out := Offsets{}
	res.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	if len(out) == 0 {
		return nil, fmt.Errorf("list offsets of %s: no partitions", topic)
	}
	return out, nil
}

// Committed returns group's committed offsets on topic; partitions without a
// commit are absent.
func (k *Kafka) Committed(ctx context.Context, group, topic string) (Offsets, error) {
	res, err := k.adm.FetchOffsets(ctx, group)
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("fetch offsets of group %s: %w", group, err)
	}
	out := Offsets{}
	for p, o := range res[topic] {
		if o.At >= 0 {
			out[p] = o.At
		}
	}
	return out, nil
}

// Commit sets group's offsets on topic, as an admin outside the group does
// (generation -1). The broker refuses while the group has members, so it
// retries until the group is empty or ctx ends: a consumer that just left may
// still be listed for a moment.
func (k *Kafka) Commit(ctx context.Context, group, topic string, offsets Offsets) error {
	want := kadm.Offsets{}
	for p, at := range offsets {
		want.Add(kadm.Offset{Topic: topic, Partition: p, At: at, LeaderEpoch: -1})
	}
	for {
		res, err := k.adm.CommitOffsets(ctx, group, want)
		if err == nil {
			err = res.Error()
		}
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("commit offsets of group %s: %w", group, errors.Join(err, ctx.Err()))
		case <-time.After(pollInterval):
		}
	}
}

// WaitCaughtUp blocks until group's committed offset on every partition of
// topic is at least its end offset in end.
func (k *Kafka) WaitCaughtUp(ctx context.Context, group, topic string, end Offsets) error {
	for {
		got, err := k.Committed(ctx, group, topic)
		if err == nil && caughtUp(got, end) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for group %s to commit %s through %v (last seen %v): %w",
				group, topic, end, got, errors.Join(err, ctx.Err()))
		case <-time.After(pollInterval):
		}
	}
}

func caughtUp(got, end Offsets) bool {
	for p, e := range end {
		if got[p] < e {
			return false
		}
	}
	return true
}

// String renders offsets sorted by partition, e.g. "0:1250 1:1248".
func (o Offsets) String() string {
	ps := make([]int32, 0, len(o))
	for p := range o {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%d:%d", p, o[p])
	}
	return b.String()
}
