package health

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestHealth(t *testing.T) {
	ok := func(context.Context) error { return nil }
	down := func(context.Context) error { return errors.New("down") }
	tests := []struct {
		name       string
		mode       string
		checks     map[string]Check
		drain      bool
		wantStatus int
		wantKeys   []string
		wantMode   bool
	}{
		{"standalone healthy", "standalone", map[string]Check{"database": ok, "socketio": ok}, false, 200, []string{"database", "socketio"}, true},
		{"clustered healthy has exactly the documented keys", "clustered", map[string]Check{"redis": ok, "kafka": ok, "database": ok, "socketio": ok}, false, 200,
			[]string{"redis", "kafka", "database", "socketio"}, false},
		{"a dependency down", "clustered", map[string]Check{"redis": down, "kafka": ok, "database": ok, "socketio": ok}, false, 503,
			[]string{"redis", "kafka", "database", "socketio"}, false},
		{"draining", "standalone", map[string]Check{"database": ok}, true, 503, []string{"database"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := New(Config{ServerID: "server-1", Mode: tt.mode, Checks: tt.checks, IsLeader: func() bool { return true }})
			if tt.drain {
				h.SetDraining()
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/health", nil))
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d", rec.Code, tt.wantStatus)
			}
			var doc map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"status", "timestamp", "serverId", "uptime", "services", "batchWriterLeader"} {
				if _, ok := doc[k]; !ok {
					t.Errorf("missing key %q in %v", k, doc)
				}
			}
			if _, has := doc["mode"]; has != tt.wantMode {
				t.Errorf("mode present = %v, want %v", has, tt.wantMode)
			}
			services := doc["services"].(map[string]any)
			if len(services) != len(tt.wantKeys) {
				t.Errorf("services %v, want keys %v", services, tt.wantKeys)
			}
			for _, k := range tt.wantKeys {
				if _, ok := services[k]; !ok {
					t.Errorf("services lacks %q", k)
				}
			}
		})
	}
}
