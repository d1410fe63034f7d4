package ingest

import "testing"

func TestFetchBufferBytesFollowsTheMemoryLimit(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		configured, memLimit, want int64
	}{
		{0, 900 * mib, 225 * mib},       // a quarter of the chart's GOMEMLIMIT for a 1 GiB pod
		{0, 1 << 62, 256 * mib},         // no GOMEMLIMIT: capped
		{0, 32 * mib, 32 * mib},         // at least one fetch: twice its 16 MiB
		{64 * mib, 900 * mib, 64 * mib}, // set explicitly
	} {
		if got := fetchBuffer(c.configured, 16*mib, c.memLimit); got != c.want {
			t.Errorf("fetchBuffer(%d, 16 MiB, %d) = %d, want %d", c.configured, c.memLimit, got, c.want)
		}
	}
}
