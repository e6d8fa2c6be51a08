#!/usr/bin/env python3
"""Generates src/tokenizer/unicode_tables.inc, the Unicode data the tokenizer needs, from the
pinned `unicodedataplus` package (Unicode 16.0.0; see tests/reference/requirements.txt).

What Hugging Face tokenizers 0.23.2 (the reference) uses, and therefore what is generated:
  * the pre-tokenizer regex runs in Oniguruma with Unicode 16.0 tables: \\p{L} (Lu Ll Lt Lm Lo),
    \\p{N} (Nd Nl No) and \\s = the White_Space property;
  * the NFC normalizer is the crate unicode-normalization-alignments 0.1.12, whose tables are
    Unicode 9.0. A character first assigned after 9.0 has no decomposition, combining class 0
    and takes part in no composition there. By Unicode's normalization stability policy the 9.0
    data is the 16.0 data restricted to characters whose Age is <= 9.0, which is why the source
    must carry Age (unicodedata2 does not; unicodedataplus does).

White_Space is not exposed by unicodedata; it is derived as general category Zs/Zl/Zp plus the
Cc controls whose bidi class is S, B or WS and whose line break class is not CM (that excludes
U+001C..U+001F, which Python's str.isspace() counts). The derivation is cross-checked against
the `regex` module's \\p{White_Space} when that module is importable (White_Space has not
changed since Unicode 6.3).

Usage:  .venv/bin/python scripts/gen_unicode_tables.py            # rewrite the .inc
        .venv/bin/python scripts/gen_unicode_tables.py --check    # exit 1 if it differs
"""
import argparse
import difflib
import os
import sys

import unicodedataplus as ud

PINNED_PACKAGE = "unicodedataplus 16.0.0.post1"
UNICODE_VERSION = "16.0.0"
NFC_MAX_AGE = (9, 0)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "tokenizer", "unicode_tables.inc")

# Class bits; keep in sync with src/tokenizer/unicode.h.
LETTER, NUMBER, WHITE_SPACE, NFC_UNSTABLE = 1, 2, 4, 8
S_BASE, L_BASE, V_BASE, T_BASE, L_COUNT, V_COUNT, T_COUNT = 0xAC00, 0x1100, 0x1161, 0x11A7, 19, 21, 28
S_COUNT = L_COUNT * V_COUNT * T_COUNT


def all_code_points():
    return (cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF)


def in_nfc_version(ch):
    age = ud.age(ch)
    if age == "Unassigned":
        return False
    major, minor = (int(x) for x in age.split("."))
    return (major, minor) <= NFC_MAX_AGE


def is_hangul_syllable(cp):
    return S_BASE <= cp < S_BASE + S_COUNT


def white_space(ch):
    cat = ud.category(ch)
    if cat in ("Zs", "Zl", "Zp"):
        return True
    return cat == "Cc" and ud.bidirectional(ch) in ("S", "B", "WS") and ud.line_break(ch) != "CM"


def build():
    if ud.unidata_version != UNICODE_VERSION:
        sys.exit(f"gen_unicode_tables: unicodedataplus has Unicode {ud.unidata_version}, want {UNICODE_VERSION}")
    ccc, decomp, pairs = {}, {}, {}
    for cp in all_code_points():
        ch = chr(cp)
        if not in_nfc_version(ch):
            continue
        if ud.combining(ch):
            ccc[cp] = ud.combining(ch)
        if is_hangul_syllable(cp):
            continue  # algorithmic
        nfd = ud.normalize("NFD", ch)
        if nfd != ch:
            decomp[cp] = [ord(c) for c in nfd]
        d = ud.decomposition(ch)
        if d and not d.startswith("<"):
            parts = [int(x, 16) for x in d.split()]
            if len(parts) == 2 and ud.normalize("NFC", chr(parts[0]) + chr(parts[1])) == ch:
                pairs[(parts[0], parts[1])] = cp
    seconds = {b for (_, b) in pairs}
    classes = {}
    for cp in all_code_points():
        ch = chr(cp)
        cat = ud.category(ch)
        bits = (LETTER if cat[0] == "L" else 0) | (NUMBER if cat[0] == "N" else 0)
        bits |= WHITE_SPACE if white_space(ch) else 0
        if in_nfc_version(ch):
            hangul_second = V_BASE <= cp < V_BASE + V_COUNT or T_BASE < cp < T_BASE + T_COUNT
            if cp in ccc or cp in seconds or hangul_second or ud.normalize("NFC", ch) != ch:
                bits |= NFC_UNSTABLE
        if bits:
            classes[cp] = bits
    return classes, ccc, decomp, pairs


