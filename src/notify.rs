//! Notification templates: a small, safe subset of Template Toolkit syntax, enough for
//! the auto-topup notifications SMRadius operators already have.
//!
//! Syntax:
//! - Text outside directives is copied verbatim, except `\@`, which becomes `@`
//!   (templates copied from a Perl config such as smradiusd.conf carry that escape).
//! - `[% expr %]` outputs a value; `[%# ... %]` is a comment.
//! - `[% IF expr %] ... [% ELSIF expr %] ... [% ELSE %] ... [% END %]`, nestable.
//! - `[%-` removes spaces/tabs and one newline before the tag, `-%]` after it.
//! - Expressions: variables (`user.username`), integers, strings (`'a'` or `"a"`),
//!   `a + b`, `a - b`, comparisons `== != < <= > >=`, `!`/`NOT`, `&&`/`AND`,
//!   `||`/`OR`, ternary `c ? a : b`, parentheses. Keywords are case-insensitive.
//!
//! Values are integers, strings or undefined. False are: undefined, `0`, `""`, `"0"`.
//! Arithmetic is on 64-bit integers; a non-numeric operand counts as 0 and an
//! overflow gives an empty value, both with a warning. An unknown variable renders
//! as an empty string with a warning. Rendering never fails; only parsing can
//! (unbalanced `IF`/`END`, bad expression), so templates can be checked at startup.

use std::collections::BTreeMap;
use std::fmt;

/// A template value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Value {
    Int(i64),
    Str(String),
    Undef,
}

impl Value {
    fn truthy(&self) -> bool {
        match self {
            Value::Int(i) => *i != 0,
            Value::Str(s) => !(s.is_empty() || s == "0"),
            Value::Undef => false,
        }
    }

    fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Str(s) => s.trim().parse().ok(),
            Value::Undef => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Str(s) => f.write_str(s),
            Value::Undef => Ok(()),
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        i64::try_from(v).map_or_else(|_| Value::Str(v.to_string()), Value::Int)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_string())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}

/// Variables by full dotted name (`"user.username"`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Vars(BTreeMap<String, Value>);

impl Vars {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set(&mut self, name: &str, value: impl Into<Value>) -> &mut Self {
        self.0.insert(name.to_string(), value.into());
        self
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.0.iter()
    }
}

/// A template that failed to parse, with the 1-based line of the offending tag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template line {line}: {message}")]
pub struct TemplateError {
    pub line: usize,
    pub message: String,
}

/// Rendered text and the warnings met on the way (also logged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub text: String,
    pub warnings: Vec<String>,
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    nodes: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Out(Expr),
    If {
        branches: Vec<(Expr, Vec<Node>)>,
        otherwise: Vec<Node>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BinOp {
    Add,
    Sub,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Lit(Value),
    Var(String),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    Bin(BinOp, Box<Expr>, Box<Expr>),
    Cond(Box<Expr>, Box<Expr>, Box<Expr>),
}

/// Deepest nesting of IFs or parentheses accepted (keeps recursion bounded).
const MAX_DEPTH: usize = 64;

/// Parses and renders in one go.
pub fn render(src: &str, vars: &Vars) -> Result<Rendered, TemplateError> {
    Ok(Template::parse(src)?.render(vars))
}

// ---------- scanning into text and tags ----------

enum Piece<'a> {
    Text(String),
    Tag { body: &'a str, line: usize },
}

fn split_pieces(src: &str) -> Result<Vec<Piece<'_>>, TemplateError> {
    let mut pieces = Vec::new();
    let mut rest = src;
    let mut line = 1;
    let mut chomp_next = false;
    while !rest.is_empty() {
        let (text, tag) = match rest.find("[%") {
            Some(i) => (&rest[..i], Some(i)),
            None => (rest, None),
        };
        let mut text = text.to_string();
        if chomp_next {
            text = chomp_start(&text);
            chomp_next = false;
        }
        let Some(open) = tag else {
            pieces.push(Piece::Text(text));
            break;
        };
        line += rest[..open].matches('\n').count();
        let after = &rest[open + 2..];
        let Some(close) = after.find("%]") else {
            return Err(TemplateError {
                line,
                message: "'[%' without '%]'".into(),
            });
        };
        let mut body = &after[..close];
        if let Some(b) = body.strip_prefix('-') {
            text = chomp_end(&text);
            body = b;
        }
        if let Some(b) = body.strip_suffix('-') {
            chomp_next = true;
            body = b;
        }
        pieces.push(Piece::Text(text));
        pieces.push(Piece::Tag { body, line });
        line += body.matches('\n').count();
        rest = &after[close + 2..];
    }
    Ok(pieces)
}

