package sinchsim

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRefuseReason(t *testing.T) {
	t.Parallel()

	allowed := []string{
		"http://127.0.0.1:8080/dr",
		"http://127.0.0.1/dr",
		"https://127.0.0.1:8443/dr?x=1",
		"http://127.8.9.10:9/",
		"http://[::1]:8080/dr",
		"http://[::ffff:127.0.0.1]:8080/dr",
		"HTTP://127.0.0.1:1/",
	}
	for _, u := range allowed {
		require.Empty(t, refuseReason(u), u)
	}

	refused := []string{
		"http://192.0.2.1/cb",
		"http://localhost:8080/dr", // a name: needs a look-up
		"http://LOCALHOST/dr",
		"http://127.0.0.1.nip.io:8080/dr", // a name that resolves to loopback
		"http://0.0.0.0:8080/dr",          // reaches local listeners, but not loopback
		"http://[::]:8080/dr",
		"http://[2001:db8::1]/dr",
		"http://[::ffff:192.0.2.1]/dr",  // mapped, off loopback
		"http://[fe80::1%25lo]:8080/dr", // zone
		"http://[::1%25lo]:8080/dr",     // zone, even on loopback
		"http://127.1/dr",               // short forms are names to the resolver
		"http://2130706433/dr",          // 127.0.0.1 as one number
		"http://0x7f.0.0.1/dr",
		"http://127.0.0.1:80@192.0.2.1/dr", // the host is after the @
		"https://hooks.example.com/dr",
		"ftp://127.0.0.1/dr",
		"http:///dr",
		"127.0.0.1:8080/dr",
		"http://%zz/", // does not parse
		"http://10.0.0.1/dr",
		"http://169.254.169.254/latest",
		"http://[::ffff:7f00:1]x:80/dr",
		"http://127.0.0.1 .example.com/dr",
		"http://[0:0:0:0:0:0:0:2]:8080/dr",
		"http://[0000::0001%eth0]:8080/dr/",
	}
	for _, u := range refused {
		require.NotEmpty(t, refuseReason(u), u)
	}
}

func TestLoopbackOnlyDialGuard(t *testing.T) {
	t.Parallel()

	for _, addr := range []string{"127.0.0.1:80", "127.255.0.3:1", "[::1]:443", "[::ffff:127.0.0.1]:80"} {
		require.NoError(t, loopbackOnly("tcp", addr, nil), addr)
	}
	for _, addr := range []string{"192.0.2.1:80", "[2001:db8::1]:80", "0.0.0.0:80", "[::]:80", "localhost:80",
		"nonsense"} {
		require.ErrorIs(t, loopbackOnly("tcp", addr, nil), errNotLoopback, addr)
	}
}
