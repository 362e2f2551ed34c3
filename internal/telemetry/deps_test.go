package telemetry_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps observability at the edges: the pure cores never
// link the Prometheus or OpenTelemetry SDKs (a decision must not depend on
// whether it is watched), and wardauth, which services outside ward import,
// brings none of ward's node with it.
func TestDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	observability := []string{"github.com/prometheus/", "go.opentelemetry.io/otel/sdk", "go.opentelemetry.io/otel/exporters"}
	for _, tc := range []struct {
		pkg       string
		forbidden []string
		why       string
	}{
		{"github.com/ward-dev/ward/internal/policy", observability, "the decision core is pure"},
		{"github.com/ward-dev/ward/internal/audit", observability, "the log reports through hooks; it links no SDK"},
		{"github.com/ward-dev/ward/internal/quota", observability, "a pure core"},
		{"github.com/ward-dev/ward/internal/enforce", observability, "the pipeline decides the same watched or not"},
		{"github.com/ward-dev/ward/internal/ocsf", observability, "a pure mapping"},
		{"github.com/ward-dev/ward/internal/webhook", observability, "a delivery library"},
		{"github.com/ward-dev/ward/internal/gateway", []string{"github.com/prometheus/", "go.opentelemetry.io/otel/sdk", "go.opentelemetry.io/otel/exporters"},
			"the proxy uses only the OpenTelemetry API, whose no-op costs nothing"},
		{"github.com/ward-dev/ward/wardauth", append([]string{"github.com/ward-dev/ward/internal/server", "github.com/ward-dev/ward/internal/store",
			"github.com/ward-dev/ward/internal/gateway", "modernc.org/sqlite", "github.com/jackc/pgx"}, observability...),
			"services import it: it must not bring the node"},
	} {
		out, err := exec.Command("go", "list", "-deps", tc.pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", tc.pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, f := range tc.forbidden {
				if strings.HasPrefix(dep, f) {
					t.Errorf("%s imports %s: %s", tc.pkg, dep, tc.why)
				}
			}
		}
	}
}