/// Text before a `[%-`: drop trailing spaces/tabs and one newline.
fn chomp_end(text: &str) -> String {
    let t = text.trim_end_matches([' ', '\t']);
    let t = t.strip_suffix('\n').unwrap_or(t);
    t.strip_suffix('\r').unwrap_or(t).to_string()
}

/// Text after a `-%]`: drop leading spaces/tabs and one newline.
fn chomp_start(text: &str) -> String {
    let t = text.trim_start_matches([' ', '\t']);
    let t = t.strip_prefix('\r').unwrap_or(t);
    t.strip_prefix('\n').unwrap_or(t).to_string()
}

// ---------- tokens ----------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Int(i64),
    Str(String),
    Op(&'static str),
}

fn tokenize(body: &str, line: usize) -> Result<Vec<Tok>, TemplateError> {
    let err = |message: String| TemplateError { line, message };
    let chars: Vec<char> = body.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_.".contains(chars[i])) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if word.ends_with('.') || word.contains("..") {
                return Err(err(format!("bad variable name '{word}'")));
            }
            toks.push(Tok::Ident(word));
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let digits: String = chars[start..i].iter().collect();
            let n = digits
                .parse()
                .map_err(|_| err(format!("number '{digits}' too large")))?;
            toks.push(Tok::Int(n));
        } else if c == '\'' || c == '"' {
            i += 1;
            let mut s = String::new();
            loop {
                match chars.get(i) {
                    None => return Err(err("unterminated string".into())),
                    Some(&q) if q == c => break,
                    Some('\\') if i + 1 < chars.len() => {
                        s.push(chars[i + 1]);
                        i += 2;
                        continue;
                    }
                    Some(&ch) => s.push(ch),
                }
                i += 1;
            }
            i += 1;
            toks.push(Tok::Str(s));
        } else {
            let two: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let op = ["==", "!=", "<=", ">=", "&&", "||"]
                .into_iter()
                .find(|o| *o == two)
                .or_else(|| {
                    ["+", "-", "<", ">", "!", "?", ":", "(", ")"]
                        .into_iter()
                        .find(|o| o.starts_with(c))
                })
                .ok_or_else(|| err(format!("unexpected character '{c}'")))?;
            i += op.len();
            toks.push(Tok::Op(op));
        }
    }
    Ok(toks)
}

fn keyword(tok: Option<&Tok>) -> Option<String> {
    match tok {
        Some(Tok::Ident(w)) => Some(w.to_ascii_uppercase()),
        _ => None,
    }
}

// ---------- expression parser (precedence climbing) ----------

struct ExprParser {
    toks: Vec<Tok>,
    pos: usize,
    line: usize,
    depth: usize,
}

