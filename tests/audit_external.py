#!/usr/bin/python3
"""Verify Qiao's audit log with code that shares nothing with Qiao.

    audit_external.py --qiao PATH/qiao --fixture PATH/audit_fixture

Writes a log with tests/audit_fixture.c, reads it back through `qiao audit`
(vkey, checkpoint, export, prove, consistency, entry --raw) and checks all of
it with an independent implementation written here from the specifications
alone, using only the Python standard library and PyNaCl (Ed25519):

  c2sp.org/signed-note      note syntax, key ID, verifier key, Ed25519
  c2sp.org/tlog-checkpoint  origin, tree size, root hash
  c2sp.org/tlog-proof@v1    the text `qiao audit prove` prints
  RFC 9162 2.1.1            leaf hash, node hash, Merkle tree hash
  RFC 9162 2.1.3.2          inclusion proof verification
  RFC 9162 2.1.4.2          consistency proof verification

and checks that the verifier rejects a flipped bit in a proof hash, a leaf, a
note signature and a note text, so that it can fail.  Prints
"N passed, M failed" last; exits 1 on any failure.
"""

import argparse
import base64
import binascii
import hashlib
import json
import os
import subprocess
import sys
import tempfile

DEBIAN_PYTHON = "/usr/bin/python3"

try:
    import nacl.exceptions
    import nacl.signing
except ImportError as exc:  # the test must fail, not skip
    if (os.path.realpath(sys.executable) != os.path.realpath(DEBIAN_PYTHON)
            and os.access(DEBIAN_PYTHON, os.X_OK) and not os.environ.get("QIAO_AUDIT_EXTERNAL_REEXEC")):
        # another python3 came first (pyenv, a venv): PyNaCl is Debian's, so use Debian's python3
        print("note: %s has no PyNaCl (%s); running under %s" % (sys.executable, exc, DEBIAN_PYTHON))
        sys.stdout.flush()
        os.environ["QIAO_AUDIT_EXTERNAL_REEXEC"] = "1"
        os.execv(DEBIAN_PYTHON, [DEBIAN_PYTHON, os.path.abspath(__file__)] + sys.argv[1:])
    print("FAIL: PyNaCl is not importable by %s (%s); install Debian's python3-nacl "
          "(apt-get install -y python3-nacl)" % (sys.executable, exc))
    print("0 passed, 1 failed")
    sys.exit(1)

N_EXCHANGES = 300      # the fixture writes an ADMIN_ACTION entry, then these
EVERY = 64             # a checkpoint every EVERY entries, and a final one
ORIGIN = "qiao.test/audit"

PASSED = 0
FAILED = 0


def check(name, ok, detail=""):
    global PASSED, FAILED
    if ok:
        PASSED += 1
        print("ok    %s" % name)
    else:
        FAILED += 1
        print("FAIL  %s%s" % (name, (": " + detail) if detail else ""))
    return ok


class Bad(Exception):
    """Input that does not verify; the message says why."""


# ---- base64 and numbers ----------------------------------------------------------

def b64dec(s, what):
    """Strict standard base64 (RFC 4648 section 4): padded and canonical."""
    if isinstance(s, bytes):
        s = s.decode("ascii", "strict")
    try:
        raw = base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Bad("%s: not base64 (%s): %r" % (what, exc, s))
    if base64.b64encode(raw).decode("ascii") != s:
        raise Bad("%s: not canonical base64: %r" % (what, s))
    return raw


def decimal(s, what):
    if not s or not s.isascii() or not s.isdigit() or (len(s) > 1 and s[0] == "0"):
        raise Bad("%s: not a decimal without leading zeros: %r" % (what, s))
    v = int(s)
    if v >= 1 << 64:
        raise Bad("%s: above 2^64 - 1: %s" % (what, s))
    return v


# ---- c2sp.org/signed-note ----------------------------------------------------------

EM_DASH = "\u2014"
SIG_ED25519 = 0x01


