package changes_test

import (
	"fmt"

	"github.com/ward-dev/ward/internal/sandbox/changes"
)

func ExampleProtected() {
	s := &changes.Set{Changes: []changes.Change{
		{Path: ".git/hooks/pre-commit", Kind: changes.Added, Type: changes.File, Mode: 0o755},
		{Path: "main.go", Kind: changes.Modified, Type: changes.File, Mode: 0o644},
		{Path: "old", Kind: changes.Deleted, Type: changes.Dir},
		{Path: "tls/server.pem", Kind: changes.Added, Type: changes.File, Mode: 0o600},
	}}
	fmt.Print(s.Summary())
	// A deleted directory may have held a .pem file.
	fmt.Println(changes.Protected(s, []string{".git/**", "*.pem"}))
	// Output:
	// A .git/hooks/pre-commit
	// M main.go
	// D old/
	// A tls/server.pem
	// 2 added, 1 modified, 1 deleted, 0 replaced (0 bytes)
	// [.git/hooks/pre-commit old tls/server.pem]
}

func ExampleUnifiedDiff() {
	fmt.Print(changes.UnifiedDiff("a/notes.txt", "b/notes.txt", []byte("alpha\nbeta\ngamma\n"), []byte("alpha\nBETA\ngamma\ndelta\n")))
	// Output:
	// --- a/notes.txt
	// +++ b/notes.txt
	// @@ -1,3 +1,4 @@
	//  alpha
	// -beta
	// +BETA
	//  gamma
	// +delta
}
