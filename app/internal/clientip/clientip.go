// Package clientip finds the address of the client behind a request: the peer,
// unless the peer is a trusted proxy (the load balancer), in which case the nearest
// untrusted address the proxies recorded in X-Forwarded-For.
package clientip

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Resolver knows which peers are proxies whose X-Forwarded-For is believed.
type Resolver struct {
	trusted []netip.Prefix
}

// Parse reads a comma-separated list of CIDRs or addresses ("10.0.0.0/16,127.0.0.1").
func Parse(list string) (Resolver, error) {
	var r Resolver
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil {
				return Resolver{}, fmt.Errorf("%q is not an address or CIDR", f)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		r.trusted = append(r.trusted, p.Masked())
	}
	return r, nil
}

func (r Resolver) isTrusted(a netip.Addr) bool {
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// IP returns the client's address as a string ("" if the peer's is unparsable).
func (r Resolver) IP(req *http.Request) string { return r.FromPeer(req.RemoteAddr, req.Header) }

// FromPeer is IP for a peer address ("host:port") and the request's headers. Proxies
// append to X-Forwarded-For, so it is read from the right: the first address that is
// not a trusted proxy is the client (what is left of it, the client could forge).
func (r Resolver) FromPeer(remoteAddr string, h http.Header) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return ""
	}
	peer = peer.Unmap()
	if !r.isTrusted(peer) {
		return peer.String()
	}
	hops := strings.Split(strings.Join(h.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a garbled hop: trust nothing left of it
		}
		if a = a.Unmap(); !r.isTrusted(a) {
			return a.String()
		}
		peer = a
	}
	return peer.String()
}

// LimitKey is what per-client limits count an address under: an IPv4 address
// itself, an IPv6 address its /64, the smallest block a subscriber is given, so one
// client cannot step past a limit by walking its own block.
func LimitKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Is4() {
		return ip
	}
	p, err := a.Prefix(64)
	if err != nil {
		return ip
	}
	return p.String()
}
