"""The proof tier's BPF interpreter (bpf_eval.py) is itself part of the
proof, so its semantics and its validator are tested on hand-written
programs: every opcode class libseccomp can emit, the kernel's refusal
rules, and the run-time guards."""
import struct

import pytest

import bpf_eval as B


def I(code, k=0, jt=0, jf=0):
    return B.Insn(code, jt, jf, k)


LD_ABS = B.BPF_LD | B.BPF_W | B.BPF_ABS
RET_K = B.BPF_RET | B.BPF_K
RET_A = B.BPF_RET | B.BPF_A
JEQ_K = B.BPF_JMP | B.BPF_JEQ | B.BPF_K


def run(insns, **data):
    return B.Program(insns).run(B.SeccompData(**data))


def test_seccomp_data_layout():
    d = B.SeccompData(nr=0x12345678, arch=B.AUDIT_ARCH_X86_64, ip=0x1122334455667788,
                      args=(0xaaaaaaaabbbbbbbb, 1, 2, 3, 4, 0xffffffff00000000))
    assert d.load(0) == 0x12345678
    assert d.load(4) == B.AUDIT_ARCH_X86_64
    assert d.load(8) == 0x55667788 and d.load(12) == 0x11223344
    assert d.load(16) == 0xbbbbbbbb and d.load(20) == 0xaaaaaaaa   # low half first
    assert d.load(24) == 1 and d.load(28) == 0
    assert d.load(56) == 0 and d.load(60) == 0xffffffff
    assert B.SeccompData(nr=-1).load(0) == 0xffffffff
    for bad in (1, 2, 3, 64, 68, 1 << 31):
        with pytest.raises(B.BPFError):
            d.load(bad)


@pytest.mark.parametrize("offset,expected", [(0, 7), (4, 0xc000003e), (16, 5), (20, 6)])
def test_ld_abs(offset, expected):
    assert run([I(LD_ABS, offset), I(RET_A)], nr=7, args=((6 << 32) | 5,)) == expected


@pytest.mark.parametrize("op,a,src,expected", [
    (B.BPF_ADD, 0xffffffff, 2, 1), (B.BPF_SUB, 1, 2, 0xffffffff), (B.BPF_MUL, 0x10000, 0x10000, 0),
    (B.BPF_DIV, 7, 2, 3), (B.BPF_AND, 0xf0f0, 0xff00, 0xf000), (B.BPF_OR, 0xf0, 0x0f, 0xff),
    (B.BPF_XOR, 0xff, 0x0f, 0xf0), (B.BPF_LSH, 0x80000001, 1, 2), (B.BPF_RSH, 0x80000000, 31, 1),
])
def test_alu_k_and_x(op, a, src, expected):
    k_prog = [I(B.BPF_LD | B.BPF_IMM, a), I(B.BPF_ALU | op | B.BPF_K, src), I(RET_A)]
    x_prog = [I(B.BPF_LDX | B.BPF_IMM, src), I(B.BPF_LD | B.BPF_IMM, a),
              I(B.BPF_ALU | op | B.BPF_X), I(RET_A)]
    assert run(k_prog, nr=0) == expected
    assert run(x_prog, nr=0) == expected


def test_neg_tax_txa_mem_len():
    prog = [I(B.BPF_LD | B.BPF_IMM, 5), I(B.BPF_ALU | B.BPF_NEG), I(B.BPF_ST, 3),
            I(B.BPF_MISC | B.BPF_TAX), I(B.BPF_LD | B.BPF_IMM, 0), I(B.BPF_MISC | B.BPF_TXA),
            I(B.BPF_LDX | B.BPF_MEM, 3), I(B.BPF_STX, 4), I(B.BPF_LD | B.BPF_MEM, 4), I(RET_A)]
    assert run(prog, nr=0) == (-5) & 0xffffffff
    assert run([I(B.BPF_LD | B.BPF_W | B.BPF_LEN), I(RET_A)], nr=0) == 64
    assert run([I(B.BPF_LDX | B.BPF_W | B.BPF_LEN), I(B.BPF_MISC | B.BPF_TXA), I(RET_A)], nr=0) == 64


def test_div_by_zero_x_returns_kill_thread():
    prog = [I(B.BPF_LDX | B.BPF_IMM, 0), I(B.BPF_LD | B.BPF_IMM, 1), I(B.BPF_ALU | B.BPF_DIV | B.BPF_X),
            I(RET_K, B.SECCOMP_RET_ALLOW)]
    assert run(prog, nr=0) == B.SECCOMP_RET_KILL_THREAD


