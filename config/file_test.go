package config_test

import (
	"log/slog"
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard"
	"github.com/replayguard/replayguard/config"
	"github.com/replayguard/replayguard/signature/webhooksig"
)

func validBase() config.File {
	return config.File{Config: replayguard.Config{Keys: []replayguard.KeyConfig{{ID: "a", Secrets: []string{"s-0123456789abcdef"}}}}}
}

func TestTrustedProxiesDefault(t *testing.T) {
	cfg := validBase().WithDefaults()
	assert.Equal(t, []string{"127.0.0.0/8", "::1/128"}, cfg.TrustedProxies)
	assert.Equal(t, replayguard.DefaultTrustedProxies(), cfg.TrustedProxies)
	nets, err := validBase().TrustedProxyNets()
	require.NoError(t, err, "empty means the default, also before WithDefaults")
	require.Len(t, nets, 2)
	assert.True(t, nets[0].Contains(net.ParseIP("127.0.0.1")))
	assert.True(t, nets[1].Contains(net.ParseIP("::1")))
	assert.False(t, nets[0].Contains(net.ParseIP("10.0.0.1")))
}

func TestTrustedProxyNets(t *testing.T) {
	cfg := validBase()
	cfg.TrustedProxies = []string{"10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "fd00::1", " 172.16.0.0/12 "}
	nets, err := cfg.TrustedProxyNets()
	require.NoError(t, err)
	require.Len(t, nets, 5)
	in := func(ip string) bool {
		for _, n := range nets {
			if n.Contains(net.ParseIP(ip)) {
				return true
			}
		}
		return false
	}
	for _, ip := range []string{"10.255.0.1", "192.0.2.7", "::ffff:192.0.2.7", "2001:db8:1::5", "fd00::1", "172.20.1.1"} {
		assert.True(t, in(ip), ip)
	}
	for _, ip := range []string{"127.0.0.1", "192.0.2.8", "fd00::2", "::1", "11.0.0.1"} {
		assert.False(t, in(ip), ip)
	}
}

func TestValidateForwardAuth(t *testing.T) {
	tests := []struct {
		name   string
		change func(*config.File)
		field  string
	}{
		{"bad CIDR", func(c *config.File) { c.TrustedProxies = []string{"10.0.0.0/8", "10.0.0.0/33"} }, "trusted_proxies[1]"},
		{"host name", func(c *config.File) { c.TrustedProxies = []string{"traefik"} }, "trusted_proxies[0]"},
		{"empty entry", func(c *config.File) { c.TrustedProxies = []string{"127.0.0.1", ""} }, "trusted_proxies[1]"},
		{"bad auth_listen", func(c *config.File) { c.AuthListen = "9091" }, "auth_listen"},
		{"github preset", func(c *config.File) {
			c.AuthListen, c.Scheme = "127.0.0.1:9091", webhooksig.PresetGitHub
		}, "auth_listen"},
		{"shopify preset", func(c *config.File) {
			c.AuthListen, c.Scheme = "127.0.0.1:9091", webhooksig.PresetShopify
		}, "auth_listen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := validBase()
			tt.change(&cfg)
			err := cfg.WithDefaults().Validate()
			require.Error(t, err)
			var fe *replayguard.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tt.field, fe.Field, err.Error())
		})
	}

	ok := validBase()
	ok.AuthListen = "127.0.0.1:9091"
	ok.TrustedProxies = []string{"10.0.0.0/8", "::1"}
	require.NoError(t, ok.WithDefaults().Validate())
	github := validBase()
	github.Scheme = webhooksig.PresetGitHub
	require.NoError(t, github.WithDefaults().Validate(), "the github preset behind the reverse proxy is fine")
}

func TestParseTrustedProxies(t *testing.T) {
	none := func(string) (string, bool) { return "", false }
	cfg, err := config.Parse([]byte("auth_listen: 127.0.0.1:9091\ntrusted_proxies: [10.0.0.0/8, \"::1\"]\nkeys: [{id: a, secrets: [x-0123456789abcdef]}]\n"), none)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:9091", cfg.AuthListen)
	assert.Equal(t, []string{"10.0.0.0/8", "::1"}, cfg.TrustedProxies)
	cfg, err = config.Parse([]byte("keys: [{id: a, secrets: [x-0123456789abcdef]}]\n"), none)
	require.NoError(t, err)
	assert.Equal(t, replayguard.DefaultTrustedProxies(), cfg.TrustedProxies)
	_, err = config.Parse([]byte("trusted_proxies: [10.0.0.0/80]\nkeys: [{id: a, secrets: [x-0123456789abcdef]}]\n"), none)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "trusted_proxies[0]")
}

func TestServerSection(t *testing.T) {
	c := validBase().WithDefaults()
	assert.Equal(t, config.Server{
		ReadHeaderTimeout: replayguard.Duration(config.DefaultReadHeaderTimeout),
		ReadTimeout:       replayguard.Duration(config.DefaultReadTimeout),
		IdleTimeout:       replayguard.Duration(config.DefaultIdleTimeout),
		MaxHeaderBytes:    config.DefaultMaxHeaderBytes,
	}, c.Server, "write_timeout stays off")
	require.NoError(t, c.Validate())

	bad := validBase()
	bad.Server = config.Server{ReadTimeout: -1, WriteTimeout: -1, MaxHeaderBytes: -1}
	err := bad.WithDefaults().Validate()
	require.Error(t, err)
	for _, f := range []string{"server.read_timeout", "server.write_timeout", "server.max_header_bytes"} {
		assert.Contains(t, err.Error(), f)
	}
}

func TestLogSection(t *testing.T) {
	c := validBase().WithDefaults()
	require.NoError(t, c.Validate())
	assert.Equal(t, "info", c.Log.Level)
	assert.Equal(t, "json", c.Log.Format)
	require.NotNil(t, c.Log.Access)
	assert.True(t, *c.Log.Access)
	require.NotNil(t, c.Log.RejectionsPerSecond)
	assert.Equal(t, 100, *c.Log.RejectionsPerSecond)
	assert.Equal(t, slog.LevelInfo, c.Log.SlogLevel())

	none := func(string) (string, bool) { return "", false }
	c, err := config.Parse([]byte("keys: [{id: a, secrets: [x-0123456789abcdef]}]\nlog: {level: warn, format: text, access: false, rejections_per_second: 0}\n"), none)
	require.NoError(t, err)
	assert.Equal(t, slog.LevelWarn, c.Log.SlogLevel())
	assert.Equal(t, "text", c.Log.Format)
	assert.False(t, *c.Log.Access, "false is kept, not defaulted")
	assert.Equal(t, 0, *c.Log.RejectionsPerSecond, "0 (no bound) is kept, not defaulted")

	bad := validBase()
	minus := -1
	bad.Log = config.Log{Level: "verbose", Format: "logfmt", RejectionsPerSecond: &minus}
	err = bad.WithDefaults().Validate()
	require.Error(t, err)
	for _, f := range []string{"log.level", "log.format", "log.rejections_per_second"} {
		assert.Contains(t, err.Error(), f)
	}
}
