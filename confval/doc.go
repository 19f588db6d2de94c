// Package confval holds the value types shared by replayguard's
// configuration sections: Duration, which reads "200ms", "5m" or "7d",
// and FieldError, which names the field a validation error is about. It
// imports only the standard library, so that every package owning a
// section (the root package, the Redis store, the PostgreSQL store) can
// use it without importing another.
package confval