@pytest.mark.parametrize("op,a,k,taken", [
    (B.BPF_JEQ, 5, 5, True), (B.BPF_JEQ, 5, 6, False), (B.BPF_JGT, 6, 5, True), (B.BPF_JGT, 5, 5, False),
    (B.BPF_JGE, 5, 5, True), (B.BPF_JGE, 4, 5, False), (B.BPF_JSET, 6, 2, True), (B.BPF_JSET, 5, 2, False),
    (B.BPF_JGT, 0xffffffff, 1, True),  # unsigned compare
])
def test_jumps(op, a, k, taken):
    for src in (B.BPF_K, B.BPF_X):
        prog = [I(B.BPF_LDX | B.BPF_IMM, k), I(B.BPF_LD | B.BPF_IMM, a),
                I(B.BPF_JMP | op | src, k, 1, 2), I(RET_K, 0), I(RET_K, 1), I(RET_K, 2)]
        assert run(prog, nr=0) == (1 if taken else 2)
    assert run([I(B.BPF_JMP | B.BPF_JA, 1), I(RET_K, 0), I(RET_K, 9)], nr=0) == 9


def test_split_ret_and_unknown_action():
    assert B.split_ret(0x00050026) == (B.SECCOMP_RET_ERRNO, 38)
    assert B.split_ret(0x7fff0000) == (B.SECCOMP_RET_ALLOW, 0)
    assert B.split_ret(0x12340000)[0] == B.SECCOMP_RET_KILL_PROCESS


@pytest.mark.parametrize("name,insns", [
    ("empty", []),
    ("too long", [I(RET_K)] * 4097),
    ("last not ret", [I(B.BPF_LD | B.BPF_IMM, 0)]),
    ("unaligned load", [I(LD_ABS, 2), I(RET_A)]),
    ("load past seccomp_data", [I(LD_ABS, 64), I(RET_A)]),
    ("ld half-word (not allowed in seccomp)", [I(B.BPF_LD | B.BPF_H | B.BPF_ABS, 0), I(RET_A)]),
    ("ld ind (not allowed)", [I(B.BPF_LD | B.BPF_W | B.BPF_IND, 0), I(RET_A)]),
    ("mod (not allowed)", [I(B.BPF_ALU | B.BPF_MOD | B.BPF_K, 3), I(RET_A)]),
    ("div by constant 0", [I(B.BPF_ALU | B.BPF_DIV | B.BPF_K, 0), I(RET_A)]),
    ("shift by 32", [I(B.BPF_ALU | B.BPF_LSH | B.BPF_K, 32), I(RET_A)]),
    ("ja out of bounds", [I(B.BPF_JMP | B.BPF_JA, 1), I(RET_K)]),
    ("ja backwards (wraps)", [I(RET_K), I(B.BPF_JMP | B.BPF_JA, 0xffffffff), I(RET_K)]),
    ("jeq true out of bounds", [I(JEQ_K, 0, 5, 0), I(RET_K)]),
    ("jeq false out of bounds", [I(JEQ_K, 0, 0, 5), I(RET_K)]),
    ("scratch slot 16", [I(B.BPF_ST, 16), I(RET_K)]),
    ("scratch read before write", [I(B.BPF_LD | B.BPF_MEM, 0), I(RET_A)]),
    ("scratch written on one path only", [I(JEQ_K, 0, 0, 1), I(B.BPF_ST, 0), I(B.BPF_LD | B.BPF_MEM, 0),
                                          I(RET_A)]),
    ("unknown opcode", [I(0xffff), I(RET_K)]),
])
def test_validator_rejects(name, insns):
    with pytest.raises(B.BPFError):
        B.Program(insns)


def test_decode_rejects_partial_insn():
    with pytest.raises(B.BPFError):
        B.decode(b"\x06\x00\x00\x00\x00\x00\xff")


def test_decode_roundtrip_and_coverage():
    raw = struct.pack("<HBBI", LD_ABS, 0, 0, 0) + struct.pack("<HBBI", JEQ_K, 0, 1, 39) + \
        struct.pack("<HBBI", RET_K, 0, 0, B.SECCOMP_RET_ALLOW) + \
        struct.pack("<HBBI", RET_K, 0, 0, B.SECCOMP_RET_ERRNO | 1)
    p = B.Program.from_bytes(raw)
    assert p.run(B.SeccompData(nr=39)) == B.SECCOMP_RET_ALLOW
    assert p.coverage == {0, 1, 2}
    assert p.run(B.SeccompData(nr=40)) == B.SECCOMP_RET_ERRNO | 1
    assert p.coverage == {0, 1, 2, 3}
    assert "jeq #0x27" in B.disasm(p.insns)
