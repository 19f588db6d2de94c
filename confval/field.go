package confval

// FieldError names the configuration field that is wrong.
type FieldError struct {
	Field string // dotted path, e.g. "redis.timeout"
	Err   error
}

func (e *FieldError) Error() string { return "config: " + e.Field + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *FieldError) Unwrap() error { return e.Err }
