package redistest_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/replayguard/replayguard/redisstore/redistest"
)

func TestServerKillRestartPersistence(t *testing.T) {
	s := redistest.Start(t, redistest.WithPersistence())
	_, err := s.Do("SET", "k", "v")
	require.NoError(t, err)
	s.Kill()
	_, err = s.Do("PING")
	require.Error(t, err, "killed")
	s.Restart()
	v, err := s.Do("GET", "k")
	require.NoError(t, err)
	assert.Equal(t, "v", v, "an acknowledged write survives a kill with appendfsync always")
	assert.NotEmpty(t, s.Info("used_memory"))
}

func TestServerWithoutPersistenceForgets(t *testing.T) {
	s := redistest.Start(t)
	_, err := s.Do("SET", "k", "v")
	require.NoError(t, err)
	s.Restart()
	v, err := s.Do("GET", "k")
	require.NoError(t, err)
	assert.Empty(t, v)
	_, err = s.Do("NOSUCHCOMMAND")
	var e redistest.ErrReply
	require.ErrorAs(t, err, &e)
}

// Monitor tells the commands a client sent from those a script ran.
func TestMonitorCountsClientCommands(t *testing.T) {
	s := redistest.Start(t)
	m := s.Monitor(t)
	_, err := s.Do("SET", "a", "1")
	require.NoError(t, err)
	_, err = s.Do("EVAL", "redis.call('SET', KEYS[1], '2'); return redis.call('GET', KEYS[1])", "1", "b")
	require.NoError(t, err)
	assert.Equal(t, []string{"set", "eval"}, m.Calls())
	assert.Empty(t, m.Calls(), "taken")
}
