#!/usr/bin/env python3
"""Live references for the tokenizer differential test (tests/tokenizer/live_diff_test.cc).

Generates thousands of strings (seeded) across scripts, white-space kinds, digits, emoji, code,
controls, rare and unassigned code points, NFC-sensitive sequences, pathological runs and
added-token interleavings, plus a sweep over the code space, and records what Hugging Face
tokenizers (pinned at 0.23.2 in tests/reference/requirements.txt) makes of them: ids with and
without special-token parsing, with no added tokens, both decodes, the pre-tokenizer's pieces and
the normalizer's output. It also writes tokenizer.json variants (legacy "a b" merges, extra added
tokens, ignore_merges, no normalizer) and their ids, so the loader's options are checked too.

Usage: tokenizer_live_refs.py --tokenizer DIR --out DIR [--seed N] [--count N]
Writes OUT/cases.jsonl (first line: meta) and OUT/<variant>/tokenizer.json.
"""
import argparse
import glob
import hashlib
import json
import os
import random
import sys
import sysconfig
import time

import tokenizers
from tokenizers import Tokenizer

import unicodedataplus as ud

PINNED = "0.23.2"

WORDS = ["hello", "world", "the", "don", "Don", "DON", "it", "I", "you", "we", "they", "Y", "ALL", "def",
         "return", "int", "std", "self", "__init__", "x", "y", "foo", "bar", "HTTP", "JSONParser", "camelCase",
         "snake_case", "a", "b", "Hello", "über", "naïve", "café", "ſtraße", "Kelvin", "İstanbul", "ǅemal"]
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Re", "'rE", "'VE", "'M", "'LL",
                "'lL", "'D", "'sa", "'ſ", "'ſt", "’s", "''s", "'", "'x", " 's", "'K", "'\u212a", "'ﬅ", "'ß", "'S'"]
WHITE = [" ", "  ", "   ", "\t", "\n", "\r", "\r\n", "\n\n", "\x0b", "\x0c", "\x85", "\xa0", "\u1680", "\u2000",
         "\u2001", "\u2002", "\u2003", "\u2004", "\u2005", "\u2006", "\u2007", "\u2008", "\u2009", "\u200a",
         "\u2028", "\u2029", "\u202f", "\u205f", "\u3000", " \n", "\n ", " \r\n ", "\t\n\t"]
