package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// migrationFS holds the schema of every backend, one directory per backend, one
// numbered file per step (0001_init.sql, 0002_…). Files are never edited once
// released: a schema change is a new file.
//
//go:embed migrations
var migrationFS embed.FS

// migration is one numbered schema step.
type migration struct {
	Version int
	Name    string
	SQL     string
}

// loadMigrations reads dir in fsys and returns its steps ordered by version. A file
// name must start with a positive number followed by '_'; duplicates are an error so
// that two branches adding "0002_…" cannot both ship silently.
func loadMigrations(fsys fs.FS, dir string) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations %s: %w", dir, err)
	}
	var out []migration
	seen := map[int]string{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must look like 0001_description.sql", e.Name())
		}
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrations %s and %s share version %d", prev, e.Name(), v)
		}
		seen[v] = e.Name()
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		out = append(out, migration{Version: v, Name: e.Name(), SQL: string(b)})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no migrations in %s", dir)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// migrationTx is what the shared runner needs from one backend's open transaction.
// Each backend adapts its own driver and SQL dialect; the rules (order, refusal of a
// newer schema, all-or-nothing) live once, in migrateTx.
type migrationTx interface {
	// ensureTable creates the schema_migrations bookkeeping table when missing.
	ensureTable(ctx context.Context) error
	// appliedVersions lists the versions already recorded.
	appliedVersions(ctx context.Context) ([]int, error)
	// apply runs one step and records it.
	apply(ctx context.Context, m migration) error
}

// migrateUpTo, when positive, stops migrations after that version: tests set it to
// build a database at an earlier schema, fill it, and migrate it on from there.
var migrateUpTo int

// migrateTx brings the schema in dir up to date inside tx; the caller commits. The
// caller also makes sure no other process migrates at the same time.
func migrateTx(ctx context.Context, tx migrationTx, dir string) error {
	steps, err := loadMigrations(migrationFS, dir)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if err := tx.ensureTable(ctx); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	versions, err := tx.appliedVersions(ctx)
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	applied := map[int]bool{}
	latest := 0
	for _, v := range versions {
		applied[v] = true
		latest = max(latest, v)
	}
	if known := steps[len(steps)-1].Version; latest > known {
		// Running an old binary on a newer schema risks writing rows it does not understand.
		return fmt.Errorf("store: database schema version %d is newer than this binary knows (%d); upgrade Quibly", latest, known)
	}
	for _, m := range steps {
		if migrateUpTo > 0 && m.Version > migrateUpTo {
			break
		}
		if applied[m.Version] {
			continue
		}
		if err := tx.apply(ctx, m); err != nil {
			return fmt.Errorf("store: migration %s: %w", m.Name, err)
		}
	}
	return nil
}
