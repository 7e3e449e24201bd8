//! Message filters: tag expressions (`TagA || TagB`, `*`) and the SQL92 subset RocketMQ
//! evaluates against message properties (`a > 5 AND b = 'x'`, BETWEEN, IN, IS NULL,
//! CONTAINS, STARTSWITH, ENDSWITH, NOT, parentheses). Expressions are compiled once per
//! subscription version and evaluated with SQL's three-valued logic: a comparison with a
//! missing property is unknown, and only a true result delivers the message.

use std::collections::{HashMap, HashSet};

use ferromq_protocol::message::{properties_iter, tag_hash};

/// Longest expression accepted, so a hostile subscription cannot cost unbounded work.
const MAX_EXPRESSION_LEN: usize = 4096;
/// Deepest nesting accepted.
const MAX_DEPTH: usize = 64;

/// A compiled subscription filter.
#[derive(Debug, Clone, PartialEq)]
pub enum MessageFilter {
    /// `*` or empty: everything.
    All,
    /// Tag names and their hash codes.
    Tags {
        names: HashSet<String>,
        codes: HashSet<i64>,
    },
    Sql(Expr),
}

/// Why an expression does not compile.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[error("invalid {kind} expression '{expression}': {reason}")]
pub struct FilterError {
    pub kind: &'static str,
    pub expression: String,
    pub reason: String,
}

impl MessageFilter {
    /// Compiles a subscription. `expression_type` is `TAG` (default) or `SQL92`.
    pub fn compile(expression_type: &str, expression: &str) -> Result<Self, FilterError> {
        if expression_type.eq_ignore_ascii_case("SQL92") {
            return parse_sql(expression)
                .map(MessageFilter::Sql)
                .map_err(|reason| FilterError {
                    kind: "SQL92",
                    expression: expression.to_string(),
                    reason,
                });
        }
        let expr = expression.trim();
        if expr.is_empty() || expr == "*" {
            return Ok(MessageFilter::All);
        }
        let names: HashSet<String> = expr
            .split("||")
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
        if names.is_empty() {
            return Err(FilterError {
                kind: "TAG",
                expression: expression.into(),
                reason: "no tag named".into(),
            });
        }
        let codes = names.iter().map(|t| tag_hash(t)).collect();
        Ok(MessageFilter::Tags { names, codes })
    }

    /// A cheap pre-check on the consume-queue tag code.
    pub fn accepts_code(&self, code: i64) -> bool {
        match self {
            MessageFilter::Tags { codes, .. } => codes.contains(&code),
            _ => true,
        }
    }

    /// Whether the check needs the record's properties.
    pub fn needs_properties(&self) -> bool {
        !matches!(self, MessageFilter::All)
    }

    /// The exact check on a message's properties string.
    pub fn accepts_properties(&self, props: &str) -> bool {
        match self {
            MessageFilter::All => true,
            MessageFilter::Tags { names, .. } => {
                properties_iter(props).any(|(k, v)| k == "TAGS" && names.contains(v))
            }
            MessageFilter::Sql(expr) => {
                let map: HashMap<&str, &str> = properties_iter(props).collect();
                expr.eval(&map) == Some(true)
            }
        }
    }
}

