//! The condition language of L4 vouchers: small boolean expressions over the facts a payment
//! request carries, evaluated without I/O.
//!
//! ```text
//! expr       := and ("||" and)*
//! and        := unary ("&&" unary)*
//! unary      := "!" unary | "(" expr ")" | comparison
//! comparison := operand ("==" | "!=" | "<" | "<=" | ">" | ">=") operand
//!             | operand "in" "[" literal ("," literal)* "]"
//!             | operand                      (must be a boolean)
//! operand    := integer | 'string' | "string" | true | false | path
//! path       := payment.amount | payment.currency | payment.payee | payment.category
//!             | time.unix | time.utc_hour | time.utc_minute | time.utc_weekday
//!             | facts.NAME
//! ```
//!
//! Values are signed 64-bit integers, strings or booleans; never floating point (amounts and
//! prices are integers in minor units). Evaluation is total and deterministic: a missing fact, a
//! comparison between different types, or an ordering of strings or booleans makes the condition
//! *fail* with a message naming why; nothing is coerced. Parsing bounds the length and nesting, so
//! a hostile voucher cannot make evaluation expensive.

use serde_json::{Map, Value as Json};
use std::fmt;

/// The longest accepted expression, in bytes.
pub const MAX_EXPR_BYTES: usize = 512;
/// The deepest accepted nesting of `!` and parentheses.
pub const MAX_DEPTH: usize = 16;

/// A value during evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A signed integer.
    Int(i64),
    /// A string.
    Str(String),
    /// A boolean.
    Bool(bool),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int(i) => write!(f, "{i}"),
            Self::Str(s) => write!(f, "{s:?}"),
            Self::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// What a condition is evaluated against.
#[derive(Debug, Clone)]
pub struct Scope<'a> {
    /// The payment's amount in minor units.
    pub amount: u64,
    /// Its currency code.
    pub currency: &'a str,
    /// Its payee.
    pub payee: &'a str,
    /// Its category, if any.
    pub category: Option<&'a str>,
    /// The decision time, Unix seconds.
    pub now: i64,
    /// The request's `facts` object.
    pub facts: &'a Map<String, Json>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Operand {
    Literal(Value),
    Path(String),
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expr(Node);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
    Compare(Box<(Operand, Op, Operand)>),
    In(Operand, Vec<Value>),
    Truth(Operand),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Int(i64),
    Str(String),
    Ident(String),
    Op(Op),
    And,
    Or,
    Not,
    Open,
    Close,
    LBracket,
    RBracket,
    Comma,
}

/// Why an expression is not one of the language's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The text is longer than [`MAX_EXPR_BYTES`].
    #[error("longer than {MAX_EXPR_BYTES} bytes")]
    TooLong,
    /// A byte no token starts with.
    #[error("unexpected character at byte {at}")]
    UnexpectedCharacter {
        /// Its offset.
        at: usize,
    },
    /// A token other than the one the grammar needs here.
    #[error("expected {what}")]
    Expected {
        /// What the grammar needs.
        what: &'static str,
    },
    /// A string without its closing quote.
    #[error("unterminated string at byte {at}")]
    UnterminatedString {
        /// Where it starts.
        at: usize,
    },
    /// Digits that are not an `i64`.
    #[error("bad integer at byte {at}")]
    BadInteger {
        /// Where it starts.
        at: usize,
    },
    /// Parentheses or negations nested deeper than [`MAX_DEPTH`].
    #[error("nested deeper than {MAX_DEPTH}")]
    TooDeep,
    /// A name inside an `in [...]` list.
    #[error("{path} in a list: lists hold literals only")]
    NameInList {
        /// The name.
        path: String,
    },
    /// A name that is not `payment.*`, `time.*` or `facts.NAME`.
    #[error("unknown name {path:?} (payment.*, time.* or facts.NAME)")]
    UnknownName {
        /// The name.
        path: String,
    },
    /// Text after a complete expression.
    #[error("unexpected text after the expression")]
    TrailingText,
}