def self_check(classes, ccc, decomp, pairs):
    """The tables reproduce unicodedata's NFC/NFD on every 9.0 character (and on each one after
    a base letter), so the C++ algorithm that reads them only has to be the textbook one."""
    comp = dict(pairs)

    def nfd(cps):
        out = []
        for cp in cps:
            if is_hangul_syllable(cp):
                s = cp - S_BASE
                out += [L_BASE + s // (V_COUNT * T_COUNT), V_BASE + (s % (V_COUNT * T_COUNT)) // T_COUNT]
                if s % T_COUNT:
                    out.append(T_BASE + s % T_COUNT)
            else:
                out += decomp.get(cp, [cp])
        i = 1
        while i < len(out):  # stable insertion sort of non-starter runs by ccc
            j = i
            while j > 0 and ccc.get(out[j], 0) and ccc.get(out[j - 1], 0) > ccc.get(out[j], 0):
                out[j - 1], out[j] = out[j], out[j - 1]
                j -= 1
            i += 1
        return out

    def nfc(cps):
        d = nfd(cps)
        if not d:
            return d
        out, starter, last_ccc = [d[0]], 0 if ccc.get(d[0], 0) == 0 else None, 0
        for cp in d[1:]:
            c = ccc.get(cp, 0)
            if starter is not None and (last_ccc < c or (last_ccc == 0 and len(out) - 1 == starter)):
                s = out[starter]
                if L_BASE <= s < L_BASE + L_COUNT and V_BASE <= cp < V_BASE + V_COUNT and len(out) - 1 == starter:
                    out[starter] = S_BASE + ((s - L_BASE) * V_COUNT + cp - V_BASE) * T_COUNT
                    continue
                if (is_hangul_syllable(s) and (s - S_BASE) % T_COUNT == 0 and T_BASE < cp < T_BASE + T_COUNT
                        and len(out) - 1 == starter):
                    out[starter] = s + cp - T_BASE
                    continue
                if (s, cp) in comp:
                    out[starter] = comp[(s, cp)]
                    continue
            if c == 0:
                starter = len(out)
            last_ccc = c
            out.append(cp)
        return out

    for cp in all_code_points():
        ch = chr(cp)
        if not in_nfc_version(ch):
            continue
        for s in (ch, "a" + ch, ch + "\u0301"):
            cps = [ord(c) for c in s]
            if [ord(c) for c in ud.normalize("NFC", s)] != nfc(cps):
                sys.exit(f"gen_unicode_tables: NFC self-check failed on {s!r}")
            if [ord(c) for c in ud.normalize("NFD", s)] != nfd(cps):
                sys.exit(f"gen_unicode_tables: NFD self-check failed on {s!r}")
    try:
        import regex
    except ImportError:
        return
    want = {cp for cp in all_code_points() if regex.match(r"\p{White_Space}", chr(cp))}
    got = {cp for cp, bits in classes.items() if bits & WHITE_SPACE}
    if want != got:
        sys.exit(f"gen_unicode_tables: derived White_Space differs from regex's: {sorted(want ^ got)}")


def ranges(values):
    """{cp: value} -> [(first, last, value)] over maximal runs of equal values."""
    out = []
    for cp in sorted(values):
        v = values[cp]
        if out and out[-1][1] == cp - 1 and out[-1][2] == v:
            out[-1][1] = cp
        else:
            out.append([cp, cp, v])
    return out


def rows(items, per_line):
    lines = []
    for i in range(0, len(items), per_line):
        lines.append("    " + " ".join(items[i:i + per_line]))
    return "\n".join(lines)


def render(classes, ccc, decomp, pairs):
    class_ranges = ranges(classes)
    ccc_ranges = ranges(ccc)
    pool, entries = [], []
    for cp in sorted(decomp):
        entries.append(f"{{0x{cp:X}, {len(pool)}, {len(decomp[cp])}}},")
        pool += decomp[cp]
    comp = [f"{{0x{a:X}, 0x{b:X}, 0x{c:X}}}," for (a, b), c in sorted(pairs.items())]
    return f"""// Generated by scripts/gen_unicode_tables.py from {PINNED_PACKAGE} (Unicode {UNICODE_VERSION}).
// Do not edit: rerun the script (tests check that this file matches its output).
// Regex classes are Unicode 16.0; the NFC data is Unicode 9.0, as in tokenizers 0.23.2.
// Included by src/tokenizer/unicode.cc only.

constexpr char kUnicodeVersion[] = "{UNICODE_VERSION}";
constexpr char kNfcUnicodeVersion[] = "{NFC_MAX_AGE[0]}.{NFC_MAX_AGE[1]}.0";

// [first, last, bits]: 1 = \\p{{L}}, 2 = \\p{{N}}, 4 = White_Space, 8 = may change under NFC in some
// context (combining class != 0, not NFC by itself, or the second half of a composition).
constexpr CodePointRange kClassRanges[] = {{
{rows([f"{{0x{a:X}, 0x{b:X}, {v}}}," for a, b, v in class_ranges], 4)}
}};

// [first, last, canonical combining class] for the classes that are not 0 (Unicode 9.0).
constexpr CodePointRange kCombiningClassRanges[] = {{
{rows([f"{{0x{a:X}, 0x{b:X}, {v}}}," for a, b, v in ccc_ranges], 4)}
}};

// Full canonical decompositions (Unicode 9.0, Hangul syllables excluded: they are algorithmic):
// {{code point, offset into kDecompositionPool, length}}, sorted by code point.
constexpr Decomposition kDecompositions[] = {{
{rows(entries, 5)}
}};
constexpr char32_t kDecompositionPool[] = {{
{rows([f"0x{cp:X}," for cp in pool], 10)}
}};

// Primary composites (Unicode 9.0, Hangul excluded): {{first, second, composite}}, sorted.
constexpr Composition kCompositions[] = {{
{rows(comp, 4)}
}};
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="compare with the committed file instead of writing")
    ap.add_argument("--out", default=OUT)
    args = ap.parse_args()
    tables = build()
    if not args.check:  # the committed file passed it when it was written; --check compares bytes
        self_check(*tables)
    text = render(*tables)
    if args.check:
        with open(args.out, encoding="utf-8") as f:
            have = f.read()
        if have != text:
            diff = difflib.unified_diff(have.splitlines(), text.splitlines(), "committed", "generated", lineterm="")
            print("\n".join(list(diff)[:40]), file=sys.stderr)
            sys.exit(f"gen_unicode_tables: {args.out} differs from the pinned source; rerun the script")
        print(f"gen_unicode_tables: {args.out} matches {PINNED_PACKAGE}")
        return
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"gen_unicode_tables: wrote {args.out}")


if __name__ == "__main__":
    main()
