package mms

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"golang.org/x/net/idna"
)

// hostLabel is one label of a DNS name in ASCII form. Underscores are
// allowed: some storage hosts use them, and Sinch fetches by URL.
var hostLabel = regexp.MustCompile(`^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$`)

// privateTLDs are names that never resolve on the public Internet.
var privateTLDs = map[string]bool{
	"localhost": true, "local": true, "internal": true, "lan": true, "home": true, "test": true,
	"invalid": true, "localdomain": true, "corp": true, "intranet": true,
	"arpa": true, "onion": true, "alt": true, "example": true,
}

// publicHost checks that Sinch, fetching the media from the Internet, could
// reach host: a public IP address, or a DNS name under a real-looking
// top-level domain. Names are not resolved here.
func publicHost(host string) error {
	if host == "" {
		return fmt.Errorf("must name a host")
	}
	host = strings.TrimSuffix(host, ".")
	if ip, err := netip.ParseAddr(host); err == nil {
		if !PublicAddr(ip) {
			return fmt.Errorf("host %s is not a public address", host)
		}
		return nil
	}

	name, err := idna.Lookup.ToASCII(strings.ToLower(host))
	if err != nil {
		name = strings.ToLower(host) // reported below, label by label
	}
	labels := strings.Split(name, ".")
	if len(name) > 253 || len(labels) < 2 {
		return fmt.Errorf("host %q is not a public DNS name", host)
	}
	for _, l := range labels {
		if !hostLabel.MatchString(l) {
			return fmt.Errorf("host %q is not a valid DNS name", host)
		}
	}
	// A top-level domain starts with a letter. This also refuses the other
	// spellings of IPv4 addresses, such as 127.1, 0177.0.0.1 or 0x7f.0.0.1,
	// which some clients would read as loopback.
	tld := labels[len(labels)-1]
	if tld[0] < 'a' || tld[0] > 'z' || privateTLDs[tld] {
		return fmt.Errorf("host %q is not a public DNS name", host)
	}
	return nil
}

// nonPublic lists ranges that are not reachable, or not meant to be
// reached, on the public Internet, beyond those netip already names
// (loopback, private, link-local, multicast, unspecified).
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),  // protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),  // documentation
	netip.MustParsePrefix("198.18.0.0/15"), // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),    // reserved, and broadcast
	netip.MustParsePrefix("192.88.99.0/24"), // former 6to4 relays
	netip.MustParsePrefix("2001::/23"),      // protocol assignments: Teredo, benchmarking, ORCHID
	netip.MustParsePrefix("2001:db8::/32"),  // documentation
	netip.MustParsePrefix("3fff::/20"),      // documentation
}

// globalV6 is the only IPv6 range handed out for public unicast.
var globalV6 = netip.MustParsePrefix("2000::/3")

// embeddedV4 lists IPv6 ranges that carry an IPv4 address in their last or
// second 32 bits; the address inside decides.
var embeddedV4 = []struct {
	prefix netip.Prefix
	offset int // byte offset of the IPv4 address
}{
	{netip.MustParsePrefix("64:ff9b::/96"), 12}, // NAT64
	{netip.MustParsePrefix("64:ff9b:1::/48"), 12},
	{netip.MustParsePrefix("2002::/16"), 2}, // 6to4
}

// PublicAddr reports whether ip is a public unicast address.
func PublicAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	if ip.Is6() {
		if ip.Zone() != "" {
			return false
		}
		for _, e := range embeddedV4 {
			if e.prefix.Contains(ip) {
				b := ip.As16()
				return PublicAddr(netip.AddrFrom4([4]byte(b[e.offset : e.offset+4])))
			}
		}
		// Everything outside 2000::/3 is special or unassigned, including
		// the old IPv4-compatible and IPv4-translated forms.
		if !globalV6.Contains(ip) {
			return false
		}
	}
	if !ip.IsGlobalUnicast() || ip.IsPrivate() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}
