package redisconn

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

func TestParseKinds(t *testing.T) {
	c, err := Parse("redis://:pw@10.1.2.3:6380/2", time.Second)
	require.NoError(t, err)
	require.Equal(t, Single, c.Kind())
	require.Equal(t, "10.1.2.3:6380", c.single.Addr)
	require.Equal(t, 2, c.single.DB)
	require.Equal(t, time.Second, c.single.ReadTimeout)
	require.Equal(t, 1, c.single.MaxRetries)
	require.NotContains(t, c.String(), "pw")

	c, err = Parse("unix:///run/redis.sock", time.Second)
	require.NoError(t, err)
	require.Equal(t, Single, c.Kind())
	require.Equal(t, "unix", c.single.Network)

	c, err = Parse("redis+sentinel://:spw@s1:26379/3?master_name=mymaster&addr=s2:26379&addr=s3:26379&password=ppw",
		500*time.Millisecond)
	require.NoError(t, err)
	require.Equal(t, Sentinel, c.Kind())
	require.Equal(t, "mymaster", c.failover.MasterName)
	require.Equal(t, []string{"s1:26379", "s2:26379", "s3:26379"}, c.failover.SentinelAddrs)
	require.Equal(t, "spw", c.failover.SentinelPassword)
	require.Equal(t, "ppw", c.failover.Password)
	require.Equal(t, 3, c.failover.DB)
	require.Equal(t, 500*time.Millisecond, c.failover.DialTimeout)
	require.Nil(t, c.failover.TLSConfig)
	require.NotContains(t, c.String(), "pw")
	_, isClient := c.NewClient().(*redis.Client)
	require.True(t, isClient, "a failover client")

	c, err = Parse("rediss+sentinel://s1:26379?master_name=m", time.Second)
	require.NoError(t, err)
	require.NotNil(t, c.failover.TLSConfig)

	c, err = Parse("redis+cluster://:pw@n1:6379?addr=n2:6379&addr=n3:6379", time.Second)
	require.NoError(t, err)
	require.Equal(t, Cluster, c.Kind())
	require.Equal(t, []string{"n1:6379", "n2:6379", "n3:6379"}, c.cluster.Addrs)
	require.Equal(t, "pw", c.cluster.Password)
	require.Equal(t, time.Second, c.cluster.WriteTimeout)
	require.Equal(t, clusterReload, c.cluster.ClusterStateReloadInterval,
		"a dead primary's slots are looked up again within seconds, not go-redis's 60")
	require.NotContains(t, c.String(), "pw")
	_, isCluster := c.NewClient().(*redis.ClusterClient)
	require.True(t, isCluster)
	_, isCluster = c.MakeRedisClient().(*redis.ClusterClient)
	require.True(t, isCluster, "asynq gets the same kind of client")

	c, err = Parse("redis+cluster://n1:6379/0", time.Second)
	require.NoError(t, err, "db 0, the only one a Cluster has, may be named")
	require.Equal(t, []string{"n1:6379"}, c.cluster.Addrs)
}

func TestParseRefuses(t *testing.T) {
	for url, msg := range map[string]string{
		"redis+sentinel://s1:26379/0":            "master_name",
		"tcp://127.0.0.1:6379":                   `scheme "tcp"`,
		"redis+mesh://a:1":                       `scheme "redis+mesh"`,
		"redis+cluster://n1:6379?bogus=1":        "bogus",
		"redis+sentinel://s1:26379?master_name=": "master_name",
		"redis+cluster://n1:6379/3":              "no database but 0",
		"redis+cluster://":                       "needs a host",
		"unix://":                                "socket's absolute path",
		"unix:///":                               "socket's absolute path",
		"unix://relative/redis.sock":             "socket's absolute path",
		"redis+sentinel:///0?master_name=m":      "needs a host",
		// go-redis would dial 127.0.0.1:6379 for these.
		"redis+sentinel://127.0.0.1/0?master_name=m":        "not host:port",
		"redis+cluster://127.0.0.1":                         "not host:port",
		"redis+cluster://n1:6379?addr=n2":                   "addr param: n2",
		"redis+sentinel://s1:99999?master_name=m":           "no valid port",
		"redis+cluster://n1:6379?addr=127.0.0.1:99999":      "no valid port",
		"redis+sentinel://s1:26379?master_name=m&addr=s2:0": "no valid port",
		"redis+cluster://n1:6379?addr=127.0.0.1:http":       "no valid port",
	} {
		_, err := Parse(url, time.Second)
		require.ErrorContains(t, err, msg, url)
		require.ErrorContains(t, err, "REDIS_URL", url)
	}
}
