//! Reading shell text without running it, and writing shell text safely.
//!
//! `SCRIPTDIR/config` is a shell script that the stock apccontrol sources,
//! side effects and all, once per event. `--check` and `--flush-outbox` (a
//! timer runs it every 15 minutes) must not run those side effects again, so
//! they evaluate only its [`declarations`]: the **top-level plain
//! assignments** (`NAME=value`, `export NAME=value`, with no command
//! substitution or redirection, not inside `if`, `case`, a loop, a function
//! or a `{ }` group, and not joined to another command by `&&`, `||`, `|` or
//! `&`) and the **function definitions**, which run nothing. Settings made
//! in any other way are seen by event runs only.
//!
//! Also here: parsing the output of `export -p` (dash and bash formats), and
//! quoting bytes for the shell and for `printf`.
//!
//! Pure: bytes in, data out. No processes, no file system.

use std::ffi::OsString;
use std::ops::Range;
use std::os::unix::ffi::OsStringExt;

/// What can be learnt from a config without running it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Declarations {
    /// The top-level plain assignments and function definitions, in order:
    /// safe to evaluate, they run no command.
    pub pieces: Vec<Vec<u8>>,
    /// Names assigned by those assignments.
    pub assigned: Vec<String>,
    /// Names that are assigned somewhere else (inside a condition, with a
    /// command substitution...): only an event run sees their value.
    pub assigned_elsewhere: Vec<String>,
    /// Names of the functions defined at the top level.
    pub functions: Vec<String>,
    /// A top-level `exit` or `exec` command: the stock script would stop (or
    /// be replaced) there.
    pub exits: bool,
    /// The text has carriage returns at line ends (DOS line endings).
    pub crlf: bool,
    /// The text starts with a UTF-8 byte-order mark, which the shell reads
    /// as part of the first word (so `\u{feff}WALL=x` is a command).
    pub bom: bool,
}

/// A token of shell text.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// A word, with the byte range it spans and whether it holds a command
    /// substitution (`$(...)` or backticks) and whether any part is quoted.
    Word {
        span: Range<usize>,
        substitution: bool,
        quoted: bool,
    },
    /// An operator: `;` `;;` `&` `&&` `|` `||` `(` `)` or a redirection.
    Op {
        span: Range<usize>,
        op: &'static str,
    },
    /// An unquoted newline (heredoc bodies are skipped).
    Newline { at: usize },
}

impl Token {
    fn start(&self) -> usize {
        match self {
            Token::Word { span, .. } | Token::Op { span, .. } => span.start,
            Token::Newline { at } => *at,
        }
    }

    fn end(&self) -> usize {
        match self {
            Token::Word { span, .. } | Token::Op { span, .. } => span.end,
            Token::Newline { at } => *at + 1,
        }
    }
}

const OPERATORS: &[&str] = &[
    ";;&", "<<-", ";;", ";&", "&&", "||", ">>", "<<", "<&", ">&", "<>", ">|", ";", "&", "|", "(",
    ")", "<", ">",
];

fn is_redirection(op: &str) -> bool {
    op.starts_with('<') || op.starts_with('>')
}

/// Split shell text into tokens. Never fails: unterminated quotes run to the
/// end of the text.
fn tokenize(text: &[u8]) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut i = 0;
    let mut heredocs: Vec<(Vec<u8>, bool)> = Vec::new();
    let mut expect_delimiter: Option<bool> = None;
    while i < text.len() {
        let c = text[i];
        match c {
            b' ' | b'\t' | b'\r' => i += 1,
            b'\\' if text.get(i + 1) == Some(&b'\n') => i += 2,
            b'\n' => {
                tokens.push(Token::Newline { at: i });
                i += 1;
                for (delimiter, strip_tabs) in heredocs.drain(..) {
                    i = skip_heredoc(text, i, &delimiter, strip_tabs);
                }
            }
            b'#' => {
                while i < text.len() && text[i] != b'\n' {
                    i += 1;
                }
            }
            _ => {
                if let Some(op) = OPERATORS
                    .iter()
                    .find(|op| text[i..].starts_with(op.as_bytes()))
                {
                    tokens.push(Token::Op {
                        span: i..i + op.len(),
                        op,
                    });
                    if *op == "<<" || *op == "<<-" {
                        expect_delimiter = Some(*op == "<<-");
                    }
                    i += op.len();
                    continue;
                }
                let start = i;
                let (end, substitution, quoted) = scan_word(text, i);
                i = end.max(start + 1);
                tokens.push(Token::Word {
                    span: start..i,
                    substitution,
                    quoted,
                });
                if let Some(strip_tabs) = expect_delimiter.take() {
                    heredocs.push((unquote_delimiter(&text[start..i]), strip_tabs));
                }
            }
        }
    }
    tokens
}