NEAR_WHITE = ["\u180e", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\x1c", "\x1d", "\x1e", "\x1f", "\u00ad"]
DIGITS = list("0123456789") + ["½", "²", "³", "¹", "Ⅻ", "ⅻ", "٣", "١٢٣", "۴", "２", "３", "𝟘", "𝟙", "⁴", "₅", "௫",
                               "१२", "๓", "〇", "𐄇", "①", "⑴", "🄁", "1234567890", "3.14", "1e-7", "0x1F"]
PUNCT = list("!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~") + [
    "->", "=>", "::", "//", "/*", "*/", "...", "¿", "¡", "«", "»", "—", "–", "…", "•", "€", "£", "¥", "©", "®",
    "°", "±", "×", "÷", "§", "¶", "✓", "→", "∑", "∞", "≠", "、", "。", "「", "」", "！", "？", "；"]
SCRIPTS = ["éèêëàâäçñøåæœßÆŒØÅ", "αβγδΩωάέ Ελληνικά", "привет мир", "مرحبا بالعالم", "שָׁלוֹם עוֹלָם",
           "नमस्ते दुनिया", "สวัสดีชาวโลก", "你好世界漢字", "こんにちはカタカナ", "안녕하세요 세계", "გამარჯობა",
           "Բարեւ", "ሰላም", "வணக்கம்", "নমস্কার", "བཀྲ་ཤིས་བདེ་ལེགས", "ᠮᠣᠩᠭᠣᠯ\u180eᠪᠢᠴᠢᠭ", "សួស្តី", "ꯃꯤꯇꯩ",
           "ᚠᚢᚦᚨᚱᚲ", "𐌰𐌱𐌲", "𓀀𓀁", "ꦧꦱꦗꦮ", "ߒߞߏ", "Ǆǅǆ", "ﬁﬂ", "Ⓐⓑ", "𝐀𝐁𝒂", "ⅰⅱ"]
COMBINING = [chr(c) for c in list(range(0x300, 0x370)) + list(range(0x591, 0x5c8)) + list(range(0xe31, 0xe3b)) +
             [0x93c, 0x94d, 0x9bc, 0x9be, 0x9d7, 0xb3e, 0xbbe, 0xcd5, 0xdcf, 0xdca, 0x102e, 0x1b35, 0x3099,
              0x309a, 0x1ab0, 0x1dc0, 0x20d0, 0x20e3, 0xfe20, 0x1d165, 0x1d16d, 0x10d69, 0x897, 0x113b8, 0x113c9,
              0x1612f, 0x16d6b]]
NFC_SENSITIVE = ["e\u0301", "a\u030a", "\u212b", "\u2126", "\u212a", "\uf900", "\uf9ff", "\ufa10", "\u2000",
                 "\u2001", "\u0344", "\u0958", "\u1100\u1161", "\u1100\u1161\u11a8", "\uac00\u11a8",
                 "\uac00\u11a7", "\u1112\u1175", "\u0f73", "\u0f77", "\u1e9b\u0323", "o\u0328\u0304",
                 "\U0001d15e", "A\u0301\u0328", "\u00c5\u0301", "\u1e0b\u0323", "q\u0307\u0323", "\u0374",
                 "\u037e", "\u0387", "\u1f71", "\u0b47\u0b3e", "\u0dd9\u0dcf", "\u1025\u102e", "\u3046\u3099",
                 "\u30cf\u309a", "\U00011099\U000110ba", "\U00011935\U00011930", "\U00011382\U000113c9",
                 "\U00016121", "\U0001611e\U0001611e", "\U00016d63\U00016d67", "\u05d0\u05b7\u05bc",
                 "\u0915\u093c", "\u09c7\u09be", "\u1b05\u1b35", "\u2adc", "\u2add\u0338", "\u226e", "<\u0338"]
EMOJI = ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇺🇸", "🇯🇵", "1️⃣", "#️⃣", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "❤️", "✨", "🙂", "🤖",
         "🧑🏿‍💻", "🫠", "🪿", "\U0001fae8", "🏻", "\u200d", "\ufe0f"]
CONTROL = [chr(c) for c in list(range(0, 32)) + list(range(127, 160))]
RARE = ["\ue000", "\uf8ff", "\U000f0000", "\U0010fffd", "\ufffe", "\uffff", "\ufdd0", "\U0001fffe",
        "\U0010ffff", "\u0378", "\u0380", "\U00010940", "\U000323b0", "\U000e0080", "\U00010570",
        "\U00031350", "\U0002ebf0", "\U00010d50", "\U00016d43", "\U00011380", "\U0001e4f0", "\U00016d70",
        "\U0001ccf0", "\ufeff", "\u200e", "\u200f", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066",
        "\u2067", "\u2068", "\u2069", "\ufe0f", "\U000e0100", "\U000e0020", "\U000e007f", "\u017f", "\u212a",
        "\ufffd", "\U0001f10d", "\u2189", "\U0001fbf0", "\u16ee", "\u3007", "\u2e2f", "\u0e46", "\u1d2c"]
BYTE_LEVEL = ["Ġ", "Ċ", "ĉ", "Ġhello", "âĢĻ", "ðŁĺĢ", "Ã©", "ĠĠĠ", "Ń", "ł"]
ADDED = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
         "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
         "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>",
         "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>", "<tool_response>",
         "</tool_response>", "<think>", "</think>", "<|im_start|", "<|IM_START|>", "< |im_start|>",
         "<tool_call >", "<<tool_call>>", "<|endoftext|><|endoftext|>", "<|im_start|>user\n", "<|", "|>", "<",
         "<function=f>", "<parameter=x>", "</parameter>", "<|im_end|>\n<|im_start|>assistant\n"]

