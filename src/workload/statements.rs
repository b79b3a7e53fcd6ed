//! Splitting a Cypher file into statements. A `;` ends a statement only
//! outside string literals, quoted names and comments, so a fixture value
//! like `'a;b'` stays whole and an error names the statement's own line.

/// One statement of a file, without its `;`, and the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub text: String,
    pub line: usize,
}

/// A string, quoted name or comment that the file never closes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {what} opened here is never closed")]
pub struct Unclosed {
    pub what: &'static str,
    pub line: usize,
}

#[derive(Clone, Copy, PartialEq)]
enum In {
    Code,
    Quoted(char),
    LineComment,
    BlockComment,
}

/// The statements of `text`, in order; one made of comments and blanks
/// only is left out.
pub fn split(text: &str) -> Result<Vec<Statement>, Unclosed> {
    let mut out = Vec::new();
    let mut current = String::new();
    // Line of the statement's first code character, and of an open quote
    // or comment (for the error).
    let (mut first, mut opened) = (None, 0);
    let mut line = 1;
    let mut state = In::Code;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match state {
            In::Code => match c {
                ';' => {
                    if let Some(start) = first.take() {
                        out.push(Statement {
                            text: current.trim().to_string(),
                            line: start,
                        });
                    }
                    current.clear();
                    continue;
                }
                '\'' | '"' | '`' => {
                    state = In::Quoted(c);
                    opened = line;
                    first.get_or_insert(line);
                }
                // Line comments are left out of the statement's text.
                '/' if chars.peek() == Some(&'/') => {
                    chars.next();
                    state = In::LineComment;
                    continue;
                }
                '/' if chars.peek() == Some(&'*') => {
                    current.push(c);
                    current.extend(chars.next());
                    state = In::BlockComment;
                    opened = line;
                    continue;
                }
                c if !c.is_whitespace() => {
                    first.get_or_insert(line);
                }
                _ => {}
            },
            In::Quoted(q) => {
                if c == '\\' && q != '`' {
                    // An escape: the next character cannot close the quote.
                    current.push(c);
                    if let Some(next) = chars.next() {
                        line += usize::from(next == '\n');
                        current.push(next);
                    }
                    continue;
                }
                if c == q {
                    state = In::Code;
                }
            }
            In::LineComment if c != '\n' => continue,
            In::LineComment => state = In::Code,
            In::BlockComment => {
                if c == '*' && chars.peek() == Some(&'/') {
                    current.push(c);
                    current.extend(chars.next());
                    state = In::Code;
                    continue;
                }
            }
        }
        if c == '\n' {
            line += 1;
        }
        current.push(c);
    }
    let what = match state {
        In::Quoted('`') => Some("a quoted name"),
        In::Quoted(_) => Some("a string"),
        In::BlockComment => Some("a comment"),
        In::Code | In::LineComment => None,
    };
    if let Some(what) = what {
        return Err(Unclosed { what, line: opened });
    }
    if let Some(start) = first {
        out.push(Statement {
            text: current.trim().to_string(),
            line: start,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(text: &str) -> Vec<String> {
        split(text).unwrap().into_iter().map(|s| s.text).collect()
    }

    #[test]
    fn a_semicolon_inside_a_string_does_not_end_the_statement() {
        assert_eq!(
            texts("CREATE (:A {s: 'a;b'});\nCREATE (:B {s: \"c;d\"});"),
            ["CREATE (:A {s: 'a;b'})", "CREATE (:B {s: \"c;d\"})"]
        );
    }

    #[test]
    fn an_escaped_quote_does_not_close_the_string() {
        assert_eq!(
            texts(r"CREATE (:A {s: 'it\'s; fine'}); RETURN 1"),
            [r"CREATE (:A {s: 'it\'s; fine'})", "RETURN 1"]
        );
    }

    #[test]
    fn quoted_names_and_comments_may_hold_semicolons() {
        assert_eq!(
            texts("CREATE (:`We;ird`); // a; comment\n/* block; */ RETURN 2;"),
            ["CREATE (:`We;ird`)", "/* block; */ RETURN 2"]
        );
    }

    #[test]
    fn comment_only_and_empty_statements_are_left_out() {
        assert_eq!(
            texts("// only a comment\n;;  \n/* x */;RETURN 3"),
            ["RETURN 3"]
        );
    }

    #[test]
    fn each_statement_knows_the_line_it_starts_on() {
        let s = split("// header\nCREATE (:A);\n\n  CREATE (:B {s: 'x\ny'});\nRETURN 1").unwrap();
        let lines: Vec<usize> = s.iter().map(|s| s.line).collect();
        assert_eq!(lines, [2, 4, 6]);
    }

    #[test]
    fn an_unclosed_string_or_comment_names_the_line_it_opened_on() {
        assert_eq!(
            split("RETURN 1;\nCREATE (:A {s: 'open});\nRETURN 2;"),
            Err(Unclosed {
                what: "a string",
                line: 2
            })
        );
        assert_eq!(split("RETURN 1;\n\n/* never closed").unwrap_err().line, 3);
        assert_eq!(split("CREATE (:`A)").unwrap_err().what, "a quoted name");
    }
}
