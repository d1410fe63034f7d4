package partitionlog

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves a goroutine behind: the
// integration tests own their kafka-go transports and franz-go clients and
// must close them.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