fn unquote_delimiter(word: &[u8]) -> Vec<u8> {
    word.iter()
        .copied()
        .filter(|b| !matches!(b, b'\'' | b'"' | b'\\'))
        .collect()
}

/// Skip a heredoc body starting at `i` (the line after the operator's line).
fn skip_heredoc(text: &[u8], mut i: usize, delimiter: &[u8], strip_tabs: bool) -> usize {
    while i < text.len() {
        let end = text[i..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(text.len(), |p| i + p);
        let mut line = &text[i..end];
        if strip_tabs {
            while let [b'\t', rest @ ..] = line {
                line = rest;
            }
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        i = (end + 1).min(text.len());
        if line == delimiter {
            break;
        }
    }
    i
}

/// Scan one word from `i`: its end, whether it holds a command
/// substitution, whether any part of it is quoted.
fn scan_word(text: &[u8], mut i: usize) -> (usize, bool, bool) {
    let mut substitution = false;
    let mut quoted = false;
    while i < text.len() {
        match text[i] {
            b' ' | b'\t' | b'\n' | b'\r' | b';' | b'&' | b'|' | b'(' | b')' | b'<' | b'>' => break,
            b'\\' => {
                quoted = true;
                i += 2;
            }
            b'\'' => {
                quoted = true;
                i = skip_single(text, i + 1);
            }
            b'"' => {
                quoted = true;
                let (end, sub) = skip_double(text, i + 1);
                substitution |= sub;
                i = end;
            }
            b'`' => {
                substitution = true;
                i = skip_backticks(text, i + 1);
            }
            b'$' => {
                let (end, sub) = skip_dollar(text, i);
                substitution |= sub;
                quoted |= text.get(i + 1) == Some(&b'\'');
                i = end;
            }
            _ => i += 1,
        }
    }
    (i.min(text.len()), substitution, quoted)
}

fn skip_single(text: &[u8], i: usize) -> usize {
    text[i.min(text.len())..]
        .iter()
        .position(|b| *b == b'\'')
        .map_or(text.len(), |p| i + p + 1)
}

fn skip_double(text: &[u8], mut i: usize) -> (usize, bool) {
    let mut substitution = false;
    while i < text.len() {
        match text[i] {
            b'"' => return (i + 1, substitution),
            b'\\' => i += 2,
            b'`' => {
                substitution = true;
                i = skip_backticks(text, i + 1);
            }
            b'$' => {
                let (end, sub) = skip_dollar(text, i);
                substitution |= sub;
                i = end;
            }
            _ => i += 1,
        }
    }
    (text.len(), substitution)
}

fn skip_backticks(text: &[u8], mut i: usize) -> usize {
    while i < text.len() {
        match text[i] {
            b'`' => return i + 1,
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    text.len()
}

/// At a `$`: skip `$(...)`, `$((...))`, `${...}`, `$'...'` or a plain `$`.
/// Returns the end and whether it was a command substitution.
fn skip_dollar(text: &[u8], i: usize) -> (usize, bool) {
    match text.get(i + 1) {
        Some(b'(') => {
            let arithmetic = text.get(i + 2) == Some(&b'(');
            (skip_parens(text, i + 2), !arithmetic)
        }
        Some(b'{') => skip_braces(text, i + 2),
        Some(b'\'') => {
            let mut j = i + 2;
            while j < text.len() {
                match text[j] {
                    b'\\' => j += 2,
                    b'\'' => return (j + 1, false),
                    _ => j += 1,
                }
            }
            (text.len(), false)
        }
        _ => (i + 1, false),
    }
}

/// Skip to the `)` that closes a `(` just before `i`, minding quotes.
fn skip_parens(text: &[u8], mut i: usize) -> usize {
    let mut depth = 1;
    while i < text.len() {
        match text[i] {
            b'(' => {
                depth += 1;
                i += 1;
            }
            b')' => {
                depth -= 1;
                i += 1;
                if depth == 0 {
                    return i;
                }
            }
            b'\\' => i += 2,
            b'\'' => i = skip_single(text, i + 1),
            b'"' => i = skip_double(text, i + 1).0,
            b'`' => i = skip_backticks(text, i + 1),
            _ => i += 1,
        }
    }
    text.len()
}

/// Skip to the `}` that closes a `${`, minding quotes; a command
/// substitution inside counts.
fn skip_braces(text: &[u8], mut i: usize) -> (usize, bool) {
    let mut substitution = false;
    while i < text.len() {
        match text[i] {
            b'}' => return (i + 1, substitution),
            b'\\' => i += 2,
            b'\'' => i = skip_single(text, i + 1),
            b'"' => {
                let (end, sub) = skip_double(text, i + 1);
                substitution |= sub;
                i = end;
            }
            b'`' => {
                substitution = true;
                i = skip_backticks(text, i + 1);
            }
            b'$' => {
                let (end, sub) = skip_dollar(text, i);
                substitution |= sub;
                i = end;
            }
            _ => i += 1,
        }
    }
    (text.len(), substitution)
}

/// An assignment word's name, if the word is `NAME=...` with NAME unquoted.
fn assignment_name(word: &[u8]) -> Option<&str> {
    let eq = word.iter().position(|b| *b == b'=')?;
    let name = std::str::from_utf8(&word[..eq]).ok()?;
    is_name(name).then_some(name)
}

/// A valid shell variable name.
pub fn is_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Where in a `case` we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CaseAt {
    /// Before `in`.
    Subject,
    /// Reading patterns, up to `)`.
    Patterns,
    /// In the commands of an item.
    Body,
}

/// What opened a nesting level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    /// `if` .. `fi`, loops .. `done`, `{` .. `}`.
    Keyword,
    /// `(` .. `)`.
    Paren,
    /// `case` .. `esac`.
    Case(CaseAt),
}

/// Find the top-level plain assignments and function definitions of a
/// config (see the module doc).
pub fn declarations(text: &[u8]) -> Declarations {
    let tokens = tokenize(text);
    let mut found = Declarations {
        crlf: text.windows(2).any(|w| w == b"\r\n"),
        bom: text.starts_with(b"\xef\xbb\xbf"),
        ..Declarations::default()
    };
    let word = |t: &Token| -> Option<&[u8]> {
        match t {
            Token::Word { span, quoted, .. } if !quoted => Some(&text[span.clone()]),
            _ => None,
        }
    };

    let mut stack: Vec<Frame> = Vec::new();
    // Start of the current simple command (token index), when at top level.
    let mut command_start: Option<usize> = None;
    let mut command_position = true;
    let mut joined_before = false;
    // A function definition in progress: (first token, depth it started at).
    let mut function: Option<(usize, String)> = None;
    let mut i = 0;
    while i < tokens.len() {
        let token = &tokens[i];
        let at_top = stack.is_empty() && function.is_none();
        match token {
            Token::Newline { .. } | Token::Op { .. } if is_separator(token) => {
                let op = op_of(token);
                if let Some(start) = command_start.take() {
                    let joined_after = matches!(op, Some("&" | "&&" | "||" | "|"));
                    if at_top {
                        take_command(
                            text,
                            &tokens[start..i],
                            joined_before || joined_after,
                            &mut found,
                        );
                    }
                }
                if matches!(op, Some(";;" | ";&" | ";;&")) {
                    if let Some(Frame::Case(at)) = stack.last_mut() {
                        *at = CaseAt::Patterns;
                    }
                }
                joined_before = matches!(op, Some("&&" | "||" | "|"));
                command_position = true;
                i += 1;
                continue;
            }
            _ => {}
        }

        // The subject of a case, up to `in`, then its patterns, up to `)`.
        if let Some(Frame::Case(CaseAt::Subject)) = stack.last() {
            if word(token) == Some(b"in") {
                stack.pop();
                stack.push(Frame::Case(CaseAt::Patterns));
            }
            i += 1;
            continue;
        }
        if let Some(Frame::Case(CaseAt::Patterns)) = stack.last() {
            match token {
                Token::Op { op: ")", .. } => {
                    stack.pop();
                    stack.push(Frame::Case(CaseAt::Body));
                    command_position = true;
                }
                _ if word(token) == Some(b"esac") => {
                    stack.pop();
                    command_position = false;
                }
                _ => {}
            }
            i += 1;
            continue;
        }

        if command_position {
            let keyword = word(token);
            match keyword {
                Some(b"if" | b"while" | b"until" | b"for" | b"{") => {
                    note_elsewhere(text, &tokens[i..], &mut found);
                    stack.push(Frame::Keyword);
                    i += 1;
                    continue;
                }
                Some(b"case") => {
                    note_elsewhere(text, &tokens[i..], &mut found);
                    stack.push(Frame::Case(CaseAt::Subject));
                    command_position = false;
                    i += 1;
                    continue;
                }
                Some(b"fi" | b"done" | b"}") => {
                    if stack.last() == Some(&Frame::Keyword) {
                        stack.pop();
                    }
                    command_position = false;
                    close_function(text, &tokens, i, &stack, &mut function, &mut found);
                    i += 1;
                    continue;
                }
                Some(b"esac") => {
                    if matches!(stack.last(), Some(Frame::Case(_))) {
                        stack.pop();
                    }
                    command_position = false;
                    close_function(text, &tokens, i, &stack, &mut function, &mut found);
                    i += 1;
                    continue;
                }
                Some(b"then" | b"do" | b"else" | b"elif" | b"!") => {
                    i += 1;
                    continue;
                }
                _ => {}
            }
            if let Token::Op { op: "(", .. } = token {
                stack.push(Frame::Paren);
                i += 1;
                continue;
            }
            // `name ( )`: a function definition.
            if let (Some(name), Some(Token::Op { op: "(", .. }), Some(Token::Op { op: ")", .. })) = (
                word(token).and_then(|w| std::str::from_utf8(w).ok()),
                tokens.get(i + 1),
                tokens.get(i + 2),
            ) {
                if stack.is_empty() && function.is_none() && is_name(name) {
                    function = Some((i, name.to_string()));
                }
                command_position = true;
                i += 3;
                continue;
            }
        }
        if let Token::Op { op: ")", .. } = token {
            if stack.last() == Some(&Frame::Paren) {
                stack.pop();
                close_function(text, &tokens, i, &stack, &mut function, &mut found);
            }
            command_position = false;
            i += 1;
            continue;
        }
        if !stack.is_empty() || function.is_some() {
            note_elsewhere(text, &tokens[i..i + 1], &mut found);
        }
        if at_top && command_start.is_none() {
            command_start = Some(i);
        }
        // After assignments, the next word is still in command-name position
        // for `exit`/`exec` detection, but keywords are no longer reserved.
        command_position = false;
        i += 1;
    }
    if let Some(start) = command_start {
        if stack.is_empty() && function.is_none() {
            take_command(text, &tokens[start..], joined_before, &mut found);
        }
    }
    found.assigned.dedup();
    found.assigned_elsewhere.sort();
    found.assigned_elsewhere.dedup();
    found
        .assigned_elsewhere
        .retain(|n| !found.assigned.contains(n));
    found
}

fn is_separator(token: &Token) -> bool {
    matches!(
        token,
        Token::Newline { .. }
            | Token::Op {
                op: ";" | ";;" | ";&" | ";;&" | "&" | "&&" | "||" | "|",
                ..
            }
    )
}

fn op_of(token: &Token) -> Option<&'static str> {
    match token {
        Token::Op { op, .. } => Some(op),
        _ => None,
    }
}

/// Assignment words among these tokens: names an event run may set that a
/// static read cannot.
fn note_elsewhere(text: &[u8], tokens: &[Token], found: &mut Declarations) {
    for token in tokens
        .iter()
        .take_while(|t| !matches!(t, Token::Newline { .. }))
    {
        if let Token::Word { span, .. } = token {
            if let Some(name) = assignment_name(&text[span.clone()]) {
                found.assigned_elsewhere.push(name.to_string());
            }
        }
    }
}

/// When a function body closes back at the top level, keep its text if
/// nothing else follows on its line.
fn close_function(
    text: &[u8],
    tokens: &[Token],
    at: usize,
    stack: &[Frame],
    function: &mut Option<(usize, String)>,
    found: &mut Declarations,
) {
    if !stack.is_empty() {
        return;
    }
    let Some((start, name)) = function.take() else {
        return;
    };
    let alone = match tokens.get(at + 1) {
        None | Some(Token::Newline { .. }) => true,
        Some(Token::Op { op: ";", .. }) => {
            matches!(tokens.get(at + 2), None | Some(Token::Newline { .. }))
        }
        _ => false,
    };
    if alone {
        found
            .pieces
            .push(text[tokens[start].start()..tokens[at].end()].to_vec());
        found.functions.push(name);
    }
}

/// A top-level simple command: keep it when it is plain assignments.
fn take_command(text: &[u8], tokens: &[Token], joined: bool, found: &mut Declarations) {
    let words: Vec<(&[u8], bool)> = tokens
        .iter()
        .filter_map(|t| match t {
            Token::Word {
                span, substitution, ..
            } => Some((&text[span.clone()], *substitution)),
            _ => None,
        })
        .collect();
    let has_redirection = tokens
        .iter()
        .any(|t| matches!(t, Token::Op { op, .. } if is_redirection(op)));
    let first_plain = words
        .iter()
        .find(|(w, _)| assignment_name(w).is_none())
        .map(|(w, _)| *w);
    if !joined {
        match first_plain {
            Some(b"exit") => found.exits = true,
            // `exec >>log 2>&1` only redirects; `exec cmd` replaces the shell.
            Some(b"exec") => found.exits |= exec_runs_a_command(text, tokens),
            _ => {}
        }
    }
    let names: Vec<&str> = words
        .iter()
        .filter_map(|(w, _)| assignment_name(w))
        .collect();
    let (keyword, rest) = match words.first() {
        Some((w, _)) if *w == b"export" || *w == b"readonly" => (true, &words[1..]),
        _ => (false, &words[..]),
    };
    let pure = !joined
        && !has_redirection
        && !rest.is_empty()
        && words.iter().all(|(_, sub)| !sub)
        && rest.iter().all(|(w, _)| {
            assignment_name(w).is_some() || (keyword && std::str::from_utf8(w).is_ok_and(is_name))
        });
    if pure {
        if let (Some(first), Some(last)) = (tokens.first(), tokens.last()) {
            found.pieces.push(text[first.start()..last.end()].to_vec());
        }
        found.assigned.extend(names.iter().map(|n| n.to_string()));
    } else {
        found
            .assigned_elsewhere
            .extend(names.iter().map(|n| n.to_string()));
    }
}

/// Whether an `exec` command names a program (and not only redirections).
fn exec_runs_a_command(text: &[u8], tokens: &[Token]) -> bool {
    let mut after_exec = false;
    let mut target_next = false;
    for (i, token) in tokens.iter().enumerate() {
        match token {
            Token::Op { op, .. } if is_redirection(op) => target_next = true,
            Token::Op { .. } | Token::Newline { .. } => {}
            Token::Word { span, .. } => {
                let word = &text[span.clone()];
                if target_next {
                    target_next = false;
                } else if !after_exec {
                    after_exec = word == b"exec";
                } else {
                    // `2>&1`: the digits touch the operator that follows.
                    let io_number = word.iter().all(u8::is_ascii_digit)
                        && matches!(tokens.get(i + 1), Some(Token::Op { span: next, op }) if next.start == span.end && is_redirection(op));
                    if !io_number {
                        return true;
                    }
                }
            }
        }
    }
    false
}

/// One step of a config made only of literal assignments
/// ([`literal_assignments`]), in the order the shell runs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Literal {
    /// `NAME=value`: the variable takes the value (and stays exported if it was).
    Set {
        /// The variable.
        name: String,
        /// Its value, quotes removed.
        value: Vec<u8>,
    },
    /// `export NAME` or `export NAME=value`.
    Export {
        /// The variable.
        name: String,
        /// The value given with it, if any.
        value: Option<Vec<u8>>,
    },
}

/// The steps of a config that consists solely of blank lines, comments and
/// top-level simple commands that are `NAME=word...` or `export NAME[=word]...`,
/// separated by newlines or `;`, where no word needs an expansion: unquoted
/// characters that mean nothing to the shell, `'...'`, and `"..."` without
/// `$`, `` ` `` or `\`. `None` for anything else (a command, a `$`, a
/// function, a redirection, `&&`, a carriage return, an unterminated
/// quote...): then only the shell can say what the text does.
///
/// Built on the same tokenizer as [`declarations`].
pub fn literal_assignments(text: &[u8]) -> Option<Vec<Literal>> {
    // dash reads a carriage return as part of a word and a NUL as the end
    // of the text: neither is the tokenizer's reading.
    if text.iter().any(|b| matches!(b, b'\r' | 0)) {
        return None;
    }
    let mut steps = Vec::new();
    let mut command: Vec<&[u8]> = Vec::new();
    for token in tokenize(text) {
        match token {
            Token::Word { span, .. } => command.push(&text[span]),
            Token::Newline { .. } => {
                literal_command(&command, &mut steps)?;
                command.clear();
            }
            // `;` ends a command; with no command before it, it is a syntax error.
            Token::Op { op: ";", .. } if !command.is_empty() => {
                literal_command(&command, &mut steps)?;
                command.clear();
            }
            Token::Op { .. } => return None,
        }
    }
    literal_command(&command, &mut steps)?;
    Some(steps)
}

/// One simple command of [`literal_assignments`]; an empty one is a blank line.
fn literal_command(words: &[&[u8]], steps: &mut Vec<Literal>) -> Option<()> {
    match words {
        [] => Some(()),
        [b"export", args @ ..] if !args.is_empty() => {
            for arg in args {
                let (name, value) = match assignment_name(arg) {
                    Some(name) => {
                        // No pathname expansion either, whatever the shell's
                        // reading of `export` arguments.
                        let value = literal_word(&arg[name.len() + 1..])?;
                        (name, Some(value))
                    }
                    None => (std::str::from_utf8(arg).ok().filter(|n| is_name(n))?, None),
                };
                steps.push(Literal::Export {
                    name: name.to_string(),
                    value,
                });
            }
            Some(())
        }
        _ => {
            for word in words {
                let name = assignment_name(word)?;
                let value = literal_assignment_value(&word[name.len() + 1..])?;
                steps.push(Literal::Set {
                    name: name.to_string(),
                    value,
                });
            }
            Some(())
        }
    }
}

/// An assignment's value: as [`literal_word`], and `*`, `?` and `[` are
/// plain characters too (assignments are not globbed).
fn literal_assignment_value(word: &[u8]) -> Option<Vec<u8>> {
    literal_word_with(word, |b| {
        literal_unquoted(b) || matches!(b, b'*' | b'?' | b'[')
    })
}

/// A word that means itself once its quotes are removed, or `None`.
fn literal_word(word: &[u8]) -> Option<Vec<u8>> {
    literal_word_with(word, literal_unquoted)
}

/// Unquoted bytes that are themselves: no expansion (`$`, `` ` ``, `~`),
/// no escape, no quote, no pattern, no operator or blank (the tokenizer
/// ends words there anyway).
fn literal_unquoted(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"_-./:,+=@%^!]{}#".contains(&b) || b >= 0x80
}

fn literal_word_with(word: &[u8], unquoted: impl Fn(u8) -> bool) -> Option<Vec<u8>> {
    let mut value = Vec::with_capacity(word.len());
    let mut i = 0;
    while i < word.len() {
        match word[i] {
            b'\'' => {
                let end = i + 1 + word[i + 1..].iter().position(|b| *b == b'\'')?;
                value.extend_from_slice(&word[i + 1..end]);
                i = end + 1;
            }
            b'"' => {
                let len = word[i + 1..].iter().position(|b| *b == b'"')?;
                let inside = &word[i + 1..i + 1 + len];
                if inside.iter().any(|b| matches!(b, b'$' | b'`' | b'\\')) {
                    return None;
                }
                value.extend_from_slice(inside);
                i += len + 2;
            }
            b if unquoted(b) => {
                value.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    Some(value)
}

/// Quote bytes for the shell: `'...'`, with `'` written as `'\''`.
pub fn quote(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 2);
    out.push(b'\'');
    for b in bytes {
        if *b == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(*b);
        }
    }
    out.push(b'\'');
    out
}

/// Bytes as a `printf` format that prints exactly them, on one line: every
/// byte outside printable ASCII (and `\`, `%`, `'`) as a `\ooo` escape,
/// single-quoted for the shell.
pub fn printf_format(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('\'');
    for b in bytes {
        match b {
            b' '..=b'~' if !matches!(b, b'\\' | b'%' | b'\'') => out.push(char::from(*b)),
            _ => out.push_str(&format!("\\{b:03o}")),
        }
    }
    out.push('\'');
    out
}

/// Parse `export -p` output, as dash (`export NAME='value'`) or bash
/// (`export NAME="value"`, `declare -x NAME=$'...'`) prints it: the
/// exported variables that have a value, in order. `None` if a line cannot
/// be understood.
pub fn parse_export_p(out: &[u8]) -> Option<Vec<(OsString, OsString)>> {
    let mut vars = Vec::new();
    let mut i = 0;
    while i < out.len() {
        if out[i] == b'\n' {
            i += 1;
            continue;
        }
        let rest = &out[i..];
        let after = match rest.strip_prefix(b"export ") {
            Some(r) => r,
            None => rest.strip_prefix(b"declare -x ")?,
        };
        i += rest.len() - after.len();
        let name_len = out[i..]
            .iter()
            .position(|b| *b == b'=' || *b == b'\n')
            .unwrap_or(out.len() - i);
        let name = out[i..i + name_len].to_vec();
        i += name_len;
        if out.get(i) != Some(&b'=') {
            // Exported without a value: children do not get it.
            continue;
        }
        i += 1;
        let (value, end) = unquote_value(out, i)?;
        i = end;
        vars.push((OsString::from_vec(name), OsString::from_vec(value)));
    }
    Some(vars)
}

/// Read one shell word from `i` up to an unquoted newline: the value and
/// where it ended.
fn unquote_value(out: &[u8], mut i: usize) -> Option<(Vec<u8>, usize)> {
    let mut value = Vec::new();
    while i < out.len() && out[i] != b'\n' {
        match out[i] {
            b'\'' => {
                let end = out[i + 1..].iter().position(|b| *b == b'\'')? + i + 1;
                value.extend_from_slice(&out[i + 1..end]);
                i = end + 1;
            }
            b'"' => {
                i += 1;
                loop {
                    match *out.get(i)? {
                        b'"' => {
                            i += 1;
                            break;
                        }
                        b'\\' if matches!(out.get(i + 1), Some(b'$' | b'`' | b'"' | b'\\')) => {
                            value.push(out[i + 1]);
                            i += 2;
                        }
                        b'\\' if out.get(i + 1) == Some(&b'\n') => i += 2,
                        b => {
                            value.push(b);
                            i += 1;
                        }
                    }
                }
            }
            b'$' if out.get(i + 1) == Some(&b'\'') => {
                i += 2;
                loop {
                    match *out.get(i)? {
                        b'\'' => {
                            i += 1;
                            break;
                        }
                        b'\\' => {
                            let (byte, used) = ansi_escape(&out[i + 1..])?;
                            value.push(byte);
                            i += 1 + used;
                        }
                        b => {
                            value.push(b);
                            i += 1;
                        }
                    }
                }
            }
            b'\\' => {
                value.push(*out.get(i + 1)?);
                i += 2;
            }
            b => {
                value.push(b);
                i += 1;
            }
        }
    }
    Some((value, i))
}

/// One `$'...'` escape after the backslash: the byte and how many bytes it used.
fn ansi_escape(s: &[u8]) -> Option<(u8, usize)> {
    let simple = |b: u8| Some((b, 1));
    match *s.first()? {
        b'n' => simple(b'\n'),
        b't' => simple(b'\t'),
        b'r' => simple(b'\r'),
        b'a' => simple(7),
        b'b' => simple(8),
        b'e' | b'E' => simple(27),
        b'f' => simple(12),
        b'v' => simple(11),
        b'x' => {
            let digits: Vec<u8> = s[1..]
                .iter()
                .take(2)
                .take_while(|b| b.is_ascii_hexdigit())
                .copied()
                .collect();
            let value = u8::from_str_radix(std::str::from_utf8(&digits).ok()?, 16).ok()?;
            Some((value, 1 + digits.len()))
        }
        b'0'..=b'7' => {
            let digits: Vec<u8> = s
                .iter()
                .take(3)
                .take_while(|b| (b'0'..=b'7').contains(b))
                .copied()
                .collect();
            let value = u32::from_str_radix(std::str::from_utf8(&digits).ok()?, 8).ok()?;
            Some((value as u8, digits.len()))
        }
        other => simple(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(d: &Declarations) -> String {
        d.pieces
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned() + "\n")
            .collect()
    }

    #[test]
    fn plain_top_level_assignments_are_kept() {
        let d = declarations(
            b"# comment\nWALL=wall\nexport NTFY_URL=https://x/y  # trailing\nA=1 B=\"two words\"; C='c'\nexport D\nreadonly E=5\n",
        );
        assert_eq!(
            text(&d),
            "WALL=wall\nexport NTFY_URL=https://x/y\nA=1 B=\"two words\"\nC='c'\nexport D\nreadonly E=5\n"
        );
        assert_eq!(d.assigned, ["WALL", "NTFY_URL", "A", "B", "C", "E"]);
        assert!(d.assigned_elsewhere.is_empty());
        assert!(!d.exits && !d.crlf);
    }

    #[test]
    fn commands_conditions_and_substitutions_are_left_out() {
        let d = declarations(
            b"logger config read\nX=$(date)\nY=`id -u`\nZ=\"$(hostname)\"\nif [ -x /bin/true ]; then W=1; fi\ncase \"$1\" in\n  onbattery) V=2 ;;\n  *) V=3 ;;\nesac\n[ -f /x ] && U=4\nT=5 cmd\nS=6 >/tmp/x\nR=7 &\nQ=8 | cat\n{ P=9; }\n( O=10 )\nOK=yes\n",
        );
        assert_eq!(text(&d), "OK=yes\n");
        assert_eq!(d.assigned, ["OK"]);
        for name in ["X", "Y", "Z", "W", "V", "U", "T", "S", "R", "Q", "P", "O"] {
            assert!(
                d.assigned_elsewhere.contains(&name.to_string()),
                "{name}: {:?}",
                d.assigned_elsewhere
            );
        }
    }

    #[test]
    fn arithmetic_and_parameter_expansion_are_fine() {
        let d = declarations(b"A=$((1 + 2))\nB=${SYSADMIN:-root}@${HOST}\nC=\"$A:$B\"\n");
        assert_eq!(d.assigned, ["A", "B", "C"]);
    }

    #[test]
    fn functions_are_kept_whole_and_their_insides_are_not_top_level() {
        let d = declarations(
            b"mywall() {\n    X=inside\n    logger \"$@\"\n}\nWALL=mywall\nf() { :; }; rm -rf /nothing\ng() ( echo sub )\n",
        );
        assert_eq!(
            text(&d),
            "mywall() {\n    X=inside\n    logger \"$@\"\n}\nWALL=mywall\ng() ( echo sub )\n"
        );
        assert_eq!(d.functions, ["mywall", "g"]);
        assert_eq!(d.assigned, ["WALL"]);
        assert_eq!(d.assigned_elsewhere, ["X"]);
    }

    #[test]
    fn heredocs_quotes_and_continuations_do_not_confuse_it() {
        let d = declarations(
            b"cat <<EOF >/dev/null\nHIDDEN=1\nEOF\nA='multi\nline'\nB=\"x;y|z\" \\\n  C=2\nD=a\\ b\n",
        );
        assert_eq!(
            text(&d),
            "A='multi\nline'\nB=\"x;y|z\" \\\n  C=2\nD=a\\ b\n"
        );
        assert!(!d.assigned.contains(&"HIDDEN".to_string()));
        assert!(!d.assigned_elsewhere.contains(&"HIDDEN".to_string()));
    }

    #[test]
    fn exit_exec_and_crlf_are_noticed() {
        assert!(declarations(b"A=1\nexit 0\n").exits);
        assert!(!declarations(b"exec >>/var/log/x 2>&1\n").exits);
        assert!(declarations(b"exec /bin/true\n").exits);
        assert!(!declarations(b"[ -f x ] || exit 1\n").exits);
        assert!(!declarations(b"f() { exit 1; }\n").exits);
        assert!(declarations(b"A=1\r\nB=2\r\n").crlf);
        let bom = declarations(b"\xef\xbb\xbfWALL=/bin/true\nB=2\n");
        assert!(bom.bom);
        assert_eq!(bom.assigned, ["B"], "the first line assigns nothing");
        assert!(!declarations(b"WALL=/bin/true # \xef\xbb\xbf\n").bom);
    }

    #[test]
    fn unbalanced_text_never_panics() {
        for text in [
            &b"A='open"[..],
            b"B=\"open",
            b"C=$(open",
            b"}}}) fi done esac",
            b"case x in",
            b"f() {",
            b"cat <<",
            b"\\",
            b"$",
            b"${",
            b"$'\\",
        ] {
            let _ = declarations(text);
        }
    }

    fn set(name: &str, value: &str) -> Literal {
        Literal::Set {
            name: name.into(),
            value: value.into(),
        }
    }

    fn export(name: &str, value: Option<&str>) -> Literal {
        Literal::Export {
            name: name.into(),
            value: value.map(|v| v.as_bytes().to_vec()),
        }
    }

    #[test]
    fn literal_assignments_are_read_with_their_quotes_removed() {
        let steps = literal_assignments(
            b"# stock settings\n\nWALL='wall -n'\nA=1 B=\"two words\"; C=x'y'\"z\"#k # comment\nexport D E=e F=\nG=*.[ch]\nH=\"multi\nline\" ;\nI=K\xfcche\n",
        )
        .unwrap();
        assert_eq!(
            steps,
            [
                set("WALL", "wall -n"),
                set("A", "1"),
                set("B", "two words"),
                set("C", "xyz#k"),
                export("D", None),
                export("E", Some("e")),
                export("F", Some("")),
                set("G", "*.[ch]"),
                set("H", "multi\nline"),
                Literal::Set {
                    name: "I".into(),
                    value: b"K\xfcche".to_vec()
                },
            ]
        );
        assert_eq!(literal_assignments(b""), Some(Vec::new()));
        assert_eq!(literal_assignments(b"# only\n\n  \n"), Some(Vec::new()));
    }

    #[test]
    fn anything_the_shell_must_judge_is_not_literal() {
        for text in [
            &b"PATH=/opt/x:$PATH\n"[..],
            b"A=\"$HOME\"\n",
            b"A=\"`id`\"\n",
            b"A=\"a\\\\b\"\n",
            b"A=a\\ b\n",
            b"A=~/x\n",
            b"A=x:~\n",
            b"A=1\r\n",
            b"A=1\0\n",
            b"case \"$1\" in x) A=1 ;; esac\n",
            b"f() { :; }\n",
            b"logger hi\n",
            b"A=1 cmd\n",
            b"A=1 >/tmp/x\n",
            b"A=1 && B=2\n",
            b"A=1 &\n",
            b"A='open\n",
            b"A=\"open\n",
            b"; A=1\n",
            b"A=1;;\n",
            b"export\n",
            b"export -p\n",
            b"export A=*\n",
            b"readonly A=1\n",
            b"exit 0\n",
            b"A=1 # fine\n{ B=2; }\n",
            b"cat <<EOF\nA=1\nEOF\n",
            b"A=$'x'\n",
            b"\"A\"=1\n",
            b"1A=1\n",
        ] {
            assert_eq!(
                literal_assignments(text),
                None,
                "{}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn export_p_of_dash_and_bash() {
        let dash =
            b"export A='x'\nexport B='it'\"'\"'s'\nexport C='l1\nl2'\nexport D\nexport E=''\n";
        let vars = parse_export_p(dash).unwrap();
        let pairs: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string_lossy().into(), v.to_string_lossy().into()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("A".into(), "x".into()),
                ("B".into(), "it's".into()),
                ("C".into(), "l1\nl2".into()),
                ("E".into(), String::new()),
            ]
        );
        let bash = b"export OLDPWD\nexport Y=\"it's \\$x \\\"q\\\" \\\\b\"\nexport Z=$'l1\\nl2\\x41\\101'\ndeclare -x W=\"w\"\n";
        let vars = parse_export_p(bash).unwrap();
        assert_eq!(vars[0].1, "it's $x \"q\" \\b");
        assert_eq!(vars[1].1, "l1\nl2AA");
        assert_eq!(vars[2].0, "W");
        assert!(parse_export_p(b"garbage\n").is_none());
        assert!(parse_export_p(b"export A='open").is_none());
    }

    #[test]
    fn quoting_for_shell_and_printf() {
        assert_eq!(quote(b"it's"), b"'it'\\''s'");
        assert_eq!(
            printf_format(b"K\xfcche 100%\n'\\"),
            "'K\\374che 100\\045\\012\\047\\134'"
        );
    }
}
