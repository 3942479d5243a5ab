"""A classic-BPF interpreter for seccomp filters, written from the kernel's
semantics (kernel/seccomp.c seccomp_check_filter + net/core/filter.c
bpf_check_classic, and the classic BPF machine of
Documentation/networking/filter.rst), independent of libseccomp.

    prog = Program.from_bytes(open("filter.bpf", "rb").read())   # validated
    ret = prog.run(SeccompData(nr=0, arch=AUDIT_ARCH_X86_64, args=(0,) * 6))
    action, data = split_ret(ret)

Validation (Program(...) raises BPFError) rejects what the kernel rejects:
an empty or > 4096-instruction program, an opcode outside seccomp's
allowlist, a load that is unaligned or outside struct seccomp_data, a jump
that leaves the program (jumps are unsigned offsets, so forward only: the
program always terminates), a constant division by zero or a shift >= 32, a
scratch-memory slot read before every path has written it, and a last
instruction that is not a RET.  At run time the interpreter still checks
every access and bounds the step count, so a bug in validation cannot make
it loop or read past the program.

struct seccomp_data (x86_64, little-endian):
    offset  0  int   nr
    offset  4  u32   arch
    offset  8  u64   instruction_pointer
    offset 16  u64   args[6]          (args[i] at 16 + 8*i; low half first)
Loads are 32-bit words at 4-byte aligned offsets 0..60.
"""
import struct

# struct sock_filter: u16 code, u8 jt, u8 jf, u32 k
INSN = struct.Struct("<HBBI")
BPF_MAXINSNS = 4096
BPF_MEMWORDS = 16
SECCOMP_DATA_SIZE = 64

# instruction classes
BPF_LD, BPF_LDX, BPF_ST, BPF_STX, BPF_ALU, BPF_JMP, BPF_RET, BPF_MISC = range(8)
# sizes / modes (ld/ldx)
BPF_W, BPF_H, BPF_B = 0x00, 0x08, 0x10
BPF_IMM, BPF_ABS, BPF_IND, BPF_MEM, BPF_LEN, BPF_MSH = 0x00, 0x20, 0x40, 0x60, 0x80, 0xa0
# alu/jmp operations
BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV, BPF_OR, BPF_AND, BPF_LSH, BPF_RSH, BPF_NEG, BPF_MOD, BPF_XOR = (
    0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xa0)
BPF_JA, BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET = 0x00, 0x10, 0x20, 0x30, 0x40
# source
BPF_K, BPF_X = 0x00, 0x08
# ret source
BPF_A = 0x10
# misc
BPF_TAX, BPF_TXA = 0x00, 0x80

# seccomp return values (include/uapi/linux/seccomp.h)
SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_KILL_THREAD = 0x00000000
SECCOMP_RET_TRAP = 0x00030000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_USER_NOTIF = 0x7fc00000
SECCOMP_RET_TRACE = 0x7ff00000
SECCOMP_RET_LOG = 0x7ffc0000
SECCOMP_RET_ALLOW = 0x7fff0000
SECCOMP_RET_ACTION_FULL = 0xffff0000
SECCOMP_RET_DATA = 0x0000ffff
KNOWN_ACTIONS = {
    SECCOMP_RET_KILL_PROCESS: "KILL_PROCESS", SECCOMP_RET_KILL_THREAD: "KILL_THREAD",
    SECCOMP_RET_TRAP: "TRAP", SECCOMP_RET_ERRNO: "ERRNO", SECCOMP_RET_USER_NOTIF: "USER_NOTIF",
    SECCOMP_RET_TRACE: "TRACE", SECCOMP_RET_LOG: "LOG", SECCOMP_RET_ALLOW: "ALLOW",
}

# include/uapi/linux/audit.h
AUDIT_ARCH_X86_64 = 0xc000003e
AUDIT_ARCH_I386 = 0x40000003
AUDIT_ARCH_AARCH64 = 0xc00000b7
AUDIT_ARCH_X32 = AUDIT_ARCH_X86_64  # x32 shares the arch; marked by nr bit 30
X32_SYSCALL_BIT = 0x40000000

M32 = 0xffffffff

