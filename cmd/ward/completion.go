package main

import (
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
)

// cmdCompletion prints a completion script for bash, zsh or fish, made
// from the command table: commands, subcommands and each one's flags, so
// it never falls behind the commands.
//
//	source <(ward completion bash)                      # ~/.bashrc
//	ward completion zsh > "${fpath[1]}/_ward"            # then compinit
//	ward completion fish > ~/.config/fish/completions/ward.fish
func cmdCompletion(args []string, stdout io.Writer) error {
	fs := flags("completion")
	if err := parse(fs, args); err != nil {
		return err
	}
	shell, err := oneArg(fs, "a shell: bash, zsh or fish")
	if err != nil {
		return err
	}
	t := completionTable()
	switch shell {
	case "bash":
		writeBash(stdout, t)
	case "zsh":
		writeZsh(stdout, t)
	case "fish":
		writeFish(stdout, t)
	default:
		return usagef("shell %q: want bash, zsh or fish", shell)
	}
	return nil
}

// compEntry is what completes after one command path ("agent register").
type compEntry struct {
	path  string   // "" for ward itself
	words []string // subcommands, or flags of a leaf
}

var flagRE = regexp.MustCompile(`(?:^|[\s\[|])(--?[a-z][a-z0-9-]*)`)

// completionTable lists, per command path, what may follow it.
func completionTable() []compEntry {
	var out []compEntry
	var walk func(path string, cs []command)
	walk = func(path string, cs []command) {
		var names []string
		for _, c := range cs {
			names = append(names, c.name)
			p := strings.TrimSpace(path + " " + c.name)
			if len(c.subs) > 0 {
				walk(p, c.subs)
				continue
			}
			seen := map[string]bool{}
			var fl []string
			for _, m := range flagRE.FindAllStringSubmatch(c.args, -1) {
				if !seen[m[1]] {
					seen[m[1]] = true
					fl = append(fl, m[1])
				}
			}
			if c.run != nil && !seen["-o"] && takesOutput(p) {
				fl = append(fl, "-o")
			}
			sort.Strings(fl)
			out = append(out, compEntry{path: p, words: fl})
		}
		if path == "" {
			names = append(names, "help")
		}
		out = append(out, compEntry{path: path, words: names})
	}
	walk("", commands())
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out
}

// takesOutput reports whether a leaf accepts -o (it prints data).
func takesOutput(path string) bool {
	switch path {
	case "completion", "version", "help":
		return false
	}
	return true
}

func writeBash(w io.Writer, t []compEntry) {
	fmt.Fprintln(w, "# bash completion for ward: source <(ward completion bash)")
	fmt.Fprintln(w, "_ward() {")
	fmt.Fprintln(w, `  local cur="${COMP_WORDS[COMP_CWORD]}" cmdpath="" i w`)
	fmt.Fprintln(w, `  for ((i = 1; i < COMP_CWORD; i++)); do`)
	fmt.Fprintln(w, `    w="${COMP_WORDS[i]}"`)
	fmt.Fprintln(w, `    [[ $w == -* ]] && break`)
	fmt.Fprintln(w, `    case "${cmdpath:+$cmdpath }$w" in`)
	var known []string
	for _, e := range t {
		if e.path != "" {
			known = append(known, "'"+e.path+"'")
		}
	}
	fmt.Fprintf(w, "      %s) cmdpath=\"${cmdpath:+$cmdpath }$w\" ;;\n", strings.Join(known, "|"))
	fmt.Fprintln(w, `      *) break ;;`)
	fmt.Fprintln(w, `    esac`)
	fmt.Fprintln(w, `  done`)
	fmt.Fprintln(w, `  local words`)
	fmt.Fprintln(w, `  case "$cmdpath" in`)
	for _, e := range t {
		fmt.Fprintf(w, "    '%s') words=%q ;;\n", e.path, strings.Join(e.words, " "))
	}
	fmt.Fprintln(w, `    *) words="" ;;`)
	fmt.Fprintln(w, `  esac`)
	fmt.Fprintln(w, `  COMPREPLY=($(compgen -W "$words" -- "$cur"))`)
	fmt.Fprintln(w, `  [[ ${#COMPREPLY[@]} -eq 0 ]] && COMPREPLY=($(compgen -f -- "$cur"))`)
	fmt.Fprintln(w, "}")
	fmt.Fprintln(w, "complete -F _ward ward")
}

