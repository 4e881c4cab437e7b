//! Template language expressions.
//!
//! "Expressions start and end with brackets: `[` and `]`. … To have a
//! literal string start with a left bracket `[` and end with a right
//! bracket `]`, … add an extra bracket: `[[`." (ARM template syntax,
//! "Escape characters".) Inside, an expression is a function call with
//! arguments that are single-quoted strings (`''` is a quote), integers or
//! other calls, followed by any number of `.property` and `[index]`
//! accessors.

use crate::TemplateError;

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Str(String),
    Int(i64),
    Bool(bool),
    Null,
    Call {
        name: String,
        args: Vec<Expr>,
    },
    /// `.name` access; `true` for Bicep's null-tolerant `.?name`.
    Prop(Box<Expr>, String, bool),
    /// `[expr]` access (array index or property name).
    Index(Box<Expr>, Box<Expr>),
}

/// What a template string is: a literal (after unescaping `[[`) or an
/// expression to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub enum Template {
    Literal(String),
    Expression(Expr),
}

/// Classifies a JSON string of a template.
pub fn classify(s: &str) -> Result<Template, TemplateError> {
    if let Some(rest) = s.strip_prefix("[[") {
        return Ok(Template::Literal(format!("[{rest}")));
    }
    if s.len() >= 2 && s.starts_with('[') && s.ends_with(']') {
        return Ok(Template::Expression(parse(&s[1..s.len() - 1])?));
    }
    Ok(Template::Literal(s.to_string()))
}

/// Whether a string is an expression (not a literal).
pub fn is_expression(s: &str) -> bool {
    !s.starts_with("[[") && s.len() >= 2 && s.starts_with('[') && s.ends_with(']')
}

/// Parses the text between the outer brackets.
pub fn parse(text: &str) -> Result<Expr, TemplateError> {
    let mut p = Parser {
        s: text.as_bytes(),
        text,
        i: 0,
        depth: 0,
    };
    p.ws();
    let e = p.expr()?;
    p.ws();
    if p.i != p.s.len() {
        return Err(p.error("unexpected characters after the end of the expression"));
    }
    Ok(e)
}

/// How deep calls and accessors may nest: the parser and the evaluator
/// recurse per level, so a hostile template cannot run the stack out.
pub const MAX_DEPTH: usize = 64;

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
    depth: usize,
}