# The opcodes seccomp accepts (kernel/seccomp.c seccomp_check_filter), as
# seen by the user (before the kernel rewrites the seccomp_data loads).
_ALU_OPS = (BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV, BPF_AND, BPF_OR, BPF_XOR, BPF_LSH, BPF_RSH)
SECCOMP_OPCODES = {
    BPF_LD | BPF_W | BPF_ABS, BPF_LD | BPF_W | BPF_LEN, BPF_LDX | BPF_W | BPF_LEN,
    BPF_RET | BPF_K, BPF_RET | BPF_A,
    BPF_ALU | BPF_NEG,
    BPF_LD | BPF_IMM, BPF_LDX | BPF_IMM, BPF_MISC | BPF_TAX, BPF_MISC | BPF_TXA,
    BPF_LD | BPF_MEM, BPF_LDX | BPF_MEM, BPF_ST, BPF_STX,
    BPF_JMP | BPF_JA,
} | {BPF_ALU | op | src for op in _ALU_OPS for src in (BPF_K, BPF_X)} \
  | {BPF_JMP | op | src for op in (BPF_JEQ, BPF_JGE, BPF_JGT, BPF_JSET) for src in (BPF_K, BPF_X)}


class BPFError(Exception):
    """The kernel would refuse this program (or it misbehaved at run time)."""


def split_ret(ret):
    """(action, data) of a seccomp return value; an action the kernel does
    not know is treated as KILL_PROCESS (kernel >= 4.14)."""
    action = ret & SECCOMP_RET_ACTION_FULL
    if action not in KNOWN_ACTIONS:
        action = SECCOMP_RET_KILL_PROCESS
    return action, ret & SECCOMP_RET_DATA


def action_name(ret):
    action, data = split_ret(ret)
    name = KNOWN_ACTIONS[action]
    if action in (SECCOMP_RET_ERRNO, SECCOMP_RET_TRAP, SECCOMP_RET_TRACE):
        return "%s(%d)" % (name, data)
    return name


class SeccompData:
    __slots__ = ("nr", "arch", "ip", "args", "_words")

    def __init__(self, nr, arch=AUDIT_ARCH_X86_64, args=(0, 0, 0, 0, 0, 0), ip=0):
        args = tuple(args) + (0,) * (6 - len(args))
        if len(args) != 6:
            raise ValueError("seccomp_data has 6 args")
        self.nr = nr & M32
        self.arch = arch & M32
        self.ip = ip & 0xffffffffffffffff
        self.args = tuple(a & 0xffffffffffffffff for a in args)
        raw = struct.pack("<IIQ6Q", self.nr, self.arch, self.ip, *self.args)
        assert len(raw) == SECCOMP_DATA_SIZE
        self._words = struct.unpack("<16I", raw)

    def load(self, k):
        """The 32-bit word at byte offset k (BPF_LD|BPF_W|BPF_ABS)."""
        if k >= SECCOMP_DATA_SIZE or k & 3:
            raise BPFError("load outside seccomp_data or unaligned: k=%d" % k)
        return self._words[k >> 2]

    def __repr__(self):
        return "SeccompData(nr=%#x, arch=%#x, args=(%s))" % (
            self.nr, self.arch, ", ".join("%#x" % a for a in self.args))


class Insn:
    __slots__ = ("code", "jt", "jf", "k")

    def __init__(self, code, jt, jf, k):
        self.code, self.jt, self.jf, self.k = code, jt, jf, k

    def __repr__(self):
        return "Insn(%#06x, %d, %d, %#x)" % (self.code, self.jt, self.jf, self.k)


def decode(raw):
    if len(raw) % INSN.size:
        raise BPFError("program size %d is not a multiple of %d" % (len(raw), INSN.size))
    return [Insn(*INSN.unpack_from(raw, off)) for off in range(0, len(raw), INSN.size)]


def _successors(pc, ins, n):
    cls = ins.code & 0x07
    if cls == BPF_RET:
        return ()
    if cls == BPF_JMP:
        if ins.code & 0xf0 == BPF_JA:
            return (pc + 1 + ins.k,)
        return (pc + 1 + ins.jt, pc + 1 + ins.jf)
    return (pc + 1,)


