// Command api is an HTTP API protected by replayguard as embedded Go
// middleware: every request is signature-checked, fresh and not replayed,
// and POST /v1/orders runs once per Idempotency-Key.
//
//	CLIENT_SECRET=… go run ./examples/api
package main

import (
	"encoding/json"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/replayguard/replayguard"
)

// newAPI returns the application's handler: no replay or idempotency code
// in sight, the guard in front takes care of both.
func newAPI() http.Handler {
	var (
		mu     sync.Mutex
		orders = map[int64]string{}
		nextID atomic.Int64
	)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/orders", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			SKU string `json:"sku"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.SKU == "" {
			http.Error(w, `{"error":"want {\"sku\":…}"}`, http.StatusBadRequest)
			return
		}
		v, _ := replayguard.VerifiedFrom(r.Context())
		id := nextID.Add(1)
		mu.Lock()
		orders[id] = in.SKU
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Location", fmt.Sprintf("/v1/orders/%d", id))
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]any{"id": id, "sku": in.SKU, "customer": v.KeyID})
	})
	mux.HandleFunc("GET /v1/orders", func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"count": len(orders)})
	})
	return mux
}

// newServer wraps the API in the guard.
func newServer(secret string) (http.Handler, error) {
	g, err := replayguard.New(replayguard.Config{
		Keys: []replayguard.KeyConfig{{ID: "shop-frontend", Secrets: []string{secret}}},
	}, replayguard.WithLogger(slog.New(slog.NewJSONHandler(os.Stderr, nil))))
	if err != nil {
		return nil, err
	}
	return g.Middleware(newAPI()), nil
}

func main() {
	secret := os.Getenv("CLIENT_SECRET")
	if secret == "" {
		log.Fatal("set CLIENT_SECRET")
	}
	h, err := newServer(secret)
	if err != nil {
		log.Fatal(err)
	}
	log.Println("listening on 127.0.0.1:8081")
	srv := &http.Server{Addr: "127.0.0.1:8081", Handler: h, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