/// Why a condition was not decided: its text does not parse, or it cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Undecided {
    /// The text is not an expression of the language.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The expression cannot be evaluated on these facts.
    #[error(transparent)]
    Eval(#[from] EvalError),
}

/// Why an expression cannot be decided on a payment's facts (a denial, never a yes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// A bare operand that is not a boolean.
    #[error("{value} is not true or false")]
    NotBoolean {
        /// The operand's value.
        value: String,
    },
    /// An ordering between values of different types, or of booleans.
    #[error("cannot compare {left} with {right} that way")]
    Incomparable {
        /// The left value.
        left: String,
        /// The right value.
        right: String,
    },
    /// The amount does not fit the language's integers.
    #[error("amount too large")]
    AmountTooLarge,
    /// `payment.category` on a payment that names none.
    #[error("the payment names no category")]
    NoCategory,
    /// A `facts.NAME` the request does not carry.
    #[error("fact {name:?} is missing")]
    MissingFact {
        /// The fact's name.
        name: String,
    },
    /// A fact that is a number but not an integer.
    #[error("fact {name:?} is not an integer")]
    NotInteger {
        /// The fact's name.
        name: String,
    },
    /// A fact that is an array, an object or null.
    #[error("fact {name:?} is not an integer, string or bool")]
    UnsupportedFact {
        /// The fact's name.
        name: String,
    },
}