def validate(insns):
    """Raises BPFError for anything the kernel would refuse."""
    n = len(insns)
    if n == 0 or n > BPF_MAXINSNS:
        raise BPFError("program length %d outside 1..%d" % (n, BPF_MAXINSNS))
    for pc, ins in enumerate(insns):
        code, k = ins.code, ins.k
        if code not in SECCOMP_OPCODES:
            raise BPFError("pc %d: opcode %#x not allowed in seccomp filters" % (pc, code))
        cls = code & 0x07
        if code == BPF_LD | BPF_W | BPF_ABS and (k >= SECCOMP_DATA_SIZE or k & 3):
            raise BPFError("pc %d: load at offset %d outside seccomp_data or unaligned" % (pc, k))
        if cls == BPF_ALU:
            op = code & 0xf0
            if code & BPF_X == BPF_K and op == BPF_DIV and k == 0:
                raise BPFError("pc %d: division by constant 0" % pc)
            if code & BPF_X == BPF_K and op in (BPF_LSH, BPF_RSH) and k >= 32:
                raise BPFError("pc %d: shift by %d" % (pc, k))
        if code in (BPF_LD | BPF_MEM, BPF_LDX | BPF_MEM, BPF_ST, BPF_STX) and k >= BPF_MEMWORDS:
            raise BPFError("pc %d: scratch slot %d out of range" % (pc, k))
        if cls == BPF_JMP:
            if code & 0xf0 == BPF_JA:
                # k is unsigned: a "backwards" jump wraps to a huge offset.
                if k >= n - pc - 1:
                    raise BPFError("pc %d: ja +%d leaves the program" % (pc, k))
            elif pc + 1 + ins.jt >= n or pc + 1 + ins.jf >= n:
                raise BPFError("pc %d: conditional jump leaves the program" % pc)
    if insns[-1].code & 0x07 != BPF_RET:
        raise BPFError("last instruction is not a RET")
    # Scratch memory must be written on every path before it is read
    # (bpf_check_classic check_load_and_stores): a forward data-flow pass,
    # valid because every edge goes forward.
    full = (1 << BPF_MEMWORDS) - 1
    written = [full] * n
    written[0] = 0
    for pc, ins in enumerate(insns):
        have = written[pc]
        if ins.code in (BPF_ST, BPF_STX):
            have |= 1 << ins.k
        elif ins.code in (BPF_LD | BPF_MEM, BPF_LDX | BPF_MEM) and not have >> ins.k & 1:
            raise BPFError("pc %d: scratch slot %d read before written" % (pc, ins.k))
        for s in _successors(pc, ins, n):
            if s <= pc:
                raise BPFError("pc %d: backwards jump to %d" % (pc, s))
            written[s] &= have


class Program:
    def __init__(self, insns):
        validate(insns)
        self.insns = list(insns)
        self.coverage = set()

    @classmethod
    def from_bytes(cls, raw):
        return cls(decode(raw))

    def __len__(self):
        return len(self.insns)

    def run(self, data, trace=None):
        """The 32-bit seccomp return value for data (a SeccompData).  Every
        executed pc is added to self.coverage (and to trace, a list)."""
        insns = self.insns
        n = len(insns)
        A = X = 0
        mem = [None] * BPF_MEMWORDS
        pc = 0
        steps = 0
        cov = self.coverage
        while True:
            if not 0 <= pc < n:
                raise BPFError("pc %d outside the program" % pc)
            steps += 1
            if steps > n:  # forward-only jumps: at most n steps
                raise BPFError("no termination after %d steps" % steps)
            cov.add(pc)
            if trace is not None:
                trace.append(pc)
            ins = insns[pc]
            code, k = ins.code, ins.k
            cls = code & 0x07
            nxt = pc + 1
            if cls == BPF_RET:
                return (A if code & 0x18 == BPF_A else k) & M32
            if cls == BPF_LD:
                mode = code & 0xe0
                if mode == BPF_ABS:
                    A = data.load(k)
                elif mode == BPF_IMM:
                    A = k
                elif mode == BPF_MEM:
                    if mem[k] is None:
                        raise BPFError("pc %d: read of unwritten scratch slot %d" % (pc, k))
                    A = mem[k]
                elif mode == BPF_LEN:
                    A = SECCOMP_DATA_SIZE
                else:
                    raise BPFError("pc %d: bad ld %#x" % (pc, code))
            elif cls == BPF_LDX:
                mode = code & 0xe0
                if mode == BPF_IMM:
                    X = k
                elif mode == BPF_MEM:
                    if mem[k] is None:
                        raise BPFError("pc %d: read of unwritten scratch slot %d" % (pc, k))
                    X = mem[k]
                elif mode == BPF_LEN:
                    X = SECCOMP_DATA_SIZE
                else:
                    raise BPFError("pc %d: bad ldx %#x" % (pc, code))
            elif cls == BPF_ST:
                mem[k] = A
            elif cls == BPF_STX:
                mem[k] = X
            elif cls == BPF_ALU:
                op = code & 0xf0
                src = X if code & BPF_X else k
                if op == BPF_ADD:
                    A = (A + src) & M32
                elif op == BPF_SUB:
                    A = (A - src) & M32
                elif op == BPF_MUL:
                    A = (A * src) & M32
                elif op == BPF_DIV:
                    if src == 0:
                        # classic BPF: X == 0 makes the filter return 0,
                        # i.e. SECCOMP_RET_KILL_THREAD
                        return 0
                    A = A // src
                elif op == BPF_AND:
                    A &= src
                elif op == BPF_OR:
                    A |= src
                elif op == BPF_XOR:
                    A ^= src
                elif op == BPF_LSH:
                    if src >= 32:
                        raise BPFError("pc %d: shift by %d is undefined" % (pc, src))
                    A = (A << src) & M32
                elif op == BPF_RSH:
                    if src >= 32:
                        raise BPFError("pc %d: shift by %d is undefined" % (pc, src))
                    A >>= src
                elif op == BPF_NEG:
                    A = (-A) & M32
                else:
                    raise BPFError("pc %d: bad alu %#x" % (pc, code))
            elif cls == BPF_JMP:
                op = code & 0xf0
                if op == BPF_JA:
                    nxt = pc + 1 + k
                else:
                    src = X if code & BPF_X else k
                    if op == BPF_JEQ:
                        cond = A == src
                    elif op == BPF_JGT:
                        cond = A > src
                    elif op == BPF_JGE:
                        cond = A >= src
                    elif op == BPF_JSET:
                        cond = (A & src) != 0
                    else:
                        raise BPFError("pc %d: bad jmp %#x" % (pc, code))
                    nxt = pc + 1 + (ins.jt if cond else ins.jf)
                if nxt <= pc:
                    raise BPFError("pc %d: backwards jump" % pc)
            elif cls == BPF_MISC:
                if code & 0xf8 == BPF_TAX:
                    X = A
                elif code & 0xf8 == BPF_TXA:
                    A = X
                else:
                    raise BPFError("pc %d: bad misc %#x" % (pc, code))
            pc = nxt


