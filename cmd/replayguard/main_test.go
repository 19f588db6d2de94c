package main_test

import (
	"testing"

	"github.com/replayguard/replayguard/postgres/pgtest"
)

// TestMain stops the shared PostgreSQL cluster the tests may start.
func TestMain(m *testing.M) { pgtest.Main(m) }