CATEGORIES = [  # (weight, pool)
    (14, WORDS), (5, CONTRACTIONS), (12, WHITE), (3, NEAR_WHITE), (6, DIGITS), (9, PUNCT), (7, SCRIPTS),
    (4, COMBINING), (4, NFC_SENSITIVE), (4, EMOJI), (3, CONTROL), (4, RARE), (2, BYTE_LEVEL), (5, ADDED)]


def code_slices(rng, n):
    """Random slices of the Python standard library's top-level modules: real code, mostly ASCII."""
    files = sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "*.py")))
    out = []
    while len(out) < n and files:
        path = rng.choice(files)
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (UnicodeDecodeError, OSError):
            continue
        if not text:
            continue
        start = rng.randrange(len(text))
        out.append(text[start:start + rng.choice([40, 200, 1000, 4000])])
    return out


def random_soup(rng, n, astral):
    cps = []
    while len(cps) < n:
        cp = rng.randrange(0x110000 if astral else 0x10000)
        if not 0xD800 <= cp <= 0xDFFF:
            cps.append(chr(cp))
    return "".join(cps)


def random_text(rng):
    roll = rng.random()
    if roll < 0.08:
        return random_soup(rng, rng.randrange(1, 60), astral=rng.random() < 0.5)
    weights = [w for w, _ in CATEGORIES]
    parts = []
    for _ in range(rng.choice([1, 2, 3, 5, 8, 13, 21, 40])):
        pool = rng.choices(CATEGORIES, weights)[0][1]
        atom = rng.choice(pool)
        parts.append(atom * rng.choice([1, 1, 1, 1, 2, 3, 7]))
    return "".join(parts)


def pathological():
    return [" " * 5000 + "a", " " * 5000, "a" * 20000, "'s" * 2000, "1" * 3000, "\n" * 1000, " \n" * 1000,
            "\t" * 500 + "x", "\u3000" * 300 + "x", "!" * 5000, "é" * 3000, "e\u0301" * 1000, "\u0301" * 500,
            "😀" * 1000, "<|im_start|>" * 300, "a " * 5000, "\r\n" * 2000, " " * 99 + "\n" + " " * 99 + "b",
            "x" + "\u0300" * 2000, "\u1100" * 100 + "\u1161" * 100, "ab" * 10000, "\u0000" * 100,
            "ſ" * 500, "'" * 1000 + "s", "ᄀ\u1161\u11a8" * 300, "Ġ" * 1000, "\U0010ffff" * 300,
            "a\u200db" * 500, "١٢٣" * 300, "x = [1, 2, 3]\n" * 500]


def sweep_code_points(rng):
    """Every assigned, non-private-use code point outside the big uniform blocks (CJK, Hangul
    syllables, Tangut, ...), and a 1-in-24 sample of the rest: each in contexts that give each
    class (letter, number, white space, newline, other) a different pre-tokenization."""
    chosen = []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        ch = chr(cp)
        cat = ud.category(ch)
        bulk = cat in ("Cn", "Co") or (cat == "Lo" and "CJK" in ud.block(ch)) or ud.block(ch) in (
            "Hangul Syllables", "Tangut", "Tangut Supplement", "Yi Syllables", "Egyptian Hieroglyphs",
            "Cuneiform", "Nushu", "Khitan Small Script")
        if not bulk or rng.random() < 1 / 24:
            chosen.append(ch)
    blocks = []
    for i in range(0, len(chosen), 128):
        blocks.append("".join("a" + c + "a1" + c + c + "1" for c in chosen[i:i + 128]) + chosen[i])
    return chosen, blocks


