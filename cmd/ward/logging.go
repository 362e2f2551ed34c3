package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"
)

// logFlags are the logging flags of a command that runs a server:
// --log-format text|json and --log-level debug|info|warn|error.
type logFlags struct {
	format, level *string
	verbose       *bool // -v: --log-level debug, kept for scripts
}

func addLogFlags(fs *flag.FlagSet) logFlags {
	f := addLogFormat(fs, "info")
	f.verbose = fs.Bool("v", false, "debug logging (same as --log-level debug)")
	return f
}

// addLogFormat adds --log-format and --log-level (default level) alone.
func addLogFormat(fs *flag.FlagSet, level string) logFlags {
	return logFlags{
		format:  fs.String("log-format", "text", "log `format`: text (logfmt) or json (one object a line)"),
		level:   fs.String("log-level", level, "least `level` logged: debug, info, warn or error"),
		verbose: new(bool),
	}
}

// logger builds the logger the flags ask for, writing to w.
func (f logFlags) logger(w io.Writer) (*slog.Logger, error) {
	level := *f.level
	if *f.verbose {
		level = "debug"
	}
	return newLogger(w, *f.format, level)
}

// newLogger returns a slog logger of the given format and least level.
// Every record passes through scrubSecrets first: ward's own code never
// logs a secret on purpose, and this catches what an error message from
// elsewhere might carry.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil || strings.ContainsAny(level, "+-") {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv, ReplaceAttr: scrubSecrets}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// secretKeys are attribute keys whose values are never logged.
var secretKeys = regexp.MustCompile(`(?i)(authorization|password|passwd|secret|token|credential|api[_-]?key|private[_-]?key|cookie|dpop)`)

// secretValues are the shapes of secrets inside a value: ward's bearer
// credentials, JWTs (grants, SVIDs), "Bearer"/"DPoP" authorization values,
// PEM private keys and userinfo in URLs.
var secretValues = regexp.MustCompile(`ward_[A-Za-z0-9_-]{16,}|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*|(?i:bearer|dpop) [A-Za-z0-9._~+/=-]{8,}|-----BEGIN [A-Z ]*PRIVATE KEY-----[^-]*-----END [A-Z ]*PRIVATE KEY-----|://[^/@\s:]+:[^/@\s]+@`)

// scrubSecrets replaces a secret-named attribute's value, and any secret
// found inside a string value, with [redacted].
func scrubSecrets(groups []string, a slog.Attr) slog.Attr {
	if a.Key != slog.MessageKey && secretKeys.MatchString(a.Key) && a.Value.Kind() != slog.KindGroup {
		return slog.String(a.Key, "[redacted]")
	}
	v := a.Value.Resolve()
	var s string
	switch v.Kind() {
	case slog.KindString:
		s = v.String()
	case slog.KindAny:
		err, ok := v.Any().(error)
		if !ok {
			return a
		}
		s = err.Error()
	default:
		return a
	}
	if secretValues.MatchString(s) {
		return slog.String(a.Key, secretValues.ReplaceAllStringFunc(s, func(m string) string {
			if strings.HasPrefix(m, "://") {
				return "://[redacted]@"
			}
			return "[redacted]"
		}))
	}
	return a
}
