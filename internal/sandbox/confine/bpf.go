//go:build linux

package confine

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// assembler builds a classic BPF program with symbolic jump targets. It emits
// only the few instructions a seccomp filter of this package needs: an
// absolute 32-bit load from seccomp_data, JEQ, JGE and JSET against a
// constant, and RET of a constant. Jump targets are labels, resolved by assemble, which
// fails if a target lies behind the jump or further than a conditional jump
// can reach (255 instructions); the filter keeps its jumps short by placing
// each RET right after the test that leads to it.
type assembler struct {
	insns  []insn
	labels map[string]int
}

type insn struct {
	code   uint16
	k      uint32
	jt, jf string // labels; "" is the next instruction
}

// Classic BPF opcodes (linux/bpf_common.h) used by the filter.
const (
	opLoadAbsW = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
	opJEQ      = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
	opJGE      = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
	opJSET     = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
	opRet      = unix.BPF_RET | unix.BPF_K
)

// maxInsns is BPF_MAXINSNS: the kernel refuses longer programs.
const maxInsns = 4096

func (a *assembler) emit(i insn) { a.insns = append(a.insns, i) }

// load loads the 32-bit word at offset off of struct seccomp_data into A.
func (a *assembler) load(off uint32) { a.emit(insn{code: opLoadAbsW, k: off}) }

// jeq jumps to jt if A == k, else to jf.
func (a *assembler) jeq(k uint32, jt, jf string) { a.emit(insn{code: opJEQ, k: k, jt: jt, jf: jf}) }

// jge jumps to jt if A >= k (unsigned), else to jf.
func (a *assembler) jge(k uint32, jt, jf string) { a.emit(insn{code: opJGE, k: k, jt: jt, jf: jf}) }

// jset jumps to jt if A&k != 0, else to jf.
func (a *assembler) jset(k uint32, jt, jf string) { a.emit(insn{code: opJSET, k: k, jt: jt, jf: jf}) }

// ret ends the program with action k.
func (a *assembler) ret(k uint32) { a.emit(insn{code: opRet, k: k}) }

// label names the next instruction.
func (a *assembler) label(name string) {
	if a.labels == nil {
		a.labels = make(map[string]int)
	}
	a.labels[name] = len(a.insns)
}

func (a *assembler) assemble() ([]unix.SockFilter, error) {
	if len(a.insns) > maxInsns {
		return nil, fmt.Errorf("bpf: %d instructions, the kernel takes at most %d", len(a.insns), maxInsns)
	}
	prog := make([]unix.SockFilter, len(a.insns))
	for pc, in := range a.insns {
		prog[pc] = unix.SockFilter{Code: in.code, K: in.k}
		if in.code&0x07 != unix.BPF_JMP {
			continue
		}
		var err error
		if prog[pc].Jt, err = a.offset(pc, in.jt); err != nil {
			return nil, err
		}
		if prog[pc].Jf, err = a.offset(pc, in.jf); err != nil {
			return nil, err
		}
	}
	return prog, nil
}

// offset is the jump offset from the instruction at pc to label.
func (a *assembler) offset(pc int, label string) (uint8, error) {
	if label == "" {
		return 0, nil
	}
	target, ok := a.labels[label]
	if !ok {
		return 0, fmt.Errorf("bpf: instruction %d jumps to undefined label %q", pc, label)
	}
	off := target - pc - 1
	if off < 0 || off > 255 {
		return 0, fmt.Errorf("bpf: instruction %d cannot jump %d to label %q", pc, off, label)
	}
	return uint8(off), nil
}