_NAMES = {BPF_ADD: "add", BPF_SUB: "sub", BPF_MUL: "mul", BPF_DIV: "div", BPF_OR: "or",
          BPF_AND: "and", BPF_LSH: "lsh", BPF_RSH: "rsh", BPF_NEG: "neg", BPF_XOR: "xor"}
_JNAMES = {BPF_JEQ: "jeq", BPF_JGT: "jgt", BPF_JGE: "jge", BPF_JSET: "jset"}
_FIELDS = {0: "nr", 4: "arch", 8: "ip.lo", 12: "ip.hi"}
for _i in range(6):
    _FIELDS[16 + 8 * _i] = "args[%d].lo" % _i
    _FIELDS[20 + 8 * _i] = "args[%d].hi" % _i


def disasm(insns):
    """One line per instruction, for golden files and failure messages."""
    out = []
    for pc, ins in enumerate(insns):
        code, k = ins.code, ins.k
        cls = code & 0x07
        if code == BPF_LD | BPF_W | BPF_ABS:
            s = "ld  [%d]  ; %s" % (k, _FIELDS.get(k, "?"))
        elif code == BPF_LD | BPF_IMM:
            s = "ld  #%#x" % k
        elif code == BPF_LDX | BPF_IMM:
            s = "ldx #%#x" % k
        elif code == BPF_LD | BPF_MEM:
            s = "ld  M[%d]" % k
        elif code == BPF_LDX | BPF_MEM:
            s = "ldx M[%d]" % k
        elif code == BPF_ST:
            s = "st  M[%d]" % k
        elif code == BPF_STX:
            s = "stx M[%d]" % k
        elif cls == BPF_ALU:
            op = code & 0xf0
            s = _NAMES.get(op, "alu?") + ("" if op == BPF_NEG else (" x" if code & BPF_X else " #%#x" % k))
        elif cls == BPF_JMP and code & 0xf0 == BPF_JA:
            s = "ja  %d" % (pc + 1 + k)
        elif cls == BPF_JMP:
            src = "x" if code & BPF_X else "#%#x" % k
            s = "%s %s, %d, %d" % (_JNAMES.get(code & 0xf0, "j?"), src, pc + 1 + ins.jt, pc + 1 + ins.jf)
        elif cls == BPF_RET:
            s = "ret a" if code & 0x18 == BPF_A else "ret #%#x  ; %s" % (k, action_name(k))
        elif code == BPF_MISC | BPF_TAX:
            s = "tax"
        elif code == BPF_MISC | BPF_TXA:
            s = "txa"
        else:
            s = "?? code=%#x k=%#x" % (code, k)
        out.append("%4d: %s" % (pc, s))
    return "\n".join(out)


if __name__ == "__main__":
    import sys
    with open(sys.argv[1], "rb") as f:
        print(disasm(decode(f.read())))