def nfc_sweep(rng):
    """Every code point that NFC can touch in Unicode 16.0 (combining class, a decomposition, the
    second half of a composition: those assigned after 9.0 must come out unchanged) and a
    1-in-48 sample of the rest, in contexts where it could compose, reorder or decompose."""
    seconds = set()
    for cp in range(0x110000):
        d = ud.decomposition(chr(cp)) if not 0xD800 <= cp <= 0xDFFF else ""
        if d and not d.startswith("<") and len(d.split()) == 2:
            seconds.add(int(d.split()[1], 16))
    chosen = []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        c = chr(cp)
        touched = ud.combining(c) or (ud.decomposition(c) and not ud.decomposition(c).startswith("<")) or \
            cp in seconds or 0x1100 <= cp <= 0x11FF
        if (touched and not 0xAC00 <= cp <= 0xD7A3) or rng.random() < 1 / 48:
            chosen.append(c)
    return ["".join("A" + c + "\u0316" + c + "\u0301\u1100" + c + "e" + c + " " for c in chosen[i:i + 512])
            for i in range(0, len(chosen), 512)]


def variants(base_json, out_dir):
    """tokenizer.json variants, written to OUT/NAME/tokenizer.json: [(name, folder)]. Each is a
    shallow copy of the base with one part replaced (the vocabulary is shared, never edited)."""

    def copy(model_changes=None, **top):
        j = dict(base_json, **top)
        j["model"] = dict(base_json["model"], **(model_changes or {}))
        return j

    legacy = copy({"merges": [a + " " + b for a, b in base_json["model"]["merges"]]})
    plain = copy(added_tokens=[])
    extra = copy(added_tokens=list(base_json["added_tokens"]))
    next_id = 1 + max(t["id"] for t in extra["added_tokens"])
    for content, special in [("<tool call>", False), ("Ġfoo", False), ("über", True), ("<|im", False),
                             ("hello", False), ("[SPECIAL]", True), ("<|im_start|>x", True), ("\u00e9", False)]:
        vocab_id = extra["model"]["vocab"].get(content)
        tid = vocab_id if vocab_id is not None else next_id
        if vocab_id is None:
            next_id += 1
        extra["added_tokens"].append({"id": tid, "content": content, "single_word": False, "lstrip": False,
                                      "rstrip": False, "normalized": False, "special": special})
    ignore = copy({"ignore_merges": True})
    no_norm = copy(normalizer=None)
    # The small tokenizer the CLI tests pair with the random-weight models.
    tiny_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tokenizer", "fixtures", "tiny",
                             "tokenizer.json")
    with open(tiny_path, encoding="utf-8") as f:
        tiny = json.load(f)
    result = []
    for name, j in [("legacy_merges", legacy), ("no_added", plain), ("extra_added", extra),
                    ("ignore_merges", ignore), ("no_normalizer", no_norm), ("tiny", tiny)]:
        d = os.path.join(out_dir, name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
            f.write(json.dumps(j, ensure_ascii=False))  # dumps: the C encoder (dump is pure Python)
        result.append((name, d))
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokenizer", required=True, help="folder with tokenizer.json")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=20260301)
    ap.add_argument("--count", type=int, default=4000, help="random strings")
    args = ap.parse_args()
    if tokenizers.__version__ != PINNED:
        sys.exit(f"tokenizer_live_refs: tokenizers {tokenizers.__version__} installed, {PINNED} required "
                 "(tests/reference/requirements.txt)")
    t0 = time.process_time()
    os.makedirs(args.out, exist_ok=True)
    # The output is a function of this script, the tokenizer, the seed and the peer's version:
    # reuse it when none changed (ctest reruns, the ASan build beside the Release one).
    key = hashlib.sha256()
    tiny_json = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tokenizer", "fixtures", "tiny",
                             "tokenizer.json")
    for path in (__file__, os.path.join(args.tokenizer, "tokenizer.json"), tiny_json):
        with open(path, "rb") as f:
            key.update(f.read())
    key.update(f"{args.seed} {args.count} {tokenizers.__version__} {sys.version}".encode())
    stamp = os.path.join(args.out, "cases.key")
    if os.path.exists(stamp) and os.path.exists(os.path.join(args.out, "cases.jsonl")):
        with open(stamp) as f:
            if f.read() == key.hexdigest():
                print(f"tokenizer_live_refs: {args.out}/cases.jsonl is up to date")
                return
    rng = random.Random(args.seed)
    base_path = os.path.join(args.tokenizer, "tokenizer.json")
    with open(base_path, encoding="utf-8") as f:
        base_json = json.load(f)
    tok = Tokenizer.from_file(base_path)
    variant_dirs = variants(base_json, args.out)
    variant_toks = {name: Tokenizer.from_file(os.path.join(d, "tokenizer.json")) for name, d in variant_dirs}
    plain_tok = variant_toks["no_added"]

    added_contents = [t["content"] for t in base_json["added_tokens"]]
    texts = [random_text(rng) for _ in range(args.count)]
    texts += code_slices(rng, 400) + pathological()
    chosen, sweep = sweep_code_points(rng)
    texts += sweep
    counts = {}
    rows = []
    phase_t = time.process_time()
    timing = {"setup": round(phase_t - t0, 1)}

    def lap(name):
        nonlocal phase_t
        now = time.process_time()
        timing[name] = round(now - phase_t, 1)
        phase_t = now

    def add(row):
        counts[row["kind"]] = counts.get(row["kind"], 0) + 1
        rows.append(row)

    for text in texts:
        ids = tok.encode(text, add_special_tokens=False).ids
        row = {"kind": "encode", "text": text, "ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False)}
        # Stored only where they differ from ids / decoded, as in tok_public.jsonl.
        # Without an added token's text in it, every mode gives the same ids: skip the work.
        has_added = any(a in text for a in added_contents)
        split_ids = ids
        if has_added:
            tok.encode_special_tokens = True
            split_ids = tok.encode(text, add_special_tokens=False).ids
            tok.encode_special_tokens = False
        plain_ids = plain_tok.encode(text, add_special_tokens=False).ids if has_added else ids
        skip = tok.decode(ids, skip_special_tokens=True)
        if split_ids != ids:
            row["ids_split_special"] = split_ids
        if plain_ids != ids:
            row["ids_plain"] = plain_ids
        if skip != row["decoded"]:
            row["decoded_skip"] = skip
        add(row)
    lap("encode")
    for text in texts[: args.count // 2] + sweep:
        add({"kind": "pre", "text": text, "pre": [p for p, _ in tok.pre_tokenizer.pre_tokenize_str(text)]})
    lap("pre")
    for text in texts[: args.count // 2] + nfc_sweep(rng):
        add({"kind": "nfc", "text": text, "nfc": tok.normalizer.normalize_str(text)})
    lap("nfc")
    vocab_total = tok.get_vocab_size(with_added_tokens=True)
    for _ in range(1500):
        n = rng.choice([1, 2, 3, 5, 10, 40])
        ids = [rng.randrange(vocab_total + 300) if rng.random() < 0.9 else rng.randrange(256) for _ in range(n)]
        if rng.random() < 0.3:  # a character split over byte tokens, then cut
            ids += [rng.randrange(128, 256) for _ in range(rng.randrange(1, 4))]
        add({"kind": "decode", "ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False),
             "decoded_skip": tok.decode(ids, skip_special_tokens=True)})
    lap("decode")
    for name, vt in variant_toks.items():
        for text in texts[:400] + pathological()[:8]:
            ids = vt.encode(text, add_special_tokens=False).ids
            add({"kind": "variant", "variant": name, "text": text, "ids": ids,
                 "decoded": vt.decode(ids, skip_special_tokens=False),
                 "decoded_skip": vt.decode(ids, skip_special_tokens=True)})

    lap("variants")
    meta = {"kind": "meta", "tokenizers": tokenizers.__version__, "unicodedataplus": ud.unidata_version,
            "seed": args.seed, "counts": counts, "sweep_code_points": len(chosen),
            "variants": [name for name, _ in variant_dirs], "cpu_seconds": timing}
    with open(os.path.join(args.out, "cases.jsonl"), "w", encoding="utf-8") as f:
        f.write(json.dumps(meta) + "\n")
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    with open(stamp, "w") as f:
        f.write(key.hexdigest())
    print(f"tokenizer_live_refs: {json.dumps(meta)}")


if __name__ == "__main__":
    main()
