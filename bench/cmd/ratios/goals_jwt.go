package main

func init() {
	goals = append(goals,
		goal{"jwt scheme vs bare jwt.Parse, ES256, 1 KiB body (paired)", "JWTPaired/ES256", "", "scheme/parse", 1.05},
		goal{"jwt scheme vs bare jwt.Parse, EdDSA, 1 KiB body (paired)", "JWTPaired/EdDSA", "", "scheme/parse", 1.05},
		goal{"jwt scheme vs bare jwt.Parse, HS256, 1 KiB body (paired)", "JWTPaired/HS256", "", "scheme/parse", 0},
		goal{"jwt scheme vs bare jwt.Parse, ES256, 1 KiB body", "JWT/ES256/scheme", "JWT/ES256/jwt.Parse", "ns/op", 0},
		goal{"jwt scheme vs bare jwt.Parse, EdDSA, 1 KiB body", "JWT/EdDSA/scheme", "JWT/EdDSA/jwt.Parse", "ns/op", 0},
		goal{"jwt scheme vs bare jwt.Parse, HS256, 1 KiB body", "JWT/HS256/scheme", "JWT/HS256/jwt.Parse", "ns/op", 0},
		goal{"64 KiB garbage token reaching the parser, bytes allocated", "JWTGarbage/64KiB/no-limit", "", "B/op", 2 * 64 << 10},
		goal{"64 KiB garbage token under the default limit, bytes allocated", "JWTGarbage/64KiB/default-limit", "", "B/op", 1 << 10},
	)
}
