package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/quibly/quibly/app/internal/config"
	"github.com/quibly/quibly/app/internal/dbauth"
	"github.com/quibly/quibly/app/internal/store"
)

// SetupDatabase creates or updates the app's database role (quibly -setup-db): as the
// administrator named by DATABASE_ADMIN_SECRET_ARN, for the login in
// DATABASE_SECRET_ARN, on the database of DATABASE_URL. The servers never hold the
// administrator's login; this runs before each start (ExecStartPre on AWS).
func SetupDatabase(ctx context.Context, cfg config.Config) error {
	var missing []error
	for name, v := range map[string]string{"DATABASE_URL": cfg.DatabaseURL, "DATABASE_SECRET_ARN": cfg.DatabaseSecretARN,
		"DATABASE_ADMIN_SECRET_ARN": cfg.DatabaseAdminSecretARN} {
		if v == "" {
			missing = append(missing, fmt.Errorf("%s: -setup-db needs it", name))
		}
	}
	if err := errors.Join(missing...); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	admin, err := dbauth.NewSecretsManager(ctx, dbauth.SecretsManagerConfig{SecretID: cfg.DatabaseAdminSecretARN})
	if err != nil {
		return fmt.Errorf("DATABASE_ADMIN_SECRET_ARN: %w", err)
	}
	app, err := dbauth.NewSecretsManager(ctx, dbauth.SecretsManagerConfig{SecretID: cfg.DatabaseSecretARN})
	if err != nil {
		return fmt.Errorf("DATABASE_SECRET_ARN: %w", err)
	}
	return store.SetupRole(ctx, store.RoleSetup{URL: cfg.DatabaseURL, Admin: admin, App: app})
}
