package leader

import "testing"

func TestSingleContract(t *testing.T) {
	runElectorContract(t, func(t *testing.T) Elector { return NewSingle() })
}
