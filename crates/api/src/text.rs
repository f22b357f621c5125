//! Text as people will see it. A string that looks empty, or two options that look the
//! same, must count as such: invisible characters (the Unicode default-ignorable code
//! points, such as U+200B ZERO WIDTH SPACE) and compatibility forms (NFKC) are normalised
//! away before strings are compared, and control characters other than newline and tab
//! are refused outright.

use unicode_normalization::UnicodeNormalization;

use crate::validation::ValidationError;

/// Unicode's Default_Ignorable_Code_Point property (DerivedCoreProperties.txt, 15.1):
/// characters that render as nothing.
const DEFAULT_IGNORABLE: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
];

/// True for a character that renders as nothing.
pub fn is_default_ignorable(c: char) -> bool {
    let c = u32::from(c);
    DEFAULT_IGNORABLE
        .iter()
        .any(|(first, last)| (*first..=*last).contains(&c))
}

/// `text` without invisible characters, in NFKC form and trimmed: what an option is
/// compared (and kept) as.
pub fn normalize(text: &str) -> String {
    let visible: String = text.chars().filter(|c| !is_default_ignorable(*c)).collect();
    visible.nfkc().collect::<String>().trim().to_owned()
}

/// True when `text` shows at least one character.
pub fn has_visible(text: &str) -> bool {
    text.chars()
        .any(|c| !c.is_whitespace() && !is_default_ignorable(c))
}

/// `text` with Windows line ends made `\n`; refused (naming `field`) when it holds any
/// other control character than newline and tab.
pub fn without_controls(field: &str, text: &str) -> Result<String, ValidationError> {
    let text = text.replace("\r\n", "\n");
    if let Some(c) = text
        .chars()
        .find(|c| c.is_control() && *c != '\n' && *c != '\t')
    {
        return Err(ValidationError::new(
            field,
            format!(
                "{field} holds a control character (U+{:04X}); only newlines and tabs are allowed",
                u32::from(c)
            ),
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_and_compatibility_forms_normalise_away() {
        assert_eq!(normalize("Approve\u{200b}"), "Approve");
        assert_eq!(normalize("\u{feff} Approve "), "Approve");
        assert_eq!(normalize("Ａｐｐｒｏｖｅ"), "Approve");
        assert_eq!(normalize("ﬁle"), "file");
        assert_eq!(normalize("Käse"), "Käse");
    }

    #[test]
    fn visible_means_something_shows() {
        assert!(!has_visible("\u{200b}\u{200c}\u{2060} \n"));
        assert!(!has_visible(""));
        assert!(has_visible("\u{200b}x"));
        assert!(has_visible("→"));
    }

    #[test]
    fn control_characters_are_refused_but_newlines_and_tabs_pass() {
        assert_eq!(without_controls("m", "a\r\nb\tc").unwrap(), "a\nb\tc");
        for bad in ["a\u{0}b", "a\u{7}", "\u{1b}[31mred", "a\rb", "x\u{85}"] {
            assert_eq!(
                without_controls("message", bad).unwrap_err().field,
                "message",
                "{bad:?}"
            );
        }
    }
}