impl Parser<'_> {
    fn error(&self, what: &str) -> TemplateError {
        TemplateError::expr(format!(
            "The template language expression '{}' is not valid: {what} at position {}. Please see https://aka.ms/arm-functions for usage details.",
            self.text, self.i
        ))
    }

    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expr(&mut self) -> Result<Expr, TemplateError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(&format!("expressions nest deeper than {MAX_DEPTH} levels")));
        }
        let e = self.expr_inner();
        self.depth -= 1;
        e
    }

    fn expr_inner(&mut self) -> Result<Expr, TemplateError> {
        self.ws();
        let mut e = self.primary()?;
        loop {
            self.ws();
            match self.peek() {
                Some(b'.') => {
                    self.i += 1;
                    // `.?` is the null-tolerant accessor Bicep emits.
                    let safe = self.peek() == Some(b'?');
                    if safe {
                        self.i += 1;
                    }
                    let name = self.ident()?;
                    e = Expr::Prop(Box::new(e), name, safe);
                }
                Some(b'[') => {
                    self.i += 1;
                    let idx = self.expr()?;
                    if !self.eat(b']') {
                        return Err(self.error("expected ']'"));
                    }
                    e = Expr::Index(Box::new(e), Box::new(idx));
                }
                _ => return Ok(e),
            }
        }
    }

    fn ident(&mut self) -> Result<String, TemplateError> {
        self.ws();
        let start = self.i;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' {
                self.i += 1;
            } else {
                break;
            }
        }
        if start == self.i {
            return Err(self.error("expected a name"));
        }
        Ok(self.text[start..self.i].to_string())
    }

    fn primary(&mut self) -> Result<Expr, TemplateError> {
        match self.peek() {
            Some(b'\'') => self.string(),
            Some(c) if c.is_ascii_digit() || c == b'-' => self.number(),
            Some(c) if c.is_ascii_alphabetic() || c == b'_' => {
                let mut name = self.ident()?;
                // User-defined functions are `namespace.name`.
                while self.peek() == Some(b'.') {
                    let save = self.i;
                    self.i += 1;
                    match self.ident() {
                        Ok(more) => {
                            self.ws();
                            if self.peek() == Some(b'(') {
                                name = format!("{name}.{more}");
                            } else {
                                self.i = save;
                                break;
                            }
                        }
                        Err(_) => {
                            self.i = save;
                            break;
                        }
                    }
                }
                self.ws();
                if self.peek() != Some(b'(') {
                    return match name.to_ascii_lowercase().as_str() {
                        "true" => Ok(Expr::Bool(true)),
                        "false" => Ok(Expr::Bool(false)),
                        "null" => Ok(Expr::Null),
                        _ => Err(self.error(&format!("'{name}' must be followed by '('"))),
                    };
                }
                self.i += 1;
                let mut args = Vec::new();
                self.ws();
                if self.peek() == Some(b')') {
                    self.i += 1;
                } else {
                    loop {
                        args.push(self.expr()?);
                        if self.eat(b',') {
                            continue;
                        }
                        if self.eat(b')') {
                            break;
                        }
                        return Err(self.error("expected ',' or ')'"));
                    }
                }
                Ok(Expr::Call { name, args })
            }
            Some(_) => Err(self.error("unexpected character")),
            None => Err(self.error("the expression ends too early")),
        }
    }

    fn string(&mut self) -> Result<Expr, TemplateError> {
        self.i += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err(self.error("a string literal is not closed")),
                Some(b'\'') => {
                    if self.s.get(self.i + 1) == Some(&b'\'') {
                        out.push(b'\'');
                        self.i += 2;
                    } else {
                        self.i += 1;
                        break;
                    }
                }
                Some(c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
        // The input was a &str and quotes are ASCII, so this stays UTF-8.
        Ok(Expr::Str(String::from_utf8_lossy(&out).into_owned()))
    }

    fn number(&mut self) -> Result<Expr, TemplateError> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        self.text[start..self.i]
            .parse::<i64>()
            .map(Expr::Int)
            .map_err(|_| self.error("expected an integer"))
    }
}

/// Every function called anywhere in `e` (for implicit dependencies).
pub fn calls<'a>(e: &'a Expr, out: &mut Vec<(&'a str, &'a [Expr])>) {
    match e {
        Expr::Call { name, args } => {
            out.push((name.as_str(), args.as_slice()));
            for a in args {
                calls(a, out);
            }
        }
        Expr::Prop(inner, _, _) => calls(inner, out),
        Expr::Index(a, b) => {
            calls(a, out);
            calls(b, out);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, args: Vec<Expr>) -> Expr {
        Expr::Call {
            name: name.into(),
            args,
        }
    }

    #[test]
    fn literals_and_escapes() {
        assert_eq!(
            classify("plain").unwrap(),
            Template::Literal("plain".into())
        );
        assert_eq!(
            classify("[[not an expression]").unwrap(),
            Template::Literal("[not an expression]".into())
        );
        assert_eq!(
            parse("concat('it''s', 1, -2)").unwrap(),
            call(
                "concat",
                vec![Expr::Str("it's".into()), Expr::Int(1), Expr::Int(-2)]
            )
        );
    }

    #[test]
    fn accessors_chain() {
        let e = parse("reference('a').outputs['x'].value[0]").unwrap();
        let Expr::Index(inner, idx) = e else {
            panic!("not an index")
        };
        assert_eq!(*idx, Expr::Int(0));
        assert!(matches!(*inner, Expr::Prop(_, ref n, false) if n == "value"));
    }

    #[test]
    fn errors_name_the_expression() {
        let e = parse("concat('a'").unwrap_err();
        assert!(e.to_string().contains("concat('a'"), "{e}");
        assert!(parse("foo").is_err());
        assert!(parse("concat() x").is_err());
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = format!("{}'x'{}", "concat(".repeat(100_000), ")".repeat(100_000));
        assert!(parse(&deep)
            .unwrap_err()
            .to_string()
            .contains("nest deeper"));
        let ok = format!(
            "{}'x'{}",
            "concat(".repeat(MAX_DEPTH - 2),
            ")".repeat(MAX_DEPTH - 2)
        );
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn namespaced_user_functions() {
        assert_eq!(
            parse("my.fn('x')").unwrap(),
            call("my.fn", vec![Expr::Str("x".into())])
        );
    }
}
