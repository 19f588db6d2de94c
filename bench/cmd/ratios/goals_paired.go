package main

func init() {
	goals = append(goals,
		goal{"middleware vs HMAC-SHA256 floor, 64 KiB (paired batches)", "MiddlewareVsFloorPaired/64KiB", "", "x-floor", 1.1},
		goal{"middleware vs HMAC-SHA256 floor, 1 KiB (paired batches)", "MiddlewareVsFloorPaired/1KiB", "", "x-floor", 0},
	)
}
