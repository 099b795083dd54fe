//! Text normalization applied to every piece of request text (and to every literal rule) before
//! matching, so that look-alike spellings of a deny-listed phrase still match.
//!
//! Covered, in this order, per character (all by arithmetic or small tables, no Unicode database):
//! 1. **Invisible characters removed**: C0/C1 control characters other than whitespace, zero-width
//!    and joiner characters (U+200B–U+200F, U+2060–U+206F, U+FEFF), the soft hyphen, bidi
//!    embedding/override/isolate controls (U+202A–U+202E), variation selectors (U+FE00–U+FE0F,
//!    U+E0100–U+E01EF), Hangul/Mongolian fillers, the combining grapheme joiner, and combining
//!    diacritical marks (U+0300–U+036F, U+1AB0–U+1AFF, U+1DC0–U+1DFF, U+20D0–U+20FF, U+FE20–U+FE2F).
//! 2. **Unicode tag characters decoded**: U+E0020–U+E007E ("ASCII smuggling") become the ASCII
//!    character they shadow; other tag characters are removed.
//! 3. **Compatibility folding** (NFKC-like, only for the forms used to dodge filters): fullwidth
//!    ASCII (U+FF01–U+FF5E), mathematical alphanumeric letters and digits (U+1D400–U+1D6A5,
//!    U+1D7CE–U+1D7FF), letterlike symbols (ℎ, ℓ, ℯ, ℝ…), circled/parenthesized/squared/negative
//!    and regional-indicator letters, super- and subscript digits, the ligatures ﬀ ﬁ ﬂ ﬃ ﬄ ﬅ ﬆ,
//!    accented Latin-1 and Latin Extended-A letters (é → e, ł → l), curly quotes and primes
//!    (→ `'` `"`), and Unicode dashes and minus (→ `-`).
//! 4. **Homoglyphs**: Cyrillic and Greek letters that look like Latin ones (а е о р с у х і ј ѕ…,
//!    α ο ρ ν τ υ χ κ ι…, and their capitals) become the Latin letter.
//! 5. **Whitespace collapsed**: every run of whitespace (ASCII, NBSP, U+2000–U+200A, U+3000,
//!    line/paragraph separators…) becomes one space; leading and trailing whitespace is dropped.
//! 6. **Case folded** (when asked): Unicode lowercase mapping (`char::to_lowercase`).
//!
//! Not covered: full NFKC/NFKD (e.g. Roman numerals, CJK compatibility ideographs, Arabic
//! presentation forms), confusables beyond the Cyrillic/Greek/Latin table (Armenian, Cherokee,
//! mathematical Greek…), leetspeak (`1gn0re`), words split by visible characters (`i.g.n.o.r.e`),
//! text inside images or base64 documents, and encodings (base64, rot13, hex) of the text.

