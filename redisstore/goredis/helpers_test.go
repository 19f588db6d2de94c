package goredis_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// slow is the timeout of tests that are not about timeouts: generous,
// because the suites run many servers in parallel under the race detector,
// on machines that may have two cores.
const slow = 5 * time.Second

var prefixSeq atomic.Int64

// uniquePrefix isolates stores sharing one Redis.
func uniquePrefix(testing.TB) string {
	return fmt.Sprintf("g%d", prefixSeq.Add(1))
}