def valid_key_name(name):
    # non-empty, no Unicode space, no '+'
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def key_id(name, pk):
    h = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([SIG_ED25519]) + pk).digest()
    return int.from_bytes(h[:4], "big")


def parse_vkey(vkey):
    """<name>+<8 hex key ID>+<base64(0x01 || 32-byte Ed25519 public key)>"""
    parts = vkey.split("+")
    if len(parts) != 3:
        raise Bad("verifier key: not name+id+key: %r" % vkey)
    name, hexid, keyb64 = parts
    if not valid_key_name(name):
        raise Bad("verifier key: bad key name %r" % name)
    if len(hexid) != 8 or any(c not in "0123456789abcdef" for c in hexid):
        raise Bad("verifier key: key ID is not 8 lower-case hex digits: %r" % hexid)
    key = b64dec(keyb64, "verifier key")
    if len(key) != 33 or key[0] != SIG_ED25519:
        raise Bad("verifier key: not 0x01 || 32-byte Ed25519 key (%d bytes, type %r)"
                  % (len(key), key[:1]))
    pk = key[1:]
    kid = int(hexid, 16)
    if kid != key_id(name, pk):
        raise Bad("verifier key: key ID %08x is not SHA-256(name||0x0A||0x01||key)[:4] = %08x"
                  % (kid, key_id(name, pk)))
    return name, kid, pk


def split_note(note):
    """bytes -> (text bytes including its final newline, [(name, key ID, sig)])."""
    try:
        s = note.decode("utf-8", "strict")
    except UnicodeDecodeError as exc:
        raise Bad("note: not UTF-8 (%s)" % exc)
    for c in s:
        if ord(c) < 0x20 and c != "\n":
            raise Bad("note: control character U+%04X" % ord(c))
    if not s.endswith("\n"):
        raise Bad("note: does not end in a newline")
    cut = s.rfind("\n\n")          # the text ends at the LAST blank line
    if cut < 0:
        raise Bad("note: no blank line before the signatures")
    text, block = s[:cut + 1], s[cut + 2:]
    if not block:
        raise Bad("note: no signature line")
    sigs = []
    for line in block[:-1].split("\n"):
        prefix = EM_DASH + " "
        if not line.startswith(prefix):
            raise Bad("note: signature line does not start with an em dash and a space: %r" % line)
        rest = line[len(prefix):]
        fields = rest.split(" ")
        if len(fields) != 2:
            raise Bad("note: signature line is not '— name base64': %r" % line)
        name, sigb64 = fields
        if not valid_key_name(name):
            raise Bad("note: bad key name in signature line %r" % line)
        raw = b64dec(sigb64, "note signature")
        if len(raw) < 5:
            raise Bad("note: signature too short (%d bytes)" % len(raw))
        sigs.append((name, int.from_bytes(raw[:4], "big"), raw[4:]))
    return text.encode("utf-8"), sigs


def verify_note(note, vkey):
    """Verify a signed note by vkey; returns the note text (bytes)."""
    name, kid, pk = parse_vkey(vkey)
    text, sigs = split_note(note)
    vk = nacl.signing.VerifyKey(pk)
    for sname, sid, sig in sigs:
        if sname != name or sid != kid:
            continue  # signatures of other keys are ignored
        if len(sig) != 64:
            raise Bad("note: the signature by %s is %d bytes, not 64" % (name, len(sig)))
        try:
            vk.verify(text, sig)
        except nacl.exceptions.BadSignatureError:
            raise Bad("note: the Ed25519 signature by %s+%08x does not verify" % (name, kid))
        return text
    raise Bad("note: no signature by %s+%08x" % (name, kid))


# ---- c2sp.org/tlog-checkpoint --------------------------------------------------------