/// An SQL92 filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Literal(Value),
    Property(String),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Compare(CmpOp, Box<Expr>, Box<Expr>),
    Between {
        value: Box<Expr>,
        low: Box<Expr>,
        high: Box<Expr>,
        negated: bool,
    },
    In {
        value: Box<Expr>,
        list: Vec<Value>,
        negated: bool,
    },
    IsNull {
        value: Box<Expr>,
        negated: bool,
    },
    Text {
        op: TextOp,
        value: Box<Expr>,
        pattern: String,
        negated: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Num(f64),
    Bool(bool),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TextOp {
    Contains,
    StartsWith,
    EndsWith,
}

/// A runtime value: properties are strings until compared with a number or boolean.
#[derive(Debug, Clone, PartialEq)]
enum Val<'a> {
    Null,
    Str(std::borrow::Cow<'a, str>),
    Num(f64),
    Bool(bool),
}

impl Expr {
    fn value<'a>(&'a self, props: &HashMap<&str, &'a str>) -> Option<Val<'a>> {
        Some(match self {
            Expr::Literal(Value::Str(s)) => Val::Str(s.as_str().into()),
            Expr::Literal(Value::Num(n)) => Val::Num(*n),
            Expr::Literal(Value::Bool(b)) => Val::Bool(*b),
            Expr::Property(name) => props
                .get(name.as_str())
                .map_or(Val::Null, |v| Val::Str((*v).into())),
            _ => return None,
        })
    }

    /// Evaluates with three-valued logic; `None` is unknown.
    pub fn eval(&self, props: &HashMap<&str, &str>) -> Option<bool> {
        match self {
            Expr::Literal(Value::Bool(b)) => Some(*b),
            Expr::Literal(_) => None,
            Expr::Property(name) => match props.get(name.as_str()) {
                Some(v) if v.eq_ignore_ascii_case("true") => Some(true),
                Some(v) if v.eq_ignore_ascii_case("false") => Some(false),
                _ => None,
            },
            Expr::Not(e) => e.eval(props).map(|b| !b),
            Expr::And(a, b) => match (a.eval(props), b.eval(props)) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            },
            Expr::Or(a, b) => match (a.eval(props), b.eval(props)) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            },
            Expr::Compare(op, a, b) => compare(*op, &a.value(props)?, &b.value(props)?),
            Expr::Between {
                value,
                low,
                high,
                negated,
            } => {
                let v = value.value(props)?;
                let inside = match (
                    compare(CmpOp::Ge, &v, &low.value(props)?),
                    compare(CmpOp::Le, &v, &high.value(props)?),
                ) {
                    (Some(a), Some(b)) => Some(a && b),
                    _ => None,
                };
                inside.map(|b| b != *negated)
            }
            Expr::In {
                value,
                list,
                negated,
            } => {
                let v = value.value(props)?;
                if v == Val::Null {
                    return None;
                }
                let found = list.iter().any(|item| {
                    let item = match item {
                        Value::Str(s) => Val::Str(s.as_str().into()),
                        Value::Num(n) => Val::Num(*n),
                        Value::Bool(b) => Val::Bool(*b),
                    };
                    compare(CmpOp::Eq, &v, &item) == Some(true)
                });
                Some(found != *negated)
            }
            Expr::IsNull { value, negated } => Some((value.value(props)? == Val::Null) != *negated),
            Expr::Text {
                op,
                value,
                pattern,
                negated,
            } => match value.value(props)? {
                Val::Str(s) => {
                    let hit = match op {
                        TextOp::Contains => s.contains(pattern.as_str()),
                        TextOp::StartsWith => s.starts_with(pattern.as_str()),
                        TextOp::EndsWith => s.ends_with(pattern.as_str()),
                    };
                    Some(hit != *negated)
                }
                _ => None,
            },
        }
    }
}

fn as_number(v: &Val<'_>) -> Option<f64> {
    match v {
        Val::Num(n) => Some(*n),
        Val::Str(s) => s.trim().parse::<f64>().ok().filter(|n| n.is_finite()),
        _ => None,
    }
}