impl ExprParser {
    fn err(&self, message: impl Into<String>) -> TemplateError {
        TemplateError {
            line: self.line,
            message: message.into(),
        }
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn peek_op(&self, op: &str) -> bool {
        matches!(self.peek(), Some(Tok::Op(o)) if *o == op)
    }

    fn peek_word(&self, w: &str) -> bool {
        keyword(self.peek()).as_deref() == Some(w)
    }

    fn enter(&mut self) -> Result<(), TemplateError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err("expression nested too deeply"));
        }
        Ok(())
    }

    fn parse_full(mut self) -> Result<Expr, TemplateError> {
        let e = self.ternary()?;
        if let Some(t) = self.peek() {
            return Err(self.err(format!("unexpected {t:?} after expression")));
        }
        Ok(e)
    }

    fn ternary(&mut self) -> Result<Expr, TemplateError> {
        self.enter()?;
        let cond = self.or()?;
        let e = if self.peek_op("?") {
            self.pos += 1;
            let a = self.ternary()?;
            if !self.peek_op(":") {
                return Err(self.err("'?' without ':'"));
            }
            self.pos += 1;
            let b = self.ternary()?;
            Expr::Cond(Box::new(cond), Box::new(a), Box::new(b))
        } else {
            cond
        };
        self.depth -= 1;
        Ok(e)
    }

    fn or(&mut self) -> Result<Expr, TemplateError> {
        let mut l = self.and()?;
        while self.peek_op("||") || self.peek_word("OR") {
            self.pos += 1;
            l = Expr::Bin(BinOp::Or, Box::new(l), Box::new(self.and()?));
        }
        Ok(l)
    }

    fn and(&mut self) -> Result<Expr, TemplateError> {
        let mut l = self.not()?;
        while self.peek_op("&&") || self.peek_word("AND") {
            self.pos += 1;
            l = Expr::Bin(BinOp::And, Box::new(l), Box::new(self.not()?));
        }
        Ok(l)
    }

    fn not(&mut self) -> Result<Expr, TemplateError> {
        if self.peek_op("!") || self.peek_word("NOT") {
            self.pos += 1;
            self.enter()?;
            let e = Expr::Not(Box::new(self.not()?));
            self.depth -= 1;
            return Ok(e);
        }
        self.cmp()
    }

    fn cmp(&mut self) -> Result<Expr, TemplateError> {
        let l = self.add()?;
        let op = match self.peek() {
            Some(Tok::Op("==")) => BinOp::Eq,
            Some(Tok::Op("!=")) => BinOp::Ne,
            Some(Tok::Op("<")) => BinOp::Lt,
            Some(Tok::Op("<=")) => BinOp::Le,
            Some(Tok::Op(">")) => BinOp::Gt,
            Some(Tok::Op(">=")) => BinOp::Ge,
            _ => return Ok(l),
        };
        self.pos += 1;
        Ok(Expr::Bin(op, Box::new(l), Box::new(self.add()?)))
    }

    fn add(&mut self) -> Result<Expr, TemplateError> {
        let mut l = self.unary()?;
        loop {
            let op = match self.peek() {
                Some(Tok::Op("+")) => BinOp::Add,
                Some(Tok::Op("-")) => BinOp::Sub,
                _ => return Ok(l),
            };
            self.pos += 1;
            l = Expr::Bin(op, Box::new(l), Box::new(self.unary()?));
        }
    }

    fn unary(&mut self) -> Result<Expr, TemplateError> {
        if self.peek_op("-") {
            self.pos += 1;
            self.enter()?;
            let e = Expr::Neg(Box::new(self.unary()?));
            self.depth -= 1;
            return Ok(e);
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, TemplateError> {
        let tok = self.peek().cloned();
        self.pos += 1;
        match tok {
            Some(Tok::Int(n)) => Ok(Expr::Lit(Value::Int(n))),
            Some(Tok::Str(s)) => Ok(Expr::Lit(Value::Str(s))),
            Some(Tok::Ident(w)) => {
                if matches!(
                    w.to_ascii_uppercase().as_str(),
                    "IF" | "ELSIF" | "ELSE" | "END" | "AND" | "OR" | "NOT"
                ) {
                    return Err(self.err(format!("unexpected keyword '{w}'")));
                }
                Ok(Expr::Var(w))
            }
            Some(Tok::Op("(")) => {
                let e = self.ternary()?;
                if !self.peek_op(")") {
                    return Err(self.err("missing ')'"));
                }
                self.pos += 1;
                Ok(e)
            }
            Some(t) => Err(self.err(format!("unexpected {t:?}"))),
            None => Err(self.err("expression expected")),
        }
    }
}

fn parse_expr(toks: Vec<Tok>, line: usize) -> Result<Expr, TemplateError> {
    ExprParser {
        toks,
        pos: 0,
        line,
        depth: 0,
    }
    .parse_full()
}

// ---------- block structure ----------

enum Directive {
    Text(String),
    Out(Expr),
    If(Expr),
    Elsif(Expr),
    Else,
    End,
}

fn directive(body: &str, line: usize) -> Result<Option<Directive>, TemplateError> {
    if body.trim_start().starts_with('#') {
        return Ok(None);
    }
    let mut toks = tokenize(body, line)?;
    let d = match keyword(toks.first()).as_deref() {
        Some("IF") => Directive::If(parse_expr(toks.split_off(1), line)?),
        Some("ELSIF") => Directive::Elsif(parse_expr(toks.split_off(1), line)?),
        Some("ELSE") | Some("END") if toks.len() > 1 => {
            return Err(TemplateError {
                line,
                message: "ELSE/END take no expression".into(),
            })
        }
        Some("ELSE") => Directive::Else,
        Some("END") => Directive::End,
        _ if toks.is_empty() => return Ok(None),
        _ => Directive::Out(parse_expr(toks, line)?),
    };
    Ok(Some(d))
}

/// An IF being built: finished branches, the condition of the open one, and its body.
struct OpenIf {
    line: usize,
    branches: Vec<(Expr, Vec<Node>)>,
    cond: Option<Expr>,
    seen_else: bool,
}

fn push(bodies: &mut [Vec<Node>], node: Node) {
    if let Some(b) = bodies.last_mut() {
        b.push(node);
    }
}

impl Template {
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        // Stack of node lists: the outermost body, then one per open IF.
        let mut bodies: Vec<Vec<Node>> = vec![Vec::new()];
        let mut ifs: Vec<OpenIf> = Vec::new();
        for piece in split_pieces(src)? {
            let (d, line) = match piece {
                Piece::Text(t) => (Some(Directive::Text(t.replace("\\@", "@"))), 0),
                Piece::Tag { body, line } => (directive(body, line)?, line),
            };
            let Some(d) = d else { continue };
            let misplaced = |what: &str| TemplateError {
                line,
                message: format!("{what} without IF"),
            };
            match d {
                Directive::Text(t) if t.is_empty() => {}
                Directive::Text(t) => push(&mut bodies, Node::Text(t)),
                Directive::Out(e) => push(&mut bodies, Node::Out(e)),
                Directive::If(cond) => {
                    if ifs.len() >= MAX_DEPTH {
                        return Err(TemplateError {
                            line,
                            message: "IF nested too deeply".into(),
                        });
                    }
                    ifs.push(OpenIf {
                        line,
                        branches: Vec::new(),
                        cond: Some(cond),
                        seen_else: false,
                    });
                    bodies.push(Vec::new());
                }
                Directive::Elsif(cond) => {
                    let open = ifs.last_mut().ok_or_else(|| misplaced("ELSIF"))?;
                    let body = bodies.pop().unwrap_or_default();
                    match open.cond.take() {
                        Some(c) if !open.seen_else => open.branches.push((c, body)),
                        _ => {
                            return Err(TemplateError {
                                line,
                                message: "ELSIF after ELSE".into(),
                            })
                        }
                    }
                    open.cond = Some(cond);
                    bodies.push(Vec::new());
                }
                Directive::Else => {
                    let open = ifs.last_mut().ok_or_else(|| misplaced("ELSE"))?;
                    if open.seen_else {
                        return Err(TemplateError {
                            line,
                            message: "second ELSE".into(),
                        });
                    }
                    let body = bodies.pop().unwrap_or_default();
                    if let Some(c) = open.cond.take() {
                        open.branches.push((c, body));
                    }
                    open.seen_else = true;
                    bodies.push(Vec::new());
                }
                Directive::End => {
                    let mut open = ifs.pop().ok_or_else(|| misplaced("END"))?;
                    let body = bodies.pop().unwrap_or_default();
                    let otherwise = match open.cond.take() {
                        Some(c) => {
                            open.branches.push((c, body));
                            Vec::new()
                        }
                        None => body,
                    };
                    let node = Node::If {
                        branches: open.branches,
                        otherwise,
                    };
                    push(&mut bodies, node);
                }
            }
        }
        if let Some(open) = ifs.last() {
            return Err(TemplateError {
                line: open.line,
                message: "IF without END".into(),
            });
        }
        Ok(Template {
            nodes: bodies.pop().unwrap_or_default(),
        })
    }

    /// Renders; unknown variables and bad arithmetic become warnings, never errors.
    pub fn render(&self, vars: &Vars) -> Rendered {
        let mut r = Renderer {
            vars,
            out: String::new(),
            warnings: Vec::new(),
        };
        r.nodes(&self.nodes);
        for w in &r.warnings {
            log::warn!("notification template: {w}");
        }
        Rendered {
            text: r.out,
            warnings: r.warnings,
        }
    }
}

