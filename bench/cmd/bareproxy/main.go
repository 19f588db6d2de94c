// Command bareproxy is the baseline of bench/peers.sh: a bare
// httputil.ReverseProxy with the Transport settings of `replayguard serve`
// (http.DefaultTransport with up to 1024 idle connections, 512 per host)
// and a BufferPool of 32 KiB buffers, behind an http.Server with the
// binary's default timeouts and header limit. It verifies nothing: what
// the gateway costs above it is what verification, replay protection and
// idempotency cost. It prints its address ("http://127.0.0.1:PORT") on
// stdout once it listens, and stops on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:0", "address to listen on (port 0: a free one)")
	upstream := flag.String("upstream", "", "upstream `URL`")
	flag.Parse()
	if err := run(*addr, *upstream); err != nil {
		fmt.Fprintln(os.Stderr, "bareproxy:", err)
		os.Exit(1)
	}
}

// newProxy is the reverse proxy to up, built as `replayguard serve` builds
// its own, without the gateway.
func newProxy(up *url.URL) *httputil.ReverseProxy {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 1024
	tr.MaxIdleConnsPerHost = 512
	return &httputil.ReverseProxy{
		Transport:  tr,
		BufferPool: &bufferPool{},
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(up)
			pr.SetXForwarded()
			pr.Out.Host = pr.In.Host
		},
		ErrorLog: log.New(io.Discard, "", 0),
	}
}

// bufferPool implements httputil.BufferPool on a sync.Pool of 32 KiB
// buffers, the size the proxy allocates without one.
type bufferPool struct{ p sync.Pool }

const bufferBytes = 32 << 10

func (b *bufferPool) Get() []byte {
	if buf, ok := b.p.Get().(*[]byte); ok {
		return *buf
	}
	return make([]byte, bufferBytes)
}

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) != bufferBytes {
		return
	}
	buf = buf[:bufferBytes]
	b.p.Put(&buf)
}

func run(addr, upstream string) error {
	up, err := url.Parse(upstream)
	if err != nil || up.Scheme == "" || up.Host == "" {
		return fmt.Errorf("want -upstream http://host:port, got %q", upstream)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           newProxy(up),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Printf("http://%s\n", ln.Addr())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
