package enforce

import "testing"

func TestCheckURI(t *testing.T) {
	for _, ok := range []string{"file:///tmp/a.txt", "note://welcome", "demo://resource/dynamic/text/7", "file:///tmp/.hidden", "https://x/a?b=../c"} {
		if err := CheckURI(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"file:///tmp/../etc/shadow", "file:///tmp/./x", "file:///tmp/..", "file:///tmp/%2e%2e/etc", "file:///tmp/%2E%2E/etc",
		"file:///tmp%2fetc", "file:///tmp\\..\\etc", "file:///tmp/a\x00b", "file:///tmp/a%00",
		"file:///tmp/a?/../../etc/shadow", "FILE:///tmp/a#/../../etc/shadow", "file:///tmp/a?x"} {
		if err := CheckURI(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// FuzzCheckURI: an accepted URI never has a dot segment in its path.
func FuzzCheckURI(f *testing.F) {
	f.Add("file:///tmp/a")
	f.Add("file:///tmp/../a")
	f.Fuzz(func(t *testing.T, uri string) {
		if CheckURI(uri) != nil {
			return
		}
		for _, bad := range []string{"/../", "/./"} {
			if len(uri) >= len(bad) && contains(uri, bad) && !hasQueryBefore(uri, bad) {
				t.Fatalf("accepted %q", uri)
			}
		}
	})
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func hasQueryBefore(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i] == '?' || s[i] == '#' {
			return true
		}
		if s[i:i+len(sub)] == sub {
			return false
		}
	}
	return false
}

func TestTargetArgument(t *testing.T) {
	for name, want := range map[string]bool{
		"path": true, "paths": true, "file_id": true, "fileId": true, "reservation-id": true, "pageUrl": true, "URL": true, "uri": true, "name": true,
		"query": false, "q": false, "text": false, "body": false, "paid": false, "valid": false, "identity": false, "filenames": true, "profile": false,
	} {
		if got := targetArgument(name); got != want {
			t.Errorf("%q: %v, want %v", name, got, want)
		}
	}
}