fn compare(op: CmpOp, a: &Val<'_>, b: &Val<'_>) -> Option<bool> {
    use std::cmp::Ordering;
    let ord: Ordering = match (a, b) {
        (Val::Null, _) | (_, Val::Null) => return None,
        (Val::Str(x), Val::Str(y)) => x.cmp(y),
        (Val::Bool(x), Val::Bool(y)) => x.cmp(y),
        (Val::Bool(x), Val::Str(s)) | (Val::Str(s), Val::Bool(x)) => {
            let parsed = s.parse::<bool>().ok()?;
            let eq = parsed == *x;
            return match op {
                CmpOp::Eq => Some(eq),
                CmpOp::Ne => Some(!eq),
                _ => None,
            };
        }
        _ => as_number(a)?.partial_cmp(&as_number(b)?)?,
    };
    Some(match op {
        CmpOp::Eq => ord == Ordering::Equal,
        CmpOp::Ne => ord != Ordering::Equal,
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Le => ord != Ordering::Greater,
        CmpOp::Gt => ord == Ordering::Greater,
        CmpOp::Ge => ord != Ordering::Less,
    })
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Keyword(&'static str),
    Num(f64),
    Str(String),
    Op(CmpOp),
    LParen,
    RParen,
    Comma,
}

const KEYWORDS: [&str; 13] = [
    "AND",
    "OR",
    "NOT",
    "BETWEEN",
    "IN",
    "IS",
    "NULL",
    "TRUE",
    "FALSE",
    "CONTAINS",
    "STARTSWITH",
    "ENDSWITH",
    "LIKE",
];

fn lex(src: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                toks.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                toks.push(Tok::RParen);
                i += 1;
            }
            ',' => {
                toks.push(Tok::Comma);
                i += 1;
            }
            '=' => {
                toks.push(Tok::Op(CmpOp::Eq));
                i += 1;
            }
            '<' | '>' | '!' => {
                let next = chars.get(i + 1).copied();
                let (op, len) = match (c, next) {
                    ('<', Some('=')) => (CmpOp::Le, 2),
                    ('<', Some('>')) => (CmpOp::Ne, 2),
                    ('<', _) => (CmpOp::Lt, 1),
                    ('>', Some('=')) => (CmpOp::Ge, 2),
                    ('>', _) => (CmpOp::Gt, 1),
                    ('!', Some('=')) => (CmpOp::Ne, 2),
                    _ => return Err(format!("unexpected '!' at {i}")),
                };
                toks.push(Tok::Op(op));
                i += len;
            }
            '\'' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("unterminated string literal".into()),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            s.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            s.push(*ch);
                            i += 1;
                        }
                    }
                }
                toks.push(Tok::Str(s));
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) =>
            {
                let start = i;
                i += 1;
                while i < chars.len()
                    && (chars[i].is_ascii_digit()
                        || chars[i] == '.'
                        || chars[i] == 'e'
                        || chars[i] == 'E')
                {
                    i += 1;
                }
                // Java long and double suffixes.
                if i < chars.len() && matches!(chars[i], 'L' | 'l' | 'D' | 'd' | 'F' | 'f') {
                    i += 1;
                }
                let text: String = chars[start..i]
                    .iter()
                    .filter(|c| !matches!(c, 'L' | 'l' | 'D' | 'd' | 'F' | 'f'))
                    .collect();
                let n: f64 = text.parse().map_err(|_| format!("bad number '{text}'"))?;
                toks.push(Tok::Num(n));
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '.')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                match KEYWORDS.iter().find(|k| k.eq_ignore_ascii_case(&word)) {
                    Some(k) => toks.push(Tok::Keyword(k)),
                    None => toks.push(Tok::Ident(word)),
                }
            }
            other => return Err(format!("unexpected character '{other}' at {i}")),
        }
    }
    Ok(toks)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
}

