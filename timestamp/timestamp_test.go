package timestamp_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/timestamp"
)

func TestWindowCheck(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	w := timestamp.New(5*time.Minute, time.Minute)
	tests := []struct {
		name string
		ts   time.Time
		want error
	}{
		{"now", now, nil},
		{"oldest accepted", now.Add(-5 * time.Minute), nil},
		{"just too old", now.Add(-5*time.Minute - time.Second), timestamp.ErrExpired},
		{"newest accepted", now.Add(time.Minute), nil},
		{"just too new", now.Add(time.Minute + time.Second), timestamp.ErrInFuture},
		{"epoch", time.Unix(0, 0), timestamp.ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := w.Check(tt.ts, now)
			if tt.want == nil {
				assert.NoError(t, err)
				return
			}
			assert.ErrorIs(t, err, tt.want)
		})
	}
}

func TestNewDefaults(t *testing.T) {
	w := timestamp.New(0, 0)
	assert.Equal(t, timestamp.DefaultTolerance, w.Tolerance)
	assert.Equal(t, timestamp.DefaultFutureSkew, w.FutureSkew)
	assert.Equal(t, 10*time.Minute, w.Span())
	ts := time.Unix(1000, 0)
	assert.True(t, w.Expiry(ts).After(ts.Add(w.Tolerance)), "a record outlives the tolerance")
}

func TestParseUnix(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  error
	}{
		{"1700000000", 1700000000, nil},
		{"0", 0, nil},
		{"", 0, timestamp.ErrMissing},
		{"-1", 0, timestamp.ErrMalformed},
		{"+1", 0, timestamp.ErrMalformed},
		{"17e8", 0, timestamp.ErrMalformed},
		{"1700000000.5", 0, timestamp.ErrMalformed},
		{" 1700000000", 0, timestamp.ErrMalformed},
		{"999999999999", 0, timestamp.ErrMalformed},
	}
	for _, tt := range tests {
		got, err := timestamp.ParseUnix(tt.in)
		if tt.err != nil {
			assert.ErrorIs(t, err, tt.err, tt.in)
			continue
		}
		require.NoError(t, err, tt.in)
		assert.Equal(t, tt.want, got.Unix(), tt.in)
	}
}

func FuzzParseUnix(f *testing.F) {
	for _, s := range []string{"1700000000", "", "-1", "00000000001", "abc", "99999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ts, err := timestamp.ParseUnix(s)
		if err != nil {
			if !errors.Is(err, timestamp.ErrMissing) && !errors.Is(err, timestamp.ErrMalformed) {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		if ts.Unix() < 0 {
			t.Fatalf("negative time from %q", s)
		}
	})
}

func TestWindowArithmeticNeverWraps(t *testing.T) {
	const year = 365 * 24 * time.Hour
	now := time.Unix(1_750_000_000, 0)
	tests := []struct {
		name          string
		w             timestamp.Window
		wantSpan      time.Duration
		wantValidErr  bool
		expiryAtLeast time.Time
	}{
		{"default", timestamp.New(0, 0), 10 * time.Minute, false, now.Add(5 * time.Minute)},
		{"years", timestamp.New(30*year, 30*year), 60 * year, false, now.Add(30 * year)},
		{"centuries", timestamp.New(250*year, 40*year), 290 * year, false, now.Add(250 * year)},
		{"sum too wide", timestamp.New(200*year, 200*year), timestamp.MaxSpan, true, now.Add(200 * year)},
		{"largest tolerance", timestamp.New(1<<63-1, time.Minute), timestamp.MaxSpan, true, now.Add(1<<63 - 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.wantSpan, tt.w.Span())
			assert.False(t, tt.w.Expiry(now).Before(tt.expiryAtLeast), "expiry %s before %s", tt.w.Expiry(now), tt.expiryAtLeast)
			if tt.wantValidErr {
				assert.Error(t, tt.w.Validate())
			} else {
				assert.NoError(t, tt.w.Validate())
			}
			require.NoError(t, tt.w.Check(now, now))
		})
	}
	assert.Error(t, timestamp.Window{Tolerance: -1}.Validate())
	assert.Error(t, timestamp.Window{FutureSkew: -1}.Validate())
}
