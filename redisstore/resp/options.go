package resp

import (
	"crypto/tls"
	"fmt"
	"net"
	"runtime"
	"time"

	"github.com/replayguard/replayguard/redisstore"
	"github.com/replayguard/replayguard/redisstore/layout"
)

// Defaults of Options.
const (
	// DefaultTimeout is the default Options.Timeout, the default
	// redis.timeout (redisstore.DefaultTimeout).
	DefaultTimeout = redisstore.DefaultTimeout
	// DefaultMaxReplyBytes is the default Options.MaxReplyBytes: the
	// largest reply the stores read back, an idempotency record holding a
	// response of idempotency.DefaultMaxResponseBytes (1 MiB), that is
	// layout.RecordBytes(idempotency.DefaultMaxResponseBytes), 2 MiB and
	// 4 KiB.
	DefaultMaxReplyBytes = layout.DefaultRecordBytes
	// PoolSizePerCPU is the default Options.PoolSize per GOMAXPROCS, as in
	// go-redis.
	PoolSizePerCPU = 10
	// DefaultMaxIdleTime is the default Options.MaxIdleTime, below the
	// idle timeouts of common load balancers (4 minutes on Azure, 350 s
	// on AWS's NLB).
	DefaultMaxIdleTime = time.Minute
)

// slotsReplyBytes is the least limit on a CLUSTER SLOTS reply: room for
// 16384 ranges, each with a master and three replicas.
const slotsReplyBytes = 16 << 20

// Options configures a Client. The zero value of every field but Addr is a
// usable default.
type Options struct {
	// Addr is the server's host:port. In a Redis Cluster it is the node
	// asked first for the slot map (CLUSTER SLOTS), which names the
	// others. Required, unless MasterName is set.
	Addr string
	// ClusterAddrs are further nodes of a Redis Cluster (host:port): asked
	// for the slot map when Addr is failing or cannot be reached, and
	// given a command when its node cannot be reached. Default none.
	ClusterAddrs []string
	// Username authenticates with AUTH <username> <password> (Redis 6
	// ACLs). Default "": AUTH <password> when Password is set.
	Username string
	// Password authenticates every new connection. Default "": no AUTH.
	Password string
	// DB is the database selected on every new connection (SELECT), not
	// in a Cluster. Default 0.
	DB int
	// TLS, when set, wraps every connection in TLS with this
	// configuration; its ServerName defaults to Addr's host. Default nil:
	// plain TCP.
	TLS *tls.Config
	// DialTimeout bounds connecting a new connection, the TLS handshake,
	// AUTH and SELECT; in a Cluster, or with ClusterAddrs, a dial also
	// gets at most half of what is left of its command's time, so that
	// another node can still be asked. Default Timeout.
	DialTimeout time.Duration
	// Timeout is the deadline of each command's write and read (the
	// context's deadline applies when it is earlier), and the longest a
	// call waits for a free connection when PoolSize are in use. Default
	// DefaultTimeout (200 ms, redis.timeout's default).
	Timeout time.Duration
	// PoolSize bounds the connections in use at once, and the idle ones
	// kept (when it is reached, the connection idle the longest is
	// closed). Default PoolSizePerCPU × GOMAXPROCS.
	PoolSize int
	// MaxIdleTime is how long a connection may stay idle in the pool
	// before it is closed. Default DefaultMaxIdleTime (one minute).
	MaxIdleTime time.Duration
	// MasterName selects Sentinel mode: the Sentinels at Sentinels are
	// asked for the address of the master of this name (SENTINEL
	// GET-MASTER-ADDR-BY-NAME) and every command goes there, in place of
	// Addr and ClusterAddrs. They are asked before the first command, and
	// again when the master fails or answers READONLY (a command so
	// refused goes once more, to the master named then) and every ten
	// seconds, so that a failover is followed. Sentinel connections are
	// not authenticated, and use TLS when TLS is set. Default "": no
	// Sentinel.
	MasterName string
	// Sentinels are the host:port addresses of the Sentinels, with
	// MasterName. Default none.
	Sentinels []string
	// MaxReplyBytes bounds one reply: the sum of its bulk string lengths
	// plus 16 bytes per array element. A longer reply is an ErrProtocol
	// and its connection is discarded; the limit is checked against each
	// announced length before anything is allocated for it. The
	// idempotency store reads its records within its own limit (see
	// redisstore.WithMaxResponseBytes), and a CLUSTER SLOTS reply may take
	// 16 MiB.
	// Default DefaultMaxReplyBytes (2 MiB and 4 KiB: a record of the
	// default idempotency.max_response_bytes).
	MaxReplyBytes int64
}

// withDefaults validates o and fills in its defaults.
func (o Options) withDefaults() (Options, error) {
	if o.MasterName != "" {
		if len(o.Sentinels) == 0 {
			return o, fmt.Errorf("resp: Sentinels: required with MasterName")
		}
		for i, a := range o.Sentinels {
			if _, _, err := net.SplitHostPort(a); err != nil || a == "" {
				return o, fmt.Errorf("resp: Sentinels[%d]: want host:port, got %q", i, a)
			}
		}
		o.Sentinels = append([]string(nil), o.Sentinels...)
		o.Addr = ""
		o.ClusterAddrs = nil
	} else if _, _, err := net.SplitHostPort(o.Addr); err != nil || o.Addr == "" {
		return o, fmt.Errorf("resp: Addr: want host:port, got %q", o.Addr)
	}
	for i, a := range o.ClusterAddrs {
		if _, _, err := net.SplitHostPort(a); err != nil || a == "" {
			return o, fmt.Errorf("resp: ClusterAddrs[%d]: want host:port, got %q", i, a)
		}
	}
	o.ClusterAddrs = append([]string(nil), o.ClusterAddrs...)
	if o.DB < 0 {
		return o, fmt.Errorf("resp: DB: %d is negative", o.DB)
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = o.Timeout
	}
	if o.PoolSize <= 0 {
		o.PoolSize = PoolSizePerCPU * runtime.GOMAXPROCS(0)
	}
	if o.MaxIdleTime <= 0 {
		o.MaxIdleTime = DefaultMaxIdleTime
	}
	if o.MaxReplyBytes <= 0 {
		o.MaxReplyBytes = DefaultMaxReplyBytes
	}
	return o, nil
}
