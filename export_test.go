package replayguard

// ForwardedRequest exposes forwardedRequest to the external tests.
var ForwardedRequest = forwardedRequest
