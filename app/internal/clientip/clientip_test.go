package clientip

import (
	"net/http"
	"testing"
)

func TestFromPeer(t *testing.T) {
	r, err := Parse("10.0.0.0/16, 127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, peer, xff, want string
	}{
		{"untrusted peer: its header is ignored", "203.0.113.9:1234", "1.2.3.4", "203.0.113.9"},
		{"no header behind a proxy: the proxy", "10.0.1.5:80", "", "10.0.1.5"},
		{"the load balancer's appended client", "10.0.1.5:80", "198.51.100.7", "198.51.100.7"},
		{"a forged left part is skipped", "10.0.1.5:80", "1.1.1.1, 198.51.100.7", "198.51.100.7"},
		{"two trusted hops", "127.0.0.1:5", "198.51.100.7, 10.0.3.3", "198.51.100.7"},
		{"garbage hop stops the walk", "10.0.1.5:80", "198.51.100.7, nonsense, 10.0.3.3", "10.0.3.3"},
		{"IPv4-mapped IPv6 peer", "[::ffff:203.0.113.9]:1", "", "203.0.113.9"},
		{"IPv6 client", "10.0.1.5:80", "2001:db8::1", "2001:db8::1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.xff != "" {
				h.Set("X-Forwarded-For", tt.xff)
			}
			if got := r.FromPeer(tt.peer, h); got != tt.want {
				t.Fatalf("FromPeer(%q, %q) = %q, want %q", tt.peer, tt.xff, got, tt.want)
			}
		})
	}
	if _, err := Parse("10.0.0.0/16,not-an-ip"); err == nil {
		t.Fatal("a bad entry must be an error")
	}
	if got := (Resolver{}).FromPeer("127.0.0.1:9", http.Header{"X-Forwarded-For": {"1.2.3.4"}}); got != "127.0.0.1" {
		t.Fatalf("nothing trusted: %q", got)
	}
}

func TestLimitKey(t *testing.T) {
	for _, tc := range []struct{ ip, want string }{
		{"192.0.2.7", "192.0.2.7"},
		{"2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"},
		{"2001:db8:1:3::1", "2001:db8:1:3::/64"},
		{"::1", "::/64"},
		{"", ""},
		{"not an address", "not an address"},
	} {
		if got := LimitKey(tc.ip); got != tc.want {
			t.Errorf("LimitKey(%q) = %q, want %q", tc.ip, got, tc.want)
		}
	}
}
