package server

import (
	"context"
	"strings"
	"testing"

	"github.com/quibly/quibly/app/internal/config"
)

func TestSetupDatabaseNamesWhatIsMissing(t *testing.T) {
	for _, tc := range []struct {
		cfg     config.Config
		missing []string
	}{
		{config.Config{}, []string{"DATABASE_URL", "DATABASE_SECRET_ARN", "DATABASE_ADMIN_SECRET_ARN"}},
		{config.Config{DatabaseURL: "postgres://db/quibly", DatabaseSecretARN: "quibly/db-app"}, []string{"DATABASE_ADMIN_SECRET_ARN"}},
	} {
		err := SetupDatabase(context.Background(), tc.cfg)
		for _, name := range tc.missing {
			if err == nil || !strings.Contains(err.Error(), name+": -setup-db needs it") {
				t.Errorf("SetupDatabase(%+v) = %v, want %s named", tc.cfg, err, name)
			}
		}
	}
}
