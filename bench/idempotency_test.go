package bench

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	fiberidem "github.com/gofiber/fiber/v2/middleware/idempotency"
	"github.com/valyala/fasthttp"

	"github.com/replayguard/replayguard/idempotency"
)

const replayKey = "3f8e2b1c-6a4d-4e5f-9b7a-1c2d3e4f5a6b"

// BenchmarkIdempotencyReplay serves a retry from the memory store: key
// parsing, fingerprint of method, target and body, lookup and replay of a
// 1 KiB response. The gofiber variant is its idempotency middleware's
// replay (which checks no fingerprint) in front of the same handler.
func BenchmarkIdempotencyReplay(b *testing.B) {
	reqBody := bytes.Repeat([]byte("r"), 1<<10)
	respBody := bytes.Repeat([]byte("s"), 1<<10)

	b.Run("replayguard", func(b *testing.B) {
		h := idempotency.NewDeduper(idempotency.NewMemory(), idempotency.Options{Required: true})
		next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write(respBody)
		})
		r, _ := http.NewRequest(http.MethodPost, "http://api.example.com/v1/charges", bytes.NewReader(reqBody))
		r.Header.Set(idempotency.HeaderName, replayKey)
		req := idempotency.Request{Principal: "client-a", Target: "/v1/charges", Body: reqBody}
		w := &recorder{discard: discard{h: http.Header{}}}
		if err := h.Serve(w, r, req, next); err != nil || w.code != http.StatusCreated {
			b.Fatalf("first request: %v %d", err, w.code)
		}
		b.ReportAllocs()
		b.SetBytes(int64(len(respBody)))
		for b.Loop() {
			for k := range w.h {
				delete(w.h, k)
			}
			if err := h.Serve(w, r, req, next); err != nil {
				b.Fatal(err)
			}
		}
		if w.h.Get(idempotency.ReplayedHeader) != "true" {
			b.Fatal("not a replay")
		}
	})

	b.Run("gofiber", func(b *testing.B) {
		app := fiber.New()
		app.Use(fiberidem.New(fiberidem.Config{Lifetime: 24 * time.Hour}))
		app.Post("/v1/charges", func(c *fiber.Ctx) error {
			c.Set("Content-Type", "application/json")
			return c.Status(fiber.StatusCreated).Send(respBody)
		})
		handler := app.Handler()
		ctx := &fasthttp.RequestCtx{}
		ctx.Request.Header.SetMethod(fiber.MethodPost)
		ctx.Request.SetRequestURI("/v1/charges")
		ctx.Request.Header.Set(fiberidem.ConfigDefault.KeyHeader, replayKey)
		ctx.Request.SetBody(reqBody)
		handler(ctx)
		if ctx.Response.StatusCode() != fiber.StatusCreated {
			b.Fatalf("first request: %d", ctx.Response.StatusCode())
		}
		b.ReportAllocs()
		b.SetBytes(int64(len(respBody)))
		for b.Loop() {
			ctx.Response.Reset()
			handler(ctx)
		}
		if ctx.Response.StatusCode() != fiber.StatusCreated || len(ctx.Response.Header.Peek("X-Idempotency-Replayed")) == 0 && !bytes.Equal(ctx.Response.Body(), respBody) {
			b.Fatal("not a replay")
		}
	})
}