fn parse_sql(src: &str) -> Result<Expr, String> {
    if src.trim().is_empty() {
        return Err("the expression is empty".into());
    }
    if src.len() > MAX_EXPRESSION_LEN {
        return Err(format!(
            "the expression is longer than {MAX_EXPRESSION_LEN} characters"
        ));
    }
    let mut p = Parser {
        toks: lex(src)?,
        pos: 0,
        depth: 0,
    };
    let e = p.or()?;
    match p.peek() {
        None => Ok(e),
        Some(t) => Err(format!("unexpected {t:?} after the expression")),
    }
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.peek()
            == Some(&Tok::Keyword(
                KEYWORDS.iter().find(|k| **k == kw).expect("known keyword"),
            ))
        {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expect_kw(&mut self, kw: &str) -> Result<(), String> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(format!("expected {kw}, found {:?}", self.peek()))
        }
    }
    fn or(&mut self) -> Result<Expr, String> {
        let mut e = self.and()?;
        while self.eat_kw("OR") {
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }
    fn and(&mut self) -> Result<Expr, String> {
        let mut e = self.not()?;
        while self.eat_kw("AND") {
            e = Expr::And(Box::new(e), Box::new(self.not()?));
        }
        Ok(e)
    }
    fn not(&mut self) -> Result<Expr, String> {
        if self.eat_kw("NOT") {
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err("the expression nests too deeply".into());
            }
            let inner = self.not()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.predicate()
    }
    fn operand(&mut self) -> Result<Expr, String> {
        match self.next() {
            Some(Tok::Ident(name)) => Ok(Expr::Property(name)),
            Some(Tok::Num(n)) => Ok(Expr::Literal(Value::Num(n))),
            Some(Tok::Str(s)) => Ok(Expr::Literal(Value::Str(s))),
            Some(Tok::Keyword("TRUE")) => Ok(Expr::Literal(Value::Bool(true))),
            Some(Tok::Keyword("FALSE")) => Ok(Expr::Literal(Value::Bool(false))),
            other => Err(format!("expected a property or a literal, found {other:?}")),
        }
    }
    fn literal(&mut self) -> Result<Value, String> {
        match self.operand()? {
            Expr::Literal(v) => Ok(v),
            other => Err(format!("expected a literal, found {other:?}")),
        }
    }
    fn predicate(&mut self) -> Result<Expr, String> {
        if self.peek() == Some(&Tok::LParen) {
            self.pos += 1;
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err("the expression nests too deeply".into());
            }
            let e = self.or()?;
            self.depth -= 1;
            return match self.next() {
                Some(Tok::RParen) => Ok(e),
                other => Err(format!("expected ')', found {other:?}")),
            };
        }
        let left = self.operand()?;
        let negated = self.eat_kw("NOT");
        match self.peek().cloned() {
            Some(Tok::Op(op)) if !negated => {
                self.pos += 1;
                let right = self.operand()?;
                Ok(Expr::Compare(op, Box::new(left), Box::new(right)))
            }
            Some(Tok::Keyword("BETWEEN")) => {
                self.pos += 1;
                let low = self.operand()?;
                self.expect_kw("AND")?;
                let high = self.operand()?;
                Ok(Expr::Between {
                    value: Box::new(left),
                    low: Box::new(low),
                    high: Box::new(high),
                    negated,
                })
            }
            Some(Tok::Keyword("IN")) => {
                self.pos += 1;
                if self.next() != Some(Tok::LParen) {
                    return Err("expected '(' after IN".into());
                }
                let mut list = vec![self.literal()?];
                loop {
                    match self.next() {
                        Some(Tok::Comma) => list.push(self.literal()?),
                        Some(Tok::RParen) => break,
                        other => {
                            return Err(format!("expected ',' or ')' in IN list, found {other:?}"))
                        }
                    }
                }
                Ok(Expr::In {
                    value: Box::new(left),
                    list,
                    negated,
                })
            }
            Some(Tok::Keyword("IS")) if !negated => {
                self.pos += 1;
                let negated = self.eat_kw("NOT");
                self.expect_kw("NULL")?;
                Ok(Expr::IsNull {
                    value: Box::new(left),
                    negated,
                })
            }
            Some(Tok::Keyword(kw @ ("CONTAINS" | "STARTSWITH" | "ENDSWITH"))) => {
                self.pos += 1;
                let op = match kw {
                    "CONTAINS" => TextOp::Contains,
                    "STARTSWITH" => TextOp::StartsWith,
                    _ => TextOp::EndsWith,
                };
                match self.next() {
                    Some(Tok::Str(pattern)) => Ok(Expr::Text {
                        op,
                        value: Box::new(left),
                        pattern,
                        negated,
                    }),
                    other => Err(format!("expected a string after {kw}, found {other:?}")),
                }
            }
            _ if negated => Err(format!(
                "expected BETWEEN, IN or CONTAINS after NOT, found {:?}",
                self.peek()
            )),
            _ => match left {
                Expr::Property(_) | Expr::Literal(Value::Bool(_)) => Ok(left),
                other => Err(format!("{other:?} is not a condition")),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferromq_protocol::message::encode_properties;

    fn sql(expr: &str, props: &[(&str, &str)]) -> bool {
        MessageFilter::compile("SQL92", expr)
            .unwrap()
            .accepts_properties(&encode_properties(props.iter().copied()))
    }

    #[test]
    fn comparisons_convert_numeric_properties() {
        assert!(sql("a > 5 AND b = 'x'", &[("a", "7"), ("b", "x")]));
        assert!(!sql("a > 5 AND b = 'x'", &[("a", "3"), ("b", "x")]));
        assert!(!sql("a > 5 AND b = 'x'", &[("a", "7"), ("b", "y")]));
        assert!(
            !sql("a > 5 AND b = 'x'", &[("b", "x")]),
            "missing property is unknown"
        );
        assert!(sql("a >= 7.0 and a <> 8 and a != 9", &[("a", "7")]));
        assert!(!sql("a > 5", &[("a", "seven")]));
        assert!(sql("a = -2", &[("a", "-2")]));
    }

    #[test]
    fn between_in_null_and_text_predicates() {
        assert!(sql("a BETWEEN 1 AND 10", &[("a", "10")]));
        assert!(sql("a NOT BETWEEN 1 AND 10", &[("a", "11")]));
        assert!(sql("b IN ('x', 'y')", &[("b", "y")]));
        assert!(sql("b NOT IN ('x', 'y')", &[("b", "z")]));
        assert!(
            !sql("b NOT IN ('x')", &[]),
            "NOT IN on a missing property is unknown"
        );
        assert!(sql("c IS NULL", &[("a", "1")]));
        assert!(sql("a IS NOT NULL", &[("a", "1")]));
        assert!(sql(
            "TAGS CONTAINS 'ag' AND TAGS STARTSWITH 'T' AND TAGS ENDSWITH 'A'",
            &[("TAGS", "TagA")]
        ));
        assert!(sql("name = 'it''s'", &[("name", "it's")]));
    }

    #[test]
    fn logic_is_three_valued() {
        assert!(sql("missing > 1 OR a = 1", &[("a", "1")]));
        assert!(!sql("NOT (missing > 1)", &[]));
        assert!(sql("NOT (a > 1)", &[("a", "1")]));
        assert!(sql("TRUE", &[]));
        assert!(!sql("FALSE OR (a = 1 AND b = 2)", &[("a", "1")]));
        assert!(sql("flag", &[("flag", "true")]));
    }

    #[test]
    fn malformed_expressions_are_refused_with_a_reason() {
        for bad in [
            "a > AND",
            "",
            "(a = 1",
            "a = 1)",
            "a IN ()",
            "a BETWEEN 1",
            "'x'",
            "a === 1",
            "a = 'open",
            "NOT NOT",
            "a = 1 b",
        ] {
            let err = MessageFilter::compile("SQL92", bad).unwrap_err();
            assert_eq!(err.kind, "SQL92", "{bad}");
            assert!(!err.reason.is_empty());
        }
        let deep = format!("{}a = 1{}", "(".repeat(100), ")".repeat(100));
        assert!(MessageFilter::compile("SQL92", &deep).is_err());
        assert!(MessageFilter::compile("SQL92", &"a = 1 OR ".repeat(1000)).is_err());
    }

    #[test]
    fn tag_filters_match_exact_names_not_just_hashes() {
        let f = MessageFilter::compile("TAG", "TagA || TagB").unwrap();
        assert!(f.accepts_code(tag_hash("TagA")));
        assert!(!f.accepts_code(tag_hash("TagC")));
        assert!(f.accepts_properties(&encode_properties([("TAGS", "TagB")])));
        assert!(!f.accepts_properties(&encode_properties([("TAGS", "TagC")])));
        // "Aa" and "BB" share Java's hash code; only the exact check tells them apart.
        let f = MessageFilter::compile("TAG", "Aa").unwrap();
        assert!(f.accepts_code(tag_hash("BB")));
        assert!(!f.accepts_properties(&encode_properties([("TAGS", "BB")])));
        assert_eq!(
            MessageFilter::compile("TAG", " * ").unwrap(),
            MessageFilter::All
        );
    }
}