def parse_checkpoint(text):
    """checkpoint note text (bytes) -> (origin, size, root)."""
    s = text.decode("utf-8")
    if not s.endswith("\n"):
        raise Bad("checkpoint: does not end in a newline")
    lines = s[:-1].split("\n")
    if len(lines) < 3:
        raise Bad("checkpoint: fewer than three lines")
    origin = lines[0]
    if not origin:
        raise Bad("checkpoint: empty origin")
    size = decimal(lines[1], "checkpoint size")
    root = b64dec(lines[2], "checkpoint root")
    if len(root) != 32:
        raise Bad("checkpoint: root is %d bytes, not 32" % len(root))
    for ext in lines[3:]:
        if not ext:
            raise Bad("checkpoint: empty extension line")
    return origin, size, root


def verify_checkpoint(note, vkey, origin=ORIGIN):
    o, size, root = parse_checkpoint(verify_note(note, vkey))
    if o != origin:
        raise Bad("checkpoint: origin %r, expected %r" % (o, origin))
    return size, root


# ---- RFC 9162 Merkle tree ----------------------------------------------------------------

def sha256(b):
    return hashlib.sha256(b).digest()


def leaf_hash(leaf):
    return sha256(b"\x00" + leaf)


def node_hash(left, right):
    return sha256(b"\x01" + left + right)


def mth(leaf_hashes):
    """MTH(D[n]) of RFC 9162 2.1.1, from the leaf hashes."""
    n = len(leaf_hashes)
    if n == 0:
        return sha256(b"")
    if n == 1:
        return leaf_hashes[0]
    k = 1
    while k << 1 < n:  # largest power of two smaller than n
        k <<= 1
    return node_hash(mth(leaf_hashes[:k]), mth(leaf_hashes[k:]))


def rfc_path(m, hs):
    """PATH(m, D[n]) of RFC 9162 2.1.3.1, from the definition (to compare with Qiao's)."""
    n = len(hs)
    if n == 1:
        return []
    k = 1
    while k << 1 < n:
        k <<= 1
    if m < k:
        return rfc_path(m, hs[:k]) + [mth(hs[k:])]
    return rfc_path(m - k, hs[k:]) + [mth(hs[:k])]


def rfc_subproof(m, hs, b):
    """SUBPROOF(m, D[n], b) of RFC 9162 2.1.4.1."""
    n = len(hs)
    if m == n:
        return [] if b else [mth(hs)]
    k = 1
    while k << 1 < n:
        k <<= 1
    if m <= k:
        return rfc_subproof(m, hs[:k], b) + [mth(hs[k:])]
    return rfc_subproof(m - k, hs[k:], False) + [mth(hs[:k])]


