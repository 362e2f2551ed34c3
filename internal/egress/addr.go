package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// nonPublic are the special-purpose ranges (RFC 6890 and successors) that
// PublicAddr refuses beyond what the netip predicates cover.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT, also tailnets
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("192.88.99.0/24"),  // 6to4 relay anycast
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, broadcast
	netip.MustParsePrefix("::/96"),           // unspecified, loopback, IPv4-compatible
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("100::/64"),        // discard-only
	netip.MustParsePrefix("2001::/23"),       // IETF protocol assignments, Teredo
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("2002::/16"),       // 6to4: embeds any IPv4 address
	netip.MustParsePrefix("fec0::/10"),       // site-local
}

// nat64 is the well-known NAT64 prefix: an address in it reaches the IPv4
// address in its last 32 bits, which must itself be public.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// PublicAddr reports whether a is a globally reachable unicast address. It
// is the default [Config.AllowAddr]: it refuses loopback, private, link-local,
// unspecified, multicast, carrier-grade NAT, documentation, benchmarking and
// reserved ranges, and looks through IPv4-mapped and NAT64 addresses to the
// IPv4 address they reach.
func PublicAddr(a netip.Addr) bool {
	a = a.Unmap()
	if nat64.Contains(a) {
		b := a.As16()
		return PublicAddr(netip.AddrFrom4([4]byte(b[12:])))
	}
	if !a.IsValid() || a.Zone() != "" || !a.IsGlobalUnicast() || a.IsPrivate() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// errAddrRefused is returned by lookup when no address of a host may be
// dialled.
var errAddrRefused = errors.New("resolves to no address ward may connect to")

// lookup resolves host (a name or IP literal) and returns the addresses
// AllowAddr accepts, in resolver order, with port.
func (p *Proxy) lookup(ctx context.Context, host string, port int) ([]netip.AddrPort, error) {
	var ips []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{a}
	} else {
		ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
		defer cancel()
		if ips, err = net.DefaultResolver.LookupNetIP(ctx, "ip", host); err != nil {
			return nil, fmt.Errorf("resolve %s: %w", host, err)
		}
	}
	var out []netip.AddrPort
	var refused []netip.Addr
	for _, a := range ips {
		a = a.Unmap()
		if !p.cfg.AllowAddr(a) {
			refused = append(refused, a)
			continue
		}
		out = append(out, netip.AddrPortFrom(a, uint16(port)))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s %w (%v)", host, errAddrRefused, refused)
	}
	return out, nil
}

// addrsKey is the context key under which a forwarded request carries the
// checked addresses its connection may be dialled to.
type addrsKey struct{}

// dialChecked is the forwarding transport's DialContext: it dials only the
// addresses lookup checked for the request being sent.
func (p *Proxy) dialChecked(ctx context.Context, _, addr string) (net.Conn, error) {
	addrs, _ := ctx.Value(addrsKey{}).([]netip.AddrPort)
	if len(addrs) == 0 {
		return nil, fmt.Errorf("dial %s: no checked address", addr)
	}
	return p.dialAny(ctx, addrs)
}

// dialAny dials addrs in order and returns the first connection made.
func (p *Proxy) dialAny(ctx context.Context, addrs []netip.AddrPort) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	var errs []error
	for _, a := range addrs {
		c, err := p.cfg.Dial(ctx, "tcp", a.String())
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}
