package media

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mmsgate/mmsgate/internal/mms"
)

// Resolver looks up a host's addresses; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// DialFunc connects to address, an IP and port that was already checked.
type DialFunc func(ctx context.Context, network, address string) (net.Conn, error)

// metadata are the addresses of cloud instance metadata and platform
// services. Checks never connect to them, whatever the allow-list says:
// they hand out credentials.
var metadata = []netip.Prefix{
	netip.MustParsePrefix("169.254.169.254/32"), // AWS, GCP, Azure, OCI, DigitalOcean, ...
	netip.MustParsePrefix("169.254.170.2/32"),   // AWS ECS task metadata
	netip.MustParsePrefix("fd00:ec2::254/128"),  // AWS over IPv6
	netip.MustParsePrefix("100.100.100.200/32"), // Alibaba Cloud
	netip.MustParsePrefix("168.63.129.16/32"),   // Azure platform services: a public address
}

func isMetadata(ip netip.Addr) bool {
	for _, p := range metadata {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// AddressError is a connection refused before it was made: the address is
// not public and not allowed.
type AddressError struct {
	Host string     // as in the URL
	Addr netip.Addr // the address it resolved to
	Why  string     // e.g. "a private address"
}

func (e *AddressError) Error() string {
	if e.Host != e.Addr.String() {
		return fmt.Sprintf("host %s resolves to %s, %s", e.Host, e.Addr, e.Why)
	}
	return fmt.Sprintf("%s is %s", e.Addr, e.Why)
}

// describe says why ip is not public.
func describe(ip netip.Addr) string {
	switch {
	case isMetadata(ip):
		return "a cloud metadata address"
	case ip.IsLoopback():
		return "a loopback address"
	case ip.IsUnspecified():
		return "the unspecified address"
	case ip.IsLinkLocalUnicast():
		return "a link-local address"
	case ip.IsMulticast():
		return "a multicast address"
	case ip.IsPrivate():
		return "a private address"
	case ip.Zone() != "":
		return "an address with a zone"
	}
	return "a reserved or non-public address"
}

// AllowList names the non-public addresses checks may connect to all the
// same: for tests, a demo, or media served inside a private network. Cloud
// metadata addresses stay refused. Production leaves it empty: Sinch
// fetches media from the Internet, where such addresses do not reach the
// file.
type AllowList struct {
	prefixes  []netip.Prefix
	addrPorts []netip.AddrPort
	names     map[string]bool // "host:port", lower case
	entries   []string
}

// dnsName is a host name as an allow-list entry may give it.
var dnsName = regexp.MustCompile(`^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$`)

// ParseAllowList reads allow-list entries, each one of: a CIDR
// (10.20.0.0/16, fd00::/8), an IP address (127.0.0.1, ::1), an IP and port
// (127.0.0.1:8081, [::1]:8081), or a host name and port
// (media.internal:8080), which allows whatever the name resolves to on that
// port. Blank entries are skipped.
func ParseAllowList(entries []string) (AllowList, error) {
	a := AllowList{names: map[string]bool{}}
	for _, raw := range entries {
		e := strings.TrimSpace(raw)
		if e == "" {
			continue
		}
		if err := a.add(e); err != nil {
			return AllowList{}, err
		}
		a.entries = append(a.entries, e)
	}
	return a, nil
}

func (a *AllowList) add(e string) error {
	if strings.Contains(e, "/") {
		p, err := netip.ParsePrefix(e)
		if err != nil {
			return fmt.Errorf("%q is not a valid CIDR", e)
		}
		if p.Bits() == 0 {
			return fmt.Errorf("%q would allow every address; list the networks you need", e)
		}
		a.prefixes = append(a.prefixes, p.Masked())
		return nil
	}
	if ip, err := netip.ParseAddr(e); err == nil {
		if ip.Zone() != "" {
			return fmt.Errorf("%q: addresses with a zone are not supported", e)
		}
		a.prefixes = append(a.prefixes, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
		return nil
	}
	host, portStr, err := net.SplitHostPort(e)
	if err != nil {
		return fmt.Errorf("%q is not a CIDR, an IP address or host:port", e)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return fmt.Errorf("%q: port %q is not a TCP port", e, portStr)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return fmt.Errorf("%q: addresses with a zone are not supported", e)
		}
		a.addrPorts = append(a.addrPorts, netip.AddrPortFrom(ip.Unmap(), uint16(port)))
		return nil
	}
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	if !dnsName.MatchString(name) || len(name) > 253 {
		return fmt.Errorf("%q: %q is not a host name", e, host)
	}
	a.names[net.JoinHostPort(name, portStr)] = true
	return nil
}

// Empty reports whether the list allows nothing.
func (a AllowList) Empty() bool { return len(a.entries) == 0 }

// String lists the entries, comma separated.
func (a AllowList) String() string { return strings.Join(a.entries, ",") }

// Allows reports whether a URL's host (an IP literal or a name) and port
// are on the list, as the API asks before it takes a media URL that is not
// public. Cloud metadata addresses are never allowed.
func (a AllowList) Allows(host string, port uint16) bool {
	if ip, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		ip = ip.Unmap()
		return !isMetadata(ip) && a.allowsAddr(ip, port)
	}
	return a.allowsName(host, port)
}

func (a AllowList) allowsName(host string, port uint16) bool {
	if len(a.names) == 0 {
		return false
	}
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	return a.names[net.JoinHostPort(name, strconv.Itoa(int(port)))]
}

func (a AllowList) allowsAddr(ip netip.Addr, port uint16) bool {
	for _, p := range a.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	for _, ap := range a.addrPorts {
		if ap.Addr() == ip && ap.Port() == port {
			return true
		}
	}
	return false
}

// NewTransport returns an HTTP transport for URLs that clients give: it
// connects through NewDialer(allow, resolver, dial), never through a proxy
// (which would connect where the dialer does not check), bounds the TLS
// handshake by timeout and answer headers to 64 KiB.
func NewTransport(allow AllowList, resolver Resolver, dial DialFunc, timeout time.Duration) *http.Transport {
	return &http.Transport{
		Proxy:                  nil,
		DialContext:            NewDialer(allow, resolver, dial),
		TLSHandshakeTimeout:    timeout,
		MaxResponseHeaderBytes: 64 << 10,
	}
}

// NewDialer returns a dialer that connects only where a media check may:
// public addresses and those on allow, never cloud metadata. Requests to
// other URLs that clients give, such as their callback URLs, use it too.
// A nil resolver is net.DefaultResolver; a nil dial is a net.Dialer that
// checks the address once more as it connects.
func NewDialer(allow AllowList, resolver Resolver, dial DialFunc) DialFunc {
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	g := &guard{allow: allow, resolver: resolver, dial: dial}
	return g.DialContext
}

// guard is the dialer of a Checker's HTTP client: it resolves the host
// itself, refuses the connection if any address is not allowed, and
// connects only to the addresses it checked, so a name cannot resolve to
// one address for the check and to another for the connection.
type guard struct {
	allow    AllowList
	resolver Resolver
	dial     DialFunc
}

// permit decides whether a check may connect to ip on port; nameAllowed
// says the allow-list names the URL's host and port.
func (g *guard) permit(host string, ip netip.Addr, port uint16, nameAllowed bool) error {
	ip = ip.Unmap()
	switch {
	case isMetadata(ip):
	case nameAllowed, mms.PublicAddr(ip), g.allow.allowsAddr(ip, port):
		return nil
	}
	return &AddressError{Host: host, Addr: ip, Why: describe(ip)}
}

// DialContext resolves and checks address, then connects.
func (g *guard) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	port64, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("bad port %q", portStr)
	}
	port := uint16(port64)
	nameAllowed := g.allow.allowsName(host, port)

	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else {
		ips, err = g.resolver.LookupNetIP(ctx, ipNetwork(network), host)
		if err != nil {
			return nil, err
		}
		if len(ips) == 0 {
			return nil, &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
		}
	}
	// Every address must pass, not only the first: Sinch may fetch from
	// any of them.
	for _, ip := range ips {
		if err := g.permit(host, ip, port, nameAllowed); err != nil {
			return nil, err
		}
	}

	var lastErr error
	for _, ip := range ips {
		target := netip.AddrPortFrom(ip.Unmap(), port).String()
		conn, err := g.connect(ctx, network, target, host, nameAllowed)
		if err == nil {
			return conn, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

// connect dials one checked address. The default dialer checks it once
// more at the socket, just before connecting.
func (g *guard) connect(ctx context.Context, network, target, host string, nameAllowed bool) (net.Conn, error) {
	if g.dial != nil {
		return g.dial(ctx, network, target)
	}
	d := net.Dialer{
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("unexpected address %q", address)
			}
			return g.permit(host, ap.Addr(), ap.Port(), nameAllowed)
		},
	}
	return d.DialContext(ctx, network, target)
}

func ipNetwork(network string) string {
	switch network {
	case "tcp4":
		return "ip4"
	case "tcp6":
		return "ip6"
	}
	return "ip"
}