func writeZsh(w io.Writer, t []compEntry) {
	fmt.Fprintln(w, "#compdef ward")
	fmt.Fprintln(w, "# zsh completion for ward: ward completion zsh > \"${fpath[1]}/_ward\"")
	fmt.Fprintln(w, "_ward() {")
	fmt.Fprintln(w, `  local cmdpath="" i w`)
	fmt.Fprintln(w, `  local -a known`)
	var known []string
	for _, e := range t {
		if e.path != "" {
			known = append(known, "'"+e.path+"'")
		}
	}
	fmt.Fprintf(w, "  known=(%s)\n", strings.Join(known, " "))
	fmt.Fprintln(w, `  for ((i = 2; i < CURRENT; i++)); do`)
	fmt.Fprintln(w, `    w="${words[i]}"`)
	fmt.Fprintln(w, `    [[ $w == -* ]] && break`)
	fmt.Fprintln(w, `    if (( ${known[(Ie)${cmdpath:+$cmdpath }$w]} )); then cmdpath="${cmdpath:+$cmdpath }$w"; else break; fi`)
	fmt.Fprintln(w, `  done`)
	fmt.Fprintln(w, `  local -a opts`)
	fmt.Fprintln(w, `  case "$cmdpath" in`)
	for _, e := range t {
		fmt.Fprintf(w, "    '%s') opts=(%s) ;;\n", e.path, strings.Join(e.words, " "))
	}
	fmt.Fprintln(w, `  esac`)
	fmt.Fprintln(w, `  if (( ${#opts} )); then compadd -a opts; else _files; fi`)
	fmt.Fprintln(w, "}")
	fmt.Fprintln(w, `compdef _ward ward`)
}

func writeFish(w io.Writer, t []compEntry) {
	fmt.Fprintln(w, "# fish completion for ward: ward completion fish > ~/.config/fish/completions/ward.fish")
	fmt.Fprintln(w, "complete -c ward -f")
	for _, e := range t {
		parts := strings.Fields(e.path)
		var cond string
		switch len(parts) {
		case 0:
			cond = "__fish_use_subcommand"
		case 1:
			cond = fmt.Sprintf("__fish_seen_subcommand_from %s; and not __fish_seen_subcommand_from %s", parts[0], strings.Join(subsOf(t, e.path), " "))
			if len(subsOf(t, e.path)) == 0 {
				cond = "__fish_seen_subcommand_from " + parts[0]
			}
		default:
			cond = fmt.Sprintf("__fish_seen_subcommand_from %s; and __fish_seen_subcommand_from %s", parts[0], parts[len(parts)-1])
		}
		for _, word := range e.words {
			switch {
			case strings.HasPrefix(word, "--"):
				fmt.Fprintf(w, "complete -c ward -n '%s' -l %s -r\n", cond, word[2:])
			case strings.HasPrefix(word, "-"):
				fmt.Fprintf(w, "complete -c ward -n '%s' -o %s -r\n", cond, word[1:])
			default:
				fmt.Fprintf(w, "complete -c ward -n '%s' -a %s\n", cond, word)
			}
		}
	}
}

// subsOf is the subcommands of path, if it has any.
func subsOf(t []compEntry, path string) []string {
	for _, e := range t {
		if e.path == path && len(e.words) > 0 && !strings.HasPrefix(e.words[0], "-") {
			return e.words
		}
	}
	return nil
}
