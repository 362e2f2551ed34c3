package audit

import (
	"context"
	"testing"
)

// sealAll seals sessions (a separate file, so that the regression tests
// can run against code without Seal by replacing it with a no-op).
func sealAll(t *testing.T, l *Log, sessions ...string) {
	t.Helper()
	for _, s := range sessions {
		if _, err := l.Seal(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
}