/// What one input character becomes.
enum Folded {
    Drop,
    Space,
    Char(char),
    Str(&'static str),
}

/// Base letters for U+00C0–U+017F (`.` = keep the character as it is).
const LATIN_BASE: &[u8; 192] = b"AAAAAA.CEEEEIIII.NOOOOO.OUUUUY..aaaaaa.ceeeeiiii.nooooo.ouuuuy.y\
AaAaAaCcCcCcCcDdDdEeEeEeEeEeGgGgGgGgHhHhIiIiIiIiIi..JjKkkLlLlLlL\
lLlNnNnNn...OoOoOo..RrRrRrSsSsSsSsTtTtTtUuUuUuUuUuUuWwYyYZzZzZzs";

fn offset(c: char, base: u32) -> u32 {
    (c as u32).wrapping_sub(base)
}

fn letter(index: u32, upper: bool) -> char {
    let base = if upper { b'A' } else { b'a' };
    char::from(base + (index % 26) as u8)
}

fn fold_char(c: char) -> Folded {
    use Folded::*;
    let cp = c as u32;
    if c.is_ascii() {
        return match c {
            '\t' | '\n' | '\r' | '\x0b' | '\x0c' | ' ' => Space,
            '\0'..='\x1f' | '\x7f' => Drop,
            _ => Char(c),
        };
    }
    if let Some(&base) = LATIN_BASE.get(offset(c, 0xc0) as usize) {
        // Latin-1 letters and Latin Extended-A: the most common non-ASCII in prompts.
        return Char(if base == b'.' { c } else { char::from(base) });
    }
    match cp {
        // C1 controls (NEL is whitespace).
        0x85 => Space,
        0x80..=0x9f => Drop,
        0xad | 0x034f | 0x061c | 0x115f | 0x1160 | 0x17b4 | 0x17b5 | 0x180b..=0x180f => Drop,
        0x200b..=0x200f | 0x202a..=0x202e | 0x2060..=0x206f | 0x3164 | 0xfeff | 0xffa0 => Drop,
        0xfe00..=0xfe0f | 0xe0100..=0xe01ef | 0x1d173..=0x1d17a => Drop,
        0x0300..=0x036f | 0x1ab0..=0x1aff | 0x1dc0..=0x1dff | 0x20d0..=0x20ff | 0xfe20..=0xfe2f => {
            Drop
        }
        0xe0020..=0xe007e => Char(char::from((cp - 0xe0000) as u8)),
        0xe0000..=0xe007f => Drop,
        0xa0 | 0x1680 | 0x2000..=0x200a | 0x2028 | 0x2029 | 0x202f | 0x205f | 0x3000 => Space,
        0xff01..=0xff5e => char::from_u32(cp - 0xfee0).map_or(Char(c), Char),
        0x1d400..=0x1d6a3 => {
            let i = offset(c, 0x1d400) % 52;
            Char(letter(i, i < 26))
        }
        0x1d6a4 => Char('i'),
        0x1d6a5 => Char('j'),
        0x1d7ce..=0x1d7ff => Char(char::from(b'0' + (offset(c, 0x1d7ce) % 10) as u8)),
        0x24b6..=0x24cf => Char(letter(offset(c, 0x24b6), true)),
        0x24d0..=0x24e9 => Char(letter(offset(c, 0x24d0), false)),
        0x249c..=0x24b5 => Char(letter(offset(c, 0x249c), false)),
        0x1f110..=0x1f129 => Char(letter(offset(c, 0x1f110), true)),
        0x1f130..=0x1f149 => Char(letter(offset(c, 0x1f130), true)),
        0x1f150..=0x1f169 => Char(letter(offset(c, 0x1f150), true)),
        0x1f170..=0x1f189 => Char(letter(offset(c, 0x1f170), true)),
        0x1f1e6..=0x1f1ff => Char(letter(offset(c, 0x1f1e6), true)),
        0x2070 | 0x2080 => Char('0'),
        0xb9 => Char('1'),
        0xb2 => Char('2'),
        0xb3 => Char('3'),
        0x2074..=0x2079 => Char(char::from(b'4' + offset(c, 0x2074) as u8)),
        0x2081..=0x2089 => Char(char::from(b'1' + offset(c, 0x2081) as u8)),
        0x2071 => Char('i'),
        0x207f => Char('n'),
        0xfb00 => Str("ff"),
        0xfb01 => Str("fi"),
        0xfb02 => Str("fl"),
        0xfb03 => Str("ffi"),
        0xfb04 => Str("ffl"),
        0xfb05 | 0xfb06 => Str("st"),
        0x2018 | 0x2019 | 0x201a | 0x201b | 0x2032 | 0x02bc => Char('\''),
        0x201c | 0x201d | 0x201e | 0x201f | 0x2033 => Char('"'),
        0x2010..=0x2015 | 0x2212 | 0xfe58 | 0xfe63 => Char('-'),
        _ => homoglyph(c).map_or(Char(c), Char),
    }
}

/// Letterlike symbols and Cyrillic/Greek letters that render like a Latin letter.
fn homoglyph(c: char) -> Option<char> {
    Some(match c {
        // Letterlike symbols.
        'ℂ' => 'C',
        'ℊ' => 'g',
        'ℋ' | 'ℌ' | 'ℍ' => 'H',
        'ℎ' => 'h',
        'ℐ' | 'ℑ' => 'I',
        'ℒ' => 'L',
        'ℓ' => 'l',
        'ℕ' => 'N',
        'ℙ' => 'P',
        'ℚ' => 'Q',
        'ℛ' | 'ℜ' | 'ℝ' => 'R',
        'ℤ' => 'Z',
        'ℬ' => 'B',
        'ℭ' => 'C',
        'ℯ' => 'e',
        'ℰ' => 'E',
        'ℱ' => 'F',
        'ℳ' => 'M',
        'ℴ' => 'o',
        'ℹ' => 'i',
        '\u{212a}' => 'K',
        '\u{212b}' => 'A',
        // Latin look-alikes outside Latin Extended-A.
        'ɡ' => 'g',
        'ɑ' => 'a',
        'ʏ' => 'y',
        // Cyrillic.
        'а' => 'a',
        'е' | 'ё' => 'e',
        'о' => 'o',
        'р' => 'p',
        'с' => 'c',
        'у' => 'y',
        'х' => 'x',
        'і' | 'ї' => 'i',
        'ј' => 'j',
        'ѕ' => 's',
        'һ' => 'h',
        'ԁ' => 'd',
        'ԛ' => 'q',
        'ԝ' => 'w',
        'ӏ' => 'l',
        'ɩ' => 'i',
        'А' => 'A',
        'В' => 'B',
        'Е' | 'Ё' => 'E',
        'К' => 'K',
        'М' => 'M',
        'Н' => 'H',
        'О' => 'O',
        'Р' => 'P',
        'С' => 'C',
        'Т' => 'T',
        'Х' => 'X',
        'У' => 'Y',
        'Ѕ' => 'S',
        'І' | 'Ї' => 'I',
        'Ј' => 'J',
        'Ӏ' => 'I',
        'Ԁ' => 'D',
        'Ԛ' => 'Q',
        'Ԝ' => 'W',
        // Greek.
        'α' => 'a',
        'ο' | 'ό' => 'o',
        'ρ' => 'p',
        'ν' => 'v',
        'τ' => 't',
        'υ' => 'u',
        'χ' => 'x',
        'κ' => 'k',
        'ι' | 'ί' => 'i',
        'ε' | 'έ' => 'e',
        'Α' => 'A',
        'Β' => 'B',
        'Ε' => 'E',
        'Ζ' => 'Z',
        'Η' => 'H',
        'Ι' => 'I',
        'Κ' => 'K',
        'Μ' => 'M',
        'Ν' => 'N',
        'Ο' => 'O',
        'Ρ' => 'P',
        'Τ' => 'T',
        'Υ' => 'Y',
        'Χ' => 'X',
        _ => return None,
    })
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;
const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;

/// The high bit of every byte of `w` that equals `c` (exact: no carries between bytes).
fn bytes_equal(w: u64, c: u8) -> u64 {
    let x = w ^ (LO * u64::from(c));
    !(((x & LOW7).wrapping_add(LOW7)) | x | LOW7)
}

/// ASCII `w` (eight bytes) with `A`–`Z` lowercased.
fn lowercase_word(w: u64) -> u64 {
    // The high bit of each byte in b'A'..=b'Z' (no carries: every byte is below 0x80).
    let ge_a = w.wrapping_add(LO * (0x80 - 0x41));
    let gt_z = w.wrapping_add(LO * (0x80 - 0x5b));
    w | ((ge_a & !gt_z & HI) >> 2)
}

/// Appends the normalized form of `input` to `out` (see the module docs). With `fold_case`, the
/// result is lowercased. `out` receives valid UTF-8 (whole characters only).
///
/// Printable ASCII with single spaces (most of any prompt) is checked and copied eight bytes at
/// a time (SWAR in safe code: the `.wasm` has no SIMD); every other character goes through
/// [`fold_char`]. A space is written as soon as whitespace follows text and a trailing one is
/// removed at the end, so a run of whitespace becomes one space wherever it starts.
pub fn normalize_bytes_into(input: &str, fold_case: bool, out: &mut Vec<u8>) {
    out.reserve(input.len());
    let start = out.len();
    let bytes = input.as_bytes();
    let space = |out: &mut Vec<u8>| {
        if out.len() > start && out.last() != Some(&b' ') {
            out.push(b' ');
        }
    };
    let mut i = 0;
    loop {
        // Fast path: eight bytes at a time while they need no more than lowercasing.
        while let Some(chunk) = bytes.get(i..i + 8) {
            let Ok(word) = <[u8; 8]>::try_from(chunk) else {
                break;
            };
            let w = u64::from_le_bytes(word);
            // For the low seven bits b of a byte: b + 0x01 has the high bit iff b == 0x7f, and
            // b + 0x60 iff b >= 0x20. So a byte is special (non-ASCII, DEL or a control) iff
            // its own high bit, the first or not the second is set.
            let low = w & LOW7;
            let del = low.wrapping_add(LO);
            let printable = low.wrapping_add(LO * 0x60);
            let spaces = bytes_equal(w, b' ');
            let mut special = ((w | del | !printable) & HI) | (spaces & (spaces >> 8));
            // A space first in the word: plain only after text that does not end in a space.
            if word[0] == b' ' && (out.len() == start || out.last() == Some(&b' ')) {
                special |= 0x80;
            }
            if special == 0 {
                let w = if fold_case { lowercase_word(w) } else { w };
                out.extend_from_slice(&w.to_le_bytes());
                i += 8;
                continue;
            }
            let plain = (special.trailing_zeros() / 8) as usize;
            let head = word.get(..plain).unwrap_or_default();
            if fold_case {
                out.extend(head.iter().map(u8::to_ascii_lowercase));
            } else {
                out.extend_from_slice(head);
            }
            i += plain;
            break;
        }
        // One character (or one run of ASCII whitespace) the slow way.
        let Some(&b) = bytes.get(i) else { break };
        if b < 0x80 {
            match b {
                b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | b' ' => {
                    space(out);
                    i += 1;
                    while bytes
                        .get(i)
                        .is_some_and(|b| matches!(b, b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | b' '))
                    {
                        i += 1;
                    }
                }
                0x21..=0x7e => {
                    out.push(if fold_case { b.to_ascii_lowercase() } else { b });
                    i += 1;
                }
                _ => i += 1,
            }
            continue;
        }
        let Some(c) = input.get(i..).and_then(|rest| rest.chars().next()) else {
            break;
        };
        i += c.len_utf8();
        let mut emit = |ch: char| {
            let mut buf = [0u8; 4];
            if ch.is_ascii() {
                // Most folds land in ASCII (é → e, — → -).
                let b = ch as u8;
                out.push(if fold_case { b.to_ascii_lowercase() } else { b });
            } else if !fold_case {
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            } else {
                for lower in ch.to_lowercase() {
                    out.extend_from_slice(lower.encode_utf8(&mut buf).as_bytes());
                }
            }
        };
        match fold_char(c) {
            Folded::Drop => {}
            Folded::Space => space(out),
            Folded::Char(ch) if ch.is_whitespace() => space(out),
            Folded::Char(ch) => emit(ch),
            Folded::Str(s) => s.chars().for_each(emit),
        }
    }
    if out.len() > start && out.last() == Some(&b' ') {
        out.pop();
    }
}

/// Appends the normalized form of `input` to `out` (see [`normalize_bytes_into`]).
pub fn normalize_into(input: &str, fold_case: bool, out: &mut String) {
    let mut bytes = std::mem::take(out).into_bytes();
    normalize_bytes_into(input, fold_case, &mut bytes);
    *out = match String::from_utf8(bytes) {
        Ok(s) => s,
        // Unreachable (only whole characters are appended); never panic on input.
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    };
}

/// The normalized form of `input` (see the module docs).
pub fn normalize(input: &str, fold_case: bool) -> String {
    let mut out = String::new();
    normalize_into(input, fold_case, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> String {
        normalize(s, true)
    }

    #[test]
    fn plain_ascii_is_lowercased_and_whitespace_collapsed() {
        assert_eq!(
            n("  Ignore\tALL\n\n previous   instructions  "),
            "ignore all previous instructions"
        );
        assert_eq!(normalize("Keep Case", false), "Keep Case");
    }

    #[test]
    fn invisible_characters_are_removed() {
        assert_eq!(
            n("ig\u{200b}no\u{200d}re\u{feff} pre\u{ad}vious"),
            "ignore previous"
        );
        assert_eq!(n("rm\u{202e} -rf\u{2066}"), "rm -rf");
        assert_eq!(n("a\u{0}b\u{7}c\u{9b}d"), "abcd");
        assert_eq!(n("i\u{fe0f}gnore"), "ignore");
        assert_eq!(n("i\u{0308}gno\u{0301}re"), "ignore");
    }

    #[test]
    fn tag_characters_are_decoded() {
        let hidden: String = "rm -rf"
            .chars()
            .map(|c| char::from_u32(0xe0000 + c as u32).unwrap())
            .collect();
        assert_eq!(n(&format!("\u{e0001}{hidden}\u{e007f}")), "rm -rf");
    }

    #[test]
    fn fullwidth_and_math_letters_fold() {
        assert_eq!(n("ＩＧＮＯＲＥ　ｐｒｅｖｉｏｕｓ"), "ignore previous");
        assert_eq!(n("𝐢𝐠𝐧𝐨𝐫𝐞 𝕀𝔾ℕ𝕆ℝ𝔼 𝘪𝘨𝘯𝘰𝘳𝘦 𝟙𝟚𝟛"), "ignore ignore ignore 123");
        assert_eq!(n("ⓘⓖⓝⓞⓡⓔ ⒾⒼⓃⓄⓇⒺ 🅸🅶🅽🅾🆁🅴 🇮🇬🇳"), "ignore ignore ignore ign");
        assert_eq!(n("ﬁle ¹²³ x₂"), "file 123 x2");
    }

    #[test]
    fn accents_quotes_and_dashes_fold() {
        assert_eq!(n("ÏGNÖRÉ prévïoüs łódź"), "ignore previous lodz");
        assert_eq!(n("don’t “quote” rm —rf"), "don't \"quote\" rm -rf");
    }

    #[test]
    fn homoglyphs_fold_to_latin() {
        // Cyrillic а, о, е, р and Greek ο, ι mixed into Latin words.
        assert_eq!(
            n("ignоrе аll рrеviοus instructiοns"),
            "ignore all previous instructions"
        );
        assert_eq!(n("ΙGΝΟRΕ"), "ignore");
        assert_eq!(n("ЅУЅТЕМ"), "system");
    }

    #[test]
    fn other_scripts_are_kept() {
        assert_eq!(n("日本語 Ωμέγα"), "日本語 ωμeγa");
    }

    #[test]
    fn fast_path_agrees_with_the_character_path() {
        // Mixed runs: spaces at run edges, doubled spaces, controls, non-ASCII between runs.
        let cases = [
            ("a b  c\t\td \n e", "a b c d e"),
            (" lead and trail ", "lead and trail"),
            ("x \u{200b} y", "x y"),
            ("AB\u{0301}CD é F", "abcd e f"),
            ("end with space é ", "end with space e"),
            ("\u{3000}Ｘ　Y", "x y"),
        ];
        for (input, want) in cases {
            assert_eq!(n(input), want, "{input:?}");
        }
    }

    /// The specification, one character at a time (what the fast path must agree with).
    fn reference(input: &str, fold_case: bool) -> String {
        let mut out = String::new();
        let mut pending = false;
        let push = |out: &mut String, ch: char, pending: &mut bool| {
            if std::mem::take(pending) && !out.is_empty() {
                out.push(' ');
            }
            if fold_case {
                out.extend(ch.to_lowercase());
            } else {
                out.push(ch);
            }
        };
        for c in input.chars() {
            match fold_char(c) {
                Folded::Drop => {}
                Folded::Space => pending = true,
                Folded::Char(ch) if ch.is_whitespace() => pending = true,
                Folded::Char(ch) => push(&mut out, ch, &mut pending),
                Folded::Str(s) => s.chars().for_each(|ch| push(&mut out, ch, &mut pending)),
            }
        }
        out
    }

    #[test]
    fn fast_path_agrees_with_the_reference_on_random_text() {
        // Pieces that stress run edges: single/double spaces, tabs, controls, DEL, upper case,
        // multi-byte characters that fold, drop or stay, at every offset modulo 8.
        let pieces: Vec<&str> = "a|Z| |  |\t|\n|\r\n|\u{7f}|\u{0}|é|—|\u{200b}|ﬁ|日|Ｋ|\u{e0041}|\u{3000}|Ω|xyzzy|HELLO World|~!|\u{a0}|\u{0301}|İ|ß"
            .split('|')
            .collect();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..400 {
            let mut input = String::new();
            for _ in 0..(len % 40) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                input.push_str(pieces[(seed % pieces.len() as u64) as usize]);
            }
            for fold in [true, false] {
                assert_eq!(
                    normalize(&input, fold),
                    reference(&input, fold),
                    "{input:?} {fold}"
                );
            }
        }
    }

    #[test]
    fn appends_after_existing_text() {
        let mut out = String::from("x");
        normalize_into("  A  B ", true, &mut out);
        assert_eq!(out, "xa b");
    }
}