fn tokenize(src: &str) -> Result<Vec<Token>, ParseError> {
    if src.len() > MAX_EXPR_BYTES {
        return Err(ParseError::TooLong);
    }
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let next = bytes.get(i + 1).copied();
        let two = |t: Token, out: &mut Vec<Token>| {
            out.push(t);
            2
        };
        let step = match (b, next) {
            (b' ' | b'\t' | b'\n', _) => 1,
            (b'&', Some(b'&')) => two(Token::And, &mut out),
            (b'|', Some(b'|')) => two(Token::Or, &mut out),
            (b'=', Some(b'=')) => two(Token::Op(Op::Eq), &mut out),
            (b'!', Some(b'=')) => two(Token::Op(Op::Ne), &mut out),
            (b'<', Some(b'=')) => two(Token::Op(Op::Le), &mut out),
            (b'>', Some(b'=')) => two(Token::Op(Op::Ge), &mut out),
            (b'<', _) => {
                out.push(Token::Op(Op::Lt));
                1
            }
            (b'>', _) => {
                out.push(Token::Op(Op::Gt));
                1
            }
            (b'!', _) => {
                out.push(Token::Not);
                1
            }
            (b'(', _) => {
                out.push(Token::Open);
                1
            }
            (b')', _) => {
                out.push(Token::Close);
                1
            }
            (b'[', _) => {
                out.push(Token::LBracket);
                1
            }
            (b']', _) => {
                out.push(Token::RBracket);
                1
            }
            (b',', _) => {
                out.push(Token::Comma);
                1
            }
            (b'\'' | b'"', _) => {
                let rest = src.get(i + 1..).unwrap_or("");
                let end = rest
                    .find(char::from(b))
                    .ok_or(ParseError::UnterminatedString { at: i })?;
                out.push(Token::Str(rest.get(..end).unwrap_or("").to_string()));
                end + 2
            }
            (b'-' | b'0'..=b'9', _) => {
                let rest = src.get(i..).unwrap_or("");
                let len = rest
                    .char_indices()
                    .skip(1)
                    .find(|(_, c)| !c.is_ascii_digit())
                    .map_or(rest.len(), |(n, _)| n);
                let text = rest.get(..len).unwrap_or("");
                let n = text
                    .parse::<i64>()
                    .map_err(|_| ParseError::BadInteger { at: i })?;
                out.push(Token::Int(n));
                len
            }
            (b'a'..=b'z' | b'A'..=b'Z' | b'_', _) => {
                let rest = src.get(i..).unwrap_or("");
                let len = rest
                    .char_indices()
                    .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '.'))
                    .map_or(rest.len(), |(n, _)| n);
                let word = rest.get(..len).unwrap_or("");
                out.push(match word {
                    "in" => Token::Ident("in".into()),
                    w => Token::Ident(w.to_string()),
                });
                len
            }
            _ => return Err(ParseError::UnexpectedCharacter { at: i }),
        };
        i += step;
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn bump(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn expect(&mut self, want: &Token, what: &'static str) -> Result<(), ParseError> {
        match self.bump() {
            Some(t) if &t == want => Ok(()),
            _ => Err(ParseError::Expected { what }),
        }
    }

    fn or(&mut self, depth: usize) -> Result<Node, ParseError> {
        let mut left = self.and(depth)?;
        while self.peek() == Some(&Token::Or) {
            self.pos += 1;
            left = Node::Or(Box::new(left), Box::new(self.and(depth)?));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Node, ParseError> {
        let mut left = self.unary(depth)?;
        while self.peek() == Some(&Token::And) {
            self.pos += 1;
            left = Node::And(Box::new(left), Box::new(self.unary(depth)?));
        }
        Ok(left)
    }

    fn unary(&mut self, depth: usize) -> Result<Node, ParseError> {
        if depth >= MAX_DEPTH {
            return Err(ParseError::TooDeep);
        }
        match self.peek() {
            Some(Token::Not) => {
                self.pos += 1;
                Ok(Node::Not(Box::new(self.unary(depth + 1)?)))
            }
            Some(Token::Open) => {
                self.pos += 1;
                let e = self.or(depth + 1)?;
                self.expect(&Token::Close, "')'")?;
                Ok(e)
            }
            _ => self.comparison(),
        }
    }

    fn operand(&mut self) -> Result<Operand, ParseError> {
        match self.bump() {
            Some(Token::Int(n)) => Ok(Operand::Literal(Value::Int(n))),
            Some(Token::Str(s)) => Ok(Operand::Literal(Value::Str(s))),
            Some(Token::Ident(w)) if w == "true" => Ok(Operand::Literal(Value::Bool(true))),
            Some(Token::Ident(w)) if w == "false" => Ok(Operand::Literal(Value::Bool(false))),
            Some(Token::Ident(w)) => {
                check_path(&w)?;
                Ok(Operand::Path(w))
            }
            _ => Err(ParseError::Expected {
                what: "a value or a name",
            }),
        }
    }

    fn literal(&mut self) -> Result<Value, ParseError> {
        match self.operand()? {
            Operand::Literal(v) => Ok(v),
            Operand::Path(path) => Err(ParseError::NameInList { path }),
        }
    }

    fn comparison(&mut self) -> Result<Node, ParseError> {
        let left = self.operand()?;
        match self.bump() {
            Some(Token::Op(op)) => {
                let right = self.operand()?;
                Ok(Node::Compare(Box::new((left, op, right))))
            }
            Some(Token::Ident(w)) if w == "in" => {
                self.expect(&Token::LBracket, "'[' after in")?;
                let mut items = vec![self.literal()?];
                while self.peek() == Some(&Token::Comma) {
                    self.pos += 1;
                    items.push(self.literal()?);
                }
                self.expect(&Token::RBracket, "']'")?;
                Ok(Node::In(left, items))
            }
            // A bare operand must be a boolean when evaluated (`facts.organic`, `true`).
            Some(Token::Close | Token::And | Token::Or) | None => {
                self.pos -= 1;
                Ok(Node::Truth(left))
            }
            _ => Err(ParseError::Expected {
                what: "a comparison (==, !=, <, <=, >, >=, in)",
            }),
        }
    }
}

fn check_path(path: &str) -> Result<(), ParseError> {
    const FIXED: &[&str] = &[
        "payment.amount",
        "payment.currency",
        "payment.payee",
        "payment.category",
        "time.unix",
        "time.utc_hour",
        "time.utc_minute",
        "time.utc_weekday",
    ];
    let fact = path
        .strip_prefix("facts.")
        .is_some_and(|n| !n.is_empty() && !n.contains('.'));
    if fact || FIXED.contains(&path) {
        Ok(())
    } else {
        Err(ParseError::UnknownName { path: path.into() })
    }
}

impl Expr {
    /// Parses `src` and evaluates it in `scope`.
    pub fn holds(src: &str, scope: &Scope<'_>) -> Result<bool, Undecided> {
        Ok(Self::parse(src)?.eval(scope)?)
    }

    /// Parses an expression, or says what is wrong with it.
    pub fn parse(src: &str) -> Result<Self, ParseError> {
        let mut p = Parser {
            tokens: tokenize(src)?,
            pos: 0,
        };
        let e = p.or(0)?;
        if p.pos != p.tokens.len() {
            return Err(ParseError::TrailingText);
        }
        Ok(Self(e))
    }

    /// Whether the expression holds in `scope`; `Err` says why it cannot be decided (which
    /// counts as not holding).
    pub fn eval(&self, scope: &Scope<'_>) -> Result<bool, EvalError> {
        self.0.eval(scope)
    }
}

impl Node {
    fn eval(&self, scope: &Scope<'_>) -> Result<bool, EvalError> {
        match self {
            Self::And(a, b) => Ok(a.eval(scope)? && b.eval(scope)?),
            Self::Or(a, b) => Ok(a.eval(scope)? || b.eval(scope)?),
            Self::Not(a) => Ok(!a.eval(scope)?),
            Self::Truth(x) => match resolve(x, scope)? {
                Value::Bool(b) => Ok(b),
                other => Err(EvalError::NotBoolean {
                    value: other.to_string(),
                }),
            },
            Self::In(x, items) => {
                let v = resolve(x, scope)?;
                Ok(items.contains(&v))
            }
            Self::Compare(c) => {
                let (l, op, r) = c.as_ref();
                compare(&resolve(l, scope)?, *op, &resolve(r, scope)?)
            }
        }
    }
}

fn compare(l: &Value, op: Op, r: &Value) -> Result<bool, EvalError> {
    use std::cmp::Ordering;
    let ord: Ordering = match (l, r) {
        (Value::Int(a), Value::Int(b)) => a.cmp(b),
        (Value::Str(a), Value::Str(b)) if matches!(op, Op::Eq | Op::Ne) => a.cmp(b),
        (Value::Bool(a), Value::Bool(b)) if matches!(op, Op::Eq | Op::Ne) => a.cmp(b),
        _ => {
            return Err(EvalError::Incomparable {
                left: l.to_string(),
                right: r.to_string(),
            });
        }
    };
    Ok(match op {
        Op::Eq => ord.is_eq(),
        Op::Ne => ord.is_ne(),
        Op::Lt => ord.is_lt(),
        Op::Le => ord.is_le(),
        Op::Gt => ord.is_gt(),
        Op::Ge => ord.is_ge(),
    })
}

fn resolve(o: &Operand, s: &Scope<'_>) -> Result<Value, EvalError> {
    let path = match o {
        Operand::Literal(v) => return Ok(v.clone()),
        Operand::Path(p) => p.as_str(),
    };
    let secs_of_day = s.now.rem_euclid(86_400);
    Ok(match path {
        "payment.amount" => {
            Value::Int(i64::try_from(s.amount).map_err(|_| EvalError::AmountTooLarge)?)
        }
        "payment.currency" => Value::Str(s.currency.into()),
        "payment.payee" => Value::Str(s.payee.into()),
        "payment.category" => Value::Str(s.category.ok_or(EvalError::NoCategory)?.to_string()),
        "time.unix" => Value::Int(s.now),
        "time.utc_hour" => Value::Int(secs_of_day / 3600),
        "time.utc_minute" => Value::Int(secs_of_day / 60),
        // 1970-01-01 was a Thursday; ISO weekday 1 = Monday.
        "time.utc_weekday" => Value::Int((s.now.div_euclid(86_400) + 3).rem_euclid(7) + 1),
        other => {
            let name = other.strip_prefix("facts.").unwrap_or(other);
            match s.facts.get(name) {
                None => return Err(EvalError::MissingFact { name: name.into() }),
                Some(Json::Bool(b)) => Value::Bool(*b),
                Some(Json::String(t)) => Value::Str(t.clone()),
                Some(Json::Number(n)) => Value::Int(
                    n.as_i64()
                        .ok_or_else(|| EvalError::NotInteger { name: name.into() })?,
                ),
                Some(_) => return Err(EvalError::UnsupportedFact { name: name.into() }),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn scope<'a>(facts: &'a Map<String, Json>, now: i64) -> Scope<'a> {
        Scope {
            amount: 1250,
            currency: "CNY",
            payee: "shop-a",
            category: Some("groceries"),
            now,
            facts,
        }
    }

    fn holds(src: &str, facts: Json, now: i64) -> Result<bool, EvalError> {
        let facts = facts.as_object().cloned().unwrap_or_default();
        Expr::parse(src).unwrap().eval(&scope(&facts, now))
    }

    #[test]
    fn evaluates_over_payment_facts_and_time() {
        let f = json!({"unit_price": 450, "quantity": 3, "organic": true, "sku": "A-1"});
        assert_eq!(holds("facts.unit_price >= 400", f.clone(), 0), Ok(true));
        assert_eq!(holds("facts.unit_price >= 500", f.clone(), 0), Ok(false));
        assert_eq!(
            holds(
                "facts.quantity <= 5 && (payment.payee == 'shop-a' || false)",
                f.clone(),
                0
            ),
            Ok(true)
        );
        assert_eq!(holds("!facts.organic == false", f.clone(), 0), Ok(true));
        assert_eq!(
            holds("payment.category in ['groceries', \"fuel\"]", f.clone(), 0),
            Ok(true)
        );
        assert_eq!(holds("facts.sku in ['B-2']", f.clone(), 0), Ok(false));
        assert_eq!(holds("payment.amount < -1", f.clone(), 0), Ok(false));
        // 2026-11-23 is a Monday; 10:30 UTC.
        let t = 1_795_392_000 + 10 * 3600 + 30 * 60;
        assert_eq!(holds("time.utc_weekday == 1", json!({}), t), Ok(true));
        assert_eq!(
            holds(
                "time.utc_hour >= 9 && time.utc_hour < 18 && time.utc_minute == 630",
                json!({}),
                t
            ),
            Ok(true)
        );
    }

    #[test]
    fn undecidable_conditions_fail_with_a_reason() {
        assert!(
            holds("facts.unit_price >= 400", json!({}), 0)
                == Err(EvalError::MissingFact {
                    name: "unit_price".into()
                })
        );
        assert!(holds("facts.x > 1", json!({"x": "2"}), 0).is_err());
        assert!(holds("facts.x > 1", json!({"x": 1.5}), 0).is_err());
        assert!(holds("payment.payee < 'z'", json!({}), 0).is_err());
    }

    #[test]
    fn bad_expressions_are_refused_at_parse() {
        for bad in [
            "",
            "facts.x >",
            "facts.x = 1",
            "foo.bar == 1",
            "facts. == 1",
            "(facts.x == 1",
            "facts.x == 1 facts.y == 2",
            "facts.x in [facts.y]",
            "'open",
            "facts.x == 99999999999999999999",
            "facts.x == 1 #",
        ] {
            assert!(Expr::parse(bad).is_err(), "{bad:?} parsed");
        }
        let deep = format!("{}facts.x == 1{}", "(".repeat(40), ")".repeat(40));
        assert_eq!(Expr::parse(&deep).unwrap_err(), ParseError::TooDeep);
        assert!(Expr::parse(&"!".repeat(600)).is_err());
        assert!(
            holds("facts.n", json!({"n": 1}), 0).is_err(),
            "a bare integer is not a truth"
        );
        assert_eq!(holds("facts.ok && true", json!({"ok": true}), 0), Ok(true));
    }
}