def verify_inclusion(index, size, leafh, path, root):
    """RFC 9162 2.1.3.2."""
    if index >= size:
        raise Bad("inclusion: index %d >= tree size %d" % (index, size))
    fn, sn, r = index, size - 1, leafh
    for p in path:
        if sn == 0:
            raise Bad("inclusion: proof longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise Bad("inclusion: proof shorter than the tree is deep")
    if r != root:
        raise Bad("inclusion: computed root %s != %s" % (r.hex(), root.hex()))


def verify_consistency(first, second, first_hash, second_hash, path):
    """RFC 9162 2.1.4.2."""
    if first > second or first == 0:
        raise Bad("consistency: need 0 < first <= second (%d, %d)" % (first, second))
    if first == second:
        if path:
            raise Bad("consistency: non-empty proof between equal sizes")
        if first_hash != second_hash:
            raise Bad("consistency: equal sizes but different roots")
        return
    if not path:
        raise Bad("consistency: empty proof")
    if first & (first - 1) == 0:  # an exact power of two
        path = [first_hash] + list(path)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise Bad("consistency: proof too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if fr != first_hash:
        raise Bad("consistency: reconstructed old root %s != %s" % (fr.hex(), first_hash.hex()))
    if sr != second_hash:
        raise Bad("consistency: reconstructed new root %s != %s" % (sr.hex(), second_hash.hex()))
    if sn != 0:
        raise Bad("consistency: proof too short")


# ---- c2sp.org/tlog-proof@v1 ---------------------------------------------------------------

def parse_tlog_proof(text):
    """bytes -> (index, [hashes], extra or None, signed checkpoint bytes)."""
    s = text.decode("utf-8")
    lines = s.split("\n")
    i = 0
    if lines[i] != "c2sp.org/tlog-proof@v1":
        raise Bad("tlog-proof: first line is %r" % lines[0])
    i += 1
    extra = None
    if lines[i].startswith("extra "):
        extra = b64dec(lines[i][6:], "tlog-proof extra")
        i += 1
    if not lines[i].startswith("index "):
        raise Bad("tlog-proof: expected the index line, got %r" % lines[i])
    index = decimal(lines[i][6:], "tlog-proof index")
    i += 1
    hashes = []
    while i < len(lines) and lines[i] != "":
        h = b64dec(lines[i], "tlog-proof hash")
        if len(h) != 32:
            raise Bad("tlog-proof: hash of %d bytes" % len(h))
        hashes.append(h)
        i += 1
    if i >= len(lines) - 1:
        raise Bad("tlog-proof: no empty line and checkpoint after the hashes")
    checkpoint = "\n".join(lines[i + 1:])
    if not checkpoint:
        raise Bad("tlog-proof: empty checkpoint")
    return index, hashes, extra, checkpoint.encode("utf-8")


def verify_tlog_proof(text, vkey, leaf):
    """The whole tlog proof against the leaf bytes; returns (index, size)."""
    index, hashes, _extra, ck = parse_tlog_proof(text)
    size, root = verify_checkpoint(ck, vkey)
    verify_inclusion(index, size, leaf_hash(leaf), hashes, root)
    return index, size


# ---- protobuf wire format (enough to read AuditEntry.index, field 1) ----------------------------

def varint(b, i):
    v, shift = 0, 0
    while True:
        if i >= len(b) or shift > 63:
            raise Bad("protobuf: truncated or overlong varint")
        c = b[i]
        i += 1
        v |= (c & 0x7f) << shift
        shift += 7
        if not c & 0x80:
            return v, i


def pb_fields(b):
    """Walk a protobuf message; {field number: [values]} (varints and byte strings)."""
    out, i = {}, 0
    while i < len(b):
        key, i = varint(b, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = varint(b, i)
        elif wt == 1:
            v, i = b[i:i + 8], i + 8
        elif wt == 2:
            n, i = varint(b, i)
            v, i = b[i:i + n], i + n
        elif wt == 5:
            v, i = b[i:i + 4], i + 4
        else:
            raise Bad("protobuf: wire type %d" % wt)
        if i > len(b) or num == 0:
            raise Bad("protobuf: truncated field %d" % num)
        out.setdefault(num, []).append(v)
    return out


# ---- negative checks: the verifier must reject these -----------------------------------------------

def flip(b, byte, bit=0):
    b = bytearray(b)
    b[byte] ^= 1 << bit
    return bytes(b)


def rejects(name, fn, want=None):
    """fn() must raise Bad (whose message contains `want`, when given)."""
    try:
        fn()
    except Bad as exc:
        if want and want not in str(exc):
            return check(name, False, "rejected, but for another reason: %s" % exc)
        return check(name, True)
    return check(name, False, "the verifier ACCEPTED it")


def tamper_note_sig(note):
    """Flip one bit of the Ed25519 signature bytes (key ID kept, base64 re-encoded)."""
    s = note.decode("utf-8")
    cut = s.rfind("\n\n")
    text, block = s[:cut + 2], s[cut + 2:]
    line, rest = block.split("\n", 1)
    head, b64 = line.rsplit(" ", 1)
    raw = flip(base64.b64decode(b64), 4 + 10, 3)
    return (text + head + " " + base64.b64encode(raw).decode() + "\n" + rest).encode("utf-8")


def tamper_note_keyid(note):
    s = note.decode("utf-8")
    cut = s.rfind("\n\n")
    text, block = s[:cut + 2], s[cut + 2:]
    line, rest = block.split("\n", 1)
    head, b64 = line.rsplit(" ", 1)
    raw = flip(base64.b64decode(b64), 0, 0)
    return (text + head + " " + base64.b64encode(raw).decode() + "\n" + rest).encode("utf-8")


def resign_root(note, new_root):
    """The checkpoint text with another root, signature kept."""
    s = note.decode("utf-8")
    lines = s.split("\n")
    lines[2] = base64.b64encode(new_root).decode()
    return "\n".join(lines).encode("utf-8")


# ---- running qiao ------------------------------------------------------------------------------------

def run(argv, what):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if p.returncode != 0:
        raise Bad("%s exited %d: %s" % (what, p.returncode, p.stderr.decode("utf-8", "replace").strip()))
    return p.stdout


def self_test():
    """The verifiers accept every proof the RFC's own definitions give for trees
    of 1..33 leaves, and reject each with one bit flipped: checked before they
    judge Qiao."""
    hs = [leaf_hash(b"leaf %d" % i) for i in range(33)]
    bad = 0
    for n in range(1, len(hs) + 1):
        t, root = hs[:n], mth(hs[:n])
        for m in range(n):
            p = rfc_path(m, t)
            try:
                verify_inclusion(m, n, t[m], p, root)
            except Bad:
                bad += 1
            for j in range(len(p)):
                try:
                    verify_inclusion(m, n, t[m], p[:j] + [flip(p[j], 0)] + p[j + 1:], root)
                    bad += 1
                except Bad:
                    pass
        for m in range(1, n + 1):
            p = rfc_subproof(m, t, True)
            try:
                verify_consistency(m, n, mth(t[:m]), root, p)
            except Bad:
                bad += 1
            for j in range(len(p)):
                try:
                    verify_consistency(m, n, mth(t[:m]), root, p[:j] + [flip(p[j], 31)] + p[j + 1:])
                    bad += 1
                except Bad:
                    pass
    check("self-test: the RFC 9162 verifiers accept the RFC's proofs for 1..33 leaves and "
          "reject each with a flipped bit", bad == 0, "%d wrong answers" % bad)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--qiao", required=True, help="the qiao binary")
    ap.add_argument("--fixture", required=True, help="the audit_fixture binary")
    ap.add_argument("--keep", action="store_true", help="keep the temporary store")
    a = ap.parse_args()
    for p in (a.qiao, a.fixture):
        if not os.access(p, os.X_OK):
            check("binary %s exists" % p, False, "not an executable file")
            return

    self_test()
    tmp = tempfile.mkdtemp(prefix="qiao-audit-external-")
    store = os.path.join(tmp, "store")
    try:
        _main(a, store)
    finally:
        if a.keep:
            print("store kept in %s" % store)
        else:
            subprocess.run(["rm", "-rf", "--", tmp])


def _main(a, store):
    q = [a.qiao, "audit"]

    def qa(*args):
        return run(q + [args[0], "--store", store] + list(args[1:]), "qiao audit " + " ".join(args))

    # the log: ADMIN_ACTION + N exchanges, checkpoints at 64, 128, ... and at the end
    try:
        run([a.fixture, store, str(N_EXCHANGES), str(EVERY)], "audit_fixture")
        check("audit_fixture wrote the log", True)
    except Bad as exc:
        check("audit_fixture wrote the log", False, str(exc))
        return
    total = N_EXCHANGES + 1

    # --- the verifier key
    vkey = qa("vkey").decode("utf-8").strip()
    try:
        name, kid, pk = parse_vkey(vkey)
        check("vkey parses, its key ID is SHA-256(name||0x0A||0x01||pk)[:4]", True)
        check("vkey name is the origin %s" % ORIGIN, name == ORIGIN, "name %r" % name)
    except Bad as exc:
        check("vkey parses, its key ID is SHA-256(name||0x0A||0x01||pk)[:4]", False, str(exc))
        return

    # --- the export: leaves and every checkpoint
    lines = qa("export").decode("utf-8").splitlines()
    docs = [json.loads(l) for l in lines if l.strip()]
    header = docs[0] if docs else {}
    entries = [d for d in docs if d.get("type") == "entry"]
    ckpts = [d for d in docs if d.get("type") == "checkpoint"]
    check("export header: qiao-audit-export/1, size %d, the same vkey" % total,
          header.get("type") == "header" and header.get("format") == "qiao-audit-export/1"
          and header.get("size") == total and header.get("vkey") == vkey, repr(header))
    check("export holds entries 0..%d in order" % (total - 1),
          [e.get("index") for e in entries] == list(range(total)),
          "%d entries" % len(entries))
    leaves = [base64.b64decode(e["leaf"]) for e in entries]
    try:
        idx_ok = all(pb_fields(l).get(1, [0])[-1] == i for i, l in enumerate(leaves))
        check("every leaf is a protobuf AuditEntry carrying its own index", idx_ok)
    except Bad as exc:
        check("every leaf is a protobuf AuditEntry carrying its own index", False, str(exc))
    lh = [leaf_hash(l) for l in leaves]
    roots = {}

    def root_of(n):
        if n not in roots:
            roots[n] = mth(lh[:n])
        return roots[n]

    want_sizes = list(range(EVERY, total + 1, EVERY)) + ([total] if total % EVERY else [])
    got_sizes = [c.get("tree_size") for c in ckpts]
    check("export has the checkpoints %s" % want_sizes, got_sizes == want_sizes, "has %s" % got_sizes)
    ck_notes = {}
    for c in ckpts:
        note = c["note"].encode("utf-8")
        ck_notes[c["tree_size"]] = note
        try:
            size, root = verify_checkpoint(note, vkey)
            check("checkpoint %d: signature, origin, size" % c["tree_size"], size == c["tree_size"],
                  "note says size %d" % size)
            check("checkpoint %d: root = Merkle tree hash of the exported leaves" % size,
                  size <= len(lh) and root == root_of(size),
                  "note %s, recomputed %s" % (root.hex(), root_of(min(size, len(lh))).hex()))
        except Bad as exc:
            check("checkpoint %d verifies" % c["tree_size"], False, str(exc))
    if not ck_notes:
        return
    latest = max(ck_notes)

    # --- `qiao audit checkpoint` prints the stored checkpoints verbatim
    cur = qa("checkpoint")
    check("checkpoint = the export's latest (size %d), byte for byte" % latest, cur == ck_notes[latest])
    try:
        size, root = verify_checkpoint(cur, vkey)
        check("checkpoint verifies: size %d, root recomputed" % size,
              size == total and root == root_of(total), "size %d" % size)
    except Bad as exc:
        check("checkpoint verifies", False, str(exc))
    c64 = qa("checkpoint", "--size", str(EVERY))
    check("checkpoint --size %d = the export's, byte for byte" % EVERY, c64 == ck_notes.get(EVERY))
    try:
        size, root = verify_checkpoint(c64, vkey)
        check("checkpoint --size %d verifies, root recomputed" % EVERY,
              size == EVERY and root == root_of(EVERY), "size %d" % size)
    except Bad as exc:
        check("checkpoint --size %d verifies" % EVERY, False, str(exc))

    # --- inclusion: `prove K` (latest checkpoint) and `prove K --size 64`, with `entry K --raw`
    proofs = {}
    cases = [(k, None) for k in (0, 1, 2, 63, 64, 65, 127, 128, 200, total - 2, total - 1)]
    cases += [(k, EVERY) for k in (0, 1, 31, 62, 63)] + [(k, 256) for k in (0, 255, 100)]
    for k, sz in cases:
        label = "prove %d%s" % (k, " --size %d" % sz if sz else "")
        try:
            text = qa("prove", str(k), *(["--size", str(sz)] if sz else []))
            raw = qa("entry", str(k), "--raw")
            check("entry %d --raw = the exported leaf" % k, k < len(leaves) and raw == leaves[k])
            index, hashes, extra, ck = parse_tlog_proof(text)
            want_ck = ck_notes.get(sz if sz else latest)
            check("%s: tlog-proof@v1 for index %d carrying the checkpoint verbatim" % (label, k),
                  index == k and ck == want_ck and extra is None,
                  "index %d, extra %r, checkpoint %s" % (index, extra, "same" if ck == want_ck else "DIFFERENT"))
            i, size = verify_tlog_proof(text, vkey, raw)
            check("%s: checkpoint signature and RFC 9162 inclusion of the leaf (%d hashes, size %d)"
                  % (label, len(hashes), size), i == k)
            check("%s: the hashes are PATH(%d, D[%d]) of RFC 9162 2.1.3.1" % (label, k, size),
                  hashes == rfc_path(k, lh[:size]))
            proofs[(k, sz)] = (text, raw)
        except Bad as exc:
            check(label + " verifies", False, str(exc))

    # qiao must refuse what it cannot prove
    p = subprocess.run(q + ["prove", "--store", store, str(total)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    check("prove %d (past the log) is refused with exit 1" % total, p.returncode == 1 and not p.stdout,
          "exit %d" % p.returncode)

    # --- consistency between checkpoints, and between other sizes against recomputed roots
    pairs = [(EVERY, latest), (EVERY, 2 * EVERY), (2 * EVERY, 3 * EVERY), (3 * EVERY, latest),
             (4 * EVERY, latest), (latest, latest), (1, latest), (1, 2), (3, 7), (5, 64), (63, 64),
             (64, 65), (100, 255), (129, 300), (17, total)]
    cons = {}
    for old, new in pairs:
        label = "consistency %d %d" % (old, new)
        try:
            out = qa("consistency", str(old), str(new)).decode("ascii")
            path = [b64dec(l, "consistency hash") for l in out.splitlines()]
            if any(len(h) != 32 for h in path):
                raise Bad("a hash is not 32 bytes")
            if old in ck_notes and new in ck_notes:
                s1, r1 = verify_checkpoint(ck_notes[old], vkey)
                s2, r2 = verify_checkpoint(ck_notes[new], vkey)
                against = "the two signed checkpoints' roots"
            else:
                r1, r2 = root_of(old), root_of(new)
                against = "the recomputed roots"
            verify_consistency(old, new, r1, r2, path)
            check("%s: RFC 9162 consistency (%d hashes) against %s" % (label, len(path), against), True)
            check("%s: the hashes are PROOF(%d, D[%d]) of RFC 9162 2.1.4.1" % (label, old, new),
                  path == rfc_subproof(old, lh[:new], True))
            cons[(old, new)] = (path, r1, r2)
        except Bad as exc:
            check(label + " verifies", False, str(exc))

    # --- negative checks: each flipped bit must make the verifier fail
    if (1, None) in proofs:
        text, raw = proofs[(1, None)]
        index, hashes, _, ck = parse_tlog_proof(text)
        s = text.decode("utf-8")
        first_hash_line = s.split("\n")[2]
        bad_hash = base64.b64encode(flip(base64.b64decode(first_hash_line), 5, 2)).decode()
        rejects("reject: inclusion proof with a flipped bit in a hash",
                lambda: verify_tlog_proof(s.replace(first_hash_line, bad_hash, 1).encode(), vkey, raw),
                "inclusion")
        rejects("reject: inclusion proof of a leaf with a flipped bit",
                lambda: verify_tlog_proof(text, vkey, flip(raw, len(raw) // 2, 0)), "inclusion")
        rejects("reject: inclusion proof for another index",
                lambda: verify_tlog_proof(text.replace(b"\nindex 1\n", b"\nindex 3\n", 1), vkey, raw),
                "inclusion")
        rejects("reject: inclusion proof with a hash missing",
                lambda: verify_inclusion(index, total, leaf_hash(raw), hashes[:-1],
                                         parse_checkpoint(verify_note(ck, vkey))[2]), "inclusion")
        rejects("reject: inclusion proof with a hash too many",
                lambda: verify_inclusion(index, total, leaf_hash(raw), hashes + [hashes[0]],
                                         parse_checkpoint(verify_note(ck, vkey))[2]), "inclusion")
    note = ck_notes[latest]
    text_len = note.decode("utf-8").rfind("\n\n") + 1
    rejects("reject: checkpoint with a flipped bit in the Ed25519 signature",
            lambda: verify_checkpoint(tamper_note_sig(note), vkey), "does not verify")
    rejects("reject: checkpoint with a flipped bit in the signature's key ID",
            lambda: verify_checkpoint(tamper_note_keyid(note), vkey), "no signature")
    rejects("reject: checkpoint with a flipped bit in the origin (note text)",
            lambda: verify_checkpoint(flip(note, 3, 0), vkey), "does not verify")
    size_at = len(ORIGIN) + 1  # first digit of the size line
    rejects("reject: checkpoint with a flipped bit in the size (note text)",
            lambda: verify_checkpoint(flip(note, size_at, 0), vkey), "does not verify")
    rejects("reject: checkpoint with another root (note text)",
            lambda: verify_checkpoint(resign_root(note, root_of(latest - 1)), vkey), "does not verify")
    rejects("reject: checkpoint with a flipped bit in the text's final newline area",
            lambda: verify_checkpoint(flip(note, text_len - 2, 0), vkey))
    other = nacl.signing.SigningKey(b"\x07" * 32).verify_key.encode()
    other_vkey = "%s+%08x+%s" % (ORIGIN, key_id(ORIGIN, other),
                                  base64.b64encode(b"\x01" + other).decode())
    rejects("reject: checkpoint checked with another key of the same name",
            lambda: verify_checkpoint(note, other_vkey), "no signature")
    if (1, None) in proofs:
        text, raw = proofs[(1, None)]
        s = text.decode("utf-8")
        ck_start = s.index("\n\n") + 2
        rejects("reject: tlog proof whose checkpoint signature has a flipped bit",
                lambda: verify_tlog_proof((s[:ck_start] + tamper_note_sig(s[ck_start:].encode()).decode())
                                          .encode(), vkey, raw), "does not verify")
        rejects("reject: tlog proof whose checkpoint text has a flipped bit",
                lambda: verify_tlog_proof(flip(text, ck_start + 2, 0), vkey, raw), "does not verify")
    if (EVERY, latest) in cons:
        path, r1, r2 = cons[(EVERY, latest)]
        rejects("reject: consistency proof with a flipped bit in a hash",
                lambda: verify_consistency(EVERY, latest, r1, r2, [path[0]] + [flip(path[1], 0, 7)]
                                           + path[2:]) if len(path) > 1 else
                verify_consistency(EVERY, latest, r1, r2, [flip(path[0], 0, 7)]), "consistency")
        rejects("reject: consistency proof against a flipped old root",
                lambda: verify_consistency(EVERY, latest, flip(r1, 31, 0), r2, path), "consistency")
        rejects("reject: consistency proof against a flipped new root",
                lambda: verify_consistency(EVERY, latest, r1, flip(r2, 0, 0), path), "consistency")
        rejects("reject: consistency proof with a hash missing",
                lambda: verify_consistency(EVERY, latest, r1, r2, path[:-1]), "consistency")
    if (100, 255) in cons:
        path, r1, r2 = cons[(100, 255)]
        rejects("reject: consistency proof (100, 255) with a flipped bit in its first hash",
                lambda: verify_consistency(100, 255, r1, r2, [flip(path[0], 9, 1)] + path[1:]), "consistency")
        rejects("reject: consistency proof (100, 255) used for (101, 255)",
                lambda: verify_consistency(101, 255, root_of(101), r2, path), "consistency")


if __name__ == "__main__":
    try:
        main()
    except Bad as exc:
        check("run", False, str(exc))
    except Exception as exc:  # a crash of the test itself is a failure, with its cause
        import traceback
        traceback.print_exc()
        check("run", False, "%s: %s" % (type(exc).__name__, exc))
    print("%d passed, %d failed" % (PASSED, FAILED))
    sys.exit(1 if FAILED or not PASSED else 0)