struct Renderer<'a> {
    vars: &'a Vars,
    out: String,
    warnings: Vec<String>,
}

impl Renderer<'_> {
    fn warn(&mut self, w: String) {
        if !self.warnings.contains(&w) {
            self.warnings.push(w);
        }
    }

    fn nodes(&mut self, nodes: &[Node]) {
        for n in nodes {
            match n {
                Node::Text(t) => self.out.push_str(t),
                Node::Out(e) => {
                    let v = self.eval(e);
                    self.out.push_str(&v.to_string());
                }
                Node::If {
                    branches,
                    otherwise,
                } => {
                    let chosen = branches
                        .iter()
                        .find(|(c, _)| self.eval(c).truthy())
                        .map_or(otherwise, |(_, body)| body);
                    self.nodes(chosen);
                }
            }
        }
    }

    fn int(&mut self, v: &Value) -> i64 {
        match v.as_int() {
            Some(i) => i,
            None => {
                if *v != Value::Undef {
                    self.warn(format!("'{v}' is not a number, using 0"));
                }
                0
            }
        }
    }

    fn eval(&mut self, e: &Expr) -> Value {
        match e {
            Expr::Lit(v) => v.clone(),
            Expr::Var(name) => match self.vars.get(name) {
                Some(v) => v.clone(),
                None => {
                    self.warn(format!("unknown variable '{name}'"));
                    Value::Undef
                }
            },
            Expr::Not(a) => Value::Int(i64::from(!self.eval(a).truthy())),
            Expr::Neg(a) => {
                let v = self.eval(a);
                let i = self.int(&v);
                self.checked(i.checked_neg())
            }
            Expr::Cond(c, a, b) => {
                if self.eval(c).truthy() {
                    self.eval(a)
                } else {
                    self.eval(b)
                }
            }
            Expr::Bin(BinOp::And, a, b) => {
                let l = self.eval(a);
                if l.truthy() {
                    self.eval(b)
                } else {
                    l
                }
            }
            Expr::Bin(BinOp::Or, a, b) => {
                let l = self.eval(a);
                if l.truthy() {
                    l
                } else {
                    self.eval(b)
                }
            }
            Expr::Bin(op, a, b) => {
                let (l, r) = (self.eval(a), self.eval(b));
                self.binary(*op, &l, &r)
            }
        }
    }

    fn checked(&mut self, v: Option<i64>) -> Value {
        v.map_or_else(
            || {
                self.warn("arithmetic overflow".into());
                Value::Undef
            },
            Value::Int,
        )
    }

    fn binary(&mut self, op: BinOp, l: &Value, r: &Value) -> Value {
        match op {
            BinOp::Add | BinOp::Sub => {
                let (x, y) = (self.int(l), self.int(r));
                let v = if op == BinOp::Add {
                    x.checked_add(y)
                } else {
                    x.checked_sub(y)
                };
                self.checked(v)
            }
            _ => {
                // Numbers compare as numbers, anything else as text.
                let ord = match (l.as_int(), r.as_int()) {
                    (Some(x), Some(y)) => x.cmp(&y),
                    _ => l.to_string().cmp(&r.to_string()),
                };
                let b = match op {
                    BinOp::Eq => ord.is_eq(),
                    BinOp::Ne => ord.is_ne(),
                    BinOp::Lt => ord.is_lt(),
                    BinOp::Le => ord.is_le(),
                    BinOp::Gt => ord.is_gt(),
                    _ => ord.is_ge(),
                };
                Value::Int(i64::from(b))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example from the SMRadius mod_feature_capping documentation, verbatim.
    pub(crate) const SEED_EXAMPLE: &str = "To: [% notify.target %]
From: Test ISP <isp\\@example.com>
Subject: [Test ISP] Your account [% user.username %]

[% IF autotopup.toAdd %]
Please note that you have [% usage.limit - usage.total %]Mbyte available on username [% user.username %]. We added another [% autotopup.toAdd %] automatic topup(s) totalling [% autotopup.toAddAmount %]Mbyte to your username. Your automatic topup usage is [% autotopup.added + autotopup.toAddAmount %]Mbyte of [% autotopup.limit ? autotopup.limit : '-no-limit-' %]Mbyte.
[% ELSE %]
We cannot add another [% autotopup.amount %]Mbyte to your username as you have reached your automatic topup limit of [% autotopup.limit %]Mbyte. Your total usage is [% usage.total %]Mbyte.
[% END %]

Regards
Your Test ISP
Support: +1 555 555 555
";

    fn seed_vars(to_add: i64, limit: i64) -> Vars {
        let mut v = Vars::new();
        v.set("notify.target", "joe@example.com")
            .set("user.username", "joe")
            .set("usage.total", 900i64)
            .set("usage.limit", 1000i64)
            .set("autotopup.amount", 500i64)
            .set("autotopup.limit", limit)
            .set("autotopup.added", 1000i64)
            .set("autotopup.toAdd", to_add)
            .set("autotopup.toAddAmount", to_add * 500);
        v
    }

    #[test]
    fn seed_example_added_branch() {
        let r = render(SEED_EXAMPLE, &seed_vars(2, 2000)).unwrap();
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        assert!(r
            .text
            .starts_with("To: joe@example.com\nFrom: Test ISP <isp@example.com>\n"));
        assert!(r.text.contains("Subject: [Test ISP] Your account joe\n"));
        assert!(r.text.contains(
            "\nPlease note that you have 100Mbyte available on username joe. We added another 2 \
             automatic topup(s) totalling 1000Mbyte to your username. Your automatic topup usage \
             is 2000Mbyte of 2000Mbyte.\n"
        ));
        assert!(!r.text.contains("We cannot add"));
        assert!(r
            .text
            .ends_with("\n\nRegards\nYour Test ISP\nSupport: +1 555 555 555\n"));
    }

    #[test]
    fn seed_example_no_limit_uses_ternary_else() {
        let r = render(SEED_EXAMPLE, &seed_vars(1, 0)).unwrap();
        assert!(
            r.text.contains("is 1500Mbyte of -no-limit-Mbyte."),
            "{}",
            r.text
        );
    }

    #[test]
    fn seed_example_limit_reached_branch() {
        let r = render(SEED_EXAMPLE, &seed_vars(0, 2000)).unwrap();
        assert!(r.warnings.is_empty());
        assert!(r.text.contains(
            "\nWe cannot add another 500Mbyte to your username as you have reached your \
             automatic topup limit of 2000Mbyte. Your total usage is 900Mbyte.\n"
        ));
        assert!(!r.text.contains("Please note"));
    }

    #[test]
    fn expressions() {
        let mut v = Vars::new();
        v.set("a", 7i64)
            .set("b", 3i64)
            .set("s", "x")
            .set("z", "0")
            .set("n", "12");
        let cases = [
            ("[% a - b %]", "4"),
            ("[% a + b - 1 %]", "9"),
            ("[% b - a %]", "-4"),
            ("[% -a + 1 %]", "-6"),
            ("[% a - (b - 1) %]", "5"),
            ("[% n + 1 %]", "13"),
            ("[% a ? 'y' : 'n' %]", "y"),
            ("[% z ? 'y' : 'n' %]", "n"),
            ("[% 0 ? 1 : 0 ? 2 : 3 %]", "3"),
            ("[% a > b ? s : \"q\" %]", "x"),
            ("[% a == 7 %][% s == 'x' %][% s != 'x' %]", "110"),
            ("[% a <= 7 %][% a >= 8 %][% a < 8 %]", "101"),
            ("[% !a %][% NOT z %][% a && b %][% z || s %]", "013x"),
            ("[% a and 0 or 'd' %]", "d"),
            ("[% 'it\\'s' %]", "it's"),
            ("[%# a comment %]x", "x"),
            ("[% IF 0 %]a[% ELSIF b > 2 %]b[% ELSE %]c[% END %]", "b"),
            ("[% IF a %][% IF z %]1[% ELSE %]2[% END %][% END %]", "2"),
            ("[% if a %]lower[% end %]", "lower"),
            ("x\n  [%- a -%]  \ny", "x7y"),
        ];
        for (src, want) in cases {
            let r = render(src, &v).unwrap_or_else(|e| panic!("{src}: {e}"));
            assert_eq!(r.text, want, "{src}");
            assert!(r.warnings.is_empty(), "{src}: {:?}", r.warnings);
        }
    }

    #[test]
    fn unknown_variables_and_bad_numbers_warn() {
        let mut v = Vars::new();
        v.set("s", "abc").set("big", i64::MAX);
        let cases = [
            ("<[% nope %]>", "<>", "unknown variable 'nope'"),
            ("[% nope + 2 %]", "2", "unknown variable 'nope'"),
            ("[% s + 1 %]", "1", "'abc' is not a number, using 0"),
            ("[% big + 1 %]", "", "arithmetic overflow"),
            (
                "[% IF x.y %]a[% ELSE %]b[% END %]",
                "b",
                "unknown variable 'x.y'",
            ),
        ];
        for (src, want, warning) in cases {
            let r = render(src, &v).unwrap();
            assert_eq!(r.text, want, "{src}");
            assert_eq!(r.warnings, vec![warning.to_string()], "{src}");
        }
    }

    #[test]
    fn parse_errors_name_the_line() {
        let cases = [
            ("a\n[% IF x %]b", 2, "IF without END"),
            ("[% END %]", 1, "END without IF"),
            ("\n\n[% ELSE %]", 3, "ELSE without IF"),
            ("[% IF a %][% ELSE %][% ELSE %][% END %]", 1, "second ELSE"),
            (
                "[% IF a %][% ELSE %][% ELSIF b %][% END %]",
                1,
                "ELSIF after ELSE",
            ),
            ("[% a + %]", 1, "expression expected"),
            ("[% a ? b %]", 1, "'?' without ':'"),
            ("[% (a %]", 1, "missing ')'"),
            ("[% 'abc %]", 1, "unterminated string"),
            ("[% a $ b %]", 1, "unexpected character '$'"),
            ("x [% a", 1, "'[%' without '%]'"),
            ("[% END x %]", 1, "ELSE/END take no expression"),
            ("[% a.b. %]", 1, "bad variable name 'a.b.'"),
            (
                "[% 99999999999999999999 %]",
                1,
                "number '99999999999999999999' too large",
            ),
        ];
        for (src, line, msg) in cases {
            let e = Template::parse(src).expect_err(src);
            assert_eq!((e.line, e.message.as_str()), (line, msg), "{src}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let src = format!("[% {}1{} %]", "(".repeat(10_000), ")".repeat(10_000));
        assert!(Template::parse(&src).is_err());
        let src = format!("[% {}1 %]", "-".repeat(10_000));
        assert!(Template::parse(&src).is_err());
        let src = "[% IF 1 %]".repeat(100) + &"[% END %]".repeat(100);
        assert!(Template::parse(&src).is_err());
    }

    #[test]
    fn big_u64_is_kept_as_text() {
        assert_eq!(Value::from(u64::MAX), Value::Str(u64::MAX.to_string()));
        assert_eq!(Value::from(5u64), Value::Int(5));
    }
}
