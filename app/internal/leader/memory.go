package leader

import (
	"context"
	"sync/atomic"
)

var _ Elector = (*Single)(nil)

// Single is the elector of standalone mode: the only node always leads.
type Single struct{ leading atomic.Bool }

// NewSingle returns an elector that is always elected.
func NewSingle() *Single { return &Single{} }

// Run leads until ctx ends.
func (s *Single) Run(ctx context.Context, lead func(ctx context.Context)) error {
	s.leading.Store(true)
	defer s.leading.Store(false)
	lead(ctx)
	return nil
}

func (s *Single) IsLeader() bool { return s.leading.Load() }

// Resign is a no-op: there is nobody to hand over to; Run's ctx ends the work.
func (s *Single) Resign(context.Context) error { return nil }
