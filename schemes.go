package replayguard

import (
	"fmt"
	"sort"
	"time"

	"github.com/replayguard/replayguard/signature"
	"github.com/replayguard/replayguard/signature/webhooksig"
)

// schemeDef is one signature scheme the configuration can name.
type schemeDef struct {
	// validate returns the configuration problems specific to the scheme.
	validate func(c Config) []error
	// build constructs the scheme from a validated configuration, on the
	// Guard's clock.
	build func(c Config, keys []signature.Key, now func() time.Time) (signature.Scheme, error)
}

// schemes maps the `scheme` field to its definition.
var schemes = map[string]schemeDef{
	"hmac":                            {validate: validateHMAC, build: buildHMAC},
	"jwt":                             {validate: validateJWT, build: buildJWT},
	"rfc9421":                         {validate: validateRFC9421, build: buildRFC9421},
	webhooksig.PresetStandardWebhooks: webhookScheme(webhooksig.PresetStandardWebhooks),
	webhooksig.PresetStripe:           webhookScheme(webhooksig.PresetStripe),
	webhooksig.PresetGitHub:           webhookScheme(webhooksig.PresetGitHub),
	webhooksig.PresetSlack:            webhookScheme(webhooksig.PresetSlack),
	webhooksig.PresetShopify:          webhookScheme(webhooksig.PresetShopify),
}

func schemeNames() []string {
	names := make([]string, 0, len(schemes))
	for n := range schemes {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// NewScheme builds the signature scheme that cfg names, on the real clock.
func NewScheme(cfg Config) (signature.Scheme, error) { return newScheme(cfg, time.Now) }

func newScheme(cfg Config, now func() time.Time) (signature.Scheme, error) {
	name := cfg.Scheme
	if name == "" {
		name = DefaultScheme
	}
	def, ok := schemes[name]
	if !ok {
		return nil, fieldErr("scheme", "unknown scheme %q", cfg.Scheme)
	}
	keys, err := cfg.SignatureKeys()
	if err != nil {
		return nil, err
	}
	s, err := def.build(cfg, keys, now)
	if err != nil {
		return nil, fmt.Errorf("config: scheme %s: %w", name, err)
	}
	return s, nil
}
